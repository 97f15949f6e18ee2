# millrace step wrapper for bash: run ./main.sh as Windmill does, report the outcome.
#
# Windmill's conventions (bash_executor.rs handle_bash_job, result_processor.rs
# process_result), kept so its scripts run unchanged: the arguments come by
# position (the runner orders them by the script's `name="$1"` lines); main.sh
# starts with `set -e` (the runner prepends it, so line numbers are Windmill's);
# its stderr joins its stdout; the result is ./result.json when the script wrote
# one (JSON), else ./result.out (a string), else the last line of the output,
# trimmed (a string). A non-zero exit is Windmill's ExecutionErr: the exit code and
# the last 600 characters of the output, trimmed, their colour codes removed.
# The outcome goes to the step API (MILLRACE_API_URL, MILLRACE_TOKEN) through
# bash's own /dev/tcp: needs only bash and coreutils (mktemp, tee, tail, cat), as it runs in step pods.

. "${BASH_SOURCE[0]%/*}/report.sh"

# Windmill's exit-code error: the exit code $1 and the end of the output, as process_result words it.
exit_error() {
    local tail ansi=$'\e''\[[0-9;]*m'
    # Characters, not bytes, as Windmill counts them: a UTF-8 locale for the cut.
    [[ ${LC_ALL:-${LC_CTYPE:-${LANG:-}}} == *[Uu][Tt][Ff]* ]] || local LC_ALL=C.UTF-8
    tail=$(tail -c 2400 "$output"; printf x) # at least 600 characters, however wide; x keeps the last newlines
    tail=${tail%x}
    [ "${#tail}" -le 600 ] || tail=${tail: -600}
    tail=$(trim "$tail")
    while [[ $tail =~ $ansi ]]; do
        tail=${tail/"${BASH_REMATCH[0]}"/}
    done
    printf 'exit code for "bash run": %s, last log lines:\n%s' "$1" "$tail"
}

if [ -e .millrace-status ]; then
    # A program step whose command ran before, in its own image (program-run.sh, a step pod's init container).
    output=.millrace-output
    cat "$output"
    status=$(<.millrace-status)
else
    rm -f result.json result.out
    # The output's copy stays in the working directory, as Windmill's does: a pod's root file system, /tmp included, is read-only.
    output=$(mktemp ./.millrace-output.XXXXXX)
    # MILLRACE_SHELL: program.sh runs main.sh with /bin/sh, as the image would.
    "${MILLRACE_SHELL:-bash}" ./main.sh "$@" 2>&1 | tee "$output"
    status=${PIPESTATUS[0]}
fi

if [ "$status" -ne 0 ]; then
    report "{\"ok\":false,\"error\":{\"name\":\"ExecutionErr\",\"exit_code\":$status,\"message\":$(json_string "$(exit_error "$status")")}}"
elif [ -s result.json ]; then
    report "{\"ok\":true,\"result_json\":$(json_string "$(<result.json)")}"
elif [ -s result.out ]; then
    text=$(cat result.out; printf x) # x keeps the last newlines: the file is the result as it is
    report "{\"ok\":true,\"result\":$(json_string "${text%x}")}"
else
    report "{\"ok\":true,\"result\":$(json_string "$(trim "$(tail -n 1 "$output")")")}"
fi
rm -f "$output" .millrace-status
# In a pod (set by launch.sh) a failed step exits non-zero, so its Job is Failed; its output is in the log already.
if [ "$status" -ne 0 ] && [ -n "${MILLRACE_EXIT_ON_FAILURE:-}" ]; then
    exit "$status"
fi
