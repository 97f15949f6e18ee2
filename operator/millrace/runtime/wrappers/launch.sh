#!/bin/sh
# Prepares a step pod's working directory from the step's mounted files, then
# runs the step. Usage: launch.sh SRC COMMAND...
# In a pod a failed step must look failed: the wrappers then print its error
# to the pod's log and exit non-zero (after reporting), so its Job is Failed.
set -eu
export MILLRACE_EXIT_ON_FAILURE=1
src="$1"
shift
cp -R "$src/files/." .
# The TypeScript module maps name the runtime files at the Job's step root (/millrace): point them at
# where SRC really is (the same place in a pod; elsewhere on a node that does not mount at that path).
for map in tsconfig.json import_map.json; do
    if [ -f "$map" ] && [ "$src" != /millrace ]; then
        sed "s#\"/millrace/#\"$src/#g" "$map" > "$map.tmp" && mv "$map.tmp" "$map"
    fi
done
exec "$@"
