//! The order of the terms of sums, Hadamard products and scalings in a result.
//!
//! Extraction picks the cheapest form, and swapping the terms of a sum costs nothing, so
//! which order comes out would depend on the e-graph's insertion order. This pass settles
//! it the way a reader expects: terms in the order their first variable appears in the
//! script (the upstream `G` first), negated terms after the others so they read as
//! subtractions. Hadamard products lead with `G`, then names, and close with elementwise
//! functions (`G ⊙ f'(X)`, `y ⊙ cos(x)`). A product of scalars scaling a matrix is written
//! as one scaling after another (`0.5·a·bᵀ/(aᵀ·X·b)^0.5`, not `(0.5·(aᵀ·X·b)^(−0.5))·a·bᵀ`).

use crate::ir::{ExprBuilder, Math};
use egg::{Id, RecExpr, Symbol};
use std::collections::HashMap;

/// Where each name first appears when reading an expression left to right.
#[derive(Debug, Default, Clone)]
pub struct ReadingOrder {
    rank: HashMap<Symbol, usize>,
    upstream: Option<Symbol>,
}

impl ReadingOrder {
    /// Ranks the names of `expr` by first appearance, after the names already ranked.
    pub fn read(&mut self, expr: &RecExpr<Math>) {
        if let Some(root) = root(expr) {
            self.visit(expr, root);
        }
    }

    /// Ranks the upstream gradient first; it also leads Hadamard products (`G ⊙ f'(X)`).
    pub fn upstream(&mut self, name: Symbol) {
        for r in self.rank.values_mut() {
            *r += 1;
        }
        self.rank.insert(name, 0);
        self.upstream = Some(name);
    }

    /// Where a name first appears (the upstream `G` first).
    pub fn rank(&self, name: Symbol) -> Option<usize> {
        self.rank.get(&name).copied()
    }

    /// Gives `name` the rank of the first name of `expr` (a definition reads as its body).
    pub fn alias(&mut self, name: Symbol, expr: &RecExpr<Math>) {
        if let Some(r) = root(expr).and_then(|root| self.leading(expr, root)) {
            self.rank.entry(name).or_insert(r);
        }
    }

    fn visit(&mut self, expr: &RecExpr<Math>, id: Id) {
        let node = &expr[id];
        if let Math::Symbol(s) = node {
            let next = self.rank.len();
            self.rank.entry(*s).or_insert(next);
        }
        for &child in node.children() {
            self.visit(expr, child);
        }
    }

    /// The rank of the first ranked name of a subexpression.
    fn leading(&self, expr: &RecExpr<Math>, id: Id) -> Option<usize> {
        match &expr[id] {
            Math::Symbol(s) => self.rank.get(s).copied(),
            node => node.children().iter().find_map(|&c| self.leading(expr, c)),
        }
    }

    /// `expr` with the terms of every sum and Hadamard product in order.
    pub fn arrange(&self, expr: &RecExpr<Math>) -> RecExpr<Math> {
        let mut out = ExprBuilder::default();
        if let Some(root) = root(expr) {
            self.build(expr, root, &mut out);
        }
        out.finish()
    }

    fn build(&self, expr: &RecExpr<Math>, id: Id, out: &mut ExprBuilder) -> Id {
        let node = &expr[id];
        match node {
            Math::Add(_) => {
                let mut terms = Vec::new();
                flatten(expr, id, sum, &mut terms);
                // A term without names (1, I) stays behind the term before it; the sort is
                // stable, so terms that tie keep the order extraction gave them.
                let mut previous = 0;
                let mut keyed: Vec<((bool, usize), Id)> = terms
                    .into_iter()
                    .map(|t| {
                        previous = self.leading(expr, t).unwrap_or(previous);
                        ((negated(expr, t), previous), t)
                    })
                    .collect();
                keyed.sort_by_key(|(key, _)| *key);
                let built: Vec<Id> = keyed.iter().map(|(_, t)| self.build(expr, *t, out)).collect();
                built
                    .into_iter()
                    .reduce(|acc, t| out.add(Math::Add([acc, t])))
                    .expect("a sum has terms")
            }
            Math::Had(_) => {
                let mut factors = Vec::new();
                flatten(expr, id, hadamard, &mut factors);
                factors.sort_by_key(|&f| {
                    let upstream = self.upstream.is_some_and(|g| expr[f] == Math::Symbol(g));
                    (
                        !upstream,
                        factor_kind(expr, f),
                        self.leading(expr, f).unwrap_or(usize::MAX),
                    )
                });
                let built: Vec<Id> = factors.iter().map(|&f| self.build(expr, f, out)).collect();
                built
                    .into_iter()
                    .reduce(|acc, f| out.add(Math::Had([acc, f])))
                    .expect("a product has factors")
            }
            Math::Scale([s, a]) if matches!(expr[*s], Math::Scale(_)) => {
                // (s·t)·A reads as s·(t·A): each scalar factor applies in turn, a number first,
                // and a reciprocal can then be written as a division.
                let mut factors = Vec::new();
                flatten(expr, *s, scaling, &mut factors);
                let mut acc = self.build(expr, *a, out);
                for &f in factors.iter().rev() {
                    let factor = self.build(expr, f, out);
                    acc = out.add(Math::Scale([factor, acc]));
                }
                acc
            }
            _ => {
                let node = node.clone().map_children(|c| self.build(expr, c, out));
                out.add(node)
            }
        }
    }
}

fn root(expr: &RecExpr<Math>) -> Option<Id> {
    (!expr.as_ref().is_empty()).then(|| Id::from(expr.as_ref().len() - 1))
}

use egg::Language;

/// The operands of a chain of one associative operator, given as the arguments of one of
/// its nodes.
fn flatten(expr: &RecExpr<Math>, id: Id, op: fn(&Math) -> Option<[Id; 2]>, out: &mut Vec<Id>) {
    match op(&expr[id]) {
        Some([a, b]) => {
            flatten(expr, a, op, out);
            flatten(expr, b, op, out);
        }
        None => out.push(id),
    }
}

fn sum(node: &Math) -> Option<[Id; 2]> {
    match node {
        Math::Add(args) => Some(*args),
        _ => None,
    }
}

fn hadamard(node: &Math) -> Option<[Id; 2]> {
    match node {
        Math::Had(args) => Some(*args),
        _ => None,
    }
}

fn scaling(node: &Math) -> Option<[Id; 2]> {
    match node {
        Math::Scale(args) => Some(*args),
        _ => None,
    }
}

/// Names (and their transposes) lead a Hadamard product and elementwise functions close
/// it: `y ⊙ cos(x)`, `A ⊙ (G·Vᵀ)`, `((P − Y)·Wᵀ) ⊙ step(Z)`.
fn factor_kind(expr: &RecExpr<Math>, id: Id) -> u8 {
    match &expr[id] {
        Math::Symbol(_) => 0,
        Math::Transpose(x) if matches!(expr[*x], Math::Symbol(_)) => 0,
        node if node.is_elementwise() => 2,
        Math::EPow([x, _]) if expr[*x].is_elementwise() => 2,
        _ => 1,
    }
}

/// Whether a term is written with a leading minus (a negative factor in front).
fn negated(expr: &RecExpr<Math>, id: Id) -> bool {
    match &expr[id] {
        Math::Num(c) => c.0 < 0.0,
        Math::Scale([s, _]) => negated(expr, *s),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arranged(script_order: &str, expr: &str) -> String {
        let mut reading = ReadingOrder::default();
        reading.read(&script_order.parse().expect("an expression"));
        reading.arrange(&expr.parse().expect("an expression")).to_string()
    }

    #[test]
    fn sums_follow_the_script_and_end_with_subtractions() {
        let script = "(+ (* X W) (* a (T b)))";
        assert_eq!(arranged(script, "(+ (T b) (* X W))"), "(+ (* X W) (T b))");
        assert_eq!(arranged(script, "(+ (scale -1 X) (T b))"), "(+ (T b) (scale -1 X))");
    }

    #[test]
    fn a_product_of_scalars_scales_in_turn() {
        assert_eq!(
            arranged("x", "(scale (scale 0.5 (pow s -0.5)) x)"),
            "(scale 0.5 (scale (pow s -0.5) x))"
        );
    }
}
