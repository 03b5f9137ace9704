#!/usr/bin/env bash
# vlm serve under faults and load, each checked by status code, error body, the server's health and
# its metrics after, and a clean exit (status 0; no leak in the ASan build):
#   a full queue (429 with Retry-After), a client that disconnects mid-stream (its sequence cancelled,
#   its KV blocks back in the pool), a client that does not read (the engine and the other clients go
#   on), 8 clients at once (each answer equal to its answer alone), SIGTERM with a request in flight
#   (it finishes within the grace period; new connections are refused) and SIGTERM past the grace
#   period (the request is cancelled with an error event; exit 0 all the same).
# usage: bash test_serve_faults.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
source "$(dirname "$(realpath "$0")")/lib.sh"
M25=$FIX/models/tiny-qwen2_5-vl
IMG=$FIX/cases/q25_photo/photo_256x300.png

# stream_until_content FILE PID: waits until the streamed answer in FILE has content (up to 60 s)
stream_until_content() {
    local i
    for i in $(seq 1 600); do
        grep -q '"content":"[^"]' "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

TEXT="Tell me a long story." chat_body "$TMP/long.json" max_tokens=4000 ignore_eos=true stream=true
TEXT="Tell me a long story." chat_body "$TMP/long_plain.json" max_tokens=4000 ignore_eos=true
TEXT="Hello" chat_body "$TMP/short.json" max_tokens=4

# ---- a full queue, and clients that go away -----------------------------------------------------------
# (a long idle timeout: the unread stream below must outlast a slow, loaded machine)
start_server q --model-id "$M25" --max-running 1 --max-waiting 1 --served-model-name tiny --idle-timeout 1200 || finish
curl -sN --data-binary "@$TMP/long.json" "$q_URL/v1/chat/completions" >"$TMP/a.sse" &
A=$!
stream_until_content "$TMP/a.sse" $A || fail "the first long request did not start streaming"
curl -s --data-binary "@$TMP/long_plain.json" "$q_URL/v1/chat/completions" >"$TMP/b.json" &
B=$!
wait_metric "$q_URL" vlm:num_requests_waiting 1 30 || fail "the second request is not waiting: $(curl -s "$q_URL/metrics" | grep num_)"
st=$(http POST "$q_URL/v1/chat/completions" "$TMP/short.json")
check_status "a full queue" "$st" 429
check_error "429" "queue"
grep -qi "^retry-after: [0-9]" "$TMP/headers" || fail "429 without Retry-After: $(cat "$TMP/headers")"
json "$TMP/body" 'd["error"]["type"]' | grep -q rate_limit_error || fail "429 type: $(cat "$TMP/body")"
# both clients leave: the running (streamed) and the waiting (non-streamed) sequence are cancelled
kill $A $B 2>/dev/null
wait $A $B 2>/dev/null
wait_metric "$q_URL" vlm:num_requests_running 0 10 || fail "a request still runs after its client left"
wait_metric "$q_URL" vlm:num_requests_waiting 0 10 || fail "a request still waits after its client left"
wait_metric "$q_URL" vlm:kv_cache_usage_perc 0 10 || fail "KV blocks not freed: $(metric "$q_URL" vlm:kv_cache_usage_perc)"
wait_metric "$q_URL" 'vlm:requests_total{outcome="disconnected"}' 2 10 ||
    fail "disconnects not counted: $(curl -s "$q_URL/metrics" | grep outcome)"
[ "$(metric "$q_URL" 'vlm:requests_total{outcome="busy"}')" = 1 ] || fail "the 429 was not counted"
st=$(http POST "$q_URL/v1/chat/completions" "$TMP/short.json")
check_status "served after the disconnects" "$st" 200

# ---- a client that does not read: the engine finishes its request, the others are served -----------
TEXT="Tell me a long story." chat_body "$TMP/slow.json" max_tokens=600 ignore_eos=true stream=true
length_before=$(metric "$q_URL" 'vlm:requests_total{outcome="length"}')
"$PY" - "$q_URL" "$TMP/slow.json" "$TMP/slow.go" "$TMP/slow.out" <<'PY' &
import os, socket, sys, time, urllib.parse
url, body, go, out = sys.argv[1:]
u = urllib.parse.urlparse(url)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((u.hostname, u.port))
data = open(body, "rb").read()
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(data) + data)
while not os.path.exists(go):  # reads nothing until told to
    time.sleep(0.05)
got = b""
s.settimeout(120)
try:
    while not got.endswith(b"0\r\n\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            got += b"\n[the server closed the connection]"
            break
        got += chunk
except OSError as e:  # written out, so a failure names its cause
    got += b"\n[%s]" % repr(e).encode()
open(out, "wb").write(got)
PY
SLOW=$!
wait_metric "$q_URL" 'vlm:requests_total{outcome="length"}' $((length_before + 1)) 900 ||
    fail "the unread request did not finish in the engine: $(curl -s "$q_URL/metrics" | grep -E 'num_|outcome')"
t0=$(date +%s.%N)
st=$(http POST "$q_URL/v1/chat/completions" "$TMP/short.json")
t1=$(date +%s.%N)
check_status "a request beside the unread stream" "$st" 200
"$PY" -c "import sys; sys.exit(0 if $t1 - $t0 < 30 else 1)" || fail "a request beside the unread stream took $t1 - $t0 s"
touch "$TMP/slow.go"
wait $SLOW
"$PY" - "$TMP/slow.out" <<'PY' || fail "the slow client's stream is incomplete: $(tail -c 300 "$TMP/slow.out")"
import sys
raw = open(sys.argv[1], "rb").read()
assert raw.startswith(b"HTTP/1.1 200"), raw[:100]
assert len(raw) > 100000, len(raw)  # more than the socket buffers hold: the server had to wait for it
assert b'"generated":600' in raw and raw.endswith(b"0\r\n\r\n") and b"data: [DONE]" in raw[-200:], raw[-200:]
PY
[ -e "$TMP/slow.out" ] || fail "the slow client wrote nothing (it failed before reading): see above"
st=$(http GET "$q_URL/health")
check_status "healthy after the faults" "$st" 200
stop_server q

# ---- 8 clients at once: each answer equal to its answer alone ------------------------------------------
start_server c --model-id "$M25" --served-model-name tiny --media-dir "$FIX/cases" || finish
PROMPTS=("What do you see?" "Describe the colors." "Count the objects." "Hello" "Is it day or night?"
    "Write one word." "What is in the corner?" "Summarize.")
IMAGES=("$IMG" "" "$FIX/cases/q25_two_images/tiny_20x30.png" "" "$FIX/cases/q25_gray/gray_150x200.png" "$IMG" ""
    "$FIX/cases/q25_two_images/jpeg_photo_face_140x150.jpg")
for i in 0 1 2 3 4 5 6 7; do
    IMAGE=${IMAGES[$i]} TEXT=${PROMPTS[$i]} chat_body "$TMP/c$i.json" max_tokens=$((6 + i)) temperature=0 \
        repetition_penalty=1.0 return_token_ids=true
    st=$(http POST "$c_URL/v1/chat/completions" "$TMP/c$i.json")
    check_status "client $i alone" "$st" 200
    cp "$TMP/body" "$TMP/alone$i.json"
done
pids=()
for i in 0 1 2 3 4 5 6 7; do
    curl -s -o "$TMP/together$i.json" -w '%{http_code}' --data-binary "@$TMP/c$i.json" "$c_URL/v1/chat/completions" \
        >"$TMP/code$i" &
    pids+=($!)
done
wait "${pids[@]}"
for i in 0 1 2 3 4 5 6 7; do
    [ "$(cat "$TMP/code$i")" = 200 ] || fail "client $i of 8: HTTP $(cat "$TMP/code$i")"
    "$PY" -c 'import json,sys; a,b=[json.load(open(p))["choices"][0] for p in sys.argv[1:]]; assert a["token_ids"]==b["token_ids"] and a["message"]==b["message"], (a,b)' \
        "$TMP/alone$i.json" "$TMP/together$i.json" || fail "client $i: the answer at once differs from the answer alone"
done
stop_server c

# ---- SIGTERM: the request in flight finishes within the grace period -----------------------------------
start_server g --model-id "$M25" --served-model-name tiny || finish
TEXT="Tell me a long story." chat_body "$TMP/mid.json" max_tokens=60 ignore_eos=true stream=true \
    'stream_options={"include_usage": true}'
curl -sN --data-binary "@$TMP/mid.json" "$g_URL/v1/chat/completions" >"$TMP/g.sse" &
G=$!
stream_until_content "$TMP/g.sse" $G || fail "the request did not start streaming"
kill -TERM "$g_PID"
sleep 0.3
curl -s -m 5 "$g_URL/health" >/dev/null
[ $? -eq 7 ] || fail "a new connection was not refused while draining"
wait $G
grep -q '"finish_reason":"length"' "$TMP/g.sse" && grep -q "data: \[DONE\]" "$TMP/g.sse" ||
    fail "the request in flight did not finish: $(tail -c 400 "$TMP/g.sse")"
# every token generated (a chunk's text may be empty while a character's bytes are incomplete, so
# count the tokens in the usage chunk, not the chunks with text)
grep -q '"completion_tokens":60' "$TMP/g.sse" || fail "the request in flight lost tokens: $(tail -c 400 "$TMP/g.sse")"
stop_server g

# ---- SIGTERM past the grace period: cancelled with an error event, exit 0 ------------------------------
start_server h --model-id "$M25" --served-model-name tiny --shutdown-grace 0.5 || finish
curl -sN --data-binary "@$TMP/long.json" "$h_URL/v1/chat/completions" >"$TMP/h.sse" &
H=$!
stream_until_content "$TMP/h.sse" $H || fail "the long request did not start streaming"
t0=$(date +%s)
stop_server h 30
wait $H
grep -q '"code":"shutting_down"' "$TMP/h.sse" && tail -c 20 "$TMP/h.sse" | grep -q "data: \[DONE\]" ||
    fail "the cancelled stream did not end with an error event: $(tail -c 400 "$TMP/h.sse")"
[ $(($(date +%s) - t0)) -le 20 ] || fail "shutdown past the grace period took $(($(date +%s) - t0)) s"
grep -q "draining: 1 request(s) in flight" "$TMP/h.err" || fail "no draining line: $(tail -5 "$TMP/h.err")"

finish
