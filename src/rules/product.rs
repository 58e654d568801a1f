//! The matrix product, the Hadamard (elementwise) product and quotient, and the Kronecker product.

use super::{both, bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};

#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    // Cookbook eq. 39: d(X⊗Y) = dX⊗Y + X⊗dY. The adjoint of A ↦ A⊗B sums each block of G
    // weighted by B; that of B ↦ A⊗B sums the blocks of G weighted by A's entries.
    bp(
        "kron",
        0,
        "(blocksum (.* ?g (kron (ones (rows ?a) (cols ?a)) ?b)) (rows ?a) (cols ?a))",
        "Cookbook eq. 39: d(X⊗Y) = (dX)⊗Y + X⊗(dY)",
    ),
    bp(
        "kron",
        1,
        "(blockadd (.* ?g (kron ?a (ones (rows ?b) (cols ?b)))) (rows ?b) (cols ?b))",
        "Cookbook eq. 39: d(X⊗Y) = (dX)⊗Y + X⊗(dY)",
    ),
    bp("*", 0, "(* ?g (T ?b))", "Cookbook eq. 37: d(XY) = (dX)Y + X(dY)"),
    bp("*", 1, "(* (T ?a) ?g)", "Cookbook eq. 37: d(XY) = (dX)Y + X(dY)"),
    bp(".*", 0, "(.* ?g ?b)", "Cookbook eq. 38: d(X∘Y) = (dX)∘Y + X∘(dY)"),
    bp(".*", 1, "(.* ?g ?a)", "Cookbook eq. 38: d(X∘Y) = (dX)∘Y + X∘(dY)"),
    bp(
        "./",
        0,
        "(./ ?g ?b)",
        "quotient rule, elementwise: d(x/y) = dx/y - x dy/y²",
    ),
    bp(
        "./",
        1,
        "(scale -1 (./ (.* ?g ?e) ?b))",
        "quotient rule, elementwise: d(x/y) = dx/y - x dy/y²",
    ),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("*", 0, "(* (kron (T ?b) (eye (rows ?a))) ?j)", "vec(dA·B) = (Bᵀ⊗I)vec(dA) (Cookbook eq. 520)"),
    jac("*", 1, "(* (kron (eye (cols ?b)) ?a) ?j)", "vec(A·dB) = (I⊗A)vec(dB) (Cookbook eq. 520)"),
    jac(".*", 0, "(* (diag (vec ?b)) ?j)", "vec(dA∘B) = diag(vec B)vec(dA)"),
    jac(".*", 1, "(* (diag (vec ?a)) ?j)", "vec(A∘dB) = diag(vec A)vec(dB)"),
    jac("./", 0, "(* (diag (vec (./ (ones (rows ?b) (cols ?b)) ?b))) ?j)", "d(A⊘B) = dA⊘B - (A⊘B⊘B)∘dB"),
    jac("./", 1, "(scale -1 (* (diag (vec (./ ?e ?b))) ?j))", "d(A⊘B) = dA⊘B - (A⊘B⊘B)∘dB"),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    both("T-mul",      "(T (* ?a ?b))",     "(* (T ?b) (T ?a))",         "Cookbook eq. 5: (AB)ᵀ = BᵀAᵀ"),
    both("mul-assoc",  "(* ?a (* ?b ?c))",  "(* (* ?a ?b) ?c)",          "(AB)C = A(BC)"),
    guarded("mul-scalar-l", "(* ?s ?a)",    "(scale ?s ?a)", Guard::Scalar("?s"), "a 1 x 1 factor is a scalar"),
    guarded("mul-scalar-r", "(* ?a ?s)",    "(scale ?s ?a)", Guard::Scalar("?s"), "a 1 x 1 factor is a scalar"),
    rule("mul-scale-l", "(* (scale ?s ?a) ?b)", "(scale ?s (* ?a ?b))",  "(sA)B = s(AB)"),
    rule("mul-scale-r", "(* ?a (scale ?s ?b))", "(scale ?s (* ?a ?b))",  "A(sB) = s(AB)"),
    rule("mul-factor-l", "(+ (* ?a ?b) (* ?a ?c))", "(* ?a (+ ?b ?c))",  "AB + AC = A(B + C)"),
    rule("mul-factor-r", "(+ (* ?a ?c) (* ?b ?c))", "(* (+ ?a ?b) ?c)",  "AC + BC = (A + B)C"),
    rule("mul-zeros-l", "(* (zeros ?m ?k) ?b)", "(zeros ?m (cols ?b))",  "0B = 0"),
    rule("mul-zeros-r", "(* ?a (zeros ?k ?n))", "(zeros (rows ?a) ?n)",  "A0 = 0"),
    // Hadamard
    rule("had-comm",   "(.* ?a ?b)",        "(.* ?b ?a)",                "A∘B = B∘A"),
    both("had-assoc",  "(.* ?a (.* ?b ?c))", "(.* (.* ?a ?b) ?c)",       "(A∘B)∘C = A∘(B∘C)"),
    both("T-had",      "(T (.* ?a ?b))",    "(.* (T ?a) (T ?b))",        "(A∘B)ᵀ = Aᵀ∘Bᵀ"),
    rule("had-scale-l", "(.* (scale ?s ?a) ?b)", "(scale ?s (.* ?a ?b))", "(sA)∘B = s(A∘B)"),
    rule("had-zeros",  "(.* (zeros ?m ?n) ?b)", "(zeros ?m ?n)",         "0∘B = 0"),
    rule("had-factor", "(+ (.* ?a ?b) (.* ?a ?c))", "(.* ?a (+ ?b ?c))", "A∘B + A∘C = A∘(B + C)"),
    both("T-hdiv",     "(T (./ ?a ?b))",    "(./ (T ?a) (T ?b))",        "(A⊘B)ᵀ = Aᵀ⊘Bᵀ"),
    rule("hdiv-scale-l", "(./ (scale ?s ?a) ?b)", "(scale ?s (./ ?a ?b))", "(sA)⊘B = s(A⊘B)"),
    rule("had-hdiv",   "(.* ?a (./ ?b ?c))", "(./ (.* ?a ?b) ?c)",       "A∘(B⊘C) = (A∘B)⊘C"),
    rule("hdiv-cancel", "(.* (./ ?a ?b) ?b)", "?a",                      "(A⊘B)∘B = A where B has no zero"),
    rule("had-distribute", "(.* (+ ?a ?b) ?c)", "(+ (.* ?a ?c) (.* ?b ?c))", "(A + B)∘C = A∘C + B∘C"),
    guarded("had-scalar", "(.* ?a ?b)",     "(scale ?a ?b)", Guard::Scalar("?a"), "for 1 x 1 values the Hadamard product is a product"),
    guarded("hdiv-scalar", "(./ ?a ?b)",    "(scale (pow ?b -1) ?a)", Guard::Scalar("?b"), "for 1 x 1 values a⊘b = a·b⁻¹"),
    rule("hdiv-same",  "(./ ?a ?a)",        "(ones (rows ?a) (cols ?a))", "A⊘A = 1 (where defined)"),
    // Kronecker
    both("T-kron",     "(T (kron ?a ?b))",  "(kron (T ?a) (T ?b))",      "Cookbook §10.2.2: (A⊗B)ᵀ = Aᵀ⊗Bᵀ"),
    guarded("tr-kron", "(tr (kron ?a ?b))", "(scale (tr ?a) (tr ?b))", Guard::Square("?a", "?b"), "Cookbook §10.2.2: tr(A⊗B) = tr(A)tr(B) for square A, B"),
    rule("sum-kron",   "(sum (kron ?a ?b))", "(scale (sum ?a) (sum ?b))", "sum(A⊗B) = sum(A)sum(B)"),
];
