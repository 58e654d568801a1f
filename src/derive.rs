//! Reverse-mode differentiation as a directed pass over the target, driven by the
//! backprop rule table: each node's upstream is instantiated into the e-graph from its
//! operator's pattern, and contributions to the same node are summed. The pass visits
//! each target node once, so the derivative shares every subexpression it reuses.

use crate::ir::{Math, MathGraph};
use crate::rules::{backprop_table, BackpropRule};
use egg::{Id, Language, RecExpr, Subst, Symbol, Var};

/// An operator the rule table has no backprop rule for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRule {
    pub op: String,
}

/// What the pass did, node by node of the target (indices into the target's array).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The e-class of each target node.
    pub classes: Vec<Id>,
    /// Whether each node depends on the variable.
    pub depends: Vec<bool>,
    /// ∂L/∂node for each node the variable flows through.
    pub upstream: Vec<Option<Id>>,
    /// For each node, the rules that sent it upstream, with the parent that used them.
    pub received: Vec<Vec<(usize, &'static BackpropRule)>>,
    /// The class of ∂L/∂wrt, if the variable occurs.
    pub result: Option<Id>,
}

/// Adds `target` to the e-graph and returns the class of ∂⟨seed, target⟩/∂wrt
/// (denominator layout: it has wrt's shape), or `None` when wrt does not occur.
pub fn backprop(
    egraph: &mut MathGraph,
    target: &RecExpr<Math>,
    wrt: Symbol,
    seed: Id,
) -> Result<Option<Id>, MissingRule> {
    backprop_traced(egraph, target, wrt, seed).map(|t| t.result)
}

/// As [`backprop`], keeping every node's upstream and the rules that produced it.
pub fn backprop_traced(
    egraph: &mut MathGraph,
    target: &RecExpr<Math>,
    wrt: Symbol,
    seed: Id,
) -> Result<Trace, MissingRule> {
    let nodes = target.as_ref();
    let mut trace = Trace {
        received: vec![Vec::new(); nodes.len()],
        upstream: vec![None; nodes.len()],
        ..Trace::default()
    };
    for node in nodes {
        let class = egraph.add(node.clone().map_children(|c| trace.classes[usize::from(c)]));
        trace.classes.push(class);
        let on_wrt = matches!(node, Math::Symbol(s) if *s == wrt)
            || node.children().iter().any(|c| trace.depends[usize::from(*c)]);
        trace.depends.push(on_wrt);
    }
    let table = backprop_table();
    let (g, e, a, b): (Var, Var, Var, Var) = (
        "?g".parse().expect("var"),
        "?e".parse().expect("var"),
        "?a".parse().expect("var"),
        "?b".parse().expect("var"),
    );
    let Some(root) = nodes.len().checked_sub(1) else {
        return Ok(trace);
    };
    trace.upstream[root] = Some(seed);
    for i in (0..nodes.len()).rev() {
        let (Some(up), true) = (trace.upstream[i], trace.depends[i]) else {
            continue;
        };
        let node = &nodes[i];
        if let Math::Symbol(_) = node {
            trace.result = Some(match trace.result {
                Some(acc) => egraph.add(Math::Add([acc, up])),
                None => up,
            });
            continue;
        }
        let op = node.to_string();
        let children = node.children();
        for (pos, child) in children.iter().enumerate() {
            let child = usize::from(*child);
            if !trace.depends[child] {
                continue;
            }
            let (pattern, rule) = table
                .get(&(op.as_str(), pos))
                .ok_or_else(|| MissingRule { op: op.clone() })?;
            let mut subst = Subst::default();
            subst.insert(g, up);
            subst.insert(e, trace.classes[i]);
            subst.insert(a, trace.classes[usize::from(children[0])]);
            if let Some(second) = children.get(1) {
                subst.insert(b, trace.classes[usize::from(*second)]);
            }
            let contribution = egraph.add_instantiation(&pattern.ast, &subst);
            trace.received[child].push((i, *rule));
            trace.upstream[child] = Some(match trace.upstream[child] {
                Some(acc) => egraph.add(Math::Add([acc, contribution])),
                None => contribution,
            });
        }
    }
    Ok(trace)
}
