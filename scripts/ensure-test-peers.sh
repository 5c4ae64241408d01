#!/usr/bin/env bash
# Installs the Debian packages that some tests use as real peers, when they are
# missing and apt-get is usable (CI and the dev machines run as root). Tests that
# need a peer skip with a clear reason when it is absent.
set -euo pipefail

wanted=()
command -v chromium >/dev/null 2>&1 || wanted+=(chromium)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || wanted+=(prometheus-alertmanager)

[ ${#wanted[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${wanted[*]} not installed; the tests that need them will be skipped" >&2
  exit 0
fi
echo "installing test peers: ${wanted[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
