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
use egg::{ConditionalApplier, ENodeOrVar, FromOp, Id, Language, Pattern, PatternAst, Rewrite, Subst, Var};
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

/// One row of a compiled rule table: its pattern is parsed when first instantiated, so a
/// run pays only for the operators its target has.
pub struct Entry<R: 'static> {
    text: &'static str,
    pub rule: &'static R,
    pattern: OnceLock<Pattern<Math>>,
}

impl<R> Entry<R> {
    /// The rule's pattern; a bad one is a bug in a table (`every_table_pattern_parses`).
    pub fn pattern(&self) -> &PatternAst<Math> {
        &self.pattern.get_or_init(|| pattern(self.text)).ast
    }
}

/// A rule table: (operator, argument) to the rule's pattern.
pub type Table<R> = HashMap<(&'static str, usize), Entry<R>>;
pub type JacobianTable = Table<JacobianRule>;
pub type BackpropTable = Table<BackpropRule>;

/// Indexes rules given as (operator, argument, pattern text), parsing none of them.
fn index<R>(rules: impl Iterator<Item = (&'static str, usize, &'static str, &'static R)>) -> Table<R> {
    rules
        .map(|(op, arg, text, rule)| {
            let entry = Entry {
                text,
                rule,
                pattern: OnceLock::new(),
            };
            ((op, arg), entry)
        })
        .collect()
}

pub fn jacobian_table() -> &'static JacobianTable {
    static TABLE: OnceLock<JacobianTable> = OnceLock::new();
    TABLE.get_or_init(|| index(jacobian_rules().map(|r| (r.op, r.arg, r.contribution, r))))
}

pub fn backprop_table() -> &'static BackpropTable {
    static TABLE: OnceLock<BackpropTable> = OnceLock::new();
    TABLE.get_or_init(|| index(backprop_rules().map(|r| (r.op, r.arg, r.upstream, r))))
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

/// An operator of the IR, whatever its arguments.
type Op = std::mem::Discriminant<Math>;

/// A set of operators (those with arguments), one bit each.
pub type OpSet = u64;

/// One simplification rewrite, one way. What the saturation loop needs to choose it (the
/// operators it needs and makes, its root and height) is read off its text; the rewrite
/// itself, whose parsing and compilation cost most of a small run, is built the first
/// time the e-graph holds every operator it needs.
pub struct Compiled {
    rule: &'static SimplifyRule,
    /// The way back of a two-way rule: right side to left.
    way_back: bool,
    rewrite: OnceLock<Rewrite<Math, ShapeAnalysis>>,
    /// The operator at the root of its left side.
    root: Op,
    /// How many levels below its root its left side reaches (and its guard reads).
    pub height: usize,
    /// The operators its left side matches: it cannot fire unless all are present.
    needs: OpSet,
    /// The operators its right side adds.
    makes: OpSet,
    /// Used when tidying, where only shortcuts matter: not a rule that only rearranges its
    /// left side (commutativity, the cyclic trace), nor the way back of a two-way rule (the
    /// way there, such as (AB)ᵀ → BᵀAᵀ, moves transposes to the leaves where they cancel).
    /// (Read off the text when first asked: most runs never tidy.)
    tidies: OnceLock<bool>,
}

impl Compiled {
    /// Whether a match can be rooted at this node.
    pub fn roots(&self, node: &Math) -> bool {
        std::mem::discriminant(node) == self.root
    }

    fn tidies(&self) -> bool {
        *self
            .tidies
            .get_or_init(|| !self.way_back && !same_tokens(self.rule.lhs, self.rule.rhs))
    }

    /// Whether it can match an e-graph holding the operators `present`.
    pub fn may_match(&self, present: OpSet) -> bool {
        self.needs & !present == 0
    }

    pub fn rewrite(&self) -> &Rewrite<Math, ShapeAnalysis> {
        self.rewrite.get_or_init(|| {
            let rule = self.rule;
            let (name, lhs, rhs) = if self.way_back {
                (format!("{}-rev", rule.name), rule.rhs, rule.lhs)
            } else {
                (rule.name.to_string(), rule.lhs, rule.rhs)
            };
            let (searcher, applier) = (pattern(lhs), pattern(rhs));
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
            rewrite.unwrap_or_else(|e| panic!("rule {name}: {e}"))
        })
    }
}

/// The simplification rewrites, with the operators each needs, so that a run searches
/// (and compiles) only the rules that can fire on its e-graph.
pub struct RuleSet {
    rules: Vec<Compiled>,
    bits: rustc_hash::FxHashMap<Op, u32>,
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
        let candidates: Vec<&Compiled> = self.rules.iter().filter(|r| !tidy || r.tidies()).collect();
        let mut reachable = present;
        loop {
            let grown = candidates
                .iter()
                .filter(|r| r.may_match(reachable))
                .fold(reachable, |set, r| set | r.makes);
            if grown == reachable {
                break;
            }
            reachable = grown;
        }
        candidates.into_iter().filter(|r| r.may_match(reachable)).collect()
    }
}

/// The simplification rules, none compiled yet.
pub fn rule_set() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut operators = Operators::default();
        let mut rules = Vec::new();
        for rule in simplify_rules() {
            let ways: &[bool] = if rule.both_ways { &[false, true] } else { &[false] };
            for &way_back in ways {
                let (lhs, rhs) = if way_back {
                    (rule.rhs, rule.lhs)
                } else {
                    (rule.lhs, rule.rhs)
                };
                let (searcher, applier) = (operators.outline(lhs), operators.outline(rhs));
                let root = searcher
                    .root
                    .unwrap_or_else(|| panic!("rule {}: its left side must start with an operator", rule.name));
                rules.push(Compiled {
                    rule,
                    way_back,
                    rewrite: OnceLock::new(),
                    root,
                    height: searcher.height,
                    needs: searcher.ops,
                    makes: applier.ops,
                    tidies: OnceLock::new(),
                });
            }
        }
        RuleSet {
            rules,
            bits: operators.bits,
        }
    })
}

/// What the saturation loop needs to know of a pattern, read off its s-expression
/// without parsing it into a pattern: each `(` opens a node, whose first token names its
/// operator and whose other tokens and nodes are its children.
struct Outline {
    /// The operators with arguments.
    ops: OpSet,
    /// The root's operator, if the pattern is not a bare variable or leaf.
    root: Option<Op>,
    /// 0 for a variable or a leaf.
    height: usize,
}

/// The operators the rules name, each given a bit as first seen.
#[derive(Default)]
struct Operators {
    bits: rustc_hash::FxHashMap<Op, u32>,
    /// Each spelling with its number of arguments, as the IR reads it, and its bit (none
    /// for a leaf): the tables name few operators many times.
    spelled: rustc_hash::FxHashMap<(&'static str, usize), (Op, Option<u32>)>,
}

impl Operators {
    fn operator(&mut self, op: &'static str, children: usize) -> (Op, Option<u32>) {
        let bits = &mut self.bits;
        *self.spelled.entry((op, children)).or_insert_with(|| {
            let node =
                Math::from_op(op, vec![Id::from(0); children]).unwrap_or_else(|e| panic!("operator {op}: {e:?}"));
            let discriminant = std::mem::discriminant(&node);
            let bit = (!node.is_leaf()).then(|| {
                let next = bits.len() as u32;
                let bit = *bits.entry(discriminant).or_insert(next);
                assert!(bit < OpSet::BITS, "more operators than an OpSet holds");
                bit
            });
            (discriminant, bit)
        })
    }

    fn outline(&mut self, text: &'static str) -> Outline {
        // One frame per open node: its operator, children so far, and their greatest height.
        let mut open: smallvec::SmallVec<[(&'static str, usize, usize); 8]> = smallvec::SmallVec::new();
        let mut outline = Outline {
            ops: 0,
            root: None,
            height: 0,
        };
        let mut starts_node = false;
        for token in sexp_tokens(text) {
            match token {
                "(" => {
                    open.push(("", 0, 0));
                    starts_node = true;
                }
                ")" => {
                    let (op, children, below) = open.pop().unwrap_or_else(|| panic!("pattern {text}: unbalanced"));
                    let (discriminant, bit) = self.operator(op, children);
                    let height = match bit {
                        Some(bit) => {
                            outline.ops |= 1 << bit;
                            1 + below
                        }
                        None => 0,
                    };
                    match open.last_mut() {
                        Some(parent) => {
                            parent.1 += 1;
                            parent.2 = parent.2.max(height);
                        }
                        None => {
                            outline.root = Some(discriminant);
                            outline.height = height;
                        }
                    }
                }
                word => match open.last_mut() {
                    Some(frame) if starts_node => {
                        frame.0 = word;
                        starts_node = false;
                    }
                    Some(frame) => frame.1 += 1,
                    None => {}
                },
            }
        }
        outline
    }
}

/// The tokens of an s-expression: parentheses and the words between them. (Cut at ASCII
/// bytes only, so every piece is whole UTF-8.)
fn sexp_tokens(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let ends_word = |b: u8| b.is_ascii_whitespace() || b == b'(' || b == b')';
    let mut i = 0;
    std::iter::from_fn(move || {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        match bytes.get(i)? {
            b'(' | b')' => i += 1,
            _ => {
                while bytes.get(i).is_some_and(|&b| !ends_word(b)) {
                    i += 1;
                }
            }
        }
        Some(&text[start..i])
    })
}

/// A rule's pattern, as egg's parser reads it (`patterns_read_as_egg_reads_them`) but
/// without its s-expression tree of strings: each node is made as its `)` closes. A bad
/// pattern is a bug in a table.
fn pattern(text: &str) -> Pattern<Math> {
    let mut ast = PatternAst::<Math>::default();
    // The open nodes: each one's operator and children so far.
    let mut open: Vec<(&str, Vec<Id>)> = Vec::new();
    let mut starts_node = false;
    let node = |op: &str, children: Vec<Id>| {
        ENodeOrVar::<Math>::from_op(op, children).unwrap_or_else(|e| panic!("pattern {text}: {e:?}"))
    };
    let mut root = None;
    for token in sexp_tokens(text) {
        let id = match token {
            "(" => {
                open.push(("", Vec::new()));
                starts_node = true;
                continue;
            }
            ")" => {
                let (op, children) = open.pop().unwrap_or_else(|| panic!("pattern {text}: unbalanced"));
                ast.add(node(op, children))
            }
            word if starts_node => {
                if let Some(frame) = open.last_mut() {
                    frame.0 = word;
                }
                starts_node = false;
                continue;
            }
            word => ast.add(node(word, Vec::new())),
        };
        match open.last_mut() {
            Some(frame) => frame.1.push(id),
            None => root = Some(id),
        }
    }
    assert!(open.is_empty() && root.is_some(), "pattern {text}: unbalanced");
    Pattern::new(ast)
}

/// Whether two patterns have the same nodes, in any arrangement.
fn same_tokens(a: &str, b: &str) -> bool {
    fn words(p: &str) -> smallvec::SmallVec<[&str; 24]> {
        let mut v: smallvec::SmallVec<[&str; 24]> = sexp_tokens(p).filter(|t| *t != "(" && *t != ")").collect();
        v.sort_unstable();
        v
    }
    // Most rules' sides differ in length, which needs no sorting to see.
    let letters = |p: &str| {
        p.bytes()
            .filter(|b| !b.is_ascii_whitespace() && *b != b'(' && *b != b')')
            .count()
    };
    letters(a) == letters(b) && words(a) == words(b)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the saturation loop was told of each rule by its text (`Outline`) is what its
    /// parsed pattern says.
    #[test]
    fn outlines_agree_with_parsed_patterns() {
        let set = rule_set();
        for compiled in &set.rules {
            let rewrite = compiled.rewrite();
            let rule = compiled.rule;
            let (lhs, rhs) = if compiled.way_back {
                (rule.rhs, rule.lhs)
            } else {
                (rule.lhs, rule.rhs)
            };
            let (lhs, rhs): (Pattern<Math>, Pattern<Math>) = (lhs.parse().unwrap(), rhs.parse().unwrap());
            let operators = |p: &Pattern<Math>| -> Vec<Math> {
                p.ast
                    .as_ref()
                    .iter()
                    .filter_map(|n| match n {
                        egg::ENodeOrVar::ENode(n) if !n.is_leaf() => Some(n.clone()),
                        _ => None,
                    })
                    .collect()
            };
            assert_eq!(compiled.needs, set.ops(&operators(&lhs)), "{}", rewrite.name);
            assert_eq!(compiled.makes, set.ops(&operators(&rhs)), "{}", rewrite.name);
            assert!(operators(&lhs)
                .iter()
                .all(|n| set.bits.contains_key(&std::mem::discriminant(n))));
            assert!(operators(&rhs)
                .iter()
                .all(|n| set.bits.contains_key(&std::mem::discriminant(n))));
            let Some(egg::ENodeOrVar::ENode(root)) = lhs.ast.as_ref().last() else {
                panic!("{}: no root operator", rewrite.name)
            };
            assert!(compiled.roots(root), "{}", rewrite.name);
            assert_eq!(compiled.height, parsed_height(lhs.ast.as_ref()), "{}", rewrite.name);
            let labels = |p: &Pattern<Math>| {
                let mut v: Vec<String> = p.ast.as_ref().iter().map(|n| n.to_string()).collect();
                v.sort();
                v
            };
            let rearranges = labels(&lhs) == labels(&rhs);
            assert_eq!(compiled.tidies(), !compiled.way_back && !rearranges, "{}", rewrite.name);
        }
    }

    #[test]
    fn patterns_read_as_egg_reads_them() {
        let texts = simplify_rules()
            .flat_map(|r| [r.lhs, r.rhs])
            .chain(backprop_rules().map(|r| r.upstream))
            .chain(jacobian_rules().map(|r| r.contribution));
        for text in texts {
            let egg: Pattern<Math> = text.parse().unwrap();
            assert_eq!(pattern(text).ast, egg.ast, "{text}");
        }
    }

    fn parsed_height(ast: &[egg::ENodeOrVar<Math>]) -> usize {
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

    /// The tables are parsed only as used, so each pattern is parsed here once.
    #[test]
    fn every_table_pattern_parses() {
        for entry in backprop_table().values() {
            assert!(!entry.pattern().as_ref().is_empty());
        }
        for entry in jacobian_table().values() {
            assert!(!entry.pattern().as_ref().is_empty());
        }
        assert_eq!(
            backprop_table().len(),
            backprop_rules().count(),
            "two backprop rules for one argument"
        );
        assert_eq!(
            jacobian_table().len(),
            jacobian_rules().count(),
            "two Jacobian rules for one argument"
        );
    }
}
