//! The numeric checker must reject wrong formulas: a missing transpose, a wrong sign,
//! a formula that only holds when two dimensions are equal, X⁻¹ for X⁻ᵀ.

use egg::{RecExpr, Symbol};
use matdiff::ir::Math;
use matdiff::numeric::{check, CheckOptions, Claim};
use matdiff::{check_script, Check};

fn verdict(script: &str, wrt: &str, formula: &str) -> Check {
    let checked = check_script(script).expect("valid script");
    let mut env = checked.env.clone();
    let upstream = (!checked.target.shape.is_scalar()).then(|| {
        env.shapes.insert(Symbol::from("G"), checked.target.shape.clone());
        (Symbol::from("G"), checked.target.shape.clone())
    });
    let formula: RecExpr<Math> = formula.parse().expect("formula parses");
    check(
        &Claim {
            env: &env,
            dims: &checked.dims,
            target: &checked.target.expr,
            wrt: Symbol::from(wrt),
            upstream,
            formula: &formula,
            transposed: false,
        },
        &CheckOptions::default(),
    )
}

#[test]
fn the_right_formulas_pass() {
    assert!(verdict("A : n x n; X : n x n; tr(A*X)", "X", "(T A)").passed());
    assert!(verdict("X : B x N; W : N x M; h = X*W", "W", "(* (T X) G)").passed());
    assert!(verdict("X : n x n; logdet(X)", "X", "(T (inv X))").passed());
}

#[test]
fn a_missing_transpose_is_rejected() {
    assert!(matches!(
        verdict("A : n x n; X : n x n; tr(A*X)", "X", "A"),
        Check::Failed { .. }
    ));
}

#[test]
fn a_wrong_sign_is_rejected() {
    let v = verdict("X : B x N; W : N x M; h = X*W", "W", "(scale -1 (* (T X) G))");
    assert!(matches!(v, Check::Failed { .. }), "{v:?}");
}

#[test]
fn a_formula_that_needs_two_dimensions_equal_is_rejected() {
    // sum(X) for X : n x m has gradient 1_n·1_mᵀ; 1_n·1_nᵀ only fits when m = n,
    // and the checker draws m and n distinct.
    let v = verdict("X : n x m; sum(X)", "X", "(ones @n @n)");
    assert!(matches!(v, Check::Failed { .. }), "{v:?}");
    let v = verdict("X : n x m; sum(X)", "X", "(ones @n @m)");
    assert!(v.passed(), "{v:?}");
}

#[test]
fn an_inverse_for_an_inverse_transpose_is_rejected() {
    assert!(matches!(
        verdict("X : n x n; logdet(X)", "X", "(inv X)"),
        Check::Failed { .. }
    ));
}

#[test]
fn a_gradient_off_by_a_small_factor_is_rejected() {
    let v = verdict("x : n; A : n x n; x'*A*x", "x", "(scale 1.0001 (* (+ A (T A)) x))");
    assert!(matches!(v, Check::Failed { .. }), "{v:?}");
}

#[test]
fn the_cookbook_symmetric_form_is_not_the_symmetric_gradient() {
    // For S symmetric, tr(A S) has gradient sym(A) = (A + Aᵀ)/2 (Srinivasan & Panda 2020);
    // the older symmetric form A + Aᵀ - diag(A) (the Cookbook's "2G - diag(G)" with
    // G = sym(A)) and the unconstrained Aᵀ are both rejected.
    let script = "S : n x n symmetric; A : n x n; tr(A*S)";
    assert!(verdict(script, "S", "(scale 0.5 (+ A (T A)))").passed());
    assert!(matches!(verdict(script, "S", "(T A)"), Check::Failed { .. }));
    assert!(matches!(
        verdict(script, "S", "(+ (+ A (T A)) (scale -1 (diag (diagv A))))"),
        Check::Failed { .. }
    ));
}

#[test]
fn finite_differences_of_a_large_objective_do_not_fail_a_zero_gradient() {
    // f does not depend on w, and is large (a cube of a sum): the stencil's round-off
    // (about 1e-12·|f|) must not count as a disagreement with the exact 0.
    let script = "X : n x n; w : m; sum(X)^3 * 1000 + 0*sum(w)";
    let v = verdict(script, "w", "(zeros @m @1)");
    assert!(v.passed(), "{v:?}");
    // A wrong gradient of the same objective is still caught.
    let v = verdict(script, "w", "(scale 0.001 (ones @m @1))");
    assert!(matches!(v, Check::Failed { .. }), "{v:?}");
}

/// `(r.^−2).^−0.5` is |r|: its gradient is sign(r). Beside `log(b)` (whose argument must be
/// positive) the check must still draw r of both signs, so that 1 (right only for r > 0)
/// fails: issue 16's whole-domain check.
#[test]
fn a_formula_right_only_for_positive_values_fails_where_the_variable_may_be_negative() {
    let script = "b : n; r : n; sum(log(b)) + sum((r .^ (-2)) .^ (-0.5))";
    let v = verdict(script, "r", "(sign r)");
    assert!(v.passed(), "{v:?}");
    let v = verdict(script, "r", "(ones @n @1)");
    assert!(matches!(v, Check::Failed { .. }), "{v:?}");
    // b is drawn positive where log needs it, and its gradient is checked.
    let v = verdict(script, "b", "(./ (ones @n @1) b)");
    assert!(v.passed(), "{v:?}");
}

#[test]
fn a_constant_target_passes_without_drawing_an_instance() {
    // softmax of a scalar is 1: every instance of det(...) overflows exp, yet the gradient is 0.
    let script = "C : L x L; A : L x L; softmax(det((A*C)'*(A*C) + 2*eye(L)))";
    let v = verdict(script, "A", "(zeros @L @L)");
    assert!(matches!(v, Check::Passed { instances: 0, .. }), "{v:?}");
    // A zero of the wrong shape is no gradient of A.
    let v = verdict("A : m x n; B : m x m; sum(B) + 0*sum(A)", "A", "(zeros @m @m)");
    assert!(!v.passed(), "{v:?}");
    // A target that depends on the variable is still checked on instances.
    let v = verdict("A : n x n; sum(A - 2*A)", "A", "(zeros @n @n)");
    assert!(matches!(v, Check::Failed { .. }), "{v:?}");
}

#[test]
fn draws_that_overflow_are_shrunk_and_say_so() {
    let script = "A : m x m; S : n x n; cosh(det(abs(det(A)) * S))";
    let d = matdiff::grad(script, "A").expect("derives");
    assert!(
        matches!(d.check, Check::Passed { instances: 3, scale, .. } if scale < 1.0),
        "{:?}",
        d.check
    );
    assert!(d.check_text().contains("scaled by"), "{}", d.check_text());
    // The planted fault (the formula negated) still fails at the smaller scale.
    let planted = matdiff::Options {
        plant_fault: true,
        ..Default::default()
    };
    let d = matdiff::grad_with(script, "A", &planted).expect("derives");
    assert!(matches!(d.check, Check::Failed { .. }), "{:?}", d.check);
}

#[test]
fn an_empty_domain_names_its_operator() {
    let v = verdict("x : n; sum(log(-(x .* x) - 1))", "x", "(zeros @n @1)");
    assert!(
        matches!(&v, Check::NoDomain { empty: Some(op), .. } if op == "log"),
        "{v:?}"
    );
    assert!(v.no_domain_reason().contains("`log`"), "{v:?}");
}
