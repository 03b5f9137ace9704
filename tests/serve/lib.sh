# Shared by the vlm serve test scripts (sourced): servers started on a free port and stopped with
# SIGTERM (their exit status must be 0: a clean drain, and no leak under the ASan build), HTTP calls
# with curl, JSON read with Python. Sources tests/cli/lib.sh for TMP, fail and finish.
# usage in a script: VLM=$1 FIX=$2; source "$(dirname "$0")/lib.sh"
SERVE_LIB_DIR=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
source "$SERVE_LIB_DIR/../cli/lib.sh"
PY=/usr/bin/python3
SERVERS=()
trap 'for p in "${SERVERS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

# start_server NAME ARGS...: vlm serve --port 0 ARGS in the background; waits (up to 120 s) for its
# "listening on" line; sets NAME_PID and NAME_URL. Its stderr is in $TMP/NAME.err. A server that
# exits first is a failure, unless MAY_FAIL=1 (then the status is 1 and the caller looks at NAME.err).
start_server() {
    local name=$1 pid url i
    shift
    "$VLM" serve --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    pid=$!
    SERVERS+=("$pid")
    for i in $(seq 1 1200); do
        grep -q "^vlm serve: listening on http://" "$TMP/$name.err" && break
        if ! kill -0 "$pid" 2>/dev/null; then
            [ "${MAY_FAIL:-0}" = 1 ] || fail "server $name exited before it was ready: $(cat "$TMP/$name.err")"
            return 1
        fi
        sleep 0.1
    done
    url=$(grep -o "^vlm serve: listening on http://[^ ]*" "$TMP/$name.err" | head -1 | sed 's/^vlm serve: listening on //')
    [ -n "$url" ] || { fail "server $name: no listening line after 120 s: $(cat "$TMP/$name.err")"; return 1; }
    [ "$(grep -c "^vlm serve: listening on" "$TMP/$name.err")" -eq 1 ] || fail "server $name: more than one listening line"
    printf -v "${name}_PID" '%s' "$pid"
    printf -v "${name}_URL" '%s' "$url"
}

# stop_server NAME [TIMEOUT_S]: SIGTERM, then its exit status must be 0 within the timeout (default 60)
# and its stderr free of sanitizer reports.
stop_server() {
    local name=$1 limit=${2:-60} pid_var="${1}_PID" i
    local pid=${!pid_var}
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "server $name did not exit within $limit s of SIGTERM"
        kill -9 "$pid"
    fi
    wait "$pid"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "server $name exited with status $rc after SIGTERM: $(tail -20 "$TMP/$name.err")"
    if grep -q "Sanitizer\|runtime error:" "$TMP/$name.err"; then
        fail "server $name: sanitizer report: $(grep -A20 "Sanitizer\|runtime error:" "$TMP/$name.err" | head -40)"
    fi
    return 0
}

# http METHOD URL [BODY_FILE] [curl args...]: the status code on stdout, the body in $TMP/body,
# the headers in $TMP/headers.
http() {
    local method=$1 url=$2 body=${3:-}
    shift 3 2>/dev/null || shift $#
    local data=()
    [ -n "$body" ] && data=(--data-binary "@$body" -H "Content-Type: application/json")
    curl -s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -X "$method" "${data[@]}" "$@" "$url"
}

# json FILE EXPR: prints the Python expression EXPR evaluated with d = the JSON in FILE.
json() {
    "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# check DESCRIPTION STATUS_GOT STATUS_WANT: fails naming the body when they differ.
check_status() {
    [ "$2" = "$3" ] || fail "$1: HTTP $2, expected $3; body: $(head -c 600 "$TMP/body")"
}

# check_error DESCRIPTION NEEDLE: the last body is an OpenAI error object whose message has NEEDLE.
check_error() {
    "$PY" - "$TMP/body" "$2" <<'PY' || fail "$1: not the expected error object: $(head -c 600 "$TMP/body")"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert set(e) == {"message", "type", "param", "code"}, e
assert sys.argv[2] in e["message"], e["message"]
PY
}

# chat_body FILE [KEY=JSON ...]: a chat request: the image (data: URI) when IMAGE is set, then TEXT.
# Extra top-level fields as KEY=JSON pairs, e.g. max_tokens=16 stream=true.
chat_body() {
    local out=$1
    shift
    "$PY" - "$out" "${IMAGE:-}" "${IMAGE_URL:-}" "${TEXT:-Describe this image.}" "$@" <<'PY'
import base64, json, sys
out, image, image_url, text = sys.argv[1:5]
content = []
if image:
    mime = "image/png" if image.endswith(".png") else "image/jpeg"
    content.append({"type": "image_url", "image_url": {"url": "data:%s;base64,%s" % (
        mime, base64.b64encode(open(image, "rb").read()).decode())}})
if image_url:
    content.append({"type": "image_url", "image_url": {"url": image_url}})
content.append({"type": "text", "text": text})
body = {"messages": [{"role": "user", "content": content}]}
for kv in sys.argv[5:]:
    k, v = kv.split("=", 1)
    body[k] = json.loads(v)
json.dump(body, open(out, "w"))
PY
}

# metric URL NAME: the value of one sample of GET /metrics ("" when absent).
metric() {
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# wait_metric URL NAME VALUE [SECONDS]: waits until the sample equals VALUE; 1 when it does not.
wait_metric() {
    local i
    for i in $(seq 1 $((${4:-10} * 10))); do
        [ "$(metric "$1" "$2")" = "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
