"""Writes image files and Pillow's results for tests/test_image_pillow.c (run with Debian's
/usr/bin/python3, which has Pillow 9.4 and numpy):  python3 pillow_cases.py OUTDIR

OUTDIR/manifest.txt, one case per line:
  decode FILE SHA256|ERROR W H        RGB after ImageOps.exif_transpose + convert("RGB") (load_image)
  resize IN.rgb IN_W IN_H OUT_W OUT_H SHA256     Image.resize((OUT_W, OUT_H), BICUBIC) of the raw RGB
  smart H W MIN MAX RH RW|ERROR       transformers' smart_resize formula, in Python arithmetic
"""
import io
import math
import os
import random
import struct
import sys
import zlib
import hashlib

import numpy as np
from PIL import Image, ImageOps

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = random.Random(1234)
nrng = np.random.default_rng(1234)
lines = []


def sha(b):
    return hashlib.sha256(b).hexdigest()


def load_like_transformers(path):
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def add_decode(name, data):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        im = load_like_transformers(path)
        lines.append(f"decode {name} {sha(im.tobytes())} {im.size[0]} {im.size[1]}")
    except Exception:
        lines.append(f"decode {name} ERROR 0 0")


def photo(w, h):
    """A smooth synthetic picture with some texture (JPEG-friendly, all channels different)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 128 + 90 * np.sin((x + y) / 13.0)
    b = 128 + 80 * np.cos(x / 5.0 - y / 9.0)
    a = np.stack([r, g, b], -1) + nrng.normal(0, 12, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def raw_png(w, h, depth, color, rows, plte=None, extra=b"", interlace=0, post=b""):
    """rows: list of already-filtered scanline bytes (filter byte included)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    body = png_chunk(b"IHDR", ihdr) + extra
    if plte is not None:
        body += png_chunk(b"PLTE", plte)
    body += png_chunk(b"IDAT", zlib.compress(b"".join(rows)))
    return b"\x89PNG\r\n\x1a\n" + body + post + png_chunk(b"IEND", b"")


def pack_bits(vals, depth):
    out, acc, n = bytearray(), 0, 0
    for v in vals:
        acc = (acc << depth) | v
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def exif_bytes(orientation, endian="<", typ=3, count=1):
    """A minimal TIFF block with IFD0 holding Orientation."""
    bo = b"II*\x00" if endian == "<" else b"MM\x00*"
    ifd_off = 8
    if typ == 3:
        val = struct.pack(endian + "HH", orientation, 0)
    elif typ == 4:
        val = struct.pack(endian + "I", orientation)
    else:
        val = struct.pack(endian + "BBBB", orientation, 0, 0, 0)
    entry = struct.pack(endian + "HHI", 0x0112, typ, count) + val
    return bo + struct.pack(endian + "I", ifd_off) + struct.pack(endian + "H", 1) + entry + struct.pack(endian + "I", 0)


def jpeg_bytes(arr, **kw):
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", **kw)
    return b.getvalue()


# ---- JPEG: subsamplings, progressive, gray, odd sizes, orientations, CMYK ----
base = photo(67, 45)
add_decode("j420.jpg", jpeg_bytes(base, quality=85, subsampling=2))
add_decode("j422.jpg", jpeg_bytes(base, quality=85, subsampling=1))
add_decode("j444.jpg", jpeg_bytes(base, quality=95, subsampling=0))
add_decode("jprog.jpg", jpeg_bytes(photo(33, 71), quality=80, progressive=True))
add_decode("jopt.jpg", jpeg_bytes(photo(17, 9), quality=70, optimize=True))
add_decode("j1x1.jpg", jpeg_bytes(photo(1, 1), quality=90))
add_decode("jgray.jpg", jpeg_bytes(photo(29, 31)[:, :, 0], quality=88))
cmyk = Image.fromarray(np.concatenate([photo(23, 19), photo(23, 19)[:, :, :1]], -1), "CMYK")
b = io.BytesIO()
cmyk.save(b, "JPEG", quality=90)
cmyk_data = b.getvalue()
add_decode("jcmyk.jpg", cmyk_data)
# the same without its Adobe APP14 segment (Pillow still inverts)
i = cmyk_data.find(b"\xff\xee")
if i > 0:
    n = struct.unpack(">H", cmyk_data[i + 2:i + 4])[0]
    add_decode("jcmyk_noadobe.jpg", cmyk_data[:i] + cmyk_data[i + 2 + n:])
for o in range(1, 9):
    ex = Image.Exif()
    ex[0x0112] = o
    add_decode(f"jexif{o}.jpg", jpeg_bytes(photo(13, 7), quality=90, exif=ex.tobytes()))
add_decode("jexif_long.jpg", jpeg_bytes(photo(9, 5), quality=90, exif=b"Exif\x00\x00" + exif_bytes(8, ">", 4)))
add_decode("jexif_byte.jpg", jpeg_bytes(photo(9, 5), quality=90, exif=b"Exif\x00\x00" + exif_bytes(6, "<", 1)))
add_decode("jexif_bad.jpg", jpeg_bytes(photo(9, 5), quality=90, exif=b"Exif\x00\x00garbage!"))

# truncated JPEGs: Pillow refuses (LOAD_TRUNCATED_IMAGES is False); a missing EOI alone is fine
full = jpeg_bytes(photo(64, 48), quality=90)
for cut in (2, 20, len(full) // 3, len(full) - 300, len(full) - 2):
    add_decode(f"jtrunc{cut}.jpg", full[:cut])
prog = jpeg_bytes(photo(64, 48), quality=90, progressive=True)
add_decode("jtrunc_prog.jpg", prog[: len(prog) // 2])
add_decode("jnoeoi_prog.jpg", prog[:-2])

# corrupt entropy data: libjpeg warns and goes on, Pillow ignores the warnings
sos = full.find(b"\xff\xda")
for off in (60, 200, 700):
    bad = bytearray(full)
    bad[sos + off] ^= 0x5A
    add_decode(f"jcorrupt{off}.jpg", bytes(bad))
bad = bytearray(full)
bad[sos + 100:sos + 110] = b"\xff\xd0" * 5  # stray RST markers
add_decode("jcorrupt_rst.jpg", bytes(bad))

# ---- PNG: every bit depth / colour type, palettes, tRNS, Adam7, metadata ----
def png_from_pil(im, **kw):
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()

g8 = photo(21, 17)[:, :, 0]
add_decode("p_l8.png", png_from_pil(Image.fromarray(g8)))
add_decode("p_rgb8.png", png_from_pil(Image.fromarray(photo(21, 17))))
add_decode("p_rgba8.png", png_from_pil(Image.fromarray(np.concatenate([photo(21, 17), g8[:, :, None]], -1), "RGBA")))
add_decode("p_la8.png", png_from_pil(Image.fromarray(np.stack([g8, 255 - g8], -1), "LA")))
add_decode("p_pal.png", png_from_pil(Image.fromarray(photo(21, 17)).convert("P", palette=Image.ADAPTIVE, colors=37)))
add_decode("p_1bit.png", png_from_pil(Image.fromarray(g8 > 128)))
w, h = 13, 5
for depth in (1, 2, 4):
    vals = [[rng.randrange(1 << depth) for _ in range(w)] for _ in range(h)]
    rows = [b"\x00" + pack_bits(r, depth) for r in vals]
    add_decode(f"p_gray{depth}.png", raw_png(w, h, depth, 0, rows))
    plte = bytes(rng.randrange(256) for _ in range(3 * max(2, (1 << depth) - 1)))  # one entry short
    add_decode(f"p_pal{depth}.png", raw_png(w, h, depth, 3, rows, plte=plte))
vals = [[rng.randrange(256) for _ in range(w)] for _ in range(h)]
add_decode("p_pal8_short.png", raw_png(w, h, 8, 3, [b"\x00" + bytes(r) for r in vals], plte=bytes(range(30))))
add_decode("p_pal8_trns.png", raw_png(w, h, 8, 3, [b"\x00" + bytes(r) for r in vals], plte=bytes(range(256)) * 3,
                                      extra=png_chunk(b"tRNS", bytes([0, 128, 255]))))


def rows16(w, h, ch):
    return [b"\x00" + b"".join(struct.pack(">H", rng.choice([0, 1, 200, 255, 256, 300, 4095, 65535, rng.randrange(65536)]))
                               for _ in range(w * ch)) for _ in range(h)]


add_decode("p_gray16.png", raw_png(w, h, 16, 0, rows16(w, h, 1)))
add_decode("p_gray16_trns.png", raw_png(w, h, 16, 0, rows16(w, h, 1), extra=png_chunk(b"tRNS", b"\x01\x00")))
add_decode("p_la16.png", raw_png(w, h, 16, 4, rows16(w, h, 2)))
add_decode("p_rgb16.png", raw_png(w, h, 16, 2, rows16(w, h, 3)))
add_decode("p_rgba16.png", raw_png(w, h, 16, 6, rows16(w, h, 4)))
add_decode("p_rgb8_trns.png", raw_png(w, h, 8, 2, [b"\x00" + bytes(rng.randrange(256) for _ in range(3 * w)) for _ in range(h)],
                                      extra=png_chunk(b"tRNS", b"\x00\x10\x00\x20\x00\x30")))
add_decode("p_gray8_gama.png", raw_png(w, h, 8, 0, [b"\x00" + bytes(r) for r in vals],
                                       extra=png_chunk(b"gAMA", struct.pack(">I", 100000))))


def adam7(pix_rows, w, h, pack):
    """Adam7 scanlines (filter 0): pix_rows[y][x] is one pixel's value(s), pack() makes a pass row's bytes."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = []
    for x0, y0, dx, dy in passes:
        if x0 >= w:
            continue
        for y in range(y0, h, dy):
            out.append(b"\x00" + pack([pix_rows[y][x] for x in range(x0, w, dx)]))
    return out


def pack_bytes(px):
    return b"".join(px)


for (aw, ah) in ((11, 7), (1, 1), (3, 9)):
    pix = [[bytes(rng.randrange(256) for _ in range(3)) for _ in range(aw)] for _ in range(ah)]
    add_decode(f"p_adam7_{aw}x{ah}.png", raw_png(aw, ah, 8, 2, adam7(pix, aw, ah, pack_bytes), interlace=1))
pix = [[struct.pack(">H", rng.randrange(600)) for _ in range(9)] for _ in range(6)]
add_decode("p_adam7_gray16.png", raw_png(9, 6, 16, 0, adam7(pix, 9, 6, pack_bytes), interlace=1))
for depth in (1, 2, 4):
    pix = [[rng.randrange(1 << depth) for _ in range(10)] for _ in range(9)]
    plte = bytes(rng.randrange(256) for _ in range(3 * max(2, (1 << depth) - 1)))
    rows = adam7(pix, 10, 9, lambda px, d=depth: pack_bits(px, d))
    add_decode(f"p_adam7_pal{depth}.png", raw_png(10, 9, depth, 3, rows, plte=plte, interlace=1))
    add_decode(f"p_adam7_gray{depth}.png", raw_png(10, 9, depth, 0, rows, interlace=1))

# orientation in PNG metadata: eXIf, ImageMagick's raw profile (zTXt), XMP (iTXt)
small = [b"\x00" + bytes(rng.randrange(256) for _ in range(3 * 5)) for _ in range(3)]
for o in (3, 6, 8):
    add_decode(f"p_exif{o}.png", raw_png(5, 3, 8, 2, small, extra=png_chunk(b"eXIf", exif_bytes(o, ">"))))
hexed = (b"Exif\x00\x00" + exif_bytes(6)).hex()
raw_profile = b"Raw profile type exif\x00\x00" + zlib.compress(
    ("\nexif\n%8d\n" % (len(hexed) // 2) + "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n").encode())
add_decode("p_rawprofile.png", raw_png(5, 3, 8, 2, small, extra=png_chunk(b"zTXt", raw_profile)))
xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="5"/></x:xmpmeta>'
add_decode("p_xmp.png", raw_png(5, 3, 8, 2, small, extra=png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)))
add_decode("p_exif_after_idat.png", raw_png(5, 3, 8, 2, small, post=png_chunk(b"eXIf", exif_bytes(7, "<"))))

# broken PNGs: bad CRC before IDAT (Pillow refuses), bad IDAT CRC (Pillow ignores), truncation
good = raw_png(31, 23, 8, 2, [b"\x00" + bytes(rng.randrange(256) for _ in range(93)) for _ in range(23)],
               extra=png_chunk(b"tEXt", b"Comment\x00hello"))
i = good.find(b"tEXt")
add_decode("p_badcrc_text.png", good[:i + 4 + 13] + bytes([good[i + 4 + 13] ^ 1]) + good[i + 4 + 14:])
j = good.find(b"IDAT")
n = struct.unpack(">I", good[j - 4:j])[0]
k = j + 4 + n
add_decode("p_badcrc_idat.png", good[:k] + bytes([good[k] ^ 0xFF]) + good[k + 1:])
for cut in (8, 40, j + 20, j + n // 2, k - 3, k + 2, len(good) - 6):
    add_decode(f"p_trunc{cut}.png", good[:cut])
# corrupt zlib data inside IDAT (Pillow raises), IDAT split over several chunks, data after IEND
add_decode("p_badzlib.png", good[:j + 4 + 40] + bytes([good[j + 4 + 40] ^ 0xFF]) + good[j + 4 + 41:])
idat = zlib.compress(b"".join([b"\x00" + bytes(rng.randrange(256) for _ in range(3 * 9)) for _ in range(7)]))
split = b"".join(png_chunk(b"IDAT", idat[i:i + 10]) for i in range(0, len(idat), 10))
add_decode("p_split_idat.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 7, 8, 2, 0, 0, 0))
           + split + png_chunk(b"IEND", b"") + b"trailing garbage")
pix = [[bytes(rng.randrange(256) for _ in range(3)) for _ in range(40)] for _ in range(30)]
inter = raw_png(40, 30, 8, 2, adam7(pix, 40, 30, pack_bytes), interlace=1)
ji = inter.find(b"IDAT")
ni = struct.unpack(">I", inter[ji - 4:ji])[0]
for cut in (ji + 4 + ni // 2, ji + 4 + ni - 2):
    add_decode(f"p_adam7_trunc{cut}.png", inter[:cut])

# ---- resize: Pillow BICUBIC, up and down in each axis ----
sizes = [((7, 5), (14, 10)), ((64, 48), (28, 28)), ((50, 40), (84, 56)), ((200, 30), (56, 28)),
         ((31, 97), (196, 56)), ((1, 1), (56, 56)), ((123, 97), (112, 84)), ((300, 3), (28, 28)),
         ((100, 100), (100, 56)), ((100, 100), (56, 100)), ((77, 77), (77, 77)), ((640, 480), (84, 56)),
         ((29, 1000), (28, 952))]
for idx, ((iw, ih), (ow, oh)) in enumerate(sizes):
    arr = (nrng.integers(0, 256, (ih, iw, 3)) if idx % 2 else photo(iw, ih)).astype(np.uint8)
    name = f"r{idx}.rgb"
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(arr.tobytes())
    out = Image.fromarray(arr).resize((ow, oh), Image.BICUBIC)
    lines.append(f"resize {name} {iw} {ih} {ow} {oh} {sha(out.tobytes())}")


# ---- smart_resize: transformers' formula with Python's round / math.floor / math.ceil ----
def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect")
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


cases = [(70, 70), (42, 98), (14, 14), (1, 200), (1, 201), (20, 30), (1080, 1920), (4000, 3000), (3, 600),
         (126, 14), (13999, 70)]
cases += [(rng.randint(1, 5000), rng.randint(1, 5000)) for _ in range(300)]
for hh, ww in cases:
    for lo, hi in ((3136, 12845056), (3136, 1003520), (200704, 401408), (784, 784)):
        try:
            rh, rw = smart_resize(hh, ww, 28, lo, hi)
            lines.append(f"smart {hh} {ww} {lo} {hi} {rh} {rw}")
        except ValueError:
            lines.append(f"smart {hh} {ww} {lo} {hi} ERROR")

with open(os.path.join(OUT, "manifest.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
