//! The rule tables, one file per operator family. Each family lists
//! - its backprop rules: for `E = op(a, b)` and upstream `?g = ∂L/∂E`, the upstream of
//!   each argument (`?e` is E itself), written in the IR's pattern syntax, and
//! - its simplification rewrites for the e-graph,
//!
//! each with the identity it rests on. Nothing outside this folder knows a rule.

mod elementwise;
mod inverse;
mod linear;
mod product;
mod structural;
mod trace;

use crate::ir::{Math, MathGraph, ShapeAnalysis};
use egg::{ConditionalApplier, Id, Pattern, Rewrite, Subst, Var};
use std::collections::HashMap;
use std::sync::OnceLock;

/// How to backpropagate through one argument of one operator.
pub struct BackpropRule {
    pub op: &'static str,
    pub arg: usize,
    /// The argument's upstream, over `?g` (this node's upstream), `?e` (this node),
    /// `?a`, `?b` (the arguments).
    pub upstream: &'static str,
    pub source: &'static str,
}

/// When a simplification applies beyond matching its left side.
#[derive(Clone, Copy)]
pub enum Guard {
    Always,
    /// The variable's class is 1 x 1.
    Scalar(&'static str),
    /// The variable's class is not 1 x 1.
    NotScalar(&'static str),
    /// The variable's class holds a variable declared symmetric.
    Symmetric(&'static str),
    /// Both variables' classes are square matrices.
    Square(&'static str, &'static str),
}

pub struct SimplifyRule {
    pub name: &'static str,
    pub lhs: &'static str,
    pub rhs: &'static str,
    pub guard: Guard,
    /// Also rewrite right to left.
    pub both_ways: bool,
    pub source: &'static str,
}

const FAMILIES: &[(&[BackpropRule], &[SimplifyRule])] = &[
    (linear::BACKPROP, linear::SIMPLIFY),
    (product::BACKPROP, product::SIMPLIFY),
    (trace::BACKPROP, trace::SIMPLIFY),
    (inverse::BACKPROP, inverse::SIMPLIFY),
    (elementwise::BACKPROP, elementwise::SIMPLIFY),
    (structural::BACKPROP, structural::SIMPLIFY),
];

pub fn backprop_rules() -> impl Iterator<Item = &'static BackpropRule> {
    FAMILIES.iter().flat_map(|(b, _)| b.iter())
}

pub fn simplify_rules() -> impl Iterator<Item = &'static SimplifyRule> {
    FAMILIES.iter().flat_map(|(_, s)| s.iter())
}

/// The compiled backprop table: (operator, argument) to the upstream pattern.
pub type BackpropTable = HashMap<(&'static str, usize), (Pattern<Math>, &'static BackpropRule)>;

pub fn backprop_table() -> &'static BackpropTable {
    static TABLE: OnceLock<BackpropTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        backprop_rules()
            .map(|r| {
                let pattern: Pattern<Math> = r
                    .upstream
                    .parse()
                    .unwrap_or_else(|e| panic!("backprop rule for {} has a bad pattern: {e}", r.op));
                ((r.op, r.arg), (pattern, r))
            })
            .collect()
    })
}

struct GuardCondition {
    guard: Guard,
}

impl egg::Condition<Math, ShapeAnalysis> for GuardCondition {
    fn check(&self, egraph: &mut MathGraph, _eclass: Id, subst: &Subst) -> bool {
        let class = |v: &str| subst[v.parse::<Var>().expect("guard names a pattern variable")];
        match self.guard {
            Guard::Always => true,
            Guard::Scalar(v) => egraph[class(v)].data.is_scalar(),
            Guard::NotScalar(v) => {
                let d = &egraph[class(v)].data;
                d.shape().is_some() && !d.is_scalar()
            }
            Guard::Square(a, b) => [a, b]
                .iter()
                .all(|v| egraph[class(v)].data.shape().is_some_and(|s| s.is_square())),
            Guard::Symmetric(v) => egraph[class(v)].nodes.iter().any(|n| match n {
                Math::Symbol(s) => egraph.analysis.env.symmetric.contains(s),
                _ => false,
            }),
        }
    }
}

/// The compiled simplification rewrites.
pub fn rewrites() -> &'static [Rewrite<Math, ShapeAnalysis>] {
    static REWRITES: OnceLock<Vec<Rewrite<Math, ShapeAnalysis>>> = OnceLock::new();
    REWRITES.get_or_init(|| {
        let mut out = Vec::new();
        for rule in simplify_rules() {
            let mut add = |name: String, lhs: &str, rhs: &str| {
                let searcher: Pattern<Math> = lhs.parse().unwrap_or_else(|e| panic!("rule {name}: {e}"));
                let applier: Pattern<Math> = rhs.parse().unwrap_or_else(|e| panic!("rule {name}: {e}"));
                let rewrite = match rule.guard {
                    Guard::Always => Rewrite::new(name.clone(), searcher, applier),
                    guard => Rewrite::new(
                        name.clone(),
                        searcher,
                        ConditionalApplier {
                            condition: GuardCondition { guard },
                            applier,
                        },
                    ),
                };
                out.push(rewrite.unwrap_or_else(|e| panic!("rule {name}: {e}")));
            };
            add(rule.name.to_string(), rule.lhs, rule.rhs);
            if rule.both_ways {
                add(format!("{}-rev", rule.name), rule.rhs, rule.lhs);
            }
        }
        out
    })
}

/// Shorthand for table entries.
pub(crate) const fn rule(
    name: &'static str,
    lhs: &'static str,
    rhs: &'static str,
    source: &'static str,
) -> SimplifyRule {
    SimplifyRule {
        name,
        lhs,
        rhs,
        guard: Guard::Always,
        both_ways: false,
        source,
    }
}

pub(crate) const fn guarded(
    name: &'static str,
    lhs: &'static str,
    rhs: &'static str,
    guard: Guard,
    source: &'static str,
) -> SimplifyRule {
    SimplifyRule {
        name,
        lhs,
        rhs,
        guard,
        both_ways: false,
        source,
    }
}

pub(crate) const fn both(
    name: &'static str,
    lhs: &'static str,
    rhs: &'static str,
    source: &'static str,
) -> SimplifyRule {
    SimplifyRule {
        name,
        lhs,
        rhs,
        guard: Guard::Always,
        both_ways: true,
        source,
    }
}

pub(crate) const fn bp(op: &'static str, arg: usize, upstream: &'static str, source: &'static str) -> BackpropRule {
    BackpropRule {
        op,
        arg,
        upstream,
        source,
    }
}
