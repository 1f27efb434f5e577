#!/usr/bin/env bash
# The system packages of the deployment suite (tests/deployment): PostgreSQL and Redis from Debian.
# Only installs them when missing; the suite itself starts and stops its own servers on temporary
# data directories and free loopback ports. Sourced by scripts/test when the suite will run.

ensure_deployment_services() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || missing+=(postgresql)
  command -v redis-server > /dev/null || missing+=(redis-server)
  if [[ ${#missing[@]} -eq 0 ]]; then return 0; fi
  echo "==> installing ${missing[*]} (deployment suite)"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
