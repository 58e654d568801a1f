#!/usr/bin/env python3
"""Whole-process cost of `matdiff grad` on the seed: CPU time (user + sys, from the
child's rusage) and wall time, median over many runs.

    python3 bench/startup.py [--runs N] [--exe PATH ...] [-- EXTRA MATDIFF ARGS]

With several `--exe`, the runs interleave (one of each in turn), so a load that comes and
goes on a shared machine falls on every binary alike. Without `--exe`, builds the binary as
shipped (`cargo build-static`, .cargo/config.toml: target/dist/matdiff) and times it. A
`true` process is timed alongside, as the floor of what starting any process costs here.
Standard library only.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SEED = ["grad", "X : B x N; W : N x M; b : M; h = X*W + b", "--wrt", "b"]


def release_binary():
    subprocess.run(["cargo", "build-static", "--quiet"], cwd=benchlib.ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(benchlib.ROOT, "target"))
    return os.path.join(target, "dist", "matdiff")


def one_run(argv):
    """(cpu seconds, wall seconds) of one child process, its output discarded."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed with status {status}")
    return usage.ru_utime + usage.ru_stime, wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--exe", action="append", help="binary to time (repeatable)")
    parser.add_argument("extra", nargs="*", help="arguments appended to the seed's")
    args = parser.parse_args()
    exes = args.exe or [release_binary()]
    commands = {"true": ["/bin/true"]}
    for exe in exes:
        commands[exe] = [os.path.abspath(exe), *SEED, *args.extra]
    for argv in commands.values():  # warm the page cache
        for _ in range(5):
            one_run(argv)
    samples = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            samples[name].append(one_run(argv))
    print(f"{'binary':<40} {'CPU median':>11} {'CPU p25–p75':>17} {'wall median':>12}  ({args.runs} runs each)")
    for name, runs in samples.items():
        cpu = sorted(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        q = statistics.quantiles(cpu, n=4)
        print(f"{name:<40} {statistics.median(cpu) * 1e3:>8.2f} ms {q[0] * 1e3:>7.2f}–{q[2] * 1e3:.2f} ms {wall * 1e3:>9.2f} ms")


if __name__ == "__main__":
    main()
