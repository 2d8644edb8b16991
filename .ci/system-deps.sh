#!/usr/bin/env bash
# Installs Debian's Prometheus and Alertmanager (used by the integration tests) when
# running as root and they are missing. Their services are not started by apt here.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; integration tests needing ${need[*]} will skip (fail under CI=true)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# quietly from the current package lists; if that fails, refresh them and show what happens
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || { apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; }
echo "system-deps: installed ${need[*]}"
