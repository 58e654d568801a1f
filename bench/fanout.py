#!/usr/bin/env python3
"""Whole-process cost and output size of gradients through fan-out (issue 20).

    python3 bench/fanout.py [--sizes 1,2,4,8,16,32,64] [--timeout SECONDS] [--check] [--exe PATH]

Series, each `matdiff grad ...` as a whole process (the release build, or `--exe`),
`--no-check` unless `--check`:

- residual:     h_i = h_(i-1) + tanh(h_(i-1)*W_i), h_0 = X, loss sum(h_L .* h_L), --wrt W1
- residual-all: the same, --wrt all (every gradient, one reverse pass)
- mlp:          h_i = tanh(h_(i-1)*W_i), loss sum(h_L .* h_L), --wrt W1 (no fan-out: the baseline)

Prints a markdown table (wall time, peak memory, characters of output) and writes
bench/out/fanout.json. A series stops at its first run over the timeout. Standard library only.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def network(L, residual):
    decl = ["X : B x N"] + [f"W{i} : N x N" for i in range(1, L + 1)]
    body, prev = [], "X"
    for i in range(1, L + 1):
        step = f"tanh({prev}*W{i})"
        body.append(f"h{i} = {prev} + {step}" if residual else f"h{i} = {step}")
        prev = f"h{i}"
    return "; ".join(decl + body + [f"sum(h{L} .* h{L})"])


def run(exe, script, wrt, check, timeout):
    argv = [exe, "grad", script, "--wrt", wrt] + ([] if check else ["--no-check"])
    t0 = time.perf_counter()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"matdiff failed ({out.returncode}): {out.stderr[:500]}")
    return {"wall_s": wall, "chars": len(out.stdout), "maxrss_kb": usage.ru_maxrss}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median reported)")
    parser.add_argument("--exe", help="a matdiff binary to time instead of this tree's release build")
    args = parser.parse_args()
    exe = args.exe
    if exe is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=benchlib.ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(benchlib.ROOT, "target"))
        exe = os.path.join(target, "release", "matdiff")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    print("| series | L | whole process (median) | output characters |")
    print("| --- | ---: | ---: | ---: |")
    for series, residual, wrt in [("residual", True, "W1"), ("residual-all", True, "all"), ("mlp", False, "W1")]:
        for L in sizes:
            runs = [run(exe, network(L, residual), wrt, args.check, args.timeout) for _ in range(args.repeat)]
            if any(r is None for r in runs):
                print(f"| {series} | {L} | over {args.timeout:.0f} s | — |")
                break
            wall = sorted(r["wall_s"] for r in runs)[len(runs) // 2]
            results.append({"series": series, "L": L, "wall_s": wall, "chars": runs[0]["chars"]})
            print(f"| {series} | {L} | {wall * 1e3:.0f} ms | {runs[0]['chars']} |", flush=True)
    os.makedirs(os.path.join(benchlib.BENCH, "out"), exist_ok=True)
    with open(os.path.join(benchlib.BENCH, "out", "fanout.json"), "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
