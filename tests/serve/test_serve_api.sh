#!/usr/bin/env bash
# vlm serve with curl as the client: temperature 0 + repetition_penalty 1.0 gives the ids and text of
# `vlm run --greedy` (both families, every mode this build has); a base64 image and a file:// image;
# streaming (SSE chunks, [DONE], usage, the vlm object); stop strings; /health, /v1/models and
# /metrics (read by the Prometheus client library's parser); every error answer (401, 404, 405,
# 413, 400s) as an OpenAI error object with the server healthy after; SIGTERM exits 0.
# usage: bash test_serve_api.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
source "$(dirname "$(realpath "$0")")/lib.sh"

case_field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$FIX/cases/$1/request.json" "$2"; }

# ---- parity with vlm run, per family and mode ----------------------------------------------------
for c in q25_photo q2vl_photo; do
    MODEL=$FIX/models/$(basename "$(case_field $c model)")
    IMG=$FIX/cases/$c/$(case_field $c image)
    PROMPT=$(case_field $c prompt)
    "$VLM" run --model-id "$MODEL" --image "$IMG" --text "$PROMPT" --greedy --max-tokens 16 --json "$TMP/run_$c.json" \
        >/dev/null 2>"$TMP/run_$c.err" || fail "vlm run $c: $(cat "$TMP/run_$c.err")"
    IMAGE=$IMG TEXT=$PROMPT chat_body "$TMP/req_$c.json" max_tokens=16 temperature=0 repetition_penalty=1.0 \
        return_token_ids=true
    for mode in original split_native run_onnx; do
        if ! MAY_FAIL=1 start_server p --model-id "$MODEL" --mode $mode --output-dir "$TMP/split_$c" \
            --served-model-name tiny; then
            if [ $mode = run_onnx ] && grep -q "ONNX Runtime" "$TMP/p.err"; then
                echo "note: $c run_onnx not checked here: $(grep -o 'ONNX Runtime.*' "$TMP/p.err" | head -1)"
            else
                fail "server $c $mode did not start: $(cat "$TMP/p.err")"
            fi
            continue
        fi
        st=$(http POST "$p_URL/v1/chat/completions" "$TMP/req_$c.json")
        check_status "$c $mode: chat" "$st" 200
        "$PY" - "$TMP/body" "$TMP/run_$c.json" <<'PY' || fail "$c $mode: the answer differs from vlm run --greedy"
import json, sys
a, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
c = a["choices"][0]
assert c["token_ids"] == r["generated_ids"], (c["token_ids"], r["generated_ids"])
assert c["message"]["content"] == r["text"], (c["message"]["content"], r["text"])
assert a["prompt_token_ids"] == r["input_ids"]
assert a["usage"]["completion_tokens"] == len(r["generated_ids"]) == 16 and c["finish_reason"] == "length"
PY
        stop_server p
    done
done

# ---- one server: key, media directory, small body cap ------------------------------------------------
M25=$FIX/models/tiny-qwen2_5-vl
C=$FIX/cases/q25_photo
IMG=$C/photo_256x300.png
PROMPT=$(case_field q25_photo prompt)
KEY=test-key-123
start_server s --model-id "$M25" --api-key "$KEY" --media-dir "$FIX/cases" --max-body-mb 1 --served-model-name tiny ||
    finish
AUTH=(-H "Authorization: Bearer $KEY")

st=$(http GET "$s_URL/health")
check_status "health" "$st" 200
[ "$(json "$TMP/body" 'd["status"]')" = ok ] || fail "health body: $(cat "$TMP/body")"
st=$(http GET "$s_URL/v1/models" "" "${AUTH[@]}")
check_status "models" "$st" 200
[ "$(json "$TMP/body" 'd["data"][0]["id"]')" = tiny ] || fail "models: $(cat "$TMP/body")"

# a base64 image: the answer, usage and the per-image block (sizes of the fixture: 256x300 -> 252x308, 99 tokens)
IMAGE=$IMG TEXT=$PROMPT chat_body "$TMP/b64.json" max_tokens=12 temperature=0 repetition_penalty=1.0 \
    return_token_ids=true model='"tiny"'
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/b64.json" "${AUTH[@]}")
check_status "base64 image" "$st" 200
cp "$TMP/body" "$TMP/b64_answer.json"
"$PY" - "$TMP/body" <<'PY' || fail "base64 image: $(head -c 800 "$TMP/body")"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["object"] == "chat.completion" and a["id"].startswith("chatcmpl-") and a["model"] == "tiny"
c = a["choices"][0]
assert c["index"] == 0 and c["message"]["role"] == "assistant" and c["finish_reason"] == "length"
assert a["usage"]["completion_tokens"] == 12 and a["usage"]["prompt_tokens"] == 125
assert a["usage"]["total_tokens"] == 137
im = a["vlm"]["images"]
assert im == [{"width": 256, "height": 300, "resized_width": 252, "resized_height": 308, "tokens": 99}], im
t = a["vlm"]["timings"]
assert t["total"] > 0 and t["prefill"] > 0 and t["time_to_first_token"] > 0 and t["queue"] >= 0, t
PY

# the same image as a file:// URL inside --media-dir: the same answer
IMAGE_URL="file://$C/photo_256x300.png" TEXT=$PROMPT chat_body "$TMP/file.json" max_tokens=12 temperature=0 \
    repetition_penalty=1.0 return_token_ids=true
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/file.json" "${AUTH[@]}")
check_status "file:// image" "$st" 200
"$PY" -c 'import json,sys; a,b=[json.load(open(p)) for p in sys.argv[1:]]; assert a["choices"]==b["choices"]' \
    "$TMP/body" "$TMP/b64_answer.json" || fail "file:// and base64 answers differ"

# streaming: a role chunk, content chunks that add up to the answer, the finish chunk with the vlm
# object, the usage chunk, [DONE]
IMAGE=$IMG TEXT=$PROMPT chat_body "$TMP/stream.json" max_tokens=12 temperature=0 repetition_penalty=1.0 \
    stream=true 'stream_options={"include_usage": true}'
curl -sN -o "$TMP/sse" -D "$TMP/headers" "${AUTH[@]}" --data-binary "@$TMP/stream.json" "$s_URL/v1/chat/completions" ||
    fail "streaming request failed"
grep -qi "^content-type: text/event-stream" "$TMP/headers" || fail "stream content type: $(cat "$TMP/headers")"
"$PY" - "$TMP/sse" "$TMP/b64_answer.json" <<'PY' || fail "stream: $(head -c 1500 "$TMP/sse")"
import json, sys
events = [e for e in open(sys.argv[1]).read().split("\n\n") if e.strip()]
data = [e[len("data: "):] for e in events if e.startswith("data: ")]
assert data[-1] == "[DONE]", data[-1]
chunks = [json.loads(d) for d in data[:-1]]
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert len({c["id"] for c in chunks}) == 1
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
want = json.load(open(sys.argv[2]))["choices"][0]["message"]["content"]
assert text == want, (text, want)
fin = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
assert len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == "length"
assert fin[0]["vlm"]["images"][0]["tokens"] == 99
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12
assert all(c["usage"] is None for c in chunks[:-1])
PY

# a stop string: the answer ends before it, finish_reason "stop"
STOPSTR=$("$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]; print(t[3:5])' \
    "$TMP/b64_answer.json")
IMAGE=$IMG TEXT=$PROMPT chat_body "$TMP/stop.json" max_tokens=12 temperature=0 repetition_penalty=1.0 \
    "stop=[$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$STOPSTR")]"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/stop.json" "${AUTH[@]}")
check_status "stop string" "$st" 200
"$PY" - "$TMP/body" "$TMP/b64_answer.json" "$STOPSTR" <<'PY' || fail "stop string '$STOPSTR': $(head -c 600 "$TMP/body")"
import json, sys
a, full, stop = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
t, f = a["choices"][0]["message"]["content"], full["choices"][0]["message"]["content"]
assert t == f[:f.index(stop)], (t, f, stop)
assert a["choices"][0]["finish_reason"] == "stop"
PY

# ---- errors: each an OpenAI error object; the server stays healthy -------------------------------------
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/b64.json")
check_status "no key" "$st" 401 && check_error "no key" "Authorization: Bearer"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/b64.json" -H "Authorization: Bearer wrong")
check_status "wrong key" "$st" 401
"$PY" -c 'import sys; sys.stdout.write("{\"messages\":[{\"role\":\"user\",\"content\":\"" + "a" * (2 << 20) + "\"}]}")' \
    >"$TMP/big.json"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/big.json" "${AUTH[@]}")
check_status "2 MB body over a 1 MB cap" "$st" 413 && check_error "413" "larger than the server's limit"
printf '{"messages": [' >"$TMP/bad.json"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/bad.json" "${AUTH[@]}")
check_status "bad JSON" "$st" 400 && check_error "bad JSON" "not valid JSON"
TEXT=hi chat_body "$TMP/unknown.json" foo=1
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/unknown.json" "${AUTH[@]}")
check_status "unknown field" "$st" 400 && check_error "unknown field" "Unrecognized request argument supplied: foo"
TEXT=hi chat_body "$TMP/n2.json" n=2
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/n2.json" "${AUTH[@]}")
check_status "n=2" "$st" 400 && check_error "n=2" "one choice per request"
IMAGE_URL="https://example.com/cat.png" TEXT=hi chat_body "$TMP/http_img.json"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/http_img.json" "${AUTH[@]}")
check_status "http image URL" "$st" 400 && check_error "http image" "not fetched"
IMAGE_URL="file:///etc/passwd" TEXT=hi chat_body "$TMP/outside.json"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/outside.json" "${AUTH[@]}")
check_status "file:// outside --media-dir" "$st" 400 && check_error "outside" "outside --media-dir"
IMAGE_URL="data:image/png;base64,$(head -c 300 /dev/urandom | base64 -w0)" TEXT=hi chat_body "$TMP/garbage.json"
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/garbage.json" "${AUTH[@]}")
check_status "an image that does not decode" "$st" 400
TEXT=hi chat_body "$TMP/model.json" 'model="gpt-4o"'
st=$(http POST "$s_URL/v1/chat/completions" "$TMP/model.json" "${AUTH[@]}")
check_status "unknown model" "$st" 404 && check_error "unknown model" "does not exist"
st=$(http POST "$s_URL/v1/completions" "$TMP/model.json" "${AUTH[@]}")
check_status "unknown path" "$st" 404 && check_error "unknown path" "No route"
st=$(http GET "$s_URL/v1/chat/completions" "" "${AUTH[@]}")
check_status "GET on chat" "$st" 405 && check_error "GET on chat" "takes POST"
st=$(http GET "$s_URL/health")
check_status "healthy after the errors" "$st" 200

# ---- metrics: the Prometheus parser reads them; the counters saw the requests above --------------
curl -s "$s_URL/metrics" >"$TMP/metrics" || fail "GET /metrics"
"$PY" - "$TMP/metrics" <<'PY' || fail "metrics: $(head -c 3000 "$TMP/metrics")"
import sys
from prometheus_client.parser import text_string_to_metric_families
fam = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def value(name, **labels):
    for f in fam.values():
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(name)
for g in ("vlm:num_requests_running", "vlm:num_requests_waiting", "vlm:kv_cache_usage_perc"):
    assert fam[g].type == "gauge", g
assert value("vlm:num_requests_running") == 0 and value("vlm:num_requests_waiting") == 0
assert 0 <= value("vlm:kv_cache_usage_perc") <= 1
for h in ("vlm:time_to_first_token_seconds", "vlm:inter_token_latency_seconds", "vlm:e2e_request_latency_seconds",
          "vlm:vision_encoder_seconds"):
    assert fam[h].type == "histogram", h
# base64, file://, streamed: length; the stop string: stop; 9 refused as invalid (400, 404, 405)
want = {"length": 3, "stop": 1, "unauthorized": 2, "too_large": 1, "invalid": 9, "busy": 0, "error": 0}
got = {k: value("vlm:requests_total", outcome=k) for k in want}
assert got == want, got
assert value("vlm:generation_tokens_total") >= 3 * 12, value("vlm:generation_tokens_total")
assert value("vlm:time_to_first_token_seconds_count") == 4
assert value("vlm:vision_encoder_seconds_count") == 4
assert value("vlm:inter_token_latency_seconds_count") >= 3 * 11
PY

# ---- vlm bench --serve against it: every request served, latencies consistent, the files written ----
"$VLM" bench --serve "$s_URL" --api-key "$KEY" --concurrency 1,3 --requests 3 --max-tokens 6 --ignore-eos \
    --image "$IMG" --output "$TMP/bench.json" --csv --plot "$TMP/bench.svg" >"$TMP/bench.out" 2>"$TMP/bench.err" ||
    fail "bench --serve: $(cat "$TMP/bench.err")"
"$PY" - "$TMP/bench.json" <<'PY' || fail "bench --serve results: $(cat "$TMP/bench.out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["metadata"]["model"] == "tiny" and d["metadata"]["max_tokens"] == 6
for n in ("1", "3"):
    l = d["concurrency"][n]
    assert l["num_requests"] == 3 and l["num_ok"] == 3 and l["errors"] == {}, l
    assert l["output_tokens"]["values"] == [6, 6, 6], l["output_tokens"]
    e2e, ttft, itl = l["e2e"]["values"], l["ttft"]["values"], l["itl"]["values"]
    assert len(e2e) == len(ttft) == 3 and 3 <= len(itl) <= 15, (len(ttft), len(itl))
    assert all(0 < t < e for t, e in zip(sorted(ttft), sorted(e2e))), (ttft, e2e)
    assert all(0 <= g < max(e2e) for g in itl), itl
    assert l["itl"]["p90"] <= l["itl"]["max"] and l["output_tokens_per_sec"]["mean"] > 0
PY
[ -s "$TMP/bench.csv" ] && grep -q "</svg>" "$TMP/bench.svg" || fail "bench --serve: no CSV or chart"

stop_server s
finish
