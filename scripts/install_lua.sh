#!/bin/sh
# The Lua interpreter the Argo CD health check tests run (tests/unit/test_argocd_health.py):
# Debian's lua5.4, installed only when missing. Needs root (or sudo-less root CI).
set -e
command -v lua5.4 >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "the Argo CD health check tests need lua5.4 (apt-get install -y lua5.4, as root)" >&2
    exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lua5.4
