# millrace step wrapper for Go: build the step (once per code and Go version), run it.
#
# Windmill's layout (go_executor.rs handle_go_job): the script is package
# `inner` of module `mymod` with `func main(...) (interface{}, error)`, and a
# generated package main reads ./args.json and calls it. Here runner.go calls
# main by reflection with the parameters named in ./params.json, so the
# wrapper files never change. The binary is cached under
# $MILLRACE_GO_CACHE (default $MILLRACE_CACHE/go, then ~/.cache/millrace/go),
# keyed by the hash of every source file and the Go version, as Windmill keys
# its GO_BIN_CACHE_DIR by the script's hash. Usage: go.sh GO_BINARY

here=${BASH_SOURCE[0]%/*}
. "$here/../report.sh"
go=$1

fail() {
    printf '%s\n' "$2"
    report "{\"ok\":false,\"error\":{\"name\":\"$1\",\"message\":$(json_string "$2")}}"
    exit 1
}

mkdir -p inner && mv -f inner.go inner/inner.go
cp "$here/main.go" main.go
cp "$here/runner.go" inner/millrace_runner.go
printf 'module mymod\n\ngo 1.21\n' >go.mod

cache=${MILLRACE_GO_CACHE:-${MILLRACE_CACHE:-$HOME/.cache/millrace}/go}
version=$("$go" env GOVERSION 2>&1) || fail RuntimeMissing "go could not be run ($go): $version"
key=$(cat go.mod main.go inner/inner.go inner/millrace_runner.go | sha256sum)
binary=$cache/bin/$version-${key%% *}
if [ ! -x "$binary" ]; then
    mkdir -p "$cache/bin" || fail BuildError "the Go cache $cache is not writable"
    # Only the standard library: no module proxy is asked, no toolchain is downloaded.
    log=$(GOCACHE=$cache/build GOPATH=$cache/path GOTOOLCHAIN=local GOPROXY=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
        "$go" build -o "$binary.$$" . 2>&1) || fail BuildError "go build failed:"$'\n'"$log"
    mv -f "$binary.$$" "$binary"
fi
exec "$binary"
