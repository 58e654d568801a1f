"""The Python package as a user meets it after `pip install .`: the README's example, the
objects' text and LaTeX, the errors, and the numpy callables against finite differences."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import matdiff

SEED = "X : B x N; W : N x M; b : M; X*W + b"
RNG = np.random.default_rng(17)


def finite_difference(loss, x, h=1e-6):
    """∂loss/∂x by central differences, entry by entry."""
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (loss(x + step) - loss(x - step)) / (2 * h)
    return grad


def test_the_readme_example():
    d = matdiff.grad(SEED, "b")
    assert d.formula == "Gᵀ·1_B"
    assert d.latex == r"G^\top \mathbf{1}_{B}"
    assert d.numpy == "np.reshape(G.sum(axis=0), np.shape(b))"
    assert d.wrt == "b" and d.shape == "M" and d.upstream == "G" and d.layout == "denominator"
    assert d.check.passed and d.check.status == "passed"
    assert d.check.instances == 3 and 0 <= d.check.max_rel_err < 1e-6
    assert str(d.check).startswith("checked on 3 random instances")


def test_text_is_the_clis():
    lines = str(matdiff.grad(SEED, "b")).splitlines()
    assert lines[0].startswith("f = X·W + 1_B·bᵀ") and "b : M broadcast over the B rows" in lines[0]
    assert lines[1].startswith("∂L/∂b = Gᵀ·1_B") and "G = ∂L/∂f : B x M" in lines[1]
    assert lines[2].startswith("checked on 3 random instances")
    assert repr(matdiff.grad(SEED, "b")) == "\n".join(lines)


def test_latex_for_jupyter_shows_target_result_and_check():
    latex = matdiff.grad(SEED, "b")._repr_latex_()
    assert latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert r"f &= X W + \mathbf{1}_{B} b^\top" in latex
    assert r"\frac{\partial L}{\partial b} &= G^\top \mathbf{1}_{B}" in latex
    assert r"\text{checked on 3 random instances" in latex


def test_layout_and_wrt_as_keywords():
    d = matdiff.grad(SEED, wrt="b", layout="numerator")
    assert d.formula == "1_Bᵀ·G" and d.shape == "1 x M"
    with pytest.raises(matdiff.Error, match="layout must be"):
        matdiff.grad(SEED, "b", layout="sideways")


def test_unchecked_and_seeded():
    assert matdiff.grad(SEED, "W", check=False).check.status == "unchecked"
    assert not matdiff.grad(SEED, "W", check=False).check.passed
    assert matdiff.grad(SEED, "W", seed=5).check.passed


def test_errors_carry_the_located_message():
    script = "X : n x m\ny : n\ntr(X)"
    with pytest.raises(matdiff.Error) as caught:
        matdiff.grad(script, "X")
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "`tr` needs a square matrix, but its argument is n x m" in message
    assert "<script>:3:1" in message
    assert "3 │ tr(X)" in message and "^^^^^" in message


def test_a_wrong_variable_points_at_wrt():
    with pytest.raises(matdiff.Error) as caught:
        matdiff.grad(SEED, "Q")
    message = str(caught.value)
    assert "`Q` is not a variable of the script" in message and "wrt:1:1" in message and "--wrt" not in message


def test_syntax_errors_and_deep_input_do_not_take_python_down():
    with pytest.raises(matdiff.Error, match=r"(?s)<script>:1:\d+.*\^"):
        matdiff.grad("X : n x n; tr(X *", "X")
    deep = "x : n; " + "(" * 300 + "x" + ")" * 300
    with pytest.raises(matdiff.Error, match="nest deeper than 200 levels"):
        matdiff.grad(deep, "x")
    long = "x : n; sum(" + " + ".join(["x"] * 2000) + ")"
    assert matdiff.grad(long, "x").formula == "2000·1_n"


def seed_arrays():
    B, N, M = 4, 3, 2
    return dict(
        X=RNG.normal(size=(B, N)), W=RNG.normal(size=(N, M)), b=RNG.normal(size=M), G=RNG.normal(size=(B, M))
    )


@pytest.mark.parametrize("wrt", ["X", "W", "b"])
def test_the_seeds_backprop_against_finite_differences(wrt):
    arrays = seed_arrays()
    G = arrays["G"]

    def loss(value):
        a = {**arrays, wrt: value}
        return np.sum(G * (a["X"] @ a["W"] + a["b"]))

    got = matdiff.grad(SEED, wrt).function(**arrays)
    assert got.shape == arrays[wrt].shape
    np.testing.assert_allclose(got, finite_difference(loss, arrays[wrt]), rtol=1e-6, atol=1e-8)


SCALAR_CASES = [
    # script, wrt, the arrays (dimensions from their shapes), the target in numpy
    ("x : n; A : n x n; x'*A*x", "x", dict(x=(3,), A=(3, 3)), lambda a: a["x"] @ a["A"] @ a["x"]),
    (
        "X : B x N; w : N; y : B; sum(log(1 + exp(-y .* (X*w))))",
        "w",
        dict(X=(5, 3), w=(3,), y=(5,)),
        lambda a: np.sum(np.log(1 + np.exp(-a["y"] * (a["X"] @ a["w"])))),
    ),
    (
        "A : n x n; X : n x n; tr(A*X)",
        "X",
        dict(A=(3, 3), X=(3, 3)),
        lambda a: np.trace(a["A"] @ a["X"]),
    ),
    (
        "X : n x n; logdet(X)",
        "X",
        dict(X=(3, 3)),
        lambda a: np.linalg.slogdet(a["X"])[1],
    ),
    (
        "X : B x N; w : N; y : B; norm(X*w - y)^2 / B",
        "w",
        dict(X=(6, 2), w=(2,), y=(6,)),
        lambda a: np.sum((a["X"] @ a["w"] - a["y"]) ** 2) / a["X"].shape[0],
    ),
]


@pytest.mark.parametrize("script, wrt, shapes, target", SCALAR_CASES, ids=[c[0] for c in SCALAR_CASES])
def test_scalar_gradients_against_finite_differences(script, wrt, shapes, target):
    arrays = {name: RNG.normal(size=shape) for name, shape in shapes.items()}
    if script.startswith("X : n x n; logdet"):
        arrays["X"] += 3 * np.eye(3)  # well away from singular
    got = matdiff.grad(script, wrt).function(**arrays)
    expected = finite_difference(lambda v: target({**arrays, wrt: v}), arrays[wrt])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_function_checks_shapes_and_names():
    d = matdiff.grad(SEED, "b")
    arrays = seed_arrays()
    # Dimensions come from any array that shows them: G and b suffice here.
    np.testing.assert_allclose(d.function(G=arrays["G"], b=arrays["b"]), arrays["G"].sum(axis=0))
    with pytest.raises(ValueError, match=r"b has shape \(3,\), but the script declares b : M"):
        d.function(**{**arrays, "b": np.ones(3)})
    with pytest.raises(ValueError, match="declares X : B x N"):
        d.function(**{**arrays, "X": np.ones(4)})
    with pytest.raises(TypeError, match="not an array of the script"):
        d.function(**arrays, Z=np.ones(2))
    with pytest.raises(TypeError, match="the gradient needs `G`"):
        d.function(X=arrays["X"], W=arrays["W"], b=arrays["b"])


def test_a_vector_may_be_a_column():
    d = matdiff.grad("x : n; A : n x n; x'*A*x", "x")
    A = RNG.normal(size=(3, 3))
    x = RNG.normal(size=(3, 1))
    np.testing.assert_allclose(d.function(x=x, A=A).ravel(), ((A + A.T) @ x).ravel())


def test_jacobian_hessian_explain():
    j = matdiff.jacobian("X : B x N; W : N x M; b : M; h = X*W + b", "b")
    assert j.formula == "1_B ⊗ I_M" and j.check.passed
    assert "∂vec(h)/∂vec(b) = 1_B ⊗ I_M" in str(j)
    assert r"\operatorname{vec}(h)" in j._repr_latex_() and r"\otimes" in j.latex

    h = matdiff.hessian("A : n x n; x : n; x'*A*x", "x")
    assert h.formula == "A + Aᵀ" and h.check.passed
    assert r"\nabla f" in h._repr_latex_()

    x = matdiff.explain("X : B x N; W : N x M; b : M; h = X*W + b", "b")
    assert x.all_checked and x.result.formula == "Gᵀ·1_B"
    assert str(x).startswith("Explaining ∂L/∂b for h = X·W + 1_B·bᵀ")
    assert r"\frac{\partial L}{\partial \left(b^\top\right)}" in x._repr_latex_()

    with pytest.raises(matdiff.Error, match="wrt:1:1"):
        matdiff.hessian("A : n x n; x : n; x'*A*x", "y")


def affine_forward(x: "N x D", w: "D x M", b: "M"):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def corpus_function(name):
    """A forward function of the numpy dialect's corpus (tests/cases/numpy), imported from its file."""
    path = Path(__file__).parents[2] / "tests" / "cases" / "numpy" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"{name}_forward")


def test_backward_of_the_issues_affine_layer():
    bw = matdiff.backward(affine_forward)
    assert bw.name == "affine_backward" and bw.wrt == ["x", "w", "b"] and bw.upstreams == ["dout"]
    assert [g.formula for g in bw.gradients] == ["dout·wᵀ", "xᵀ·dout", "doutᵀ·1_N"]
    assert bw.all_checked and all(g.check.passed for g in bw.gradients)
    assert "def affine_backward(dout, x, w, b):" in bw.python
    assert "∂L/∂b = doutᵀ·1_N" in str(bw)
    latex = bw._repr_latex_()
    assert latex.startswith("$$\\begin{aligned}")
    assert all(rf"\frac{{\partial L}}{{\partial {v}}} &=" in latex for v in "xwb")
    x, w, b, dout = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 2)), RNG.normal(size=2), RNG.normal(size=(4, 2))
    dx, dw, db = bw(dout, x, w, b)
    for got, name, value in [(dx, "x", x), (dw, "w", w), (db, "b", b)]:
        arrays = dict(x=x, w=w, b=b)

        def loss(v, name=name):
            return np.sum(dout * affine_forward(**{**arrays, name: v})[0])

        np.testing.assert_allclose(got, finite_difference(loss, value), rtol=1e-6, atol=1e-8)


def test_backward_of_batch_normalisation_against_finite_differences():
    batchnorm_forward = corpus_function("batchnorm")
    bw = matdiff.backward(batchnorm_forward, wrt=["x", "gamma"])
    assert bw.wrt == ["x", "gamma"] and bw.all_checked
    x, gamma, beta, dout = RNG.normal(size=(5, 3)), RNG.normal(size=3), RNG.normal(size=3), RNG.normal(size=(5, 3))
    dx, dgamma = bw(dout, x, gamma, beta)
    arrays = dict(x=x, gamma=gamma, beta=beta)
    for got, name in [(dx, "x"), (dgamma, "gamma")]:

        def loss(v, name=name):
            return np.sum(dout * batchnorm_forward(**{**arrays, name: v})[0])

        np.testing.assert_allclose(got, finite_difference(loss, arrays[name]), rtol=1e-5, atol=1e-7)


def test_backward_of_a_scalar_loss_takes_no_upstream():
    def loss(x: "N", w: "N"):
        return np.sum(x * w) ** 2

    bw = matdiff.backward(loss, "w")
    assert bw.upstreams == [] and bw.gradients[0].formula == "2·sum(x ⊙ w)·x"
    x, w = RNG.normal(size=3), RNG.normal(size=3)
    np.testing.assert_allclose(bw(x, w), finite_difference(lambda v: np.sum(x * v) ** 2, w), rtol=1e-6)


def test_backward_errors_point_into_the_function():
    source = 'def f(x: "N"):\n    for i in x:\n        pass\n    return x\n'
    with pytest.raises(matdiff.Error) as caught:
        matdiff.backward(source)
    message = str(caught.value)
    assert "`for` loops are not supported" in message and "<source>:2:5" in message and "^^^" in message
    with pytest.raises(matdiff.Error, match="cannot read the source"):
        matdiff.backward(print)
