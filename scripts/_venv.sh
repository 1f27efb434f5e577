# Shared by scripts/test and scripts/run-example: make (or reuse) a virtualenv with Airflow and
# this provider installed editable. Usage: source scripts/_venv.sh; ensure_venv DIR AIRFLOW_SPEC
# (or ensure_venv_in_background DIR AIRFLOW_SPEC, then wait "$ENSURE_VENV_PID").
set -euo pipefail

PYTHON="${PYTHON:-python3}"

ensure_venv() {
  local dir="$1" airflow_spec="$2"
  local stamp="$dir/.musicai-installed"
  local want
  want="$airflow_spec $(cat pyproject.toml | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "==> Creating $dir with $airflow_spec (one-time, about a minute)"
  "$PYTHON" -m venv "$dir"
  if ! "$dir/bin/python" -m pip install --quiet "$airflow_spec" -e ".[dev]" >"$dir/pip-install.log" 2>&1; then
    grep -v "^WARNING: Location" "$dir/pip-install.log" | tail -40
    echo "pip install failed (full log: $dir/pip-install.log)" >&2
    return 1
  fi
  "$dir/bin/python" -c "import airflow, airflow_provider_musicai, fastapi" >/dev/null
  echo "$want" > "$stamp"
}

# ensure_venv in a background job (its output kept in DIR/build.log, shown if it fails): two
# virtualenvs build at once, pip's cache is safe to share. Sets ENSURE_VENV_PID.
ensure_venv_in_background() {
  local dir="$1" airflow_spec="$2"
  mkdir -p "$dir"
  (
    if ! ensure_venv "$dir" "$airflow_spec" >"$dir/build.log" 2>&1; then
      cat "$dir/build.log" >&2
      exit 1
    fi
  ) &
  ENSURE_VENV_PID=$!
}
