//! Elementwise functions and powers. For f applied entrywise, d f(X) = f'(X) ∘ dX, so the
//! upstream of X is G ∘ f'(X) (Cookbook eq. 38 applied entry by entry), and the Jacobian of
//! vec f(X) is diag(vec f'(X)). Each function's f′ is a column of the operator table
//! (`ops.rs`); its simplifications are here.

use super::{bp, guarded, jac, rule, BackpropRule, Guard, JacobianRule, SimplifyRule};
use crate::ops::Func;
use std::sync::OnceLock;

/// Powers (the elementwise functions' rules follow from the operator table, below).
#[rustfmt::skip]
pub const BACKPROP: &[BackpropRule] = &[
    bp("pow", 0, "(scale (scale ?g ?b) (pow ?a (+ ?b -1)))", "d sᵏ = k sᵏ⁻¹ ds"),
    bp(".^", 0, "(.* ?g (scale ?b (.^ ?a (+ ?b -1))))", "d xᵏ = k xᵏ⁻¹ dx, entrywise"),
];

#[rustfmt::skip]
pub const JACOBIAN: &[JacobianRule] = &[
    jac("pow", 0, "(scale (scale ?b (pow ?a (+ ?b -1))) ?j)", "d sᵏ = k sᵏ⁻¹ ds"),
    jac(".^", 0, "(* (diag (vec (scale ?b (.^ ?a (+ ?b -1))))) ?j)", "d xᵏ = k xᵏ⁻¹ dx, entrywise"),
];

/// The rules of every elementwise function f of the operator table, from its derivative f′
/// stated once: backprop `G ⊙ f′(a)` and Jacobian `diag(vec f′(a))·J`.
pub fn from_table() -> &'static (Vec<BackpropRule>, Vec<JacobianRule>) {
    static RULES: OnceLock<(Vec<BackpropRule>, Vec<JacobianRule>)> = OnceLock::new();
    RULES.get_or_init(|| {
        // Built once per process; the rule tables hold 'static text.
        let text = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Func::ALL
            .iter()
            .map(|f| {
                let spec = f.spec();
                let backprop = bp(
                    spec.name,
                    0,
                    text(format!("(.* ?g {})", spec.derivative)),
                    spec.identity,
                );
                let jacobian = jac(
                    spec.name,
                    0,
                    text(format!("(* (diag (vec {})) ?j)", spec.derivative)),
                    spec.identity,
                );
                (backprop, jacobian)
            })
            .unzip()
    })
}

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
