# Shared by the scripts: make (or reuse) the virtualenv of one cell of the support matrix
# (.ci/matrix.toml) from its lock file (.ci/locks/<cell>.txt), with this provider installed editable.
# Usage: source scripts/_venv.sh; ensure_venv DIR CELL   (or ensure_venv_in_background DIR CELL,
# then wait "$ENSURE_VENV_PID"). venv_dir CELL names a cell's usual folder.
#
# uv builds them (pinned below, installed into .venv-uv with pip on first use); its cache
# (~/.cache/uv) is shared, so a second environment with the same packages costs seconds. uv never
# downloads a Python: each cell uses this machine's interpreter (pyenv's, see scripts/_matrix.py).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
UV_VERSION=0.13.10
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1

ensure_uv() {
  UV="$PWD/.venv-uv/bin/uv"
  if [[ -x "$UV" && "$("$UV" --version)" == "uv $UV_VERSION"* ]]; then return 0; fi
  echo "==> Installing uv $UV_VERSION into .venv-uv"
  "$PYTHON" -m venv --clear .venv-uv
  .venv-uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
}

# The usual folder of a cell: .venv (the main Airflow 3 cell), .venv-airflow2 (the Airflow 2 one),
# .venvs/<cell> for the others.
venv_dir() {
  case "$1" in
    3.3.2-py3.11) echo .venv ;;
    2.11.2-py3.11) echo .venv-airflow2 ;;
    *) echo ".venvs/$1" ;;
  esac
}

# ensure_locked_venv DIR LOCK PYTHON_VERSION [--editable]: DIR holds exactly LOCK's packages on that
# Python (and, with --editable, this provider installed editable); rebuilt only when the lock (or,
# for an editable one, pyproject.toml) changed.
ensure_locked_venv() {
  local dir="$1" lock="$2" version="$3" editable="${4:-}"
  local stamp="$dir/.musicai-installed" want python
  ensure_uv
  [[ -f "$lock" ]] || { echo "error: no lock file $lock (cells: scripts/_matrix.py cells)" >&2; return 1; }
  want="$lock $version $editable $(cat "$lock" ${editable:+pyproject.toml} | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  python="$("$PYTHON" scripts/_matrix.py python "$version")"
  echo "==> Creating $dir from $lock ($python)"
  rm -rf "$dir"
  "$UV" venv --quiet --python "$python" "$dir"
  if ! { "$UV" pip sync --quiet --python "$dir/bin/python" "$lock" &&
         if [[ -n "$editable" ]]; then "$UV" pip install --quiet --python "$dir/bin/python" --no-deps -e .; fi
       } >"$dir/install.log" 2>&1; then
    tail -40 "$dir/install.log"
    echo "uv could not install $lock (full log: $dir/install.log)" >&2
    return 1
  fi
  if [[ -n "$editable" ]]; then
    "$dir/bin/python" -c "import airflow, airflow_provider_musicai, fastapi" >/dev/null
  fi
  echo "$want" > "$stamp"
}

# ensure_venv DIR CELL: the virtualenv of a matrix cell, with this provider installed editable.
ensure_venv() {
  local dir="$1" cell="$2"
  local python_version
  python_version="$("$PYTHON" scripts/_matrix.py describe "$cell" | cut -d' ' -f1)"
  ensure_locked_venv "$dir" ".ci/locks/$cell.txt" "$python_version" --editable
}

# ensure_venv in a background job (its output kept in DIR.build.log, shown if it fails). Sets
# ENSURE_VENV_PID.
ensure_venv_in_background() {
  local dir="$1" cell="$2"
  ensure_uv
  mkdir -p "$(dirname "$dir")"
  (
    if ! ensure_venv "$dir" "$cell" >"$dir.build.log" 2>&1; then
      cat "$dir.build.log" >&2
      exit 1
    fi
  ) &
  ENSURE_VENV_PID=$!
}
