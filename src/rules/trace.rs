//! The trace and the sum of all entries.

use super::{bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};

#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    bp("tr", 0, "(scale ?g (eye (rows ?a)))", "Cookbook eq. 99: ∂tr(X)/∂X = I"),
    bp(
        "sum",
        0,
        "(scale ?g (ones (rows ?a) (cols ?a)))",
        "sum(X) = 1ᵀX1, Cookbook eq. 70: ∂aᵀXb/∂X = abᵀ",
    ),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("tr", 0, "(* (T (vec (eye (rows ?a)))) ?j)", "tr(dA) = vec(I)ᵀvec(dA)"),
    jac("sum", 0, "(* (T (ones (rows (vec ?a)) @1)) ?j)", "sum(dA) = 1ᵀvec(dA)"),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    guarded("tr-scalar", "(tr ?a)",         "?a",  Guard::Scalar("?a"),  "the trace of a 1 x 1 matrix is its entry"),
    rule("tr-T",       "(tr (T ?a))",       "(tr ?a)",                   "Cookbook eq. 13: tr(A) = tr(Aᵀ)"),
    rule("tr-cyclic",  "(tr (* ?a ?b))",    "(tr (* ?b ?a))",            "Cookbook eq. 14: tr(AB) = tr(BA)"),
    rule("tr-scale",   "(tr (scale ?s ?a))", "(scale ?s (tr ?a))",       "tr(sA) = s tr(A)"),
    rule("tr-add",     "(tr (+ ?a ?b))",    "(+ (tr ?a) (tr ?b))",       "Cookbook eq. 15: tr(A + B) = tr(A) + tr(B)"),
    rule("tr-eye",     "(tr (eye ?n))",     "(dim ?n)",                  "tr(I_n) = n"),
    rule("tr-ones-r",  "(tr (* ?a (ones ?m ?n)))", "(sum ?a)",          "tr(A·1·1ᵀ) = Σ_ij A_ij"),
    rule("tr-ones-l",  "(tr (* (ones ?m ?n) ?a))", "(sum ?a)",          "tr(1·1ᵀ·A) = Σ_ij A_ij"),
    rule("ones-sandwich", "(* (ones @1 ?m) (* ?a (ones ?n @1)))", "(sum ?a)", "1ᵀA1 = Σ_ij A_ij"),
    guarded("sum-col-l", "(* (ones @1 ?n) ?a)", "(sum ?a)", Guard::Column("?a"), "1ᵀa = Σᵢ aᵢ for a column a"),
    guarded("sum-col-r", "(* (T ?a) (ones ?n @1))", "(sum ?a)", Guard::Column("?a"), "aᵀ1 = Σᵢ aᵢ for a column a"),
    guarded("sum-scalar", "(sum ?a)",       "?a",  Guard::Scalar("?a"),  "the sum of one entry is that entry"),
    rule("sum-scale",  "(sum (scale ?s ?a))", "(scale ?s (sum ?a))",     "sum(sA) = s sum(A)"),
    rule("sum-T",      "(sum (T ?a))",      "(sum ?a)",                  "sum(Aᵀ) = sum(A)"),
];
