# Shared by the CLI test scripts (sourced; not a test itself): a temporary working directory, a
# failure counter and `expect`, which runs one vlm subcommand and checks its exit status, that
# stderr names what it should, and that stdout stays empty (always for a usage error; for every
# call when QUIET_STDOUT=1).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect SUBCOMMAND STATUS NEEDLE -- ARGS...
# Each call runs under `timeout` (EXPECT_TIMEOUT seconds, default 600): a hang fails as one.
expect() {
    local cmd=$1 want=$2 needle=$3
    shift 4
    timeout "${EXPECT_TIMEOUT:-600}" "$VLM" "$cmd" "$@" >out.txt 2>err.txt
    local rc=$?
    if [ "$rc" -eq 124 ]; then
        fail "vlm $cmd $*: still running after ${EXPECT_TIMEOUT:-600} s (a hang?); stderr: $(cat err.txt)"
    elif [ "$rc" -ne "$want" ]; then
        fail "vlm $cmd $*: exit $rc, expected $want; stderr: $(cat err.txt)"
    elif [ -n "$needle" ] && ! grep -qF -- "$needle" err.txt; then
        fail "vlm $cmd $*: stderr does not name '$needle': $(cat err.txt)"
    elif { [ "$want" -eq 2 ] || [ "${QUIET_STDOUT:-0}" = 1 ]; } && [ -s out.txt ]; then
        fail "vlm $cmd $*: printed on stdout: $(cat out.txt)"
    fi
}

# Ends the script: the count of failures, exit status 1 when there were any.
finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$failures failure(s)" >&2
        exit 1
    fi
    echo "ok"
    exit 0
}
