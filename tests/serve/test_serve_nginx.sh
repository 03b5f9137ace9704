#!/usr/bin/env bash
# Two vlm serve replicas behind nginx (Debian's, installed by scripts/setup.sh): both ready by their
# /health (what a Kubernetes readiness probe or a load balancer's health check reads), vlm bench
# --serve through nginx spreads over both; one replica is killed (SIGKILL, a crash) while the
# benchmark runs, and every request after that is served by the other (nginx's passive health check,
# max_fails, takes the dead one out; proxy_next_upstream retries a refused connection on the other).
# usage: bash test_serve_nginx.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
source "$(dirname "$(realpath "$0")")/lib.sh"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "FAIL: nginx not found: run scripts/setup.sh (Debian package nginx-light)" >&2; exit 1; }
M25=$FIX/models/tiny-qwen2_5-vl
IMG=$FIX/cases/q25_photo/photo_256x300.png

start_server r1 --model-id "$M25" --served-model-name tiny || finish
start_server r2 --model-id "$M25" --served-model-name tiny || finish
for r in "$r1_URL" "$r2_URL"; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$r/health")" = 200 ] || fail "replica $r is not healthy"
done

LB_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log $TMP/nginx/access.log;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 64m;  # bodies stay in memory (workers may not write to this directory)
    upstream vlm {
        server ${r1_URL#http://} max_fails=1 fail_timeout=60s;
        server ${r2_URL#http://} max_fails=1 fail_timeout=60s;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$LB_PORT;
        location / {
            proxy_pass http://vlm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
        }
    }
}
EOF
"$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2>"$TMP/nginx/stderr" &
NGINX_PID=$!
SERVERS+=("$NGINX_PID")
LB=http://127.0.0.1:$LB_PORT
for i in $(seq 1 100); do
    curl -s -o /dev/null "$LB/health" && break
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$LB/health")" = 200 ] || fail "nginx is not answering: $(cat "$TMP/nginx/stderr")"
trap_nginx_log() { [ "$failures" -eq 0 ] || echo "nginx error log: $(tail -20 "$TMP/nginx/error.log")" >&2; }

served() { metric "$1" 'vlm:requests_total{outcome="length"}'; }

# both replicas serve the benchmark's requests
"$VLM" bench --serve "$LB" --concurrency 2 --requests 8 --max-tokens 8 --ignore-eos --image "$IMG" \
    --output "$TMP/both.json" >"$TMP/both.out" 2>"$TMP/both.err" || fail "bench through nginx: $(cat "$TMP/both.err")"
json "$TMP/both.json" 'd["concurrency"]["2"]["num_ok"]' | grep -qx 8 || fail "bench through nginx: $(cat "$TMP/both.out")"
a=$(served "$r1_URL")
b=$(served "$r2_URL")
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] || fail "the requests did not reach both replicas ($a and $b, plus the warm-ups)"

# replica 1 dies while the benchmark runs; the requests after that go to replica 2
before1=$(served "$r1_URL")
"$VLM" bench --serve "$LB" --concurrency 2 --requests 16 --max-tokens 40 --ignore-eos --image "$IMG" --no-warmup \
    --output "$TMP/kill.json" >"$TMP/kill.out" 2>"$TMP/kill.err" &
BENCH=$!
for i in $(seq 1 600); do
    [ "$(served "$r1_URL")" -gt "$before1" ] && break
    sleep 0.1
done
[ "$(served "$r1_URL")" -gt "$before1" ] || fail "replica 1 served nothing of the second benchmark"
kill -9 "$r1_PID"
wait "$r1_PID" 2>/dev/null
after2=$(served "$r2_URL")
wait $BENCH || fail "bench during the kill: $(cat "$TMP/kill.err")"
"$PY" - "$TMP/kill.json" <<'PY' || fail "bench during the kill: $(cat "$TMP/kill.out")"
import json, sys
l = json.load(open(sys.argv[1]))["concurrency"]["2"]
# at most the requests in flight on replica 1 when it died fail (the connection drops mid-stream)
assert l["num_requests"] == 16 and l["num_ok"] >= 14, l["num_ok"]
assert set(l["errors"]) <= {"connection_lost", "incomplete", "http_502"}, l["errors"]
PY
# every request from now on: served, by replica 2
for i in 1 2 3 4 5 6; do
    TEXT="Hello $i" chat_body "$TMP/after.json" max_tokens=4 ignore_eos=true
    st=$(http POST "$LB/v1/chat/completions" "$TMP/after.json")
    check_status "request $i after the kill" "$st" 200
done
final2=$(served "$r2_URL")
[ "$final2" -ge $((after2 + 6)) ] || fail "replica 2 did not serve the requests after the kill ($after2 -> $final2)"
grep -q "connect() failed\|upstream prematurely closed\|recv() failed" "$TMP/nginx/error.log" ||
    echo "note: nginx logged no upstream failure (the dead replica was skipped without trying it)"

kill -QUIT "$NGINX_PID"
wait "$NGINX_PID" 2>/dev/null
stop_server r2
trap_nginx_log
finish
