#!/usr/bin/env python3
"""Summarises the last `cargo bench --bench pipeline` run (criterion's estimates) per stage.

    python3 bench/criterion_summary.py [--limit-ms DERIVE] [--check-limit-ms CHECK]

Reads $CARGO_TARGET_DIR/criterion (default target/criterion). For each stage: the median
over the corpus of the per-case median times, the slowest cases, and how many cases exceed
the issue's targets (derive+simplify 1 ms, numeric check 10 ms). Standard library only.
"""

import argparse
import glob
import json
import os
import statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fmt(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.0f} µs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit-ms", type=float, default=1.0)
    ap.add_argument("--check-limit-ms", type=float, default=10.0)
    ap.add_argument("--slowest", type=int, default=5)
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    stages = {}
    for path in glob.glob(os.path.join(target, "criterion", "**", "new", "benchmark.json"), recursive=True):
        with open(path) as f:
            bench = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        stages.setdefault(bench["value_str"], {})[bench["group_id"]] = median
    if not stages:
        raise SystemExit(f"no criterion results under {target}/criterion: run `cargo bench --bench pipeline`")
    limits = {"derive+simplify": args.limit_ms * 1e6, "check": args.check_limit_ms * 1e6}
    print("| stage | cases | median of per-case medians | max | cases over target | slowest |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for stage in ("parse+shape", "derive+simplify", "check", "end-to-end"):
        cases = {k: v for k, v in stages.get(stage, {}).items() if k != "seed"}
        if not cases:
            continue
        values = sorted(cases.values())
        limit = limits.get(stage)
        over = f"{sum(v > limit for v in values)} (> {fmt(limit)})" if limit else "—"
        slow = sorted(cases.items(), key=lambda kv: -kv[1])[: args.slowest]
        print(f"| {stage} | {len(values)} | {fmt(statistics.median(values))} | {fmt(values[-1])} | {over} "
              f"| {', '.join(f'{k} {fmt(v)}' for k, v in slow)} |")
    seed = {s: v["seed"] for s, v in stages.items() if "seed" in v}
    if seed:
        print()
        print("seed: " + ", ".join(f"{s} {fmt(seed[s])}" for s in ("parse+shape", "derive+simplify", "check", "end-to-end") if s in seed))


if __name__ == "__main__":
    main()
