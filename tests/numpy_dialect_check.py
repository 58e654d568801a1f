"""Checks matdiff's numpy dialect the way a user of the contract would, independently of
matdiff's own checker: for each forward pass file, the file's own function is run under
numpy on random inputs, its loss (the outputs contracted with random upstreams `dout`, or
the scalar output itself) is differentiated by central finite differences, and compared
entry by entry with
  - each `matdiff grad FILE --wrt P --emit numpy` expression, evaluated with `np`, the
    parameters, the dimension names (ints) and the upstreams, and
  - the `matdiff grad FILE --wrt all --emit numpy --function` backward function.

Usage: numpy_dialect_check.py MATDIFF_BINARY FILE.py [FILE.py ...]
A file may say `# check: positive NAME, NAME` for parameters that must be drawn positive.
Prints one line per file; exits 1 if any fails.
"""
import importlib.util
import inspect
import json
import re
import subprocess
import sys

import numpy as np

H = 1e-6
TOLERANCE = 1e-5


def dims_of(text):
    text = text.strip()
    if text in ("scalar", "float", "()"):
        return []
    parts = [p.strip() for p in re.split(r"\s+x\s+|,|×", text.strip("()")) if p.strip()]
    return parts


def size(expr, sizes):
    value = 1
    for factor in expr.replace("·", "*").split("*"):
        factor = factor.strip()
        value *= int(factor) if factor.isdigit() else sizes[factor]
    return value


def draw_inputs(fn, rng, positive, inferred):
    sig = inspect.signature(fn)
    names = set()
    specs = {}
    for p in sig.parameters.values():
        a = p.annotation
        if a is inspect.Parameter.empty:
            # A shape matdiff inferred from the body is drawn as if it were written.
            if p.name not in inferred:
                continue
            a = inferred[p.name]
        if a is float:
            specs[p.name] = ("array", [])
            continue
        m = re.fullmatch(r"\s*(.+?)\s+labels of\s+(.+?)\s*", a)
        if m:
            specs[p.name] = ("labels", [m.group(1), m.group(2)])
            for d in (m.group(1), m.group(2)):
                names.update(re.findall(r"[A-Za-z_]\w*", d))
            continue
        dims = dims_of(a)
        specs[p.name] = ("array", dims)
        for d in dims:
            names.update(re.findall(r"[A-Za-z_]\w*", d))
    # Distinct sizes, so that a mix-up of two dimensions cannot pass.
    pool = list(rng.permutation(np.arange(2, 9)))
    sizes = {n: int(pool[k % len(pool)]) for k, n in enumerate(sorted(names))}
    inputs = {}
    for name, (kind, dims) in specs.items():
        if kind == "labels":
            n, c = size(dims[0], sizes), size(dims[1], sizes)
            inputs[name] = rng.integers(0, c, size=n)
            continue
        shape = tuple(size(d, sizes) for d in dims)
        magnitude = rng.uniform(0.3, 1.2, size=shape)
        if name in positive:
            value = magnitude + 0.2
        else:
            value = magnitude * rng.choice([-1.0, 1.0], size=shape)
        inputs[name] = float(value) if shape == () else value
    return inputs, sizes, specs


def run(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"matdiff {' '.join(args)} exited {p.returncode}:\n{p.stderr}{p.stdout}")
    return p.stdout


def outputs_of(result, n_upstreams):
    if not isinstance(result, tuple):
        return [result]
    return list(result[: max(n_upstreams, 1)])


def check_file(binary, path):
    source = open(path).read()
    positive = set()
    for m in re.finditer(r"#\s*check:\s*positive\s+(.+)", source):
        positive.update(n.strip() for n in m.group(1).split(","))
    spec = importlib.util.spec_from_file_location("layer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = [v for v in vars(module).values() if inspect.isfunction(v) and v.__module__ == "layer"]
    fn = max(functions, key=lambda f: f.__code__.co_firstlineno)

    function_source = run(binary, "grad", "-f", path, "--wrt", "all", "--emit", "numpy", "--function")
    namespace = {"np": np}
    exec(function_source, namespace)
    backward = [v for k, v in namespace.items() if k.endswith("_backward")][0]
    params = list(inspect.signature(fn).parameters)
    upstream_names = [p for p in inspect.signature(backward).parameters if p not in params]

    derivations = json.loads(run(binary, "grad", "-f", path, "--wrt", "all", "--emit", "json", "--no-check"))
    if isinstance(derivations, dict):
        derivations = [derivations]
    inferred = {i["name"]: i["shape"] for i in derivations[0]["inferred"]}

    rng = np.random.default_rng(7)
    inputs, sizes, specs = draw_inputs(fn, rng, positive, inferred)
    outs = outputs_of(fn(**inputs), len(upstream_names))
    upstreams = {}
    for name, out in zip(upstream_names, outs):
        upstreams[name] = rng.normal(size=np.shape(out)) if np.ndim(out) else float(rng.normal())

    def loss(values):
        result = outputs_of(fn(**values), len(upstream_names))
        if not upstream_names:
            return float(result[0])
        return float(sum(np.sum(upstreams[n] * o) for n, o in zip(upstream_names, result)))

    variables = [n for n, (kind, _) in specs.items() if kind == "array"]
    failures = []
    grads = backward(**upstreams, **inputs)
    if not isinstance(grads, tuple):
        grads = (grads,)
    for name, from_function in zip(variables, grads):
        x = inputs[name]
        numeric = np.zeros(np.shape(x))
        flat = np.array(x, dtype=float).reshape(-1)
        for k in range(flat.size):
            plus, minus = flat.copy(), flat.copy()
            plus[k] += H
            minus[k] -= H
            shape = np.shape(x)
            vp = float(plus[0]) if shape == () else plus.reshape(shape)
            vm = float(minus[0]) if shape == () else minus.reshape(shape)
            numeric.reshape(-1)[k] = (loss({**inputs, name: vp}) - loss({**inputs, name: vm})) / (2 * H)
        expression = run(binary, "grad", "-f", path, "--wrt", name, "--emit", "numpy").strip()
        scope = {"np": np, **inputs, **sizes, **upstreams}
        from_expression = eval(expression, scope)
        scale = max(1.0, float(np.max(np.abs(numeric))))
        for how, value in (("expression", from_expression), ("function", from_function)):
            if np.shape(value) != np.shape(x):
                failures.append(f"{name} ({how}): shape {np.shape(value)}, parameter {np.shape(x)}")
                continue
            err = float(np.max(np.abs(np.asarray(value) - numeric))) / scale
            if not err < TOLERANCE:
                failures.append(f"{name} ({how}): error {err:.2e}")
    return failures


def main():
    binary, files = sys.argv[1], sys.argv[2:]
    failed = False
    for path in files:
        try:
            failures = check_file(binary, path)
        except Exception as e:  # noqa: BLE001 - every failure is reported per file
            failures = [f"{type(e).__name__}: {e}"]
        if failures:
            failed = True
            print(f"FAIL {path}: " + "; ".join(failures))
        else:
            print(f"ok   {path}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
