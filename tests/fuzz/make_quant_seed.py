#!/usr/bin/python3
"""Writes the seed of fuzz_quant_bind: a one-layer language model (hidden 64, 2 heads / 1 KV head,
MLP 64, vocab 32, tied) as a quantized checkpoint: Q4_0 linear weights, a Q8_0 embedding, BF16
norms and biases, formats in __metadata__ as vlm quantize writes them (runtime/quantize.h).
Block bytes are random with finite f16 scales. usage: make_quant_seed.py OUT.safetensors"""
import json
import struct
import sys

import numpy as np

rng = np.random.default_rng(0)
D, Q, KV, I, V = 64, 64, 32, 64, 32
p = "model.layers.0."
tensors, meta = [], {"format": "pt", "vlm_quant_version": "1"}


def blocks(name, rows, k, tag):
    bs, bk = {"q4_0": (18, 32), "q8_0": (34, 32)}[tag]
    data = rng.integers(0, 256, size=(rows, k // bk, bs), dtype=np.uint8)
    data[:, :, 0:2] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
    tensors.append((name, "U8", [rows, k // bk * bs], data.tobytes()))
    meta["quant:" + name] = tag


def bf16(name, n, value):
    v = np.full(n, value, dtype=np.float32).view(np.uint32) >> 16
    tensors.append((name, "BF16", [n], v.astype(np.uint16).tobytes()))


blocks("model.embed_tokens.weight", V, D, "q8_0")
bf16("model.norm.weight", D, 1.0)
bf16(p + "input_layernorm.weight", D, 1.0)
bf16(p + "post_attention_layernorm.weight", D, 1.0)
for proj, rows in (("q", Q), ("k", KV), ("v", KV)):
    blocks(p + f"self_attn.{proj}_proj.weight", rows, D, "q4_0")
    bf16(p + f"self_attn.{proj}_proj.bias", rows, 0.0)
blocks(p + "self_attn.o_proj.weight", D, Q, "q4_0")
blocks(p + "mlp.gate_proj.weight", I, D, "q4_0")
blocks(p + "mlp.up_proj.weight", I, D, "q4_0")
blocks(p + "mlp.down_proj.weight", D, I, "q4_0")

header, off, body = {"__metadata__": meta}, 0, b""
for name, dt, shape, raw in tensors:
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
    off += len(raw)
    body += raw
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + body)
