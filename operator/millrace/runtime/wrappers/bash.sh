# millrace step wrapper for bash: run ./main.sh as Windmill does, report the outcome.
#
# Windmill's conventions, kept so its scripts run unchanged: the arguments come
# by position (the runner orders them by the script's `name="$1"` lines); the
# script runs under `set -e`; its stderr joins its stdout; the result is
# ./result.json when the script wrote one (JSON), else ./result.out (a string),
# else the last line of the output, trimmed (a string). A non-zero exit is an
# error carrying the exit code and the last lines of output.
# Needs only bash and coreutils (mktemp, tee, tail, mv): it runs in step pods.

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

# Hand the outcome document to the runner, atomically.
report() {
    local temporary="$MILLRACE_RESULT_FILE.$$.tmp"
    printf '%s' "$1" >"$temporary" && mv -f "$temporary" "$MILLRACE_RESULT_FILE"
}

rm -f result.json result.out
output=$(mktemp)
bash -e ./main.sh "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}

if [ "$status" -ne 0 ]; then
    message="main.sh exited with code $status; last lines of output:
$(tail -n 10 "$output")"
    report "{\"ok\":false,\"error\":{\"name\":\"ExecutionError\",\"message\":$(json_string "$message")}}"
elif [ -s result.json ]; then
    report "{\"ok\":true,\"result_json\":$(json_string "$(<result.json)")}"
elif [ -s result.out ]; then
    report "{\"ok\":true,\"result\":$(json_string "$(<result.out)")}"
else
    report "{\"ok\":true,\"result\":$(json_string "$(trim "$(tail -n 1 "$output")")")}"
fi
rm -f "$output"
