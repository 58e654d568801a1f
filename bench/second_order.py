#!/usr/bin/env python3
"""Output size of a deep network's Hessian against depth (issue 19).

    python3 bench/second_order.py [--depths 1,2,3,4,5,6] [--exe PATH]

A residual network on a vector, h_i = h_(i-1) + tanh(W_i*h_(i-1)), h_0 = x, loss
sum(h_L .* h_L): `matdiff hessian ... --wrt x --no-check`, as text, as one numpy expression
and as a numpy function. Every layer's value is used twice, so written as a tree the Hessian
doubles (and more) with every layer; numpy names each repeated part once. Prints a markdown
table of characters of output. Standard library only; sizes do not depend on the build, so
this runs the debug build.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def residual(L):
    decl = ["x : n"] + [f"W{i} : n x n" for i in range(1, L + 1)]
    body, prev = [], "x"
    for i in range(1, L + 1):
        body.append(f"h{i} = {prev} + tanh(W{i}*{prev})")
        prev = f"h{i}"
    return "; ".join(decl + body + [f"sum({prev} .* {prev})"])


def size(exe, script, extra):
    argv = [exe, "hessian", script, "--wrt", "x", "--no-check"] + extra
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return len(out.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", default="1,2,3,4,5,6")
    parser.add_argument("--exe", help="a matdiff binary instead of this tree's debug build")
    args = parser.parse_args()
    if args.exe is None:
        # Sizes, not times: the debug build, which the tests have built already, will do.
        subprocess.run(["cargo", "build", "--quiet", "--bin", "matdiff"], cwd=benchlib.ROOT, check=True)
    exe = args.exe or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(benchlib.ROOT, "target")), "debug", "matdiff")
    print("| L | text | numpy expression | numpy function |")
    print("| ---: | ---: | ---: | ---: |")
    for L in (int(d) for d in args.depths.split(",")):
        script = residual(L)
        text = size(exe, script, [])
        expression = size(exe, script, ["--emit", "numpy"])
        function = size(exe, script, ["--emit", "numpy", "--function"])
        print(f"| {L} | {text} | {expression} | {function} |", flush=True)


if __name__ == "__main__":
    main()
