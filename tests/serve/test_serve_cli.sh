#!/usr/bin/env bash
# vlm serve's command line: usage errors name the flag (exit 2); a port in use, a missing model or
# media directory fail with the cause (exit 1) and leave nothing listening; /health answers 503
# while the model loads, then 200.
# usage: bash test_serve_cli.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
source "$(dirname "$(realpath "$0")")/lib.sh"
M25=$FIX/models/tiny-qwen2_5-vl

expect serve 2 "--port 70000 must be in [0, 65535]" -- --model-id "$M25" --port 70000
expect serve 2 "unknown --mode 'fast'" -- --model-id "$M25" --mode fast
expect serve 2 "unknown --device 'gpu'" -- --model-id "$M25" --device gpu
expect serve 2 "unknown --precision 'fp16'" -- --model-id "$M25" --precision fp16
expect serve 2 "--max-running must be at least 1" -- --model-id "$M25" --max-running 0
expect serve 2 "--max-waiting must be 0 or more" -- --model-id "$M25" --max-waiting -1
expect serve 2 "--image-cache-mb must be 0 (off) or more" -- --model-id "$M25" --image-cache-mb -1
expect serve 2 "--max-body-mb must be in [1, 4096]" -- --model-id "$M25" --max-body-mb 0
expect serve 2 "--shutdown-grace must be 0 or more" -- --model-id "$M25" --shutdown-grace -1
expect serve 2 "--max-tokens must be at least 1" -- --model-id "$M25" --max-tokens 0
expect serve 2 "--api-key is empty" -- --model-id "$M25" --api-key ""
expect serve 2 "unknown option '--bogus'" -- --model-id "$M25" --bogus
expect serve 1 "--media-dir $TMP/none" -- --model-id "$M25" --media-dir "$TMP/none" --port 0
expect serve 1 "not found" -- --model-id "$TMP/no-model" --port 0
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" - "$VLM" "$M25" <<'PY' || fail "a port in use was not refused with its cause"
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
port = s.getsockname()[1]
r = subprocess.run([sys.argv[1], "serve", "--model-id", sys.argv[2], "--port", str(port)], capture_output=True,
                   text=True, timeout=60)
assert r.returncode == 1 and "cannot listen on 127.0.0.1 port %d: Address already in use" % port in r.stderr, r.stderr
PY

# /health: 503 while loading (a split artifact is made first: the load takes a while), then 200
"$VLM" serve --model-id "$M25" --mode split_native --output-dir "$TMP/split" --port "$PORT" >/dev/null 2>"$TMP/L.err" &
L=$!
SERVERS+=("$L")
codes=""
for i in $(seq 1 600); do
    c=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")
    [ "$c" != 000 ] && [ "${codes##* }" != "$c" ] && codes="$codes $c"
    [ "$c" = 200 ] && break
    sleep 0.05
done
case "$codes" in
" 503 200" | " 200") ;;
*) fail "health while loading then ready: got '$codes'" ;;
esac
[ "$codes" = " 503 200" ] || echo "note: the model loaded before /health was first asked (no 503 seen)"
st=$(http POST "http://127.0.0.1:$PORT/v1/chat/completions" /dev/null)
check_status "empty body" "$st" 400
L_PID=$L
stop_server L
finish
