//! Emitted numpy stays finite and right at inputs of ±1000: softmax shifted by each row's
//! maximum, σ through `logaddexp`. Evaluated by real numpy against a reference computed in
//! Python in the stable form (scripts/test sets up `.venv` with numpy).

mod common;

use common::python;

use std::process::Command;

fn numpy_of(script: &str, wrt: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(["grad", script, "--wrt", wrt, "--emit", "numpy"])
        .output()
        .expect("matdiff runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run_python(program: &str) {
    let out = Command::new(python())
        .args(["-c", program])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn softmax_cross_entropy_gradient_is_finite_at_large_logits() {
    let expr = numpy_of(
        "Z : N x K; Y : N x K; S = exp(Z) ./ (exp(Z) * ones(K, K)); -sum(Y .* log(S))",
        "Z",
    );
    run_python(&format!(
        r#"
import numpy as np
np.seterr(over="raise", invalid="raise", divide="raise", under="ignore")
rng = np.random.default_rng(1)
N, K = 4, 5
for scale in (1.0, 1000.0, -1000.0):
    Z = scale * rng.uniform(0.5, 1.0, size=(N, K)) * rng.choice([-1.0, 1.0], size=(N, K))
    Y = np.eye(K)[rng.integers(0, K, size=N)]
    got = {expr}
    shifted = Z - Z.max(axis=1, keepdims=True)
    S = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    want = S * Y.sum(axis=1, keepdims=True) - Y
    assert np.all(np.isfinite(got)), got
    assert np.allclose(got, want, atol=1e-12), (got, want)
"#
    ));
}

#[test]
fn sigmoid_gradient_is_finite_at_large_inputs() {
    let expr = numpy_of("x : n; w : n; sum(sigmoid(x .* w))", "w");
    run_python(&format!(
        r#"
import numpy as np
np.seterr(over="raise", invalid="raise", divide="raise", under="ignore")
rng = np.random.default_rng(2)
n = 6
for scale in (1.0, 1000.0):
    x = rng.choice([-1.0, 1.0], size=n) * scale
    w = rng.uniform(0.5, 1.0, size=n)
    got = {expr}
    s = np.exp(-np.logaddexp(0, -x * w))
    want = x * s * np.exp(-np.logaddexp(0, x * w))
    assert np.all(np.isfinite(got)), got
    assert np.allclose(got, want, atol=1e-12), (got, want)
"#
    ));
}

fn matdiff_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(args)
        .output()
        .expect("matdiff runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The numpy dialect's softmax loss shifts its logits by each row's maximum, and its
/// backward pass (the maximum written `x.max(axis=1, keepdims=True)`) stays finite and
/// right at logits of ±1000, as the function and as the one expression.
#[test]
fn the_dialects_softmax_loss_backward_is_finite_at_large_logits() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/softmax_loss.py");
    let function = matdiff_stdout(&["grad", "-f", path, "--wrt", "x", "--emit", "numpy", "--function"]);
    let expression = matdiff_stdout(&["grad", "-f", path, "--wrt", "x", "--emit", "numpy"]);
    assert!(function.contains("x.max(axis=1, keepdims=True)"), "{function}");
    run_python(&format!(
        r#"
import numpy as np
np.seterr(over="raise", invalid="raise", divide="raise", under="ignore")
{function}
rng = np.random.default_rng(3)
N, C = 4, 5
for scale in (1.0, 1000.0, -1000.0):
    x = scale * rng.uniform(0.5, 1.0, size=(N, C)) * rng.choice([-1.0, 1.0], size=(N, C))
    y = rng.integers(0, C, size=N)
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    want = (p - np.eye(C)[y]) / N
    for got in (softmax_loss_backward(x, y), eval({expression:?})):
        assert np.all(np.isfinite(got)), got
        assert np.allclose(got, want, atol=1e-12), (got, want)
"#
    ));
}
