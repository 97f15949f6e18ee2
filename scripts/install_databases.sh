#!/bin/sh
# The database servers the SQL step tests start (tests/local/databases.py): PostgreSQL and
# MariaDB from Debian's packages, installed only when missing. Needs root (or sudo-less root CI).
set -e
missing=""
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$missing postgresql"
[ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null 2>&1 || missing="$missing mariadb-server"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "the SQL step tests need:$missing (apt-get install -y$missing, as root)" >&2
    exit 1
fi
apt-get update -q
# The packages' own services are not started: the tests run their servers on 127.0.0.1 themselves.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
