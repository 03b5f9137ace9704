#!/usr/bin/env python3
"""The rooms of docs/DESIGN.md, checked on the include graph.

Every `#include "dir/file.h"` in src/, include/ and cli/ is an edge from the including file's room
to the included file's room. Each room may include the rooms listed for it below and nothing else;
the allowed graph has no cycle, so the folders cannot form one either (checked again on the edges
found). A few DESIGN rules that are not about rooms are checked too: model code knows no clock.

Usage: scripts/check_layout.py [REPO_ROOT]   (exit 1 listing every violation; CTest runs it)
       scripts/check_layout.py --self-test   (the check fails on a tree that breaks each kind of rule)
"""
import os
import re
import sys

# room -> rooms it may include (its own room and the public headers, include/, always allowed).
# Read it bottom-up: base is the foundation, runtime composes the engine, the applications
# (bench, serve, cli) sit on top.
ALLOWED = {
    "base": set(),                      # errors, logging, memory, timers, probes
    "tensor": {"base"},                 # dtypes and tensors
    "io": {"base", "tensor"},           # files, JSON, safetensors, image decoding
    "kernels": {"base", "tensor"},      # the backend ops (CPU, CUDA): know no model and no CLI
    "image": {"base", "io"},            # preprocessing: knows no vision tower
    "text": {"base", "io"},             # tokenizer, chat template, sampler: knows no model
    "model": {"base", "tensor", "io", "kernels", "image"},  # forward passes: no sampler, no runtime
    "runtime": {"base", "tensor", "io", "kernels", "image", "text", "model"},  # the pipeline
    "bench": {"base", "io"},            # vlm bench: a client of include/vlm.h
    "serve": {"base", "io"},            # vlm serve: a client of include/vlm.h (JSON helpers from io)
    "cli": {"base", "io", "bench", "serve"},  # run, serve, bench: the engine through include/vlm.h only
    "cli/dev": {"base", "tensor", "io", "kernels", "image", "text", "model", "runtime"},  # tools
}

# Headers of a room that another room may not include although the rooms may meet.
FORBIDDEN_HEADERS = {
    "model": {"base/timer.h": "model code knows no clock (timing is the runtime's)"},
}

# Known violations with the work that removes them. Each names the exact file and include, so no
# new violation can hide behind it; delete the entry when the work lands.
PENDING = {}  # (file, include) -> the issue whose work removes it; none left

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = (".c", ".h", ".cu", ".cuh", ".inc")


def room_of(path):
    parts = path.split("/")
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    if parts[0] == "include":
        return "api"
    if parts[0] == "cli":
        return "cli/dev" if len(parts) > 2 and parts[1] == "dev" else "cli"
    return None


def included_room(inc, rooms):
    if inc in ("vlm.h", "vlm_status.h"):
        return "api"
    head = inc.split("/")[0]
    return head if "/" in inc and head in rooms else None  # local headers and generated code


def find_cycle(edges):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if not state.get(m):
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if not state.get(n):
            c = visit(n)
            if c:
                return c
    return None


def check(root):
    os.chdir(root)
    cycle = find_cycle({r: a for r, a in ALLOWED.items()})
    if cycle:
        print("check_layout: the allowed rooms form a cycle: " + " -> ".join(cycle))
        return 1
    bad, used, found = [], set(), {}
    for top in ("src", "include", "cli"):
        for dirpath, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith(SOURCES):
                    continue
                path = os.path.join(dirpath, name)
                room = room_of(path)
                if room is None:
                    continue
                if room != "api" and room not in ALLOWED:
                    bad.append(f"{path}: room '{room}' is not in the layout (add it to "
                               "scripts/check_layout.py and docs/DESIGN.md)")
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    inc = m.group(1)
                    line = text.count("\n", 0, m.start()) + 1
                    target = included_room(inc, ALLOWED)
                    if target is None or target == room:
                        continue
                    ok = target == "api" or (room != "api" and target in ALLOWED[room])
                    why = None
                    if not ok:
                        allowed = " ".join(sorted(ALLOWED.get(room, ())))
                        why = f"{room} -> {target} is not allowed ({room} may include: {allowed or 'nothing'})"
                    elif inc in FORBIDDEN_HEADERS.get(room, {}):
                        why = FORBIDDEN_HEADERS[room][inc]
                    if why and (path, inc) in PENDING:
                        used.add((path, inc))
                        why = None
                    if why:
                        bad.append(f"{path}:{line}: includes {inc}: {why}")
                    found.setdefault(room, set()).add(target)
    for key, work in PENDING.items():
        if key not in used:
            bad.append(f"{key[0]}: the pending exception for {key[1]} ({work}) is no longer needed: remove it")
    cycle = find_cycle({r: t - {"api"} for r, t in found.items()})
    if cycle:
        bad.append("folder cycle: " + " -> ".join(cycle))
    for b in bad:
        print("check_layout: " + b)
    edges = sum(len(t) for t in found.values())
    print(f"check_layout: {len(found)} rooms, {edges} room-to-room edges, {len(PENDING)} pending exception(s), "
          f"{len(bad)} violation(s)")
    return 1 if bad else 0


def self_test():
    """Trees that break one rule each must fail, naming it; a clean tree must pass."""
    import contextlib
    import io
    import tempfile

    cases = [
        ({"src/kernels/k.c": '#include "model/m.h"'}, "kernels -> model is not allowed"),
        ({"src/model/m.c": '#include "runtime/r.h"'}, "model -> runtime is not allowed"),
        ({"src/text/t.c": '#include "model/config.h"'}, "text -> model is not allowed"),
        ({"src/image/i.c": '#include "model/config.h"'}, "image -> model is not allowed"),
        ({"src/base/b.c": '#include "io/file.h"'}, "base -> io is not allowed"),
        ({"src/runtime/r.c": '#include "serve/s.h"'}, "runtime -> serve is not allowed"),
        ({"src/model/m.c": '#include "bench/bench.h"'}, "model -> bench is not allowed"),
        ({"src/model/m.c": '#include "base/timer.h"'}, "model code knows no clock"),
        ({"cli/cmd_x.c": '#include "model/config.h"'}, "cli -> model is not allowed"),
        ({"src/newroom/n.c": ""}, "room 'newroom' is not in the layout"),
        ({"src/model/m.c": '#include "base/error.h"\n#include "vlm.h"',
          "cli/dev/cmd_x.c": '#include "model/config.h"'}, None),
    ]
    failures = 0
    for files, want in cases:
        with tempfile.TemporaryDirectory() as d:
            for rel, text in files.items():
                os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
                with open(os.path.join(d, rel), "w") as f:
                    f.write(text + "\n")
            out = io.StringIO()
            saved = dict(PENDING)
            PENDING.clear()
            cwd = os.getcwd()
            with contextlib.redirect_stdout(out):
                rc = check(d)
            os.chdir(cwd)
            PENDING.update(saved)
            ok = (rc == 0) if want is None else (rc == 1 and want in out.getvalue())
            if not ok:
                failures += 1
                print(f"check_layout self-test: {files} expected {want or 'a pass'}, got rc {rc}:\n{out.getvalue()}")
    print(f"check_layout self-test: {len(cases) - failures} of {len(cases)} cases as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(check(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))
