#!/usr/bin/env python3
"""Hugging Face's own Qwen2.5-VL on the GPU: the baseline scripts/gpu_check.sh measures vlm against
in the same call (issue #20). Needs PyTorch, transformers and a CUDA GPU, so it runs only on the GPU
machine; never a test, never at vlm's run time.

On one checkpoint, in bf16 with SDPA attention (transformers out of the box, no compilation):
  ceilings     device-to-device copy (GB/s, bytes read + written) and an 8192^3 bf16 matmul
               (TFLOP/s) on random data: the machine's limits, measured now (docs: METHOD.md)
  vision       the vision tower alone (get_image_features) on the large image, CUDA-event timed
  first token  image file -> processor -> generate(max_new_tokens=1) on the small image, wall
               clock with the GPU synchronised (what vlm bench's time_to_first_token covers)
  decode       (generate N tokens - generate 1 token) / (N - 1), min_new_tokens=N so EOS cannot
               end it early
Each figure is the median of --runs after one warm-up. The JSON (--out) is rewritten after every
measurement, so a timeout keeps what was measured; a failed part records its error and the rest
still runs.
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

# The chat template's output for one user turn with one image (fixtures/README.md, "Prompt format");
# the processor expands <|image_pad|> to the image's token count.
PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
          "<|vision_start|><|image_pad|><|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n")


class Report:
    def __init__(self, path):
        self.path, self.doc = path, {"results": {}, "errors": {}, "notes": []}

    def set(self, key, value, where="results"):
        self.doc[where][key] = value
        self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1)
        os.replace(tmp, self.path)

    def attempt(self, name, fn):
        t0 = time.time()
        try:
            fn()
            print("hf_anchor: %s done in %.1f s" % (name, time.time() - t0), flush=True)
        except Exception as e:  # one failed part must not lose the others
            self.set(name, "%s: %s" % (type(e).__name__, e), "errors")
            traceback.print_exc()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (vlm make-synthetic output)")
    ap.add_argument("--small-image", required=True, help="first token and decode (448x448)")
    ap.add_argument("--large-image", required=True, help="vision time (1920x1080)")
    ap.add_argument("--text", default="Describe this image.")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rep = Report(a.out)

    import torch
    import transformers
    from PIL import Image

    rep.doc["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                           "python": sys.version.split()[0]}
    if not torch.cuda.is_available():
        rep.set("cuda", "torch.cuda.is_available() is False", "errors")
        return 1
    dev = torch.device("cuda")
    rep.doc["gpu"] = torch.cuda.get_device_name(0)
    rep.write()

    def sync():
        torch.cuda.synchronize()

    def event_ms(fn, warm, reps):
        for _ in range(warm):
            fn()
        times = []
        for _ in range(reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1))
        return statistics.median(times)

    def wall_s(fn, warm, reps):
        for _ in range(warm):
            fn()
        times = []
        for _ in range(reps):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), times

    # --- the machine's ceilings -------------------------------------------------------------
    def ceilings():
        n = 1 << 29  # 1 GiB of bf16 per buffer: far beyond the 60 MB L2
        src = torch.randn(n, device=dev, dtype=torch.bfloat16)
        dst = torch.empty_like(src)
        ms = event_ms(lambda: dst.copy_(src), 3, 20)
        copy = 2 * n * 2 / (ms * 1e-3) / 1e9
        del src, dst
        m = 8192
        x = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
        y = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
        ms2 = event_ms(lambda: torch.matmul(x, y), 3, 10)
        del x, y
        torch.cuda.empty_cache()
        rep.doc["ceilings"] = {"copy_GBps": round(copy, 1),
                               "bf16_matmul_TFLOPs": round(2 * m**3 / (ms2 * 1e-3) / 1e12, 1)}
        rep.write()

    rep.attempt("ceilings", ceilings)

    # --- the model -------------------------------------------------------------------------
    state = {}

    def load():
        from transformers import Qwen2_5_VLForConditionalGeneration
        t0 = time.perf_counter()
        kw = {"attn_implementation": "sdpa", "device_map": "cuda"}
        try:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(a.model, dtype=torch.bfloat16, **kw)
        except TypeError:  # transformers before `dtype`
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(a.model, torch_dtype=torch.bfloat16, **kw)
        model.eval()
        sync()
        state["model"] = model
        rep.set("load_s", round(time.perf_counter() - t0, 2))
        rep.doc["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        rep.doc["dtype"] = str(next(model.parameters()).dtype)
        rep.write()

    def processor():
        try:
            from transformers import AutoProcessor
            state["proc"] = AutoProcessor.from_pretrained(a.model)
            rep.doc["processor"] = type(state["proc"]).__name__
        except Exception as e:  # by hand: the image processor and the tokenizer of the checkpoint
            from transformers import AutoTokenizer, Qwen2VLImageProcessor
            rep.doc["notes"].append("AutoProcessor failed (%s: %s); image processor + tokenizer by hand"
                                    % (type(e).__name__, e))
            ip, tok = Qwen2VLImageProcessor.from_pretrained(a.model), AutoTokenizer.from_pretrained(a.model)

            def by_hand(text, images, return_tensors):
                px = ip(images=images, return_tensors=return_tensors)
                n = int(px["image_grid_thw"][0].prod()) // 4
                ids = tok(text[0].replace("<|image_pad|>", "<|image_pad|>" * n), return_tensors=return_tensors)
                return transformers.BatchFeature({**ids, **px})

            state["proc"] = by_hand
            rep.doc["processor"] = "Qwen2VLImageProcessor + AutoTokenizer"
        rep.write()

    def inputs(path):
        image = Image.open(path).convert("RGB")
        return state["proc"](text=[PROMPT.format(text=a.text)], images=[image], return_tensors="pt").to(dev)

    rep.attempt("load", load)
    if "model" not in state:
        return 1
    rep.attempt("processor", processor)
    model = state["model"]
    # plain greedy, as vlm bench decodes (the checkpoint's generation_config samples with a penalty)
    gen_kw = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, "repetition_penalty": 1.0}

    def generate(**kw):
        try:
            return model.generate(**kw, **gen_kw)
        except (TypeError, ValueError) as e:  # a transformers that refuses the unset sampling knobs
            if len(gen_kw) == 1:
                raise
            rep.doc["notes"].append("generate refused %s (%s); do_sample=False alone" % (sorted(gen_kw), e))
            gen_kw.clear()
            gen_kw["do_sample"] = False
            return model.generate(**kw, **gen_kw)

    def vision():
        x = inputs(a.large_image)
        get = getattr(model, "get_image_features", None) or model.model.get_image_features
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            ms = event_ms(lambda: get(x["pixel_values"], x["image_grid_thw"]), 1, a.runs)
        rep.doc["vision_image_grid_thw"] = x["image_grid_thw"].tolist()
        rep.doc["vision_peak_allocated_MB"] = round(torch.cuda.max_memory_allocated() / 2**20)
        rep.set("vision_1080_s", round(ms / 1e3, 4))

    def first_token():
        def once():
            with torch.inference_mode():
                out = generate(**inputs(a.small_image), max_new_tokens=1)
            return out

        torch.cuda.reset_peak_memory_stats()
        med, vals = wall_s(once, 1, a.runs)
        x = inputs(a.small_image)
        rep.doc["ttft_prompt_tokens"] = int(x["input_ids"].shape[1])
        rep.doc["ttft_values_s"] = [round(v, 4) for v in vals]
        rep.doc["ttft_peak_allocated_MB"] = round(torch.cuda.max_memory_allocated() / 2**20)
        rep.set("ttft_448_s", round(med, 4))

    def decode():
        x = inputs(a.small_image)
        n = a.max_tokens
        lengths = []

        def gen(k):
            with torch.inference_mode():
                out = generate(**x, max_new_tokens=k, min_new_tokens=k)
            lengths.append(int(out.shape[1] - x["input_ids"].shape[1]))

        t1, _ = wall_s(lambda: gen(1), 1, a.runs)
        torch.cuda.reset_peak_memory_stats()
        tn, _ = wall_s(lambda: gen(n), 1, a.runs)
        rep.doc["decode_generated_lengths"] = sorted(set(lengths))
        rep.doc["decode_peak_allocated_MB"] = round(torch.cuda.max_memory_allocated() / 2**20)
        rep.doc["decode_generate_1_s"], rep.doc["decode_generate_n_s"] = round(t1, 4), round(tn, 4)
        if n not in lengths or tn <= t1:
            raise RuntimeError("generate(%d) gave lengths %s in %.4f s against %.4f s for one token"
                               % (n, sorted(set(lengths)), tn, t1))
        rep.set("decode_tok_s", round((n - 1) / (tn - t1), 2))

    if "proc" in state:
        rep.attempt("vision", vision)
        rep.attempt("first_token", first_token)
        rep.attempt("decode", decode)
    return 0 if not rep.doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
