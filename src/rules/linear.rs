//! Sums, scaling by a scalar, and the transpose.
//! Cookbook = Petersen & Pedersen, The Matrix Cookbook, version of Nov 15 2012.

use super::{both, bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};

#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    bp("+", 0, "?g", "Cookbook eq. 35: d(X + Y) = dX + dY"),
    bp("+", 1, "?g", "Cookbook eq. 35: d(X + Y) = dX + dY"),
    // <G, ds·A> = ds·tr(GᵀA), so the scalar's upstream is tr(GᵀA).
    bp(
        "scale",
        0,
        "(tr (* (T ?g) ?b))",
        "Cookbook eqs. 34, 37 with the trace inner product <G, H> = tr(GᵀH)",
    ),
    bp("scale", 1, "(scale ?a ?g)", "Cookbook eq. 34: d(aX) = a dX"),
    bp("T", 0, "(T ?g)", "Cookbook eq. 44: d(Xᵀ) = (dX)ᵀ"),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("+", 0, "?j", "d(X + Y) = dX + dY"),
    jac("+", 1, "?j", "d(X + Y) = dX + dY"),
    jac("scale", 0, "(* (vec ?b) ?j)", "d(sA) = ds·A: vec(A)·ds"),
    jac("scale", 1, "(scale ?a ?j)", "d(sA) = s·dA"),
    jac("T", 0, "(* (commute (rows ?a) (cols ?a)) ?j)", "vec(Aᵀ) = K·vec(A), the commutation matrix (Magnus & Neudecker)"),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    // transpose
    rule("T-T",        "(T (T ?a))",        "?a",                        "Cookbook §1.1: (Aᵀ)ᵀ = A"),
    both("T-add",      "(T (+ ?a ?b))",     "(+ (T ?a) (T ?b))",         "Cookbook eq. 4: (A + B)ᵀ = Aᵀ + Bᵀ"),
    both("T-scale",    "(T (scale ?s ?a))", "(scale ?s (T ?a))",         "(sA)ᵀ = s Aᵀ for a scalar s"),
    guarded("T-scalar", "(T ?a)",           "?a",       Guard::Scalar("?a"),    "a 1 x 1 matrix is its own transpose"),
    guarded("T-sym",    "(T ?a)",           "?a",       Guard::Symmetric("?a"), "Xᵀ = X for X declared symmetric"),
    // scaling
    rule("scale-1",    "(scale 1 ?a)",      "?a",                        "1·A = A"),
    rule("scale-0",    "(scale 0 ?a)",      "(zeros (rows ?a) (cols ?a))", "0·A = 0"),
    rule("scale-scale", "(scale ?s (scale ?t ?a))", "(scale (scale ?s ?t) ?a)", "s(tA) = (st)A"),
    guarded("scale-comm", "(scale ?s ?t)",  "(scale ?t ?s)", Guard::Scalar("?t"), "scalars commute"),
    // sums
    rule("add-comm",   "(+ ?a ?b)",         "(+ ?b ?a)",                 "A + B = B + A"),
    both("add-assoc",  "(+ ?a (+ ?b ?c))",  "(+ (+ ?a ?b) ?c)",          "(A + B) + C = A + (B + C)"),
    rule("add-same",   "(+ ?a ?a)",         "(scale 2 ?a)",              "A + A = 2A"),
    rule("add-scaled", "(+ (scale ?s ?a) ?a)", "(scale (+ ?s 1) ?a)",    "sA + A = (s + 1)A"),
    rule("add-scaled2", "(+ (scale ?s ?a) (scale ?t ?a))", "(scale (+ ?s ?t) ?a)", "sA + tA = (s + t)A"),
    rule("add-factor", "(+ (scale ?s ?a) (scale ?s ?b))", "(scale ?s (+ ?a ?b))",  "sA + sB = s(A + B)"),
    rule("add-zero",   "(+ ?a (zeros ?m ?n))", "?a",                     "A + 0 = A"),
    rule("zeros-scale", "(scale ?s (zeros ?m ?n))", "(zeros ?m ?n)",     "s·0 = 0"),
    rule("T-zeros",    "(T (zeros ?m ?n))", "(zeros ?n ?m)",             "0ᵀ = 0"),
];
