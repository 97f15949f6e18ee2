#!/bin/sh
# Prepares a step pod's working directory from the step's mounted files, then
# runs the step. Usage: launch.sh SRC [--link NAME TARGET]... -- COMMAND...
set -eu
src="$1"
shift
cp -R "$src/files/." .
while [ "$1" = "--link" ]; do
    mkdir -p "$(dirname "$2")"
    ln -sfn "$3" "$2"
    shift 3
done
[ "$1" = "--" ] && shift
exec "$@"
