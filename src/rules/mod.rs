//! The rule tables, one file per operator family. Each family lists
//! - its backprop rules: for `E = op(a, b)` and upstream `?g = ∂L/∂E`, the upstream of
//!   each argument (`?e` is E itself), written in the IR's pattern syntax,
//! - its Jacobian rules: given `?j = ∂vec(a)/∂vec(X)`, the argument's contribution to
//!   ∂vec(E)/∂vec(X) (vec stacks columns; Magnus & Neudecker), and
//! - its simplification rewrites for the e-graph,
//!
//! each with the identity it rests on. Nothing outside this folder knows a rule.

mod elementwise;
mod inverse;
mod linear;
mod product;
#[cfg(test)]
mod soundness;
mod structural;
mod trace;
mod vec;

use crate::ir::{Math, MathGraph, ShapeAnalysis};
use egg::{ConditionalApplier, Id, Language, Pattern, Rewrite, Subst, Var};
use std::collections::HashMap;
use std::sync::OnceLock;

/// How to backpropagate through one argument of one operator.
#[derive(Debug)]
pub struct BackpropRule {
    pub op: &'static str,
    pub arg: usize,
    /// The argument's upstream, over `?g` (this node's upstream), `?e` (this node),
    /// `?a`, `?b` (the arguments).
    pub upstream: &'static str,
    pub source: &'static str,
}

/// How an argument's Jacobian feeds its node's Jacobian (forward mode, vec form).
#[derive(Debug)]
pub struct JacobianRule {
    pub op: &'static str,
    pub arg: usize,
    /// The contribution, over `?j` (the argument's Jacobian), `?e`, `?a`, `?b`.
    pub contribution: &'static str,
    pub source: &'static str,
}

/// When a simplification applies beyond matching its left side.
#[derive(Debug, Clone, Copy)]
pub enum Guard {
    Always,
    /// The variable's class is 1 x 1.
    Scalar(&'static str),
    /// The variable's class is not 1 x 1.
    NotScalar(&'static str),
    /// The variable's class holds a variable declared symmetric.
    Symmetric(&'static str),
    /// The variable's class holds the one-hot matrix of integer labels.
    OneHot(&'static str),
    /// Both variables' classes are square matrices.
    Square(&'static str, &'static str),
    /// `(A⊗B)(C⊗D)` with A's columns matching C's rows and B's matching D's, as named.
    MixedProduct(&'static str, &'static str, &'static str, &'static str),
    /// `K_(p,m)·(A⊗B)` with m = rows(A) and p = rows(B), named (p, m, A, B).
    KronRows(&'static str, &'static str, &'static str, &'static str),
    /// `(A⊗B)·K_(n,q)` with n = cols(A) and q = cols(B), named (n, q, A, B).
    KronCols(&'static str, &'static str, &'static str, &'static str),
    /// The variable's class is a dimension other than 1.
    DimNotOne(&'static str),
    /// The variable's class has one column.
    Column(&'static str),
    /// The variable's class has one row.
    Row(&'static str),
}

#[derive(Debug)]
pub struct SimplifyRule {
    pub name: &'static str,
    pub lhs: &'static str,
    pub rhs: &'static str,
    pub guard: Guard,
    /// Also rewrite right to left.
    pub both_ways: bool,
    pub source: &'static str,
}

struct Family {
    backprop: &'static [BackpropRule],
    jacobian: &'static [JacobianRule],
    simplify: &'static [SimplifyRule],
}

const FAMILIES: &[Family] = &[
    Family {
        backprop: linear::BACKPROP,
        jacobian: linear::JACOBIAN,
        simplify: linear::SIMPLIFY,
    },
    Family {
        backprop: product::BACKPROP,
        jacobian: product::JACOBIAN,
        simplify: product::SIMPLIFY,
    },
    Family {
        backprop: trace::BACKPROP,
        jacobian: trace::JACOBIAN,
        simplify: trace::SIMPLIFY,
    },
    Family {
        backprop: inverse::BACKPROP,
        jacobian: inverse::JACOBIAN,
        simplify: inverse::SIMPLIFY,
    },
    Family {
        backprop: elementwise::BACKPROP,
        jacobian: elementwise::JACOBIAN,
        simplify: elementwise::SIMPLIFY,
    },
    Family {
        backprop: structural::BACKPROP,
        jacobian: structural::JACOBIAN,
        simplify: structural::SIMPLIFY,
    },
    Family {
        backprop: &[],
        jacobian: &[],
        simplify: vec::SIMPLIFY,
    },
];

pub fn backprop_rules() -> impl Iterator<Item = &'static BackpropRule> {
    FAMILIES
        .iter()
        .flat_map(|f| f.backprop.iter())
        .chain(&elementwise::from_table().0)
}

pub fn jacobian_rules() -> impl Iterator<Item = &'static JacobianRule> {
    FAMILIES
        .iter()
        .flat_map(|f| f.jacobian.iter())
        .chain(&elementwise::from_table().1)
}

pub fn simplify_rules() -> impl Iterator<Item = &'static SimplifyRule> {
    FAMILIES.iter().flat_map(|f| f.simplify.iter())
}

/// A compiled rule table: (operator, argument) to the pattern and the rule it came from.
pub type Table<R> = HashMap<(&'static str, usize), (Pattern<Math>, &'static R)>;
pub type JacobianTable = Table<JacobianRule>;
pub type BackpropTable = Table<BackpropRule>;

/// Compiles rules given as (operator, argument, pattern text); a bad pattern is a bug in a table.
fn compile<R>(rules: impl Iterator<Item = (&'static str, usize, &'static str, &'static R)>) -> Table<R> {
    rules
        .map(|(op, arg, text, rule)| {
            let pattern: Pattern<Math> = text
                .parse()
                .unwrap_or_else(|e| panic!("rule for {op} argument {arg} has a bad pattern: {e}"));
            ((op, arg), (pattern, rule))
        })
        .collect()
}

pub fn jacobian_table() -> &'static JacobianTable {
    static TABLE: OnceLock<JacobianTable> = OnceLock::new();
    TABLE.get_or_init(|| compile(jacobian_rules().map(|r| (r.op, r.arg, r.contribution, r))))
}

pub fn backprop_table() -> &'static BackpropTable {
    static TABLE: OnceLock<BackpropTable> = OnceLock::new();
    TABLE.get_or_init(|| compile(backprop_rules().map(|r| (r.op, r.arg, r.upstream, r))))
}

struct GuardCondition {
    guard: Guard,
    /// The guard's variables, parsed once (parsing interns a symbol behind a lock).
    vars: Vec<(&'static str, Var)>,
}

impl GuardCondition {
    fn new(guard: Guard) -> GuardCondition {
        let names: Vec<&'static str> = match guard {
            Guard::Always => vec![],
            Guard::Scalar(v)
            | Guard::NotScalar(v)
            | Guard::Symmetric(v)
            | Guard::OneHot(v)
            | Guard::DimNotOne(v)
            | Guard::Column(v)
            | Guard::Row(v) => vec![v],
            Guard::Square(a, b) => vec![a, b],
            Guard::MixedProduct(a, b, c, d) | Guard::KronRows(a, b, c, d) | Guard::KronCols(a, b, c, d) => {
                vec![a, b, c, d]
            }
        };
        let vars = names
            .iter()
            .map(|n| (*n, n.parse::<Var>().expect("guard names a pattern variable")))
            .collect();
        GuardCondition { guard, vars }
    }
}

impl egg::Condition<Math, ShapeAnalysis> for GuardCondition {
    fn check(&self, egraph: &mut MathGraph, _eclass: Id, subst: &Subst) -> bool {
        let class = |v: &str| {
            let var = self.vars.iter().find(|(n, _)| *n == v).map(|(_, var)| *var);
            subst[var.expect("guard names a pattern variable")]
        };
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
            Guard::MixedProduct(a, b, c, d) => {
                let shape = |v: &str| egraph[class(v)].data.shape().cloned();
                match (shape(a), shape(b), shape(c), shape(d)) {
                    (Some(a), Some(b), Some(c), Some(d)) => a.cols == c.rows && b.cols == d.rows,
                    _ => false,
                }
            }
            Guard::KronRows(p, m, a, b) | Guard::KronCols(p, m, a, b) => {
                let dim = |v: &str| match &egraph[class(v)].data.kind {
                    crate::ir::Kind::Dim(d) => Some(d.clone()),
                    _ => None,
                };
                let shape = |v: &str| egraph[class(v)].data.shape().cloned();
                match (dim(p), dim(m), shape(a), shape(b)) {
                    (Some(p), Some(m), Some(a), Some(b)) => match self.guard {
                        Guard::KronRows(..) => m == a.rows && p == b.rows,
                        _ => p == a.cols && m == b.cols,
                    },
                    _ => false,
                }
            }
            Guard::DimNotOne(v) => matches!(&egraph[class(v)].data.kind, crate::ir::Kind::Dim(d) if !d.is_one()),
            Guard::Column(v) => egraph[class(v)].data.shape().is_some_and(|s| s.cols.is_one()),
            Guard::Row(v) => egraph[class(v)].data.shape().is_some_and(|s| s.rows.is_one()),
            Guard::Symmetric(v) => egraph[class(v)].nodes.iter().any(|n| match n {
                Math::Symbol(s) => egraph.analysis.env.symmetric.contains(s),
                _ => false,
            }),
            Guard::OneHot(v) => egraph[class(v)].nodes.iter().any(|n| match n {
                Math::Symbol(s) => egraph.analysis.env.onehot.contains(s),
                _ => false,
            }),
        }
    }
}

/// A set of operators (those with arguments), one bit each.
pub type OpSet = u64;

/// One compiled rewrite and what it needs and makes.
pub struct Compiled {
    pub rewrite: Rewrite<Math, ShapeAnalysis>,
    /// The operator at the root of its left side.
    root: std::mem::Discriminant<Math>,
    /// How many levels below its root its left side reaches (and its guard reads).
    pub height: usize,
    /// The operators its left side matches: it cannot fire unless all are present.
    needs: OpSet,
    /// The operators its right side adds.
    makes: OpSet,
    /// Used when tidying, where only shortcuts matter: not a rule that only rearranges its
    /// left side (commutativity, the cyclic trace), nor the way back of a two-way rule (the
    /// way there, such as (AB)ᵀ → BᵀAᵀ, moves transposes to the leaves where they cancel).
    tidies: bool,
}

impl Compiled {
    /// Whether a match can be rooted at this node.
    pub fn roots(&self, node: &Math) -> bool {
        std::mem::discriminant(node) == self.root
    }
}

/// The compiled simplification rewrites, with the operators each needs, so that a run
/// searches only the rules that can ever fire on its e-graph.
pub struct RuleSet {
    rules: Vec<Compiled>,
    bits: HashMap<std::mem::Discriminant<Math>, u32>,
}

impl RuleSet {
    /// The operators among `nodes` that some rule mentions.
    pub fn ops<'a>(&self, nodes: impl IntoIterator<Item = &'a Math>) -> OpSet {
        nodes
            .into_iter()
            .filter_map(|n| self.bits.get(&std::mem::discriminant(n)))
            .fold(0, |set, bit| set | (1 << bit))
    }

    /// The rules that can fire on an e-graph holding the operators `present`: those whose
    /// left side needs only operators present or made by rules that can fire themselves.
    /// With `tidy`, only the rules used for tidying.
    pub fn active(&self, present: OpSet, tidy: bool) -> Vec<&Compiled> {
        let candidates: Vec<&Compiled> = self.rules.iter().filter(|r| !tidy || r.tidies).collect();
        let mut reachable = present;
        loop {
            let grown = candidates
                .iter()
                .filter(|r| r.needs & !reachable == 0)
                .fold(reachable, |set, r| set | r.makes);
            if grown == reachable {
                break;
            }
            reachable = grown;
        }
        candidates.into_iter().filter(|r| r.needs & !reachable == 0).collect()
    }
}

/// The compiled simplification rules.
pub fn rule_set() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut bits = HashMap::new();
        let mut ops_of = |pattern: &Pattern<Math>| -> OpSet {
            let mut set = 0;
            for node in pattern.ast.as_ref() {
                if let egg::ENodeOrVar::ENode(n) = node {
                    if !n.is_leaf() {
                        let next = bits.len() as u32;
                        let bit = *bits.entry(std::mem::discriminant(n)).or_insert(next);
                        assert!(bit < OpSet::BITS, "more operators than an OpSet holds");
                        set |= 1 << bit;
                    }
                }
            }
            set
        };
        let mut rules = Vec::new();
        for rule in simplify_rules() {
            let mut add = |name: String, lhs: &str, rhs: &str, way_back: bool| {
                let searcher: Pattern<Math> = lhs.parse().unwrap_or_else(|e| panic!("rule {name}: {e}"));
                let applier: Pattern<Math> = rhs.parse().unwrap_or_else(|e| panic!("rule {name}: {e}"));
                let (needs, makes) = (ops_of(&searcher), ops_of(&applier));
                let tidies = !way_back && !same_nodes(&searcher, &applier);
                let root = match searcher.ast.as_ref().last() {
                    Some(egg::ENodeOrVar::ENode(n)) => std::mem::discriminant(n),
                    _ => panic!("rule {name}: its left side must start with an operator"),
                };
                let height = height(searcher.ast.as_ref());
                let rewrite = match rule.guard {
                    Guard::Always => Rewrite::new(name.clone(), searcher, applier),
                    guard => Rewrite::new(
                        name.clone(),
                        searcher,
                        ConditionalApplier {
                            condition: GuardCondition::new(guard),
                            applier,
                        },
                    ),
                };
                rules.push(Compiled {
                    rewrite: rewrite.unwrap_or_else(|e| panic!("rule {name}: {e}")),
                    root,
                    height,
                    needs,
                    makes,
                    tidies,
                });
            };
            add(rule.name.to_string(), rule.lhs, rule.rhs, false);
            if rule.both_ways {
                add(format!("{}-rev", rule.name), rule.rhs, rule.lhs, true);
            }
        }
        RuleSet { rules, bits }
    })
}

/// The height of a pattern: 0 for a variable or a leaf.
fn height(ast: &[egg::ENodeOrVar<Math>]) -> usize {
    let mut heights: Vec<usize> = Vec::with_capacity(ast.len());
    for node in ast {
        let h = match node {
            egg::ENodeOrVar::ENode(n) if !n.is_leaf() => {
                1 + n.children().iter().map(|c| heights[usize::from(*c)]).max().unwrap_or(0)
            }
            _ => 0,
        };
        heights.push(h);
    }
    heights.last().copied().unwrap_or(0)
}

/// Whether two patterns have the same nodes, in any arrangement.
fn same_nodes(a: &Pattern<Math>, b: &Pattern<Math>) -> bool {
    let labels = |p: &Pattern<Math>| {
        let mut v: Vec<String> = p
            .ast
            .as_ref()
            .iter()
            .map(|n| match n {
                egg::ENodeOrVar::ENode(n) => n.to_string(),
                egg::ENodeOrVar::Var(v) => v.to_string(),
            })
            .collect();
        v.sort();
        v
    };
    labels(a) == labels(b)
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

pub(crate) const fn jac(
    op: &'static str,
    arg: usize,
    contribution: &'static str,
    source: &'static str,
) -> JacobianRule {
    JacobianRule {
        op,
        arg,
        contribution,
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
