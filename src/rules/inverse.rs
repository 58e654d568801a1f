//! The inverse, the determinant and the log-determinant.

use super::{both, bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};

#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    bp(
        "inv",
        0,
        "(scale -1 (* (T ?e) (* ?g (T ?e))))",
        "Cookbook eq. 40: d(X⁻¹) = -X⁻¹(dX)X⁻¹",
    ),
    bp(
        "det",
        0,
        "(scale (scale ?g ?e) (T (inv ?a)))",
        "Cookbook eq. 49: ∂det(X)/∂X = det(X)X⁻ᵀ",
    ),
    bp(
        "logdet",
        0,
        "(scale ?g (T (inv ?a)))",
        "Cookbook eq. 57: ∂ln|det(X)|/∂X = X⁻ᵀ (logdet is ln|det|)",
    ),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("inv", 0, "(scale -1 (* (kron (T ?e) ?e) ?j))", "Cookbook eq. 40 with eq. 520: vec(dA⁻¹) = -(A⁻ᵀ⊗A⁻¹)vec(dA)"),
    jac("det", 0, "(scale ?e (* (T (vec (T (inv ?a)))) ?j))", "Cookbook eq. 42: d det(A) = det(A)tr(A⁻¹dA)"),
    jac("logdet", 0, "(* (T (vec (T (inv ?a)))) ?j)", "Cookbook eq. 43: d ln|det A| = tr(A⁻¹dA)"),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    both("T-inv",      "(T (inv ?a))",      "(inv (T ?a))",              "Cookbook eq. 3: (Aᵀ)⁻¹ = (A⁻¹)ᵀ"),
    rule("inv-inv",    "(inv (inv ?a))",    "?a",                        "(A⁻¹)⁻¹ = A"),
    rule("inv-mul-l",  "(* (inv ?a) ?a)",   "(eye (rows ?a))",           "A⁻¹A = I"),
    rule("inv-mul-r",  "(* ?a (inv ?a))",   "(eye (rows ?a))",           "AA⁻¹ = I"),
    guarded("inv-mul", "(inv (* ?a ?b))",   "(* (inv ?b) (inv ?a))", Guard::Square("?a", "?b"), "Cookbook eq. 1: (AB)⁻¹ = B⁻¹A⁻¹ for square A, B"),
    rule("det-T",      "(det (T ?a))",      "(det ?a)",                  "Cookbook eq. 19: det(Aᵀ) = det(A)"),
    guarded("det-mul", "(det (* ?a ?b))",   "(scale (det ?a) (det ?b))", Guard::Square("?a", "?b"), "Cookbook eq. 18: det(AB) = det(A)det(B) for square A, B"),
    rule("det-inv",    "(det (inv ?a))",    "(pow (det ?a) -1)",         "Cookbook eq. 20: det(A⁻¹) = 1/det(A)"),
    guarded("logdet-mul", "(logdet (* ?a ?b))", "(+ (logdet ?a) (logdet ?b))", Guard::Square("?a", "?b"), "ln|det(AB)| = ln|det A| + ln|det B| (Cookbook eq. 18)"),
    rule("logdet-inv", "(logdet (inv ?a))", "(scale -1 (logdet ?a))",    "ln|det(A⁻¹)| = -ln|det A| (Cookbook eq. 20)"),
    rule("logdet-T",   "(logdet (T ?a))",   "(logdet ?a)",               "Cookbook eq. 19: det(Aᵀ) = det(A)"),
];
