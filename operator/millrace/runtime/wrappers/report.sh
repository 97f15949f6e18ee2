# Shared by the bash-based wrappers (bash.sh, go/go.sh): hand an outcome to the step API.
#
# Over bash's own /dev/tcp, to MILLRACE_API_URL with MILLRACE_TOKEN: needs only bash and coreutils.

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
    # The step's own pod (MILLRACE_POD), whose log the step API keeps the end of with a report.
    printf 'POST /v1/%s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
        "$1" "$address" "$MILLRACE_TOKEN" "${MILLRACE_POD:+X-Millrace-Pod: $MILLRACE_POD$'\r\n'}" "${#2}" "$2" >&3
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
