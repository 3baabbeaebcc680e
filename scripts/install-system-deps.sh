#!/usr/bin/env bash
# System packages the test suite needs: promtool (Debian's `prometheus` package).
# Idempotent; installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "install these Debian packages (needs root): ${missing[*]}" >&2; exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: only promtool and prometheus itself; no service is started in a chroot/container
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v promtool >/dev/null
