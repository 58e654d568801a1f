//! Equality saturation over the rule tables, always bounded, and extraction of the
//! textbook form by a cost function.

use crate::ir::{Math, MathGraph};
use crate::rules::rule_set;
use egg::{CostFunction, Extractor, Id, Language, RecExpr};
use std::time::Duration;

/// Bounds on one e-graph run. Hitting one still yields a correct result, only maybe not the simplest.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub iterations: usize,
    pub nodes: usize,
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            iterations: 30,
            nodes: 20_000,
            // A safety net only: the node and iteration limits bind first, so results do not
            // depend on the machine's speed.
            time: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// A smaller budget for tidying the target before differentiating it: the derivative's
    /// own run does the real simplification.
    pub fn for_target(self) -> Limits {
        Limits {
            iterations: self.iterations.min(12),
            nodes: self.nodes.min(5_000),
            time: self.time,
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct SimplifyReport {
    pub iterations: usize,
    pub nodes: usize,
    pub classes: usize,
    /// `None` when the rules saturated: no rule could change anything more.
    pub limit_hit: Option<String>,
}

impl SimplifyReport {
    /// Adds another run's figures (a derivative simplified in pieces): the most
    /// iterations of any run, the nodes and classes of all, the first limit hit.
    pub fn absorb(&mut self, other: &SimplifyReport) {
        self.iterations = self.iterations.max(other.iterations);
        self.nodes += other.nodes;
        self.classes += other.classes;
        if self.limit_hit.is_none() {
            self.limit_hit.clone_from(&other.limit_hit);
        }
    }
}

/// Restores the e-graph's invariants after additions and unions, without starting quanta's clock.
///
/// egg 0.11 times every `EGraph::rebuild` with `quanta::Instant::now()`, for a log line
/// only, and has no feature to turn that off. quanta's first reading on a thread without
/// an override calibrates the TSC against the system clock, spinning for at least 500
/// rounds of a microsecond (metrics-rs/quanta #2, #16, #63): about 2 ms, most of a whole
/// `matdiff grad` run. Patching egg means carrying a fork, and quanta has no way to choose
/// the global clock; it does honour a per-thread override, so every rebuild runs under a
/// mock clock that costs one atomic load to read (egg's log then says 0 s; matdiff's own
/// limits time runs with `std::time::Instant`). `clippy.toml` disallows calling
/// `EGraph::rebuild` directly, so no path slips back.
pub fn rebuild(egraph: &mut MathGraph) -> usize {
    thread_local! {
        static NO_CALIBRATION: quanta::Clock = quanta::Clock::mock().0;
    }
    #[allow(clippy::disallowed_methods)]
    NO_CALIBRATION.with(|clock| quanta::with_clock(clock, || egraph.rebuild()))
}

pub fn saturate(egraph: MathGraph, limits: Limits) -> (MathGraph, SimplifyReport) {
    run(egraph, limits, false)
}

/// The best form of a class after a run of the tidying rules: neither those that only
/// rearrange (commutativity, the cyclic trace) nor the way back of a two-way rule.
pub fn tidy(egraph: MathGraph, class: Id, limits: Limits) -> RecExpr<Math> {
    let (egraph, _) = tidied(egraph, limits);
    extract(&egraph, class)
}

/// The e-graph after a run of the tidying rules, to read several classes from.
pub fn tidied(egraph: MathGraph, limits: Limits) -> (MathGraph, SimplifyReport) {
    run(egraph, limits, true)
}

/// Equality saturation with the rules that can fire on this e-graph (`tidy`: only the
/// tidying ones). egg's `Runner` checks the clock after every rule; on the
/// small e-graphs of most derivations that costs more than the search, so this loop
/// checks the node limit after every rule and the clock once an iteration.
fn run(mut egraph: MathGraph, limits: Limits, tidy: bool) -> (MathGraph, SimplifyReport) {
    let rules = rule_set();
    let rewrites = rules.active(rules.ops(egraph.classes().flat_map(|c| c.nodes.iter())), tidy);
    let outcome = crate::saturation::run(&mut egraph, rules, &rewrites, limits);
    let report = SimplifyReport {
        iterations: outcome.iterations,
        nodes: egraph.total_number_of_nodes(),
        classes: egraph.number_of_classes(),
        limit_hit: outcome.limit_hit,
    };
    (egraph, report)
}

/// The simplest form of a standalone expression (used on the target before
/// differentiating it, so that e.g. tr(A⊗X) is first seen as tr(A)·tr(X)).
pub fn simplest(env: &crate::ir::Env, expr: &RecExpr<Math>, limits: Limits) -> (RecExpr<Math>, SimplifyReport) {
    let (simplest, report, _) = simplest_naming(env, expr, &[], limits);
    (simplest, report)
}

/// As [`simplest`], also saying which node of the result equals which of the `named`
/// subexpressions of `expr` (the script's definitions, which the simplest form may have
/// taken apart and put together differently: `X + (tanh(X·W1) + tanh(h1·W2))` is still h2).
pub fn simplest_naming(
    env: &crate::ir::Env,
    expr: &RecExpr<Math>,
    named: &[(egg::Symbol, &RecExpr<Math>)],
    limits: Limits,
) -> (RecExpr<Math>, SimplifyReport, Vec<Option<egg::Symbol>>) {
    let (egraph, root, classes) = naming_graph(env, expr, named);
    let (egraph, report) = run(egraph, limits, false);
    let simplest = extract(&egraph, root);
    let names = named_nodes(&egraph, &simplest, &classes);
    (simplest, report, names)
}

/// Which node of `expr`, as written, equals which of the `named` subexpressions (as
/// [`simplest_naming`] says of the simplest form, without a run).
pub fn naming(
    env: &crate::ir::Env,
    expr: &RecExpr<Math>,
    named: &[(egg::Symbol, &RecExpr<Math>)],
) -> Vec<Option<egg::Symbol>> {
    let (egraph, _, classes) = naming_graph(env, expr, named);
    named_nodes(&egraph, expr, &classes)
}

/// An e-graph holding `expr`, and the classes of the `named` expressions it contains.
fn naming_graph(
    env: &crate::ir::Env,
    expr: &RecExpr<Math>,
    named: &[(egg::Symbol, &RecExpr<Math>)],
) -> (MathGraph, Id, Vec<(egg::Symbol, Id)>) {
    let mut egraph = MathGraph::new(crate::ir::ShapeAnalysis { env: env.clone() });
    let root = egraph.add_expr(expr);
    rebuild(&mut egraph);
    // Looked up, not added: a definition the target does not use adds nothing to the run.
    let classes = named
        .iter()
        .filter_map(|(name, e)| egraph.lookup_expr(e).map(|class| (*name, class)))
        .collect();
    (egraph, root, classes)
}

/// The name of each node of `expr` (in `egraph`) whose class is one of `classes`.
fn named_nodes(egraph: &MathGraph, expr: &RecExpr<Math>, classes: &[(egg::Symbol, Id)]) -> Vec<Option<egg::Symbol>> {
    match egraph.lookup_expr_ids(expr) {
        Some(ids) if !classes.is_empty() => {
            let by_class: std::collections::HashMap<Id, egg::Symbol> =
                classes.iter().rev().map(|(n, c)| (egraph.find(*c), *n)).collect();
            ids.iter().map(|id| by_class.get(&egraph.find(*id)).copied()).collect()
        }
        _ => vec![None; expr.len()],
    }
}

/// One extraction over a whole e-graph, read for many classes: the best form of each, and
/// each definition's body written without its own name and the later ones. An `Extractor`
/// costs a pass over the whole e-graph, and a script with many definitions would otherwise
/// pay one per definition.
pub struct Extraction<'a> {
    egraph: &'a MathGraph,
    extractor: Extractor<'a, TextbookCost<'a>, Math, crate::ir::ShapeAnalysis>,
}

impl<'a> Extraction<'a> {
    pub fn new(egraph: &'a MathGraph) -> Extraction<'a> {
        let extractor = Extractor::new(egraph, TextbookCost { egraph, banned: &[] });
        Extraction { egraph, extractor }
    }

    pub fn best(&self, class: Id) -> RecExpr<Math> {
        self.extractor.find_best(class).1
    }

    /// The best form of a class that uses none of `banned`: its cheapest node other than a
    /// banned name, over its children's best forms. Should those use a banned name, a
    /// separate extraction that avoids them throughout.
    pub fn best_without(&self, class: Id, banned: &[egg::Symbol]) -> RecExpr<Math> {
        let mut cost = TextbookCost {
            egraph: self.egraph,
            banned,
        };
        let cheapest = self.egraph[class]
            .nodes
            .iter()
            .filter(|n| !matches!(n, Math::Symbol(s) if banned.contains(s)))
            .map(|n| (cost.cost(n, |c| self.extractor.find_best_cost(c)), n))
            .filter(|(c, _)| c.is_finite())
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, node)) = cheapest {
            let expr = node.build_recexpr(|id| self.extractor.find_best_node(id).clone());
            if !expr.iter().any(|n| matches!(n, Math::Symbol(s) if banned.contains(s))) {
                return expr;
            }
        }
        extract_without(self.egraph, class, banned)
    }
}

pub fn extract(egraph: &MathGraph, class: Id) -> RecExpr<Math> {
    extract_without(egraph, class, &[])
}

/// The best expression of the class that uses none of the `banned` names.
pub fn extract_without(egraph: &MathGraph, class: Id, banned: &[egg::Symbol]) -> RecExpr<Math> {
    let extractor = Extractor::new(egraph, TextbookCost { egraph, banned });
    extractor.find_best(class).1
}

/// Smallest expression, where a transpose of a leaf is nearly free, a transpose of
/// anything larger is dear, and a matrix product with a 1 x 1 factor (which should be a
/// scaling) is dearer still: so `Gᵀ·1` beats `(1ᵀ·G)ᵀ`, and `BᵀAᵀ` beats `(AB)ᵀ`.
/// A scaling is a little cheaper the more it covers, so scalars float outward.
pub struct TextbookCost<'a> {
    pub egraph: &'a MathGraph,
    /// Names that must not appear (definitions, when the expanded form is wanted).
    pub banned: &'a [egg::Symbol],
}

impl TextbookCost<'_> {
    fn is_one(&self, dim: Id) -> bool {
        matches!(&self.egraph[dim].data.kind, crate::ir::Kind::Dim(d) if d.is_one())
    }
}

impl CostFunction<Math> for TextbookCost<'_> {
    type Cost = f64;
    fn cost<C>(&mut self, enode: &Math, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let scalar = |id: &Id| self.egraph[*id].data.is_scalar();
        let own = match enode {
            Math::Symbol(s) if self.banned.contains(s) => f64::INFINITY,
            Math::Dim(_) => 0.0,
            Math::Rows(_) | Math::Cols(_) => 100.0,
            Math::Transpose(a) => {
                if costs(*a) <= 1.0 {
                    // 1ᵀ as a row of ones costs (below).
                    if self.egraph[*a].nodes.iter().any(|n| matches!(n, Math::Ones(_))) {
                        0.35
                    } else {
                        0.3
                    }
                } else if self.egraph[*a].nodes.iter().any(|n| matches!(n, Math::Add(_))) {
                    // (x − μ)ᵀ and (A + X)⁻ᵀ read better than xᵀ − μᵀ and (Aᵀ + Xᵀ)⁻¹.
                    0.5
                } else {
                    2.0
                }
            }
            Math::Mul([a, b]) if scalar(a) || scalar(b) => 3.0,
            // Between scalars, ⊙ and ⊘ are plain products and quotients: prefer those.
            Math::Had([a, _]) | Math::HDiv([a, _]) if scalar(a) => 2.0,
            Math::Add(_) => 1.2,
            Math::Zeros(_) => 0.5,
            // A row of ones is written 1ᵀ: it costs what a transposed leaf does, a little
            // more, so that 1_N·bᵀ (as a broadcast is written) beats b·1_Nᵀ.
            Math::Ones([r, c]) if self.is_one(*r) && !self.is_one(*c) => 1.35,
            // A block of ones is a constant, nearly free like zeros: G ⊙ (1 − t.^2) is the
            // simpler form of G − G ⊙ t.^2.
            Math::Ones(_) => 0.8,
            // Kronecker products and their adjoints are big objects: prefer any factored form.
            Math::Kron(_) => 3.0,
            Math::BlockSum(_) | Math::BlockAdd(_) => 5.0,
            // Slightly cheaper the more it scales, so constants move outward: 3·(XᵀXᵀ), not Xᵀ(3Xᵀ).
            // The discount is capped below the scaling's own cost, so a node always costs more
            // than each child: extraction can then never pick a cycle such as 1·A ≡ A.
            Math::Scale([s, a]) => {
                // A number leads: 2·μ, not μ·2.
                let lead = if self.egraph[*s].data.constant.is_some() {
                    0.99
                } else {
                    1.0
                };
                let inner = costs(*a);
                return lead + costs(*s) + inner - (0.01 * inner).min(0.5);
            }
            _ => 1.0,
        };
        enode.fold(own, |acc, id| acc + costs(id))
    }
}
