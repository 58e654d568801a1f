"""Evaluates matdiff's emitted numpy for Jacobians, Hessians (and their mixed blocks) and
Hessian-vector products with real numpy, against central finite differences computed here:

- "matrix": the emitted 2-D array must equal ∂ravel(of)/∂ravel(wrt), `of` being the target's
  own numpy form (a Jacobian) or the gradient's (a Hessian), differentiated entry by entry;
- "hvp": the emitted array (the variable's shape) must equal the derivative of the gradient
  along the direction, (∇f(x + t·v) − ∇f(x − t·v)) / 2t by a 4-point stencil.

Also runs the `--function` form and requires the same array. Reads one JSON object per line on
stdin (variables drawn as tests/numpy_check.py draws them); exits 1 if any case fails.
"""
import numpy as np

from numpy_check import draw, main

H = 1e-4


def stencil(f):
    """The derivative at 0 of f (an array-valued function of t), fourth order."""
    vals = [np.asarray(f(t), dtype=float) for t in (-2 * H, -H, H, 2 * H)]
    return (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * H)


def run_case(case, rng):
    worst = 0.0
    for _ in range(2):
        names = sorted(case["dims"])
        pool = list(rng.permutation(np.arange(2, 2 + max(5, len(names)))))
        sizes = {name: int(pool[i]) for i, name in enumerate(names)}
        env = {"np": np, **sizes}
        for name, shape in case["variables"].items():
            env[name] = draw(shape, sizes, rng, positive=False)

        def value_at(name, at, expr):
            local = dict(env)
            local[name] = at
            return np.asarray(eval(expr, local), dtype=float).reshape(-1)

        emitted = np.asarray(eval(case["numpy"], dict(env)), dtype=float)
        if case["kind"] == "block":
            # The whole Hessian: rows and columns follow the variables' ravels concatenated.
            def gradients(local):
                return np.concatenate([np.asarray(eval(g, local), dtype=float).reshape(-1) for g in case["ofs"]])

            columns = []
            for name in case["wrts"]:
                x0 = np.asarray(env[name], dtype=float)
                for k in range(x0.size):
                    def moved(t, k=k, name=name, x0=x0):
                        x = x0.copy().reshape(-1)
                        x[k] += t
                        return gradients({**env, name: x.reshape(x0.shape) if x0.ndim else float(x[0])})
                    columns.append(stencil(moved))
            numeric = np.stack(columns, axis=1)
            if emitted.shape != numeric.shape:
                return False, f"emitted shape {emitted.shape}, finite differences {numeric.shape}"
            scale = max(np.max(np.abs(numeric)), np.max(np.abs(emitted)), 1e-3)
            worst = max(worst, float(np.max(np.abs(numeric - emitted)) / scale))
            continue
        x0 = np.asarray(env[case["wrt"]], dtype=float)
        if case["kind"] == "matrix":
            columns = []
            for k in range(x0.size):
                def moved(t, k=k):
                    x = x0.copy().reshape(-1)
                    x[k] += t
                    return value_at(case["wrt"], x.reshape(x0.shape) if x0.ndim else float(x[0]), case["of"])
                columns.append(stencil(moved))
            numeric = np.stack(columns, axis=1)
        else:
            v = np.asarray(env[case["dir"]], dtype=float)
            numeric = stencil(lambda t: value_at(case["wrt"], x0 + t * v, case["of"])).reshape(x0.shape)
        if emitted.shape != numeric.shape:
            return False, f"emitted shape {emitted.shape}, finite differences {numeric.shape}"
        scope = {}
        exec(case["function"], scope)
        by_function = np.asarray(scope[case["function_name"]](*[env[a] for a in case["function_args"]]))
        if by_function.shape != emitted.shape or not np.allclose(by_function, emitted, rtol=1e-12, atol=1e-12):
            return False, "the --function form disagrees with the expression"
        scale = max(np.max(np.abs(numeric)), np.max(np.abs(emitted)), 1e-3)
        worst = max(worst, float(np.max(np.abs(numeric - emitted)) / scale))
    return worst < 1e-6, f"max relative error {worst:.1e}"


if __name__ == "__main__":
    main(run_case, "second order", 20261201)
