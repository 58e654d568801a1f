//! The inverse, the determinant and the log-determinant.

use super::{both, bp, rule, BackpropRule, SimplifyRule};

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
        "Cookbook eq. 57: ∂ln|det(X)|/∂X = X⁻ᵀ",
    ),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    both("T-inv",      "(T (inv ?a))",      "(inv (T ?a))",              "Cookbook eq. 3: (Aᵀ)⁻¹ = (A⁻¹)ᵀ"),
    rule("inv-inv",    "(inv (inv ?a))",    "?a",                        "(A⁻¹)⁻¹ = A"),
    rule("inv-mul-l",  "(* (inv ?a) ?a)",   "(eye (rows ?a))",           "A⁻¹A = I"),
    rule("inv-mul-r",  "(* ?a (inv ?a))",   "(eye (rows ?a))",           "AA⁻¹ = I"),
    rule("det-T",      "(det (T ?a))",      "(det ?a)",                  "Cookbook eq. 19: det(Aᵀ) = det(A)"),
    rule("logdet-T",   "(logdet (T ?a))",   "(logdet ?a)",               "Cookbook eq. 19: det(Aᵀ) = det(A)"),
];
