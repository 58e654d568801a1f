//! Elementwise functions and powers. For f applied entrywise, d f(X) = f'(X) ∘ dX, so the
//! upstream of X is G ∘ f'(X) (Cookbook eq. 38 applied entry by entry).

use super::{bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};

#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    bp("exp", 0, "(.* ?g ?e)", "d exp(x) = exp(x) dx"),
    bp("log", 0, "(./ ?g ?a)", "d log(x) = dx / x"),
    bp("sin", 0, "(.* ?g (cos ?a))", "d sin(x) = cos(x) dx"),
    bp("cos", 0, "(scale -1 (.* ?g (sin ?a)))", "d cos(x) = -sin(x) dx"),
    bp("tan", 0, "(.* ?g (+ (ones (rows ?a) (cols ?a)) (.* ?e ?e)))", "d tan(x) = (1 + tan²(x)) dx"),
    bp("sinh", 0, "(.* ?g (cosh ?a))", "d sinh(x) = cosh(x) dx"),
    bp("cosh", 0, "(.* ?g (sinh ?a))", "d cosh(x) = sinh(x) dx"),
    bp(
        "tanh",
        0,
        "(.* ?g (+ (ones (rows ?a) (cols ?a)) (scale -1 (.* ?e ?e))))",
        "d tanh(x) = (1 - tanh²(x)) dx",
    ),
    bp(
        "sigmoid",
        0,
        "(.* ?g (.* ?e (+ (ones (rows ?a) (cols ?a)) (scale -1 ?e))))",
        "d σ(x) = σ(x)(1 - σ(x)) dx",
    ),
    bp("sqrt", 0, "(scale 0.5 (./ ?g ?e))", "d √x = dx / (2√x)"),
    bp("abs", 0, "(.* ?g (sign ?a))", "d|x| = sign(x) dx, x ≠ 0"),
    bp("relu", 0, "(.* ?g (step ?a))", "d max(x, 0) = step(x) dx, x ≠ 0"),
    bp("sign", 0, "(zeros (rows ?a) (cols ?a))", "sign is constant away from 0"),
    bp("step", 0, "(zeros (rows ?a) (cols ?a))", "step is constant away from 0"),
    bp("pow", 0, "(scale (scale ?g ?b) (pow ?a (+ ?b -1)))", "d sᵏ = k sᵏ⁻¹ ds"),
    bp(
        ".^",
        0,
        "(.* ?g (scale ?b (.^ ?a (+ ?b -1))))",
        "d xᵏ = k xᵏ⁻¹ dx, entrywise",
    ),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("exp", 0, "(* (diag (vec ?e)) ?j)", "d exp(x) = exp(x) dx, entrywise: a diagonal Jacobian"),
    jac("log", 0, "(* (diag (vec (./ (ones (rows ?a) (cols ?a)) ?a))) ?j)", "d log(x) = dx / x"),
    jac("sin", 0, "(* (diag (vec (cos ?a))) ?j)", "d sin(x) = cos(x) dx"),
    jac("cos", 0, "(scale -1 (* (diag (vec (sin ?a))) ?j))", "d cos(x) = -sin(x) dx"),
    jac("tan", 0, "(* (diag (vec (+ (ones (rows ?a) (cols ?a)) (.* ?e ?e)))) ?j)", "d tan(x) = (1 + tan²(x)) dx"),
    jac("sinh", 0, "(* (diag (vec (cosh ?a))) ?j)", "d sinh(x) = cosh(x) dx"),
    jac("cosh", 0, "(* (diag (vec (sinh ?a))) ?j)", "d cosh(x) = sinh(x) dx"),
    jac("tanh", 0, "(* (diag (vec (+ (ones (rows ?a) (cols ?a)) (scale -1 (.* ?e ?e))))) ?j)", "d tanh(x) = (1 - tanh²(x)) dx"),
    jac("sigmoid", 0, "(* (diag (vec (.* ?e (+ (ones (rows ?a) (cols ?a)) (scale -1 ?e))))) ?j)", "d σ(x) = σ(x)(1 - σ(x)) dx"),
    jac("sqrt", 0, "(* (diag (vec (scale 0.5 (./ (ones (rows ?a) (cols ?a)) ?e)))) ?j)", "d √x = dx / (2√x)"),
    jac("abs", 0, "(* (diag (vec (sign ?a))) ?j)", "d|x| = sign(x) dx"),
    jac("relu", 0, "(* (diag (vec (step ?a))) ?j)", "d max(x, 0) = step(x) dx"),
    jac("sign", 0, "(scale 0 ?j)", "sign is constant away from 0"),
    jac("step", 0, "(scale 0 ?j)", "step is constant away from 0"),
    jac("pow", 0, "(scale (scale ?b (pow ?a (+ ?b -1))) ?j)", "d sᵏ = k sᵏ⁻¹ ds"),
    jac(".^", 0, "(* (diag (vec (scale ?b (.^ ?a (+ ?b -1))))) ?j)", "d xᵏ = k xᵏ⁻¹ dx, entrywise"),
];

#[rustfmt::skip]
pub const SIMPLIFY: &[SimplifyRule] = &[
    rule("pow-1",      "(pow ?a 1)",        "?a",                        "s¹ = s"),
    rule("epow-1",     "(.^ ?a 1)",         "?a",                        "X.^1 = X"),
    rule("had-self",   "(.* ?a ?a)",        "(.^ ?a 2)",                 "X∘X = X.^2"),
    rule("log-exp",    "(log (exp ?a))",    "?a",                        "log(exp(x)) = x"),
    rule("exp-log",    "(exp (log ?a))",    "?a",                        "exp(log(x)) = x wherever log(x) is defined"),
    rule("pow-0",      "(pow ?a 0)",        "1",                         "s⁰ = 1"),
    rule("pow-scale",  "(scale ?a (pow ?a ?k))", "(pow ?a (+ ?k 1))",    "s·sᵏ = sᵏ⁺¹"),
    rule("pow-pow",    "(scale (pow ?a ?j) (pow ?a ?k))", "(pow ?a (+ ?j ?k))", "sʲ·sᵏ = sʲ⁺ᵏ"),
    guarded("pow-self", "(scale ?a ?a)",    "(pow ?a 2)", Guard::Scalar("?a"), "s·s = s²"),
    rule("exp-sigmoid", "(./ (exp ?a) (+ (exp ?a) (ones ?m ?n)))", "(sigmoid ?a)", "σ(x) = eˣ/(eˣ + 1)"),
    rule("sigmoid-def", "(./ (ones ?m ?n) (+ (ones ?m ?n) (exp (scale -1 ?a))))", "(sigmoid ?a)", "σ(x) = 1/(1 + e⁻ˣ)"),
    rule("exp-sigmoid-had", "(./ (.* ?x (exp ?a)) (+ (exp ?a) (ones ?m ?n)))", "(.* ?x (sigmoid ?a))", "x ⊙ eᵃ ⊘ (eᵃ + 1) = x ⊙ σ(a)"),
    rule("sigmoid-def-had", "(./ ?x (+ (ones ?m ?n) (exp (scale -1 ?a))))", "(.* ?x (sigmoid ?a))", "x ⊘ (1 + e⁻ᵃ) = x ⊙ σ(a)"),
    rule("exp-neg-sigmoid", "(.* (exp (scale -1 ?a)) (sigmoid ?a))", "(sigmoid (scale -1 ?a))", "e⁻ᵃ σ(a) = e⁻ᵃ/(1 + e⁻ᵃ) = σ(−a)"),
];
