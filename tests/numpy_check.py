"""Evaluates matdiff's emitted numpy gradients with real numpy, independently of matdiff's
own checker: random arrays in the command-line contract's conventions (matrices 2-D,
vectors 1-D, scalars floats, a 1 x k row 2-D), central finite differences of the target
(or of sum(G * target) for a non-scalar target), compared entry by entry.

Reads one JSON object per line on stdin; prints one line per case; exits 1 if any fails.
"""
import json
import sys

import numpy as np


def draw(shape, sizes, rng, positive):
    rows, cols = (eval_dim(d, sizes) for d in shape["dims"])
    kind = shape["kind"]

    def entries(size):
        # Either sign (or positive), kept away from 0 so that divisions and kinks stay tame.
        magnitude = rng.uniform(0.25, 1.25, size=size)
        if positive:
            return magnitude + 0.25
        return magnitude * rng.choice([-1.0, 1.0], size=size)

    if kind == "scalar":
        return float(entries(1)[0])
    if kind == "vector":
        return entries(rows)
    value = entries((rows, cols))
    if shape.get("symmetric"):
        value = (value + value.T) / 2
    if shape.get("invertible") and rows == cols:
        value = value + (rows + 1) * np.eye(rows)
    return value


def eval_dim(dim, sizes):
    value = 1
    for factor in dim.split("*"):
        value *= int(factor) if factor.isdigit() else sizes[factor]
    return value


def run_case(case, rng):
    worst = 0.0
    checked = 0
    for attempt in range(40):
        if checked == 2:
            break
        names = sorted(case["dims"])
        pool = list(rng.permutation(np.arange(2, 2 + max(5, len(names)))))
        sizes = {name: int(pool[i]) for i, name in enumerate(names)}
        env = {"np": np, **sizes}
        for name, shape in case["variables"].items():
            env[name] = draw(shape, sizes, rng, positive=attempt % 2 == 1)
        upstream = case.get("upstream")
        if upstream:
            env[upstream["name"]] = draw(upstream, sizes, rng, positive=False)

        def objective(at):
            local = dict(env)
            local[case["wrt"]] = at
            with np.errstate(all="ignore"):
                value = eval(case["target"], local)
            value = np.asarray(value, dtype=float)
            if upstream:
                g = np.asarray(local[upstream["name"]], dtype=float).reshape(value.shape)
                return float(np.sum(g * value))
            return float(value.reshape(-1)[0])

        x0 = env[case["wrt"]]
        if not np.isfinite(objective(x0)):
            continue
        with np.errstate(all="ignore"):
            grad = eval(case["gradient"], dict(env))
            if case.get("function"):
                # The --function form must give the same array from the arguments alone.
                scope = {}
                exec(case["function"], scope)
                by_function = scope["grad_" + case["wrt"]](*[env[a] for a in case["function_args"]])
                if np.shape(by_function) != np.shape(grad) or not np.allclose(by_function, grad, rtol=1e-12, atol=1e-12):
                    return False, "the --function form disagrees with the expression"
        if isinstance(x0, float):
            if not isinstance(grad, float):
                return False, f"gradient is {type(grad).__name__}, not a Python float"
            flat = np.array([x0])
        else:
            grad = np.asarray(grad)
            if grad.shape != x0.shape:
                return False, f"gradient has shape {grad.shape}, the variable {x0.shape}"
            flat = x0.astype(float).reshape(-1)
        numeric = np.zeros(flat.size)
        h = 1e-4
        ok = True
        for k in range(flat.size):
            def at(t):
                moved = flat.copy()
                moved[k] += t
                if isinstance(x0, float):
                    return float(moved[0])
                moved = moved.reshape(x0.shape)
                if case["variables"][case["wrt"]].get("symmetric"):
                    i, j = divmod(k, x0.shape[1])
                    if i != j:
                        moved[j, i] += t
                return moved
            vals = [objective(at(t)) for t in (-2 * h, -h, h, 2 * h)]
            if not all(np.isfinite(vals)):
                ok = False
                break
            numeric[k] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
        if not ok:
            continue
        analytic = np.asarray(grad, dtype=float).reshape(-1)
        if case["variables"][case["wrt"]].get("symmetric"):
            # Symmetric variables move along E_ij + E_ji: compare g_ij + g_ji, and require g symmetric.
            g = np.asarray(grad, dtype=float)
            if not np.allclose(g, g.T, atol=1e-9 * max(1.0, np.max(np.abs(g)))):
                return False, "the gradient of a symmetric variable is not symmetric"
            analytic = (g + g.T - np.diag(np.diag(g))).reshape(-1)
        scale = max(np.max(np.abs(numeric)), np.max(np.abs(analytic)), 1e-3)
        worst = max(worst, float(np.max(np.abs(numeric - analytic)) / scale))
        checked += 1
    if checked == 0:
        return False, "no instance in the domain"
    return worst < 1e-6, f"max relative error {worst:.1e}"


def main(run_case=run_case, label="numpy", seed=20261125):
    """Runs `run_case` on every JSON line of stdin; tests/second_order_check.py reuses it."""
    rng = np.random.default_rng(seed)
    failures = 0
    count = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        count += 1
        try:
            ok, detail = run_case(case, rng)
        except Exception as e:  # a numpy expression that does not run is a failure
            ok, detail = False, f"{type(e).__name__}: {e}"
        print(("ok   " if ok else "FAIL ") + case["name"] + ": " + detail)
        failures += not ok
    print(f"{label}: {count - failures} passed, {failures} failed")
    sys.exit(1 if failures or count == 0 else 0)


if __name__ == "__main__":
    main()
