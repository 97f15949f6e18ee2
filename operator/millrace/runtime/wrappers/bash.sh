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

# Escape $1 as a JSON string literal, byte by byte.
json_string() {
    local LC_ALL=C s=$1 code hex char
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    for ((code = 1; code < 32; code++)); do
        printf -v hex %02x "$code"
        printf -v char "\\x$hex"
        s=${s//"$char"/\\u00$hex}
    done
    printf '"%s"' "$s"
}

trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# POST the JSON document $2 to the step API's /v1/$1 over plain HTTP; print the status code.
# A refusal's JSON error goes to stderr, which is the step's log.
api_post() {
    local LC_ALL=C address=${MILLRACE_API_URL#http://} status body
    address=${address%%/*}
    exec 3<>"/dev/tcp/${address%:*}/${address##*:}" || return 1
    printf 'POST /v1/%s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
        "$1" "$address" "$MILLRACE_TOKEN" "${#2}" "$2" >&3
    read -r _ status _ <&3
    body=$(cat <&3)
    exec 3<&-
    [ "${status:0:1}" = 2 ] || printf 'millrace: the step API refused the report (%s): %s\n' "$status" "${body##*$'\r\n\r\n'}" >&2
    printf '%s' "$status"
}

# POST, retrying while the step API cannot be reached (an operator restarting) for
# MILLRACE_API_RETRY_S seconds, so the step's outcome is not lost.
api_post_retrying() {
    local status deadline=$((SECONDS + ${MILLRACE_API_RETRY_S:-120})) pause=1
    while :; do
        status=$(api_post "$1" "$2") || status=
        case $status in 502 | 503 | 504 | "") ;; *) break ;; esac
        [ "$SECONDS" -lt "$deadline" ] || break
        sleep "$pause"
        [ "$pause" -ge 4 ] || pause=$((pause * 2))
    done
    printf '%s' "$status"
}

# Hand the outcome document to the step API; a result too large to send becomes the step's error.
report() {
    local status
    status=$(api_post_retrying report "$1")
    if [ "$status" = 413 ]; then
        api_post report '{"ok":false,"error":{"name":"ResultError","message":"the result is over the step API'"'"'s size limit"}}' >/dev/null
    fi
}

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

rm -f result.json result.out
# The output's copy stays in the working directory, as Windmill's does: a pod's root file system, /tmp included, is read-only.
output=$(mktemp ./.millrace-output.XXXXXX)
bash ./main.sh "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}

if [ "$status" -ne 0 ]; then
    report "{\"ok\":false,\"error\":{\"name\":\"ExecutionErr\",\"message\":$(json_string "$(exit_error "$status")")}}"
elif [ -s result.json ]; then
    report "{\"ok\":true,\"result_json\":$(json_string "$(<result.json)")}"
elif [ -s result.out ]; then
    text=$(cat result.out; printf x) # x keeps the last newlines: the file is the result as it is
    report "{\"ok\":true,\"result\":$(json_string "${text%x}")}"
else
    report "{\"ok\":true,\"result\":$(json_string "$(trim "$(tail -n 1 "$output")")")}"
fi
rm -f "$output"
