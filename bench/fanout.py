#!/usr/bin/env python3
"""Whole-process cost and output size of gradients through fan-out (issue 20).

    python3 bench/fanout.py [--sizes 1,2,4,8,16,32,64] [--series a,b] [--timeout SECONDS] [--check] [--exe PATH]

Series, each `matdiff grad ...` as a whole process (the release build, or `--exe`),
`--no-check` unless `--check`; `-all` is `--wrt all` (every gradient, one reverse pass):

- residual, residual-all:           h_i = h_(i-1) + tanh(h_(i-1)*W_i), h_0 = X, loss sum(h_L .* h_L), --wrt W1
- residual-relu, residual-relu-all: the same with relu
- mlp, mlp-all:                     h_i = tanh(h_(i-1)*W_i), loss sum(h_L .* h_L) (no fan-out: the baseline)
- transformer-all:                  L blocks (attention, residual, layer norm) in the numpy dialect, every gradient
- lstm-all:                         tests/cases/numpy/lstm_step.py, its six gradients (one size)

Prints a markdown table (wall time, characters of output), writes bench/out/fanout.json and
plots bench/fanout.png (time and output size against L). A series stops at its first run over
the timeout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

benchlib.ensure_venv(__file__)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def network(L, residual, f="tanh"):
    decl = ["X : B x N"] + [f"W{i} : N x N" for i in range(1, L + 1)]
    body, prev = [], "X"
    for i in range(1, L + 1):
        step = f"{f}({prev}*W{i})"
        body.append(f"h{i} = {prev} + {step}" if residual else f"h{i} = {step}")
        prev = f"h{i}"
    return "; ".join(decl + body + [f"sum(h{L} .* h{L})"])


# The corpus's block: its layer norm and softmax, then one block over them.
TRANSFORMER = open(os.path.join(benchlib.ROOT, "tests", "cases", "numpy", "transformer_block.py")).read()
TRANSFORMER = TRANSFORMER[: TRANSFORMER.index("def block_forward")] + """def block(x, Wq, Wk, Wv, g, b):
    q, k, v = x @ Wq, x @ Wk, x @ Wv
    att = softmax(q @ k.T / np.sqrt(x.shape[1]))
    return layernorm(x + att @ v, g, b)


"""


def transformer(L):
    """L blocks stacked, as a numpy file (the path); its every gradient."""
    params = ['x: "T x D"']
    for i in range(1, L + 1):
        params += [f'Wq{i}: "D x D"', f'Wk{i}: "D x D"', f'Wv{i}: "D x D"', f'g{i}: "D"', f'b{i}: "D"']
    body = [f"    h = block({'x' if i == 1 else 'h'}, Wq{i}, Wk{i}, Wv{i}, g{i}, b{i})" for i in range(1, L + 1)]
    text = TRANSFORMER + f"def forward({', '.join(params)}):\n" + "\n".join(body) + "\n    return h\n"
    path = os.path.join(benchlib.BENCH, "out", f"transformer-{L}.py")
    with open(path, "w") as fh:
        fh.write(text)
    return path


LSTM = os.path.join(benchlib.ROOT, "tests", "cases", "numpy", "lstm_step.py")

# name: (the arguments of `matdiff grad` for size L, whether the series has sizes)
SERIES = {
    "residual": (lambda L: [network(L, True), "--wrt", "W1"], True),
    "residual-all": (lambda L: [network(L, True), "--wrt", "all"], True),
    "residual-relu": (lambda L: [network(L, True, "relu"), "--wrt", "W1"], True),
    "residual-relu-all": (lambda L: [network(L, True, "relu"), "--wrt", "all"], True),
    "mlp": (lambda L: [network(L, False), "--wrt", "W1"], True),
    "mlp-all": (lambda L: [network(L, False), "--wrt", "all"], True),
    "transformer-all": (lambda L: ["-f", transformer(L), "--wrt", "all"], True),
    "lstm-all": (lambda L: ["-f", LSTM, "--wrt", "all"], False),
}


def run(exe, args, check, timeout):
    argv = [exe, "grad", *args] + ([] if check else ["--no-check"])
    t0 = time.perf_counter()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"matdiff failed ({out.returncode}): {out.stderr[:500]}")
    return {"wall_s": wall, "chars": len(out.stdout)}


def plot(results, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(12, 4.6))
    for series in SERIES:
        rows = [r for r in results if r["series"] == series]
        if not rows:
            continue
        style = "s--" if series.endswith("-all") else "o-"
        xs = [r["L"] for r in rows]
        ax_t.plot(xs, [r["wall_s"] for r in rows], style, label=series)
        ax_c.plot(xs, [r["chars"] for r in rows], style, label=series)
    ax_c.plot([1, 64], [200, 200 * 64], ":", color="gray", label="∝ L (reference)")
    for ax, title, ylabel in (
        (ax_t, "whole process (median), matdiff grad", "seconds"),
        (ax_c, "output: characters of the text", "characters"),
    ):
        benchlib.log_log(ax, title, "L (layers)", ylabel)
    ax_t.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--series", default=",".join(SERIES))
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median reported)")
    parser.add_argument("--exe", help="a matdiff binary to time instead of this tree's release build")
    parser.add_argument("--plot", default=os.path.join(benchlib.BENCH, "fanout.png"))
    args = parser.parse_args()
    exe = args.exe
    if exe is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=benchlib.ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(benchlib.ROOT, "target"))
        exe = os.path.join(target, "release", "matdiff")
    os.makedirs(os.path.join(benchlib.BENCH, "out"), exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    print("| series | L | whole process (median) | output characters |")
    print("| --- | ---: | ---: | ---: |")
    for series in args.series.split(","):
        make, sized = SERIES[series]
        for L in sizes if sized else [1]:
            runs = [run(exe, make(L), args.check, args.timeout) for _ in range(args.repeat)]
            if any(r is None for r in runs):
                print(f"| {series} | {L} | over {args.timeout:.0f} s | — |")
                break
            wall = sorted(r["wall_s"] for r in runs)[len(runs) // 2]
            results.append({"series": series, "L": L, "wall_s": wall, "chars": runs[0]["chars"]})
            print(f"| {series} | {L} | {wall * 1e3:.0f} ms | {runs[0]['chars']} |", flush=True)
    with open(os.path.join(benchlib.BENCH, "out", "fanout.json"), "w") as fh:
        json.dump({"machine": benchlib.machine(), "check": args.check, "rows": results}, fh, indent=1)
    plot([r for r in results if SERIES[r["series"]][1]], args.plot)
    print(f"plot: {os.path.relpath(args.plot)}", file=sys.stderr)


if __name__ == "__main__":
    main()
