//! Reverse-mode differentiation as a directed pass over the target, driven by the
//! backprop rule table: each node's upstream is instantiated into the e-graph from its
//! operator's pattern, and contributions to the same node are summed. The pass visits
//! each target node once, so the derivative shares every subexpression it reuses.
//!
//! Sharing in the e-graph is not sharing in what is shown: a formula is written as a tree,
//! and an upstream that two arguments receive is written twice. Through a chain of such
//! nodes (the residual connection `h + tanh(h·W)`, every layer) the written gradient doubles
//! per layer. [`backprop_shared`] gives such an upstream a name (`dh2`), as a hand-written
//! backward pass does, so that each upstream is written once, over the names before it.

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
    /// Whether each node depends on the variable (on one of them, for several).
    pub depends: Vec<bool>,
    /// ∂L/∂node for each node the variable flows through.
    pub upstream: Vec<Option<Id>>,
    /// For each node, the rules that sent it upstream, with the parent that used them.
    pub received: Vec<Vec<(usize, &'static BackpropRule)>>,
    /// The class of ∂L/∂wrt for each variable, in the order asked, if it occurs.
    pub results: Vec<Option<Id>>,
    /// The upstreams given a name, in the order they were named (each over the earlier ones).
    pub shared: Vec<Shared>,
}

/// An upstream gradient written once under a name and referred to by it.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The target node whose upstream it is.
    pub node: usize,
    pub name: Symbol,
    /// The class of the upstream itself, over the variables and the earlier names.
    pub class: Id,
}

/// An upstream written more often than this many nodes is given a name (see [`backprop_shared`]).
/// Below it a copy costs little and reads better inline: none of the corpus's gradients
/// changes, while in a chain of fan-outs every unnamed copy stays this small.
pub const SHARE_ABOVE: usize = 256;

/// Adds `target` to the e-graph and returns the class of ∂⟨seed, target⟩/∂wrt
/// (denominator layout: it has wrt's shape), or `None` when wrt does not occur.
pub fn backprop(
    egraph: &mut MathGraph,
    target: &RecExpr<Math>,
    wrt: Symbol,
    seed: Id,
) -> Result<Option<Id>, MissingRule> {
    backprop_traced(egraph, target, wrt, seed).map(|t| t.results[0])
}

/// As [`backprop`], keeping every node's upstream and the rules that produced it.
pub fn backprop_traced(
    egraph: &mut MathGraph,
    target: &RecExpr<Math>,
    wrt: Symbol,
    seed: Id,
) -> Result<Trace, MissingRule> {
    backprop_shared(egraph, target, &[wrt], seed, &[], &mut |_, _| None)
}

/// As [`backprop_traced`], for every variable of `wrts` in one pass (each node's upstream
/// does not depend on which variables are asked for, so the pass is shared), naming the
/// upstreams that would otherwise be written out more than once. Each named upstream is a
/// fresh symbol in the e-graph, with the node's shape, and the node's arguments receive
/// the symbol.
///
/// `name(node, size)` is asked for a name (`None`: leave it unnamed) for each node whose
/// arguments' rules refer to its upstream at least twice in all (two arguments on the
/// variables' paths, as in `h + tanh(h·W)`, or one rule that uses it twice), with the
/// upstream's size as a tree, counting the names given so far as one node each, and so
/// the target nodes that `shown_by_name` marks (the script's definitions, which the
/// result is written with). A caller
/// that names at least every such upstream over [`SHARE_ABOVE`] nodes leaves no unnamed
/// upstream written twice larger than that bound, so every upstream is written once over
/// the names before it plus such bounded copies: the written gradient, all pieces
/// together, grows linearly with the target's nodes, for any DAG. Nodes whose upstream is
/// used once are never asked about, so a target without fan-out is derived as before.
pub fn backprop_shared(
    egraph: &mut MathGraph,
    target: &RecExpr<Math>,
    wrts: &[Symbol],
    seed: Id,
    shown_by_name: &[bool],
    name: &mut dyn FnMut(usize, usize) -> Option<Symbol>,
) -> Result<Trace, MissingRule> {
    let nodes = target.as_ref();
    let mut trace = Trace {
        received: vec![Vec::new(); nodes.len()],
        upstream: vec![None; nodes.len()],
        results: vec![None; wrts.len()],
        ..Trace::default()
    };
    for node in nodes {
        let class = egraph.add(node.clone().map_children(|c| trace.classes[usize::from(c)]));
        trace.classes.push(class);
        let on_wrt = matches!(node, Math::Symbol(s) if wrts.contains(s))
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
    let mut sizes = TreeSizes::default();
    for (i, _) in shown_by_name.iter().enumerate().filter(|(_, shown)| **shown) {
        sizes.named(trace.classes[i]);
    }
    for i in (0..nodes.len()).rev() {
        let (Some(mut up), true) = (trace.upstream[i], trace.depends[i]) else {
            continue;
        };
        let node = &nodes[i];
        if !matches!(node, Math::Symbol(_)) && references(table, g, node, &trace.depends) >= 2 {
            if let Some(symbol) = name(i, sizes.of(egraph, up)) {
                let shape = egraph[trace.classes[i]].data.shape().cloned();
                if let Some(shape) = shape {
                    egraph.analysis.env.shapes.insert(symbol, shape);
                    trace.shared.push(Shared {
                        node: i,
                        name: symbol,
                        class: up,
                    });
                    up = egraph.add(Math::Symbol(symbol));
                    sizes.named(up);
                }
            }
        }
        if let Math::Symbol(s) = node {
            // The same variable may be asked for twice (`--wrt x,x`).
            for (k, _) in wrts.iter().enumerate().filter(|(_, w)| *w == s) {
                trace.results[k] = Some(match trace.results[k] {
                    Some(acc) => egraph.add(Math::Add([acc, up])),
                    None => up,
                });
            }
            continue;
        }
        let op = node.to_string();
        let children = node.children();
        for (pos, child) in children.iter().enumerate() {
            let child = usize::from(*child);
            if !trace.depends[child] {
                continue;
            }
            let entry = table
                .get(&(op.as_str(), pos))
                .ok_or_else(|| MissingRule { op: op.clone() })?;
            let mut subst = Subst::default();
            subst.insert(g, up);
            subst.insert(e, trace.classes[i]);
            subst.insert(a, trace.classes[usize::from(children[0])]);
            if let Some(second) = children.get(1) {
                subst.insert(b, trace.classes[usize::from(*second)]);
            }
            let contribution = egraph.add_instantiation(entry.pattern(), &subst);
            trace.received[child].push((i, entry.rule));
            trace.upstream[child] = Some(match trace.upstream[child] {
                Some(acc) => egraph.add(Math::Add([acc, contribution])),
                None => contribution,
            });
        }
    }
    Ok(trace)
}

/// How many times the rules of a node's arguments on the variable's path refer to its upstream.
fn references(table: &crate::rules::BackpropTable, g: Var, node: &Math, depends: &[bool]) -> usize {
    let op = node.to_string();
    node.children()
        .iter()
        .enumerate()
        .filter(|(_, c)| depends[usize::from(**c)])
        .map(|(pos, _)| {
            table.get(&(op.as_str(), pos)).map_or(0, |entry| {
                entry
                    .pattern()
                    .as_ref()
                    .iter()
                    .filter(|n| matches!(n, egg::ENodeOrVar::Var(v) if *v == g))
                    .count()
            })
        })
        .sum()
}

/// The size of a class written as a tree, over an e-graph still being built by the pass
/// (no unions yet, so each class holds one node); a named upstream counts as one node.
#[derive(Default)]
struct TreeSizes {
    memo: std::collections::HashMap<Id, usize>,
}

impl TreeSizes {
    fn of(&mut self, egraph: &MathGraph, class: Id) -> usize {
        let mut todo = vec![class];
        while let Some(&id) = todo.last() {
            if self.memo.contains_key(&id) {
                todo.pop();
                continue;
            }
            let node = &egraph[id].nodes[0];
            let missing: Vec<Id> = node
                .children()
                .iter()
                .copied()
                .filter(|c| !self.memo.contains_key(c))
                .collect();
            if missing.is_empty() {
                // Saturating: a tree can outgrow any integer long before the DAG does.
                let size = node
                    .children()
                    .iter()
                    .fold(1usize, |acc, c| acc.saturating_add(self.memo[c]));
                self.memo.insert(id, size);
                todo.pop();
            } else {
                todo.extend(missing);
            }
        }
        self.memo[&class]
    }

    fn named(&mut self, class: Id) {
        self.memo.insert(class, 1);
    }
}

/// Whether `target` fans out enough for its gradient to need names: written as a tree it
/// is over [`SHARE_ABOVE`] nodes and over twice its size as a DAG (a value used in more
/// than one place, in a chain: the residual connection of every layer).
pub fn fans_out(target: &RecExpr<Math>) -> bool {
    let mut tree: Vec<usize> = Vec::with_capacity(target.len());
    for node in target.iter() {
        // Saturating: a tree can outgrow any integer long before the DAG does.
        let size = node
            .children()
            .iter()
            .fold(1usize, |acc, c| acc.saturating_add(tree[usize::from(*c)]));
        tree.push(size);
    }
    let written = tree.last().copied().unwrap_or(0);
    written > SHARE_ABOVE && written > 2 * target.len()
}

/// Whether fan-out at the script's values compounds: along some path of `target`, one of
/// them (`named`) used twice on the variables' paths depends on another one so used.
/// Each such value's upstream is written into both of its uses, so unnamed, the
/// gradient doubles at every link of such a chain (two links in a residual network
/// of two layers, `h1` and `h2`); a value used twice alone (`shifted` in a softmax, `xc`
/// in a layer norm) only repeats its upstream, and the whole gradient in one e-graph
/// may cancel across the two uses.
///
/// A softmax shifted by each row's maximum (`ismax`) does not count: the cross-entropy's
/// cancellation (`probs − Y`) runs from one value's upstream into another's, which
/// named pieces, each simplified on its own, cannot see (`kl.py` and
/// `softmax_vectorized.py` of the corpus read worse in pieces).
pub fn chains_fan_out(target: &RecExpr<Math>, wrts: &[Symbol], named: &[bool]) -> bool {
    let nodes = target.as_ref();
    if nodes.iter().any(|n| matches!(n, Math::IsMax(_))) {
        return false;
    }
    let mut depends = Vec::with_capacity(nodes.len());
    let mut uses = vec![0usize; nodes.len()];
    for node in nodes {
        let on_wrt = matches!(node, Math::Symbol(s) if wrts.contains(s))
            || node.children().iter().any(|c| depends[usize::from(*c)]);
        depends.push(on_wrt);
        for c in node.children() {
            uses[usize::from(*c)] += 1;
        }
    }
    let mut links: Vec<usize> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let below = node
            .children()
            .iter()
            .map(|c| links[usize::from(*c)])
            .max()
            .unwrap_or(0);
        let fans = depends[i] && uses[i] >= 2 && named.get(i).copied().unwrap_or(false);
        links.push(below + usize::from(fans));
    }
    links.iter().any(|&n| n >= 2)
}
