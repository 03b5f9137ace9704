"""The Pillow + numpy side of perf_preprocess: times what transformers does for one image with
Qwen2VLImageProcessor (the slow, PIL-based processor) on Debian's /usr/bin/python3 (Pillow 9.4,
numpy 1.24):

  decode   Image.open + ImageOps.exif_transpose + convert("RGB")      (transformers' load_image)
  resize   Image.resize((w', h'), Resampling.BICUBIC)                    (image_transforms.resize)
  arith    np.array, rescale (float64 multiply, float32), normalize (float32), channels-first,
           temporal repeat and the patch reshape/transpose of _preprocess

usage: pillow_preprocess.py [--runs N] [--make-jpeg SRC.png OUT.jpg] IMAGE...
Prints one JSON object per image on stdout: median wall-clock ms per stage ("decode", "resize",
"arith") and median thread CPU ms ("cpu_decode", ...; fairer on a busy machine), the resized size
and the SHA-256 of the float32 pixel_values (so the C side can check it computed the same thing).
--make-jpeg first writes SRC as a quality-90 JPEG (4:2:0) with Pillow, for the JPEG benchmark.
"""
import hashlib
import json
import math
import statistics
import sys
import time

import numpy as np
from PIL import Image, ImageOps

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
PATCH, MERGE, TEMPORAL = 14, 2, 2
MIN_PIXELS, MAX_PIXELS = 3136, 12845056


def smart_resize(height, width, factor=28, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS):
    if max(height, width) / min(height, width) > 200:
        raise ValueError("absolute aspect ratio must be smaller than 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def arithmetic(resized):
    image = np.array(resized)                                          # H, W, C uint8
    image = (image.astype(np.float64) * (1 / 255)).astype(np.float32)  # rescale
    mean = np.array(MEAN, dtype=np.float32)
    std = np.array(STD, dtype=np.float32)
    image = (image - mean) / std                                       # normalize (channels last)
    image = image.transpose(2, 0, 1)                                   # to channels first
    patches = np.array([image])
    patches = np.concatenate([patches, np.repeat(patches[-1][np.newaxis], TEMPORAL - 1, axis=0)])
    c, h, w = image.shape
    gt, gh, gw = patches.shape[0] // TEMPORAL, h // PATCH, w // PATCH
    patches = patches.reshape(gt, TEMPORAL, c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(gt * gh * gw, c * TEMPORAL * PATCH * PATCH), (gt, gh, gw)


def bench(path, runs):
    stages = ("decode", "resize", "arith")
    times = {k: [] for k in stages + tuple("cpu_" + k for k in stages)}
    out = None
    for r in range(runs + 1):  # the first run warms caches and is not counted
        t, c = [time.perf_counter()], [time.thread_time()]
        im = Image.open(path)
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGB")
        t.append(time.perf_counter()), c.append(time.thread_time())
        h, w = smart_resize(im.height, im.width)
        resized = im.resize((w, h), Image.BICUBIC)
        t.append(time.perf_counter()), c.append(time.thread_time())
        pv, grid = arithmetic(resized)
        pv = np.ascontiguousarray(pv)
        t.append(time.perf_counter()), c.append(time.thread_time())
        if r:
            for i, k in enumerate(stages):
                times[k].append((t[i + 1] - t[i]) * 1e3)
                times["cpu_" + k].append((c[i + 1] - c[i]) * 1e3)
        out = (pv, grid, h, w, im.size)
    pv, grid, h, w, size = out
    res = {k: statistics.median(v) for k, v in times.items()}
    res.update(image=path, size_wh=list(size), resized_hw=[h, w], grid=list(grid), runs=runs,
               pixel_values_sha256=hashlib.sha256(pv.astype("<f4").tobytes()).hexdigest())
    return res


def main(argv):
    runs, paths, i = 10, [], 0
    while i < len(argv):
        if argv[i] == "--runs":
            runs = int(argv[i + 1])
            i += 2
        elif argv[i] == "--make-jpeg":
            Image.open(argv[i + 1]).convert("RGB").save(argv[i + 2], "JPEG", quality=90)
            i += 3
        else:
            paths.append(argv[i])
            i += 1
    for p in paths:
        print(json.dumps(bench(p, runs)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
