//! The algebra of vec, Kronecker products and commutation matrices, which full-form
//! Jacobians are written in. vec stacks columns (Magnus & Neudecker, Matrix Differential
//! Calculus, ch. 2–3); the Cookbook's §10.2 has the Kronecker identities.

use super::{guarded, rule, Guard, SimplifyRule};

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    guarded("vec-column", "(vec ?a)",       "?a", Guard::Column("?a"),  "vec of a column is the column"),
    guarded("vec-row",  "(vec ?a)",         "(T ?a)", Guard::Row("?a"), "vec of a row is its transpose"),
    rule("vec-scale",  "(vec (scale ?s ?a))", "(scale ?s (vec ?a))",     "vec(sA) = s vec(A)"),
    rule("vec-add",    "(vec (+ ?a ?b))",   "(+ (vec ?a) (vec ?b))",     "vec is linear"),
    rule("commute-col", "(commute ?m @1)",  "(eye ?m)",                  "K_(m,1) = I: a column and its transpose share their vec"),
    rule("commute-row", "(commute @1 ?n)",  "(eye ?n)",                  "K_(1,n) = I"),
    rule("T-commute",  "(T (commute ?m ?n))", "(commute ?n ?m)",         "Magnus & Neudecker: K_(m,n)ᵀ = K_(n,m)"),
    guarded("commute-kron-l", "(* (commute ?p ?m) (kron ?a ?b))", "(* (kron ?b ?a) (commute (cols ?b) (cols ?a)))", Guard::KronRows("?p", "?m", "?a", "?b"), "Magnus & Neudecker Thm 3.9: K_(p,m)(A⊗B)K_(n,q) = B⊗A"),
    guarded("commute-kron-r", "(* (kron ?a ?b) (commute ?n ?q))", "(* (commute (rows ?a) (rows ?b)) (kron ?b ?a))", Guard::KronCols("?n", "?q", "?a", "?b"), "Magnus & Neudecker Thm 3.9: K_(p,m)(A⊗B)K_(n,q) = B⊗A"),
    rule("commute-commute", "(* (commute ?m ?n) (commute ?n ?m))", "(eye (rows (commute ?m ?n)))", "K_(m,n)K_(n,m) = I"),
    guarded("kron-mixed", "(* (kron ?a ?b) (kron ?c ?d))", "(kron (* ?a ?c) (* ?b ?d))", Guard::MixedProduct("?a", "?b", "?c", "?d"), "Cookbook eq. 511: (A⊗B)(C⊗D) = AC⊗BD"),
    guarded("kron-scalar-l", "(kron ?s ?a)", "(scale ?s ?a)", Guard::Scalar("?s"), "s⊗A = sA"),
    guarded("kron-scalar-r", "(kron ?a ?s)", "(scale ?s ?a)", Guard::Scalar("?s"), "A⊗s = sA"),
    rule("kron-eye",   "(kron (eye ?m) (eye ?n))", "(eye (rows (kron (eye ?m) (eye ?n))))", "I_m⊗I_n = I_mn"),
    rule("kron-scale-l", "(kron (scale ?s ?a) ?b)", "(scale ?s (kron ?a ?b))", "(sA)⊗B = s(A⊗B)"),
    rule("kron-scale-r", "(kron ?a (scale ?s ?b))", "(scale ?s (kron ?a ?b))", "A⊗(sB) = s(A⊗B)"),
    rule("diag-vec-ones", "(diag (vec (ones ?m ?n)))", "(eye (rows (vec (ones ?m ?n))))", "diag(vec 1) = I"),
    rule("vec-eye-col", "(vec (eye @1))",   "1",                         "vec(I_1) = 1"),
];
