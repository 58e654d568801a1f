//! Constant matrices (ones, zeros, identity, unit vectors), diag in both directions, norms,
//! and the mask of each row's maximum.

use super::{bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};

#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    bp(
        "diag",
        0,
        "(diagv ?g)",
        "diag(v) = Σ v_i e_i e_iᵀ, so ∂/∂v of <G, diag(v)> is the diagonal of G",
    ),
    bp(
        "diagv",
        0,
        "(diag ?g)",
        "the adjoint of taking the diagonal is placing on the diagonal",
    ),
    bp(
        "norm",
        0,
        "(scale (scale ?g (pow ?e -1)) ?a)",
        "Cookbook eq. 129/132: ∂‖X‖_F/∂X = X/‖X‖_F",
    ),
    bp(
        "ismax",
        0,
        "(zeros (rows ?a) (cols ?a))",
        "the mask of each row's maximum is constant away from ties, so max(A) = (A ∘ ismax A)·1 has the subgradient ismax A (the first maximum, as numpy's argmax)",
    ),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("norm", 0, "(* (scale (pow ?e -1) (T (vec ?a))) ?j)", "d‖A‖ = vec(A)ᵀvec(dA)/‖A‖"),
    jac("diag", 0, "(* (diag (vec (eye (rows ?a)))) (* (kron (ones (rows ?a) @1) (eye (rows ?a))) ?j))", "vec(diag(v)) = diag(vec I)(1⊗I)v"),
    jac("ismax", 0, "(* (diag (vec (zeros (rows ?a) (cols ?a)))) ?j)", "the mask is constant away from ties"),
    // Not an operator of the IR: `fullform` recognises a column vector's softmax, exp(a) ⊘ (sum(exp(a))·1), as one.
    jac("softmax", 0, "(* (+ (diag ?e) (scale -1 (* ?e (T ?e)))) ?j)", "∂softmax(a)/∂a = diag(s) − s·sᵀ for s = softmax(a): ∂s_i/∂a_j = s_i(δ_ij − s_j) (Bishop, PRML eq. 4.106)"),
    jac("diagv", 0, "(* (T (kron (ones (rows ?a) @1) (eye (rows ?a)))) (* (diag (vec (eye (rows ?a)))) ?j))", "the diagonal of A is (1⊗I)ᵀdiag(vec I)vec(A)"),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    rule("T-ones",     "(T (ones ?m ?n))",  "(ones ?n ?m)",              "1ᵀ is a ones row"),
    rule("T-eye",      "(T (eye ?n))",      "(eye ?n)",                  "Iᵀ = I"),
    guarded("onehot-rows", "(* ?y (ones ?c ?k))", "(ones (rows ?y) ?k)", Guard::OneHot("?y"), "each row of a one-hot Y sums to 1: Y·1 = 1"),
    guarded("onehot-cols", "(* (ones ?k ?c) (T ?y))", "(ones ?k (rows ?y))", Guard::OneHot("?y"), "1ᵀ·Yᵀ = (Y·1)ᵀ = 1ᵀ for a one-hot Y"),
    rule("rows-normalised", "(* (./ ?e (* ?e (ones ?c ?c))) (ones ?c ?k))", "(ones (rows ?e) ?k)", "each row of E ⊘ (E·1·1ᵀ) sums to 1 (softmax)"),
    rule("rows-normalised-split", "(* (./ ?e (* (* ?e (ones ?c @1)) (ones @1 ?c))) (ones ?c ?k))", "(ones (rows ?e) ?k)", "each row of E ⊘ (E·1·1ᵀ) sums to 1 (softmax)"),
    guarded("onehot-self", "(.* ?y ?y)", "?y", Guard::OneHot("?y"), "a one-hot Y has entries 0 and 1: Y ∘ Y = Y"),
    rule("T-diag",     "(T (diag ?v))",     "(diag ?v)",                 "a diagonal matrix is symmetric"),
    rule("eye-mul-l",  "(* (eye ?n) ?a)",   "?a",                        "IA = A"),
    rule("eye-mul-r",  "(* ?a (eye ?n))",   "?a",                        "AI = A"),
    rule("ones-ones",  "(* (ones ?m ?k) (ones ?k ?n))", "(scale (dim ?k) (ones ?m ?n))", "1_m 1_kᵀ 1_k 1_nᵀ = k 1_m 1_nᵀ"),
    rule("had-ones",   "(.* (ones ?m ?n) ?a)", "?a",                     "1 1ᵀ ∘ A = A"),
    rule("had-eye",    "(.* (eye ?n) ?a)",  "(diag (diagv ?a))",         "I ∘ A keeps the diagonal"),
    rule("diag-ones",  "(diag (ones ?n @1))", "(eye ?n)",                "diag(1) = I"),
    rule("diagv-ones-l", "(diagv (* (ones ?n ?m) ?a))", "(T (* (ones @1 ?m) ?a))", "every row of 1·A is 1ᵀA, so its diagonal is (1ᵀA)ᵀ"),
    rule("diagv-ones-r", "(diagv (* ?a (ones ?m ?n)))", "(* ?a (ones ?m @1))", "every column of A·1 is A·1, so its diagonal is A·1"),
    // Row-wise normalisation (softmax) is a diagonal scaling: these let S = E ⊘ (E·1·1ᵀ) be found.
    guarded("ones-outer", "(* ?a (ones ?k ?n))", "(* (* ?a (ones ?k @1)) (ones @1 ?n))", Guard::DimNotOne("?n"), "1_(k x n) = 1_k·1_nᵀ"),
    guarded("hdiv-rows", "(./ ?a (* ?v (ones @1 ?k)))", "(* (diag (./ (ones (rows ?v) @1) ?v)) ?a)", Guard::Column("?v"), "A ⊘ (v·1ᵀ) = diag(1 ⊘ v)·A: dividing row i by v_i"),
    // A Hadamard product or quotient of two broadcasts is one broadcast: (1·vᵀ) ⊘ (1·wᵀ) = 1·(v ⊘ w)ᵀ
    // (the canonical form splits broadcasts to find shared factors; what is left rejoins here).
    rule("had-bcast-rows",  "(.* (* ?v (ones @1 ?n)) (* ?w (ones @1 ?n)))", "(* (.* ?v ?w) (ones @1 ?n))", "(v·1ᵀ) ∘ (w·1ᵀ) = (v ∘ w)·1ᵀ: every column is v ∘ w"),
    rule("hdiv-bcast-rows", "(./ (* ?v (ones @1 ?n)) (* ?w (ones @1 ?n)))", "(* (./ ?v ?w) (ones @1 ?n))", "(v·1ᵀ) ⊘ (w·1ᵀ) = (v ⊘ w)·1ᵀ: every column is v ⊘ w"),
    rule("had-bcast-cols",  "(.* (* (ones ?m @1) ?v) (* (ones ?m @1) ?w))", "(* (ones ?m @1) (.* ?v ?w))", "(1·v) ∘ (1·w) = 1·(v ∘ w): every row is v ∘ w"),
    rule("hdiv-bcast-cols", "(./ (* (ones ?m @1) ?v) (* (ones ?m @1) ?w))", "(* (ones ?m @1) (./ ?v ?w))", "(1·v) ⊘ (1·w) = 1·(v ⊘ w): every row is v ⊘ w"),
    rule("had-diag",   "(.* ?a (* (diag ?v) ?b))", "(* (diag ?v) (.* ?a ?b))", "A ∘ (D·B) = D·(A ∘ B) for diagonal D"),
    rule("diag-had",   "(* (diag ?v) (.* ?a ?b))", "(.* (* (diag ?v) ?a) ?b)", "D·(A ∘ B) = (D·A) ∘ B for diagonal D"),
];
