//! Reverse-mode differentiation as a directed pass over the target, driven by the
//! backprop rule table: each node's upstream is instantiated into the e-graph from its
//! operator's pattern, and contributions to the same node are summed. The pass visits
//! each target node once, so the derivative shares every subexpression it reuses.

use crate::ir::{Math, MathGraph};
use crate::rules::backprop_table;
use egg::{Id, Language, RecExpr, Subst, Symbol, Var};

/// An operator the rule table has no backprop rule for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRule {
    pub op: String,
}

/// Adds `target` to the e-graph and returns the class of ∂⟨seed, target⟩/∂wrt
/// (denominator layout: it has wrt's shape), or `None` when wrt does not occur.
pub fn backprop(
    egraph: &mut MathGraph,
    target: &RecExpr<Math>,
    wrt: Symbol,
    seed: Id,
) -> Result<Option<Id>, MissingRule> {
    let nodes = target.as_ref();
    let mut ids: Vec<Id> = Vec::with_capacity(nodes.len());
    let mut depends: Vec<bool> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let class = egraph.add(node.clone().map_children(|c| ids[usize::from(c)]));
        ids.push(class);
        let on_wrt =
            matches!(node, Math::Symbol(s) if *s == wrt) || node.children().iter().any(|c| depends[usize::from(*c)]);
        depends.push(on_wrt);
    }
    let table = backprop_table();
    let (g, e, a, b): (Var, Var, Var, Var) = (
        "?g".parse().expect("var"),
        "?e".parse().expect("var"),
        "?a".parse().expect("var"),
        "?b".parse().expect("var"),
    );
    let mut upstream: Vec<Option<Id>> = vec![None; nodes.len()];
    let Some(root) = nodes.len().checked_sub(1) else {
        return Ok(None);
    };
    upstream[root] = Some(seed);
    let mut result: Option<Id> = None;
    for i in (0..nodes.len()).rev() {
        let (Some(up), true) = (upstream[i], depends[i]) else {
            continue;
        };
        let node = &nodes[i];
        if let Math::Symbol(_) = node {
            result = Some(match result {
                Some(acc) => egraph.add(Math::Add([acc, up])),
                None => up,
            });
            continue;
        }
        let op = node.to_string();
        let children = node.children();
        for (pos, child) in children.iter().enumerate() {
            let child = usize::from(*child);
            if !depends[child] {
                continue;
            }
            let (pattern, _) = table
                .get(&(op.as_str(), pos))
                .ok_or_else(|| MissingRule { op: op.clone() })?;
            let mut subst = Subst::default();
            subst.insert(g, up);
            subst.insert(e, ids[i]);
            subst.insert(a, ids[usize::from(children[0])]);
            if let Some(second) = children.get(1) {
                subst.insert(b, ids[usize::from(*second)]);
            }
            let contribution = egraph.add_instantiation(&pattern.ast, &subst);
            upstream[child] = Some(match upstream[child] {
                Some(acc) => egraph.add(Math::Add([acc, contribution])),
                None => contribution,
            });
        }
    }
    Ok(result)
}
