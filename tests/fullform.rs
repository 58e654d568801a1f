//! Full-form derivatives: Jacobians of the textbook cases and Hessians, each checked
//! entry by entry against finite differences and snapshotted.

use matdiff::fullform::{hessian, jacobian, FullForm};
use matdiff::{check_script, Options};

fn snapshot_text(f: &FullForm) -> String {
    let text = f.to_string();
    // The measured error and the drawn sizes vary with the seed's draws, not with the formula.
    text.lines()
        .map(|l| match l.find("max relative error") {
            Some(i) => format!("{}max relative error <= 1e-6", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn jac(script: &str, wrt: &str) -> FullForm {
    let f = jacobian(&check_script(script).unwrap(), wrt, &Options::default()).unwrap();
    assert!(f.check.passed(), "{f}");
    if let Some((_, agrees)) = &f.contraction {
        assert!(agrees, "{f}");
    }
    f
}

fn hess(script: &str, wrt: &str) -> FullForm {
    let f = hessian(&check_script(script).unwrap(), wrt, &Options::default()).unwrap();
    assert!(f.check.passed(), "{f}");
    f
}

const SEED: &str = "X : B x N; W : N x M; b : M; h = X*W + b";

#[test]
fn the_seed_bias_jacobian_is_ones_kron_identity() {
    let f = jac(SEED, "b");
    assert_eq!(f.matrix_text(), "1_B ⊗ I_M");
    assert_eq!(f.index_form.as_deref(), Some("∂h_ij/∂b_k = δ_jk"));
    assert_eq!(f.nonzeros.as_ref().map(|d| d.to_string()).as_deref(), Some("B·M"));
    let shape: Vec<String> = f.tensor_shape().iter().map(|d| d.to_string()).collect();
    assert_eq!(shape, ["B", "M", "M"]);
    assert_eq!(f.contraction.as_ref().map(|(c, _)| c.as_str()), Some("Gᵀ·1_B"));
    insta::assert_snapshot!("jacobian_seed_bias", snapshot_text(&f));
}

#[test]
fn textbook_jacobians() {
    let cases = [
        ("seed_weights", SEED, "W", "X ⊗ I_M"),
        ("AXB", "A : m x n; X : n x p; B : p x q; A*X*B", "X", "A ⊗ Bᵀ"),
        ("transpose_is_commutation", "X : m x n; X'", "X", "K_(n,m)"),
        ("elementwise_is_diagonal", "x : n; exp(x)", "x", "diag(exp(x))"),
        ("inverse", "X : n x n; inv(X)", "X", "−(X⁻¹ ⊗ X⁻ᵀ)"),
        (
            "softmax",
            "l : n; softmax(l)",
            "l",
            "diag(softmax(l)) − softmax(l)·softmax(l)ᵀ",
        ),
    ];
    for (name, script, wrt, matrix) in cases {
        let f = jac(script, wrt);
        assert_eq!(f.matrix_text(), matrix, "{name}");
        insta::assert_snapshot!(format!("jacobian_{name}"), snapshot_text(&f));
    }
}

#[test]
fn textbook_hessians() {
    let cases = [
        ("quadratic_form", "x : n; A : n x n; x'*A*x", "x", "A + Aᵀ"),
        (
            "least_squares",
            "X : m x n; w : n; y : m; norm(X*w - y)^2",
            "w",
            "2·Xᵀ·X",
        ),
        (
            "logistic",
            "X : B x N; w : N; y : B; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))",
            "w",
            "Xᵀ·diag(σ(X·w) ⊙ (1_B − σ(X·w)))·X",
        ),
        ("trace_XtAX", "X : n x m; A : n x n; tr(X'*A*X)", "X", "(A + Aᵀ) ⊗ I_m"),
        // Bishop, PRML eq. 4.106 (the softmax's Jacobian) times the sum of the targets.
        (
            "softmax_cross_entropy",
            "l : n; t : n; -t' * log(softmax(l))",
            "l",
            "sum(t)·(diag(softmax(l)) − softmax(l)·softmax(l)ᵀ)",
        ),
        // The gradient of log-sum-exp is the softmax, so its Hessian is the softmax's Jacobian.
        (
            "logsumexp",
            "x : n; logsumexp(x)",
            "x",
            "diag(softmax(x)) − softmax(x)·softmax(x)ᵀ",
        ),
    ];
    for (name, script, wrt, matrix) in cases {
        let f = hess(script, wrt);
        assert_eq!(f.matrix_text(), matrix, "{name}");
        insta::assert_snapshot!(format!("hessian_{name}"), snapshot_text(&f));
    }
}

#[test]
fn a_hessian_needs_a_scalar_target() {
    let e = hessian(&check_script(SEED).unwrap(), "b", &Options::default()).unwrap_err();
    assert!(e.message.contains("a Hessian needs a scalar target"), "{}", e.message);
}
