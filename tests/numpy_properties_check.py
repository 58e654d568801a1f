"""The numpy dialect's property test (tests/numpy_properties.rs), the Python side: checks a
batch of generated forward passes in one process, each against finite differences of the
generated function itself run under real numpy, independently of matdiff.

Usage: numpy_properties_check.py MANIFEST.json
The manifest is a list of {"path": FILE.py, "python": the backward function matdiff wrote,
"expressions": {parameter: matdiff's one numpy expression}}. Prints one line per case,
`ok PATH ...` or `FAIL PATH: reasons`, then a `summary` line; exits 0 (the Rust side decides).

Unlike numpy_dialect_check.py (whose input drawing and output conventions this reuses), the
generated functions have kinks (max, abs, maximum, where, clip, masks) anywhere, ties
included (a max over an axis a vector was broadcast along), so each coordinate is also
differenced one-sided: where the two one-sided slopes disagree the coordinate sits on a
kink, the subgradient there is a convention, and it is not compared (counted instead).
An instance with such coordinates is redrawn a few times first.
"""
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from numpy_dialect_check import draw_inputs, outputs_of  # noqa: E402

H = 1e-6
TOLERANCE = 1e-5
# One-sided slopes differ by about H·f'' on smooth functions; a kink makes them differ by
# the jump in the derivative.
KINK = 1e-4
DRAWS = 4


def copied(values):
    # A generated function may update an array in place (`t += ...` on a fresh array is
    # fine, but guard the inputs anyway: a mutated input would corrupt every later difference).
    return {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in values.items()}


def load(path, index):
    spec = importlib.util.spec_from_file_location(f"generated_{index}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = [v for v in vars(module).values() if inspect.isfunction(v) and v.__module__ == module.__name__]
    return max(functions, key=lambda f: f.__code__.co_firstlineno)


def differences(loss, inputs, name):
    """Central differences of `loss` in every entry of `name`, and the mask of kinked entries."""
    x = inputs[name]
    shape = np.shape(x)
    flat = np.array(x, dtype=float).reshape(-1)
    numeric = np.zeros(flat.size)
    kinked = np.zeros(flat.size, dtype=bool)
    base = loss(inputs)
    for k in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[k] += H
        minus[k] -= H
        vp = float(plus[0]) if shape == () else plus.reshape(shape)
        vm = float(minus[0]) if shape == () else minus.reshape(shape)
        fp = loss({**inputs, name: vp})
        fm = loss({**inputs, name: vm})
        numeric[k] = (fp - fm) / (2 * H)
        forward, backward = (fp - base) / H, (base - fm) / H
        kinked[k] = abs(forward - backward) > KINK * max(1.0, abs(numeric[k]))
    return numeric.reshape(shape), kinked.reshape(shape)


def check_case(case, index):
    fn = load(case["path"], index)
    namespace = {"np": np}
    exec(case["python"], namespace)
    backward = [v for k, v in namespace.items() if k.endswith("_backward") and callable(v)][0]
    params = list(inspect.signature(fn).parameters)
    upstream_names = [p for p in inspect.signature(backward).parameters if p not in params]
    skipped = 0
    compared = 0
    for draw in range(DRAWS):
        rng = np.random.default_rng(1000 * index + draw)
        inputs, sizes, specs = draw_inputs(fn, rng, set(), {})
        outs = outputs_of(fn(**copied(inputs)), len(upstream_names))
        upstreams = {}
        for name, out in zip(upstream_names, outs):
            upstreams[name] = rng.normal(size=np.shape(out)) if np.ndim(out) else float(rng.normal())

        def loss(values):
            result = outputs_of(fn(**copied(values)), len(upstream_names))
            if not upstream_names:
                return float(result[0])
            return float(sum(np.sum(upstreams[n] * o) for n, o in zip(upstream_names, result)))

        variables = [n for n, (kind, _) in specs.items() if kind == "array"]
        numerics = {n: differences(loss, inputs, n) for n in variables}
        if any(k.any() for _, k in numerics.values()) and draw + 1 < DRAWS:
            continue
        grads = backward(**upstreams, **copied(inputs))
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != len(variables):
            return [f"the backward function returns {len(grads)} values for {len(variables)} parameters"], 0, 0
        failures = []
        for name, from_function in zip(variables, grads):
            numeric, kinked = numerics[name]
            scope = {"np": np, **copied(inputs), **sizes, **upstreams}
            try:
                from_expression = eval(case["expressions"][name], scope)
            except Exception as e:  # noqa: BLE001 - reported with the case
                failures.append(f"{name} (expression): {type(e).__name__}: {e}")
                from_expression = None
            scale = max(1.0, float(np.max(np.abs(numeric), initial=0.0)))
            keep = ~kinked
            skipped += int(kinked.sum())
            compared += int(keep.sum())
            for how, value in (("expression", from_expression), ("function", from_function)):
                if value is None:
                    continue
                if np.shape(value) != np.shape(numeric):
                    failures.append(f"{name} ({how}): shape {np.shape(value)}, parameter {np.shape(numeric)}")
                    continue
                diff = np.abs(np.asarray(value, dtype=float) - numeric)[keep]
                err = float(np.max(diff, initial=0.0)) / scale
                if not err < TOLERANCE:
                    failures.append(
                        f"{name} ({how}): error {err:.2e} (sizes {sizes}); matdiff {np.asarray(value).tolist()}, "
                        f"finite differences {numeric.tolist()}"
                    )
        return failures, compared, skipped
    raise AssertionError("unreachable: the last draw is always used")


def main():
    cases = json.load(open(sys.argv[1]))
    np.seterr(all="raise")
    total_compared = total_skipped = failed = 0
    for index, case in enumerate(cases):
        try:
            failures, compared, skipped = check_case(case, index)
        except Exception as e:  # noqa: BLE001 - every failure is reported per case
            failures, compared, skipped = [f"{type(e).__name__}: {e}"], 0, 0
        total_compared += compared
        total_skipped += skipped
        if failures:
            failed += 1
            print(f"FAIL {case['path']}: " + "; ".join(failures), flush=True)
        else:
            print(f"ok   {case['path']} compared {compared} skipped {skipped}", flush=True)
    print(f"summary: {len(cases)} cases, {failed} failing, {total_compared} entries compared, "
          f"{total_skipped} on kinks skipped", flush=True)


if __name__ == "__main__":
    main()
