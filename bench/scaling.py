#!/usr/bin/env python3
"""How derive time and output size grow with the size of the input.

    python3 bench/scaling.py [--timeout SECONDS] [--slow SECONDS] [--memory GIB] [--max-size N]

Three series, each derived with `matdiff::grad` (no_check) in-process by the `timings`
bench target, one process per size so each run is bounded by a timeout:

- mlp:   an L-layer tanh network, h1 = tanh(W1*x), hi = tanh(Wi*h(i-1)),
         loss sum((hL - y).^2), gradient wrt W1;  L = 1, 2, 4, ..., 64
- chain: tr(A1*A2*...*An), gradient wrt A1;      n = 1, 2, 4, ..., 256
- quad:  x'*A1*x + ... + x'*An*x, gradient wrt x; n = 1, 2, 4, ..., 256

A series stops at the first size whose run exceeds --slow seconds (default 10), the
timeout (default 60 s) or the memory cap (default 4 GiB), and says so. Output: a markdown table on stdout, bench/out/scaling.json, and
the plot bench/scaling.png (derive time and output size against L / n, log-log).
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


def mlp(L):
    decl = ["x : N", "y : H", "W1 : H x N"] + [f"W{i} : H x H" for i in range(2, L + 1)]
    body = ["h1 = tanh(W1*x)"] + [f"h{i} = tanh(W{i}*h{i - 1})" for i in range(2, L + 1)]
    return "; ".join(decl + body + [f"sum((h{L} - y).^2)"]), "W1"


def chain(n):
    decl = [f"A{i} : m x m" for i in range(1, n + 1)]
    return "; ".join(decl + ["tr(" + "*".join(f"A{i}" for i in range(1, n + 1)) + ")"]), "A1"


def quad(n):
    decl = ["x : m"] + [f"A{i} : m x m" for i in range(1, n + 1)]
    return "; ".join(decl + [" + ".join(f"x'*A{i}*x" for i in range(1, n + 1))]), "x"


SERIES = {
    "mlp": (mlp, [1, 2, 4, 8, 16, 32, 64], "L (layers)"),
    "chain": (chain, [1, 2, 4, 8, 16, 32, 64, 128, 256], "n (factors)"),
    "quad": (quad, [1, 2, 4, 8, 16, 32, 64, 128, 256], "n (quadratic forms)"),
}


def run_one(exe, name, size, script, wrt, timeout, memory_gib):
    path = os.path.join(benchlib.BENCH, "out", f"scaling-{name}-{size}.json")
    with open(path, "w") as fh:
        json.dump([{"id": f"{name}-{size}", "script": script, "wrt": wrt}], fh)
    t0 = time.perf_counter()
    try:
        rows = benchlib.run_timings(
            exe, path, ["--budget-ms", "500", "--min-reps", "1", "--max-reps", "20", "--no-formula"],
            timeout=timeout,
            memory_gib=memory_gib,
        )
        row = rows[0]
    except subprocess.TimeoutExpired:
        row = {"ok": False, "error": f"timeout after {timeout:.0f} s"}
    except subprocess.CalledProcessError as e:
        why = "out of memory" if "memory allocation" in (e.stderr or "") else f"exit {e.returncode}"
        row = {"ok": False, "error": f"aborted after {time.perf_counter() - t0:.1f} s ({why}, cap {memory_gib:g} GiB)"}
    row.update({"series": name, "size": size, "wall_s": time.perf_counter() - t0})
    return row


def plot(rows, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_n, ax_c) = plt.subplots(1, 3, figsize=(15, 4.6))
    colors = {"mlp": "tab:red", "chain": "tab:blue", "quad": "tab:green"}
    labels = {"mlp": "L-layer tanh MLP, ∂/∂W1", "chain": "tr(A1⋯An), ∂/∂A1", "quad": "Σ xᵀAᵢx, ∂/∂x"}
    for name in SERIES:
        ok = [r for r in rows if r["series"] == name and r.get("ok")]
        if not ok:
            continue
        xs = [r["size"] for r in ok]
        ax_t.plot(xs, [r["derive_median_s"] for r in ok], "o-", color=colors[name], label=labels[name])
        ax_n.plot(xs, [r["nodes"] for r in ok], "o-", color=colors[name], label=labels[name])
        ax_c.plot(xs, [r["text_len"] for r in ok], "o-", color=colors[name], label=labels[name])
        lim = [r for r in ok if r.get("limit_hit")]
        if lim:
            ax_t.plot([r["size"] for r in lim], [r["derive_median_s"] for r in lim], "x", color="black", ms=9)
        failed = [r for r in rows if r["series"] == name and not r.get("ok")]
        for r in failed:
            for ax in (ax_t, ax_n, ax_c):
                ax.axvline(r["size"], color=colors[name], ls="--", lw=1)
            ax_t.annotate(f"{name} {r['size']}:\nno result", (r["size"] * 0.93, {"mlp": 2.5, "chain": 0.35, "quad": 0.05}[name]),
                          color=colors[name], fontsize=7, ha="right")
    xs = [1, 256]
    for ax in (ax_n, ax_c):
        ax.plot(xs, [x * 4 for x in xs], ":", color="gray", label="∝ size (reference)")
    ax_t.axhline(1.0, ls="--", color="gray", lw=0.8)
    ax_t.text(64, 1.15, "1 s target (64-layer MLP)", color="gray", fontsize=8, ha="right")
    for ax, title, ylabel in (
        (ax_t, "derive + simplify, median (× = an e-graph limit hit)", "seconds"),
        (ax_n, "output size: nodes of the formula", "nodes"),
        (ax_c, "output size: characters of formula_text()", "characters"),
    ):
        benchlib.log_log(ax, title, "L / n", ylabel)
    ax_t.set_ylim(1e-5, 10.0)
    ax_t.legend(fontsize=8, loc="lower right")
    for ax in (ax_t, ax_n, ax_c):
        ax.set_xlim(0.8, 320)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=60.0, help="hard bound of one size's run, seconds")
    ap.add_argument("--slow", type=float, default=10.0, help="stop a series after a run this slow, seconds")
    ap.add_argument("--memory", type=float, default=4.0, help="address-space cap of one run, GiB")
    ap.add_argument("--max-size", type=int, default=256)
    ap.add_argument("--series", default=",".join(SERIES))
    ap.add_argument("--plot", default=os.path.join(benchlib.BENCH, "scaling.png"))
    ap.add_argument("--replot", action="store_true", help="redraw the plot from bench/out/scaling.json")
    args = ap.parse_args()
    os.makedirs(os.path.join(benchlib.BENCH, "out"), exist_ok=True)
    if args.replot:
        with open(os.path.join(benchlib.BENCH, "out", "scaling.json")) as fh:
            plot(json.load(fh)["rows"], args.plot)
        return
    exe = benchlib.timings_executable()
    rows = []
    for name in args.series.split(","):
        gen, sizes, _ = SERIES[name]
        for size in sizes:
            if size > args.max_size:
                break
            script, wrt = gen(size)
            print(f"{name} {size} ...", file=sys.stderr, flush=True)
            row = run_one(exe, name, size, script, wrt, args.timeout, args.memory)
            rows.append(row)
            if not row.get("ok"):
                print(f"  {name} stopped at {size}: {row.get('error')}", file=sys.stderr)
                break
            if max(row["first_s"], row["derive_median_s"]) > args.slow:
                row["stopped"] = f"first run took {row['first_s']:.1f} s > {args.slow:.0f} s"
                print(f"  {name} stopped at {size}: {row['stopped']}", file=sys.stderr)
                break

    print("| series | size | derive+simplify (median) | first run | formula nodes | text chars "
          "| e-graph iterations / nodes | limit hit |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if not r.get("ok"):
            print(f"| {r['series']} | {r['size']} | {r.get('error')} | | | | | |")
            continue
        print(f"| {r['series']} | {r['size']} | {benchlib.fmt_time(r['derive_median_s'])} "
              f"| {benchlib.fmt_time(r['first_s'])} | {r['nodes']} | {r['text_len']} "
              f"| {r['iterations']} / {r['egraph_nodes']} | {r.get('limit_hit') or '—'} |")
    with open(os.path.join(benchlib.BENCH, "out", "scaling.json"), "w") as fh:
        json.dump({"machine": benchlib.machine(), "rows": rows}, fh, indent=1)
    plot(rows, args.plot)
    print(f"plot: {os.path.relpath(args.plot)}", file=sys.stderr)


if __name__ == "__main__":
    main()
