//! Why a derivative is zero, where the rules can say: the target, simplified, no longer
//! mentions the variable. The e-graph that simplifies it keeps egg's explanations, so the
//! reason names the identities the proof used (each rule's own source text), not a sentence
//! written for one case. The numeric check stays what decides that a result is 0; this only
//! says why, when the derivation knows.

use crate::dim::Dim;
use crate::ir::{DimNode, Env, Math, MathGraph, ShapeAnalysis};
use crate::render::{self, text::Text};
use crate::simplify::{self, Limits};
use egg::{Language, RecExpr, Symbol};

/// The identities cited at most, in the order the proof first uses them.
const CITED: usize = 3;

/// "f = sum(softmax(X)) simplifies to m, which does not depend on X (…)", when the target
/// simplifies to an expression without `wrt`; `None` otherwise.
pub fn constant_target(env: &Env, target: &RecExpr<Math>, wrt: Symbol, label: &str, limits: Limits) -> Option<String> {
    let written = render::render(target, &Text).text;
    let target = &sandwiched(env, target);
    let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() }).with_explanations_enabled();
    let root = egraph.add_expr(target);
    simplify::rebuild(&mut egraph);
    let (mut egraph, _) = simplify::saturate(egraph, limits);
    let best = simplify::extract(&egraph, root);
    if crate::canon::depends_on(env, &best, wrt) {
        return None;
    }
    let shown = render::render(&best, &Text).text;
    let mut reason = format!("{label} = {written} simplifies to {shown}, which does not depend on {wrt}");
    // egg explains only between terms its e-graph holds as equal (it panics otherwise).
    let found = egraph.lookup_expr(&best).map(|id| egraph.find(id));
    if found != Some(egraph.find(root)) || egraph.lookup_expr(target).is_none() {
        return Some(reason);
    }
    let mut explanation = egraph.explain_equivalence(target, &best);
    let mut cited: Vec<&'static str> = Vec::new();
    let mut steps: Vec<&egg::FlatTerm<Math>> = Vec::new();
    let flat = explanation.make_flat_explanation();
    steps.extend(flat.iter());
    // A rewrite inside a subterm is recorded on that subterm's own flat term.
    while let Some(step) = steps.pop() {
        steps.extend(step.children.iter().rev());
        let used = match (step.forward_rule, step.backward_rule) {
            (Some(rule), _) => rule_of(rule.as_str()),
            (None, Some(rule)) => rule_of(rule.as_str()).map(|(r, back)| (r, !back)),
            // Constant folding by the shape analysis: arithmetic, not an identity to cite.
            (None, None) => None,
        };
        if let Some((rule, back)) = used {
            if !cited.contains(&rule.source) && cancels(rule, back) {
                cited.push(rule.source);
            }
        }
    }
    if !cited.is_empty() {
        let more = if cited.len() > CITED { "; …" } else { "" };
        let first: Vec<&str> = cited.iter().take(CITED).copied().collect();
        reason.push_str(&format!(" ({}{more})", first.join("; ")));
    }
    Some(reason)
}

/// `expr` with each sum of a matrix's entries written as `1ᵀ·A·1` (1ᵀA1 = Σ_ij A_ij): the
/// rules rewrite that way only, and it is in that form that a row sum (softmax's rows sum to 1,
/// `(E ⊘ (E·1·1ᵀ))·1 = 1`) or a column sum can be seen.
fn sandwiched(env: &Env, expr: &RecExpr<Math>) -> RecExpr<Math> {
    let data = crate::ir::expr_data(env, expr);
    let mut out = RecExpr::default();
    let mut ids = Vec::with_capacity(expr.as_ref().len());
    for original in expr.as_ref() {
        let node = original.clone().map_children(|c| ids[usize::from(c)]);
        let summed = match original {
            Math::Sum(a) => data[usize::from(*a)].shape().filter(|s| !s.is_scalar()).cloned(),
            _ => None,
        };
        let id = match node {
            Math::Sum(a) => match summed {
                Some(s) => {
                    let dim = |out: &mut RecExpr<Math>, d: &crate::dim::Dim| out.add(Math::Dim(DimNode(d.clone())));
                    let (one, rows, cols) = (
                        dim(&mut out, &Dim::one()),
                        dim(&mut out, &s.rows),
                        dim(&mut out, &s.cols),
                    );
                    let left = out.add(Math::Ones([one, rows]));
                    let right = out.add(Math::Ones([cols, one]));
                    let inner = out.add(Math::Mul([a, right]));
                    out.add(Math::Mul([left, inner]))
                }
                None => out.add(node),
            },
            other => out.add(other),
        };
        ids.push(id);
    }
    out
}

/// The rule a step of an explanation names, and whether it was used right to left.
fn rule_of(name: &str) -> Option<(&'static crate::rules::SimplifyRule, bool)> {
    let (base, back) = match name.strip_suffix("-rev") {
        Some(base) => (base, true),
        None => (name, false),
    };
    crate::rules::simplify_rules()
        .find(|r| r.name == base)
        .map(|r| (r, back))
}

/// Whether a rule, as used, makes a value disappear (`(E ⊘ (E·1·1ᵀ))·1 = 1` loses E but for
/// its size; `A − A = 0`): such identities are why a result does not depend on a variable. The
/// rules that only rearrange (`1·A = A`, scalars commute) are in every proof, and say nothing.
fn cancels(rule: &crate::rules::SimplifyRule, back: bool) -> bool {
    let (from, to) = if back {
        (rule.rhs, rule.lhs)
    } else {
        (rule.lhs, rule.rhs)
    };
    let (Ok(from), Ok(to)) = (from.parse::<egg::Pattern<Math>>(), to.parse::<egg::Pattern<Math>>()) else {
        return false;
    };
    let kept = values(&to);
    values(&from).iter().any(|v| !kept.contains(v))
}

/// The pattern variables standing for values, not only for sizes (`?c` in `ones ?c ?c`,
/// `?e` in `rows ?e`).
fn values(p: &egg::Pattern<Math>) -> Vec<egg::Var> {
    use egg::ENodeOrVar::{ENode, Var};
    let ast = p.ast.as_ref();
    let mut out = Vec::new();
    if let Some(Var(v)) = ast.last() {
        out.push(*v);
    }
    for node in ast {
        let ENode(n) = node else { continue };
        let sizes = matches!(
            n,
            Math::Ones(_) | Math::Zeros(_) | Math::Eye(_) | Math::Rows(_) | Math::Cols(_) | Math::DimValue(_)
        );
        for c in n.children() {
            if let Var(v) = &ast[usize::from(*c)] {
                if !sizes && !out.contains(v) {
                    out.push(*v);
                }
            }
        }
    }
    out
}
