#!/usr/bin/env python3
"""matdiff against SymPy on the same derivations (bench/cases.toml).

    python3 bench/compare_sympy.py [--cases FILE] [--budget SECONDS] [--json OUT] [--no-startup]

Creates bench/.venv (sympy, numpy, matplotlib) on first use and re-runs itself there.
SymPy is timed in-process: `f.diff(X)` only (the expression is built beforehand), the
median of repeats with SymPy's cache cleared before each (else a repeat is a cache hit).
matdiff is timed in-process by the `timings` bench target (`matdiff::grad` with
no_check: parse, shapes, derive, simplify, extract), run once for all cases.

SymPy's answer is checked against central finite differences of its own input at
concrete sizes; a case where SymPy raises, leaves a derivative unevaluated, or answers
wrongly is marked and not counted as a speed-up. Finally, the whole `matdiff grad`
process on the seed is timed (hyperfine if installed, else a subprocess loop).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

benchlib.ensure_venv(__file__)

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import sympy  # noqa: E402
from sympy import (  # noqa: E402, F401
    Derivative,
    Determinant,
    HadamardProduct,
    Identity,
    ImmutableMatrix,
    Inverse,
    KroneckerProduct,
    Lambda,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Symbol,
    Trace,
    ZeroMatrix,
    exp,
    log,
    symbols,
    tanh,
)
from sympy.core.cache import clear_cache  # noqa: E402

SEED = ("X : B x N; W : N x M; b : M; h = X*W + b", "b")
# Concrete sizes for checking SymPy's answers (distinct, so a mix-up shows).
SIZES = {"n": 3, "m": 4, "k": 2, "p": 5, "B": 4, "N": 3, "M": 2, "H": 5}
SCALAR_VALUE = 0.7


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


signal.signal(signal.SIGALRM, _alarm)
warnings.filterwarnings("ignore")  # SymPy's deprecation warnings from its own array code


def with_timeout(seconds, fn):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


DECL = re.compile(r"^\s*([A-Za-z_]\w*)\s*:\s*(.+?)\s*(symmetric)?\s*$")


def declarations(script):
    """NAME : SHAPE statements of a matdiff script -> {name: (rows, cols) or 'scalar'}."""
    out = {}
    for stmt in re.split(r"[;\n]", script):
        stmt = stmt.split("#", 1)[0]
        m = DECL.match(stmt)
        if not m:
            continue
        name, shape = m.group(1), m.group(2).strip()
        if shape == "scalar":
            out[name] = "scalar"
            continue
        parts = [p.strip() for p in re.split(r"\s+[x×]\s+|×", shape)]
        out[name] = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "1")
    return out


def dim(d):
    return int(d) if d.isdigit() else Symbol(d)


def namespace(case):
    ns = {name: getattr(sympy, name) for name in dir(sympy) if not name.startswith("_")}
    ns["t"] = Symbol("t")
    decls = declarations(case["script"])
    decls.update(declarations(case.get("sympy_extra", "")))
    for name, shape in decls.items():
        if shape == "scalar":
            ns[name] = Symbol(name)
        else:
            for d in shape:
                if not d.isdigit():
                    ns[d] = Symbol(d)
            ns[name] = MatrixSymbol(name, dim(shape[0]), dim(shape[1]))
    return ns


def sympy_function(case):
    ns = namespace(case)
    code = case["sympy"].strip()
    try:
        f = eval(compile(code, "<sympy>", "eval"), ns)
    except SyntaxError:
        exec(compile(code, "<sympy>", "exec"), ns)
        f = ns["f"]
    return f, ns[case["wrt"]]


# ---- checking SymPy's answer ------------------------------------------------------------


def concrete(expr, values):
    dims = {Symbol(k): v for k, v in SIZES.items()}
    e = expr.subs(dims)
    rep = {}
    for s in e.atoms(MatrixSymbol):
        rep[s] = ImmutableMatrix(values[s.name])
    for s in e.free_symbols:
        if isinstance(s, Symbol) and s.name in values:
            rep[s] = values[s.name]
    for s in e.atoms(OneMatrix, Identity, ZeroMatrix):
        rep[s] = ImmutableMatrix(s.as_explicit())
    e = e.xreplace(rep).doit()
    if hasattr(e, "as_explicit") and not isinstance(e, ImmutableMatrix):
        e = e.as_explicit()
    return e


def to_array(e):
    if hasattr(e, "tolist"):
        return np.array(e.tolist(), dtype=float)
    return np.array(complex(e).real if complex(e).imag == 0 else float("nan"))


def verify(f, wrt, d, rng):
    """'ok', or 'wrong' with the reason; raises if SymPy cannot evaluate the answer."""
    values = {}
    for s in f.atoms(MatrixSymbol) | d.atoms(MatrixSymbol):
        shape = tuple(int(sympy.sympify(z).subs({Symbol(k): v for k, v in SIZES.items()})) for z in s.shape)
        v = rng.standard_normal(shape)
        if shape[0] == shape[1]:
            v = v + shape[0] * np.eye(shape[0])  # invertible, positive determinant
        values[s.name] = v
    for s in f.free_symbols:
        if isinstance(s, Symbol) and s.name not in SIZES:
            values[s.name] = SCALAR_VALUE
    x0 = values[wrt.name]
    zero = d == 0 or isinstance(d, ZeroMatrix)
    got = np.zeros(x0.shape) if zero else to_array(concrete(d, values))
    h = 1e-6
    fd = np.zeros(x0.shape)
    for idx in np.ndindex(x0.shape):
        plus, minus = dict(values), dict(values)
        plus[wrt.name] = x0.copy()
        plus[wrt.name][idx] += h
        minus[wrt.name] = x0.copy()
        minus[wrt.name][idx] -= h
        fp = to_array(concrete(f, plus)).item()
        fm = to_array(concrete(f, minus)).item()
        fd[idx] = (fp - fm) / (2 * h)
    if got.shape != fd.shape:
        if got.size == fd.size and got.squeeze().shape == fd.squeeze().shape:
            got = got.reshape(fd.shape)
        else:
            return f"wrong (shape {got.shape}, expected {fd.shape})"
    if np.allclose(got, fd, rtol=1e-4, atol=1e-6):
        return "ok"
    return f"wrong (max error {np.max(np.abs(got - fd)):.2g})"


def time_sympy(case, budget, max_reps=30, per_call_timeout=60.0):
    result = {"sympy_status": None}
    try:
        f, wrt = sympy_function(case)
    except Exception as e:  # SymPy cannot even state this function
        result["sympy_status"] = f"error building the expression: {type(e).__name__}: {str(e)[:80]}"
        return result
    try:
        clear_cache()
        d = with_timeout(per_call_timeout, lambda: f.diff(wrt))
    except Timeout:
        result["sympy_status"] = f"timeout (> {per_call_timeout:.0f} s)"
        return result
    except Exception as e:  # SymPy cannot differentiate this form
        result["sympy_status"] = f"error: {type(e).__name__}: {str(e)[:80]}"
        return result
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < 3 or time.perf_counter() - start < budget):
        clear_cache()
        t0 = time.perf_counter()
        f.diff(wrt)
        times.append(time.perf_counter() - t0)
    result["sympy_median_s"] = statistics.median(times)
    result["sympy_reps"] = len(times)
    text = str(d)
    result["sympy_answer"] = text if len(text) < 200 else text[:197] + "..."
    if d.has(Derivative) or type(d).__name__ == "ArrayDerivative":
        result["sympy_status"] = "unevaluated"
        return result
    try:
        status = with_timeout(120.0, lambda: verify(f, wrt, d, np.random.default_rng(0)))
    except Timeout:
        status = "unverified (evaluation timed out)"
    except Exception as e:
        status = f"unverified ({type(e).__name__})"
    if status == "ok" and not isinstance(d, MatrixExpr):
        status = "ok (array form)"
    result["sympy_status"] = status
    return result


# ---- whole process ------------------------------------------------------------------------


def release_binary():
    subprocess.run(["cargo", "build", "--release", "--bin", "matdiff"], cwd=benchlib.ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(benchlib.ROOT, "target"))
    return os.path.join(target, "release", "matdiff")


def time_process(exe):
    script, wrt = SEED
    if benchlib.have("hyperfine"):
        out = os.path.join(benchlib.BENCH, "out", "hyperfine-seed.json")
        subprocess.run(
            ["hyperfine", "--warmup", "5", "--runs", "50", "-N", "--export-json", out,
             "--style", "none", f"{exe} grad '{script}' --wrt {wrt}"],
            check=True,
        )
        with open(out) as fh:
            r = json.load(fh)["results"][0]
        return {"tool": "hyperfine -N, 50 runs", "median_s": r["median"], "mean_s": r["mean"],
                "min_s": r["min"], "max_s": r["max"]}
    times = []
    for i in range(55):
        t0 = time.perf_counter()
        subprocess.run([exe, "grad", script, "--wrt", wrt], check=True, stdout=subprocess.DEVNULL)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return {"tool": "subprocess loop, 50 runs", "median_s": statistics.median(times),
            "mean_s": statistics.mean(times), "min_s": min(times), "max_s": max(times)}


# ---- main -----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=os.path.join(benchlib.BENCH, "cases.toml"))
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of SymPy repeats per case")
    ap.add_argument("--json", default=os.path.join(benchlib.BENCH, "out", "compare_sympy.json"))
    ap.add_argument("--no-startup", action="store_true", help="skip the whole-process timing")
    args = ap.parse_args()
    os.makedirs(os.path.join(benchlib.BENCH, "out"), exist_ok=True)

    cases = benchlib.load_toml(args.cases)["case"]
    info = benchlib.machine()
    info["sympy"] = sympy.__version__
    print(f"machine: {info['nproc']} cores, {info['cpu']}; {info['rustc']}; "
          f"Python {info['python']}, SymPy {info['sympy']}", file=sys.stderr)

    exe = benchlib.timings_executable()
    md = {r["id"]: r for r in benchlib.run_timings(exe, os.path.abspath(args.cases),
                                                     ["--check", "--budget-ms", "300"], timeout=1800)}

    rows = []
    for case in cases:
        print(f"sympy: {case['id']}", file=sys.stderr)
        row = {"id": case["id"], "wrt": case["wrt"]}
        row.update(md.get(case["id"], {"ok": False, "error": "no timing"}))
        row.update(time_sympy(case, args.budget))
        if row.get("ok") and row.get("sympy_median_s"):
            row["ratio"] = row["sympy_median_s"] / row["derive_median_s"]
        row["counted"] = bool(row.get("ok") and row.get("check_passed") and "ratio" in row
                              and row["sympy_status"].startswith("ok"))
        rows.append(row)

    print("\n| case | matdiff derive+simplify | matdiff check | SymPy `.diff` | SymPy / matdiff | SymPy's answer |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if not r.get("ok"):
            md_time = f"error: {r.get('error', '?')[:60]}"
        else:
            md_time = benchlib.fmt_time(r["derive_median_s"])
            if r.get("limit_hit"):
                md_time += f" (limit: {r['limit_hit']})"
        check = benchlib.fmt_time(r.get("check_median_s")) + ("" if r.get("check_passed") else " FAILED")
        ratio = f"{r['ratio']:.0f}x" if "ratio" in r else "—"
        if "ratio" in r and not r["counted"]:
            ratio = f"({ratio}, not counted)"
        print(f"| {r['id']} | {md_time} | {check} | {benchlib.fmt_time(r.get('sympy_median_s'))} "
              f"| {ratio} | {r['sympy_status']} |")

    counted = [r for r in rows if r["counted"]]
    ratios = sorted(r["ratio"] for r in counted)
    derive = [r["derive_median_s"] for r in rows if r.get("ok")]
    checks = [r["check_median_s"] for r in rows if r.get("check_median_s") is not None]
    print()
    print(f"cases: {len(rows)}; SymPy correct on {len(counted)} "
          f"(the others: {', '.join(r['id'] + ' ' + r['sympy_status'].split(' (')[0].split(':')[0] for r in rows if not r['counted'])})")
    if ratios:
        print(f"SymPy / matdiff over the {len(ratios)} counted cases: median {statistics.median(ratios):.0f}x, "
              f"min {ratios[0]:.1f}x ({min(counted, key=lambda r: r['ratio'])['id']}), max {ratios[-1]:.0f}x; "
              f"cases where matdiff is slower: {sum(1 for x in ratios if x < 1)}")
    print(f"matdiff derive+simplify: median of medians {benchlib.fmt_time(statistics.median(derive))}, "
          f"max {benchlib.fmt_time(max(derive))}; numeric check: median {benchlib.fmt_time(statistics.median(checks))}, "
          f"max {benchlib.fmt_time(max(checks))}")
    limits = [r["id"] for r in rows if r.get("limit_hit")]
    if limits:
        print(f"simplification stopped by a limit: {', '.join(limits)}")

    startup = None
    if not args.no_startup:
        startup = time_process(release_binary())
        print(f"whole process, `matdiff grad` on the seed ({startup['tool']}): median "
              f"{benchlib.fmt_time(startup['median_s'])} (min {benchlib.fmt_time(startup['min_s'])}, "
              f"max {benchlib.fmt_time(startup['max_s'])})")

    with open(args.json, "w") as fh:
        json.dump({"machine": info, "rows": rows, "startup": startup}, fh, indent=1)
    print(f"raw results: {os.path.relpath(args.json)}", file=sys.stderr)


if __name__ == "__main__":
    main()
