//! The order of the terms of sums, Hadamard products and scalings in a result.
//!
//! Extraction picks the cheapest form, and swapping the terms of a sum costs nothing, so
//! which order comes out would depend on the e-graph's insertion order. This pass settles
//! it the way a reader expects: terms in the order their first variable appears in the
//! script (the upstream `G` first), negated terms after the others so they read as
//! subtractions. Hadamard products lead with `G`, then names, and close with elementwise
//! functions (`G ⊙ f'(X)`, `y ⊙ cos(x)`). A product of scalars scaling a matrix is written
//! as one scaling after another (`0.5·a·bᵀ/(aᵀ·X·b)^0.5`, not `(0.5·(aᵀ·X·b)^(−0.5))·a·bᵀ`).
//! A minus goes into a difference the script does not write that way round (`Xᵀ·(p − t)`),
//! and a trace of a product with an inverse starts at an inverse (`tr(Y⁻¹·B)`).

use crate::dim::{Dim, Shape};
use crate::ir::{Const, DimNode, ExprBuilder, Math};
use crate::render::text::reciprocal;
use egg::{Id, RecExpr, Symbol};
use std::collections::HashMap;

/// Where each name first appears when reading an expression left to right.
#[derive(Debug, Default, Clone)]
pub struct ReadingOrder {
    rank: HashMap<Symbol, usize>,
    upstream: Option<Symbol>,
    /// The differences the script writes, each as the names of its added and its
    /// subtracted terms.
    differences: Differences,
}

impl ReadingOrder {
    /// Ranks the names of `expr` by first appearance, after the names already ranked.
    pub fn read(&mut self, expr: &RecExpr<Math>) {
        if let Some(root) = root(expr) {
            self.visit(expr, root, &mut vec![false; expr.len()]);
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

    /// A subexpression used twice is read once: its names are ranked at its first use, and
    /// reading it again (exponentially often, through a chain of fan-outs) changes nothing.
    fn visit(&mut self, expr: &RecExpr<Math>, id: Id, visited: &mut [bool]) {
        if std::mem::replace(&mut visited[usize::from(id)], true) {
            return;
        }
        let node = &expr[id];
        if matches!(node, Math::Add(_)) {
            if let Some(difference) = difference_names(expr, id) {
                self.differences.insert(difference);
            }
        }
        if let Math::Symbol(s) = node {
            let next = self.rank.len();
            self.rank.entry(*s).or_insert(next);
        }
        for &child in node.children() {
            self.visit(expr, child, visited);
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
        let expr = absorb_minus(expr, &self.differences);
        let mut out = ExprBuilder::default();
        if let Some(root) = root(&expr) {
            self.build(&expr, root, &mut out);
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
            // A trace of a product with an inverse in it starts at an inverse, as the Cookbook
            // writes tr(Y⁻¹·∂Y): of those rotations, the one whose names read earliest.
            Math::Trace(x) if matches!(expr[*x], Math::Mul(_)) => {
                let mut factors = Vec::new();
                flatten(expr, *x, product, &mut factors);
                let inverse = |f: Id| match &expr[f] {
                    Math::Inv(_) => true,
                    Math::Transpose(y) => matches!(expr[*y], Math::Inv(_)),
                    _ => false,
                };
                let ranks: Vec<usize> = factors
                    .iter()
                    .map(|&f| self.leading(expr, f).unwrap_or(usize::MAX))
                    .collect();
                let n = factors.len();
                let start = (0..n)
                    .filter(|&k| inverse(factors[k]))
                    .min_by_key(|&k| (0..n).map(|j| ranks[(k + j) % n]).collect::<Vec<_>>())
                    .unwrap_or(0);
                let built: Vec<Id> = (0..n)
                    .map(|j| self.build(expr, factors[(start + j) % n], out))
                    .collect();
                let product = built
                    .into_iter()
                    .reduce(|acc, f| out.add(Math::Mul([acc, f])))
                    .expect("a product has factors");
                out.add(Math::Trace(product))
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
            // s·b⁻ᵏ between scalars reads as s/bᵏ: the reciprocal scales.
            Math::Scale([s, a]) if reciprocal(expr, *a).is_some() && reciprocal(expr, *s).is_none() => {
                let (s, a) = (self.build(expr, *s, out), self.build(expr, *a, out));
                out.add(Math::Scale([a, s]))
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

fn product(node: &Math) -> Option<[Id; 2]> {
    match node {
        Math::Mul(args) => Some(*args),
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

/// The names of the added and of the subtracted terms of a sum with both.
fn difference_names(expr: &RecExpr<Math>, id: Id) -> Option<(Vec<Symbol>, Vec<Symbol>)> {
    let mut terms = Vec::new();
    flatten(expr, id, sum, &mut terms);
    let (minus, plus): (Vec<Id>, Vec<Id>) = terms.into_iter().partition(|&t| negated(expr, t));
    let names = |ids: Vec<Id>| {
        let mut names: Vec<Symbol> = Vec::new();
        for t in ids {
            let mut seen = std::collections::HashSet::new();
            let mut stack = vec![t];
            while let Some(n) = stack.pop() {
                if seen.insert(n) {
                    if let Math::Symbol(s) = expr[n] {
                        names.push(s);
                    }
                    stack.extend(expr[n].children());
                }
            }
        }
        names.sort_by_key(|s| s.as_str());
        names.dedup();
        names
    };
    (!minus.is_empty() && !plus.is_empty()).then(|| (names(plus), names(minus)))
}

/// `expr` with a minus in front of a difference taken into it: `−(Y − S) = S − Y`, and
/// `−Xᵀ·(t − p) = Xᵀ·(p − t)` when the product has one difference among its factors and
/// the script does not write that difference this way round (`−S⁻¹·(x − μ)` stays).
fn absorb_minus(expr: &RecExpr<Math>, script: &Differences) -> RecExpr<Math> {
    let mut out = ExprBuilder::default();
    if let Some(root) = root(expr) {
        absorb(expr, root, script, &mut out, &mut HashMap::new());
    }
    out.finish()
}

type Differences = std::collections::HashSet<(Vec<Symbol>, Vec<Symbol>)>;

fn absorb(expr: &RecExpr<Math>, id: Id, script: &Differences, out: &mut ExprBuilder, memo: &mut HashMap<Id, Id>) -> Id {
    if let Some(&done) = memo.get(&id) {
        return done;
    }
    let built = match &expr[id] {
        Math::Scale([s, a]) if expr[*s] == Math::Num(Const(-1.0)) => {
            // −(Y − S) always; a difference deeper in a product only if the script does not
            // write it this way round, and only if it is the one place the minus can go.
            let mut places = Vec::new();
            if matches!(expr[*a], Math::Add(_)) {
                places.push(*a);
            } else {
                differences_within(expr, *a, script, &mut places);
            }
            match places.as_slice() {
                [place] if is_difference(expr, *place) => flip_at(expr, *a, *place, script, out, memo),
                // −(u ⊘ v + w) with a difference in u: each term takes the minus, the one
                // with a difference into it ((1 − t) ⊘ v − w).
                [sum] => match absorbing_terms(expr, *sum, script) {
                    Some(terms) => {
                        let negated: Vec<Id> = terms
                            .into_iter()
                            .map(|(t, place)| match place {
                                Some(place) => flip_at(expr, t, place, script, out, memo),
                                None => negate(expr, t, script, out, memo),
                            })
                            .collect();
                        negated
                            .into_iter()
                            .reduce(|acc, t| out.add(Math::Add([acc, t])))
                            .expect("a sum has terms")
                    }
                    None => {
                        let node = expr[id].clone().map_children(|c| absorb(expr, c, script, out, memo));
                        out.add(node)
                    }
                },
                _ => {
                    let node = expr[id].clone().map_children(|c| absorb(expr, c, script, out, memo));
                    out.add(node)
                }
            }
        }
        node => {
            let node = node.clone().map_children(|c| absorb(expr, c, script, out, memo));
            out.add(node)
        }
    };
    memo.insert(id, built);
    built
}

/// The terms of a sum none of whose terms is subtracted, each with the one difference a minus
/// could go into, when at least one has such a place.
fn absorbing_terms(expr: &RecExpr<Math>, sum_id: Id, script: &Differences) -> Option<Vec<(Id, Option<Id>)>> {
    let mut terms = Vec::new();
    flatten(expr, sum_id, sum, &mut terms);
    if terms.iter().any(|&t| negated(expr, t)) {
        return None;
    }
    let placed: Vec<(Id, Option<Id>)> = terms
        .into_iter()
        .map(|t| {
            let mut places = Vec::new();
            differences_within(expr, t, script, &mut places);
            (t, (places.len() == 1).then(|| places[0]))
        })
        .collect();
    placed.iter().any(|(_, p)| p.is_some()).then_some(placed)
}

/// Whether a sum has terms both added and subtracted.
fn is_difference(expr: &RecExpr<Math>, id: Id) -> bool {
    let mut terms = Vec::new();
    flatten(expr, id, sum, &mut terms);
    terms.len() > 1 && terms.iter().any(|&t| negated(expr, t))
}

/// The sums a minus in front of `id` could go into: those reached through products,
/// Hadamard products, transposes, scalings, sums and traces (each linear in that argument),
/// one entry per place, other than a difference the script writes as it stands.
fn differences_within(expr: &RecExpr<Math>, id: Id, script: &Differences, places: &mut Vec<Id>) {
    match &expr[id] {
        Math::Add(_) => {
            let written = difference_names(expr, id).is_some_and(|names| script.contains(&names));
            if is_difference(expr, id) && !written {
                places.push(id);
            }
        }
        node => {
            for &c in linear_arguments(node) {
                differences_within(expr, c, script, places);
            }
        }
    }
}

/// The arguments a node is linear in: a minus in front of it can go into any one of them.
fn linear_arguments(node: &Math) -> &[Id] {
    match node {
        Math::Mul(args) | Math::Had(args) | Math::Scale(args) => args,
        Math::HDiv([a, _]) | Math::Transpose(a) | Math::Sum(a) | Math::Trace(a) => std::slice::from_ref(a),
        _ => &[],
    }
}

/// `id` rebuilt with the difference at `place` negated (`t − p` becomes `p − t`).
fn flip_at(
    expr: &RecExpr<Math>,
    id: Id,
    place: Id,
    script: &Differences,
    out: &mut ExprBuilder,
    memo: &mut HashMap<Id, Id>,
) -> Id {
    if id == place {
        let mut terms = Vec::new();
        flatten(expr, id, sum, &mut terms);
        let negated: Vec<Id> = terms.iter().map(|&t| negate(expr, t, script, out, memo)).collect();
        return negated
            .into_iter()
            .reduce(|acc, t| out.add(Math::Add([acc, t])))
            .expect("a difference has terms");
    }
    let linear = linear_arguments(&expr[id]).len();
    if linear == 0 {
        return absorb(expr, id, script, out, memo);
    }
    let children: Vec<Id> = expr[id].children().to_vec();
    let built: Vec<Id> = children
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            if k < linear {
                flip_at(expr, c, place, script, out, memo)
            } else {
                absorb(expr, c, script, out, memo)
            }
        })
        .collect();
    let mut next = built.into_iter();
    let node = expr[id]
        .clone()
        .map_children(|_| next.next().expect("as many children"));
    out.add(node)
}

/// `−t`, without a double minus.
fn negate(expr: &RecExpr<Math>, id: Id, script: &Differences, out: &mut ExprBuilder, memo: &mut HashMap<Id, Id>) -> Id {
    match &expr[id] {
        Math::Scale([s, x]) if matches!(expr[*s], Math::Num(c) if c.0 < 0.0) => {
            let Math::Num(c) = expr[*s] else {
                unreachable!("matched a number")
            };
            let x = absorb(expr, *x, script, out, memo);
            if c.0 == -1.0 {
                x
            } else {
                let k = out.num(-c.0);
                out.add(Math::Scale([k, x]))
            }
        }
        _ => {
            let t = absorb(expr, id, script, out, memo);
            let minus = out.num(-1.0);
            out.add(Math::Scale([minus, t]))
        }
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

/// `expr` with each `exp(a)/sum(exp(a))` of a column `a` written as the language's softmax,
/// `exp(a) ⊘ (sum(exp(a))·1)`, also where the scaling stands over a product with it first
/// (`exp(a)·1ᵀ/sum(exp(a))` is `softmax(a)·1ᵀ`, as s·(A·B) = (s·A)·B). Extraction prefers the
/// scalar quotient, which is shorter but hides the function the script used.
pub fn softmax_restored(env: &crate::ir::Env, expr: &RecExpr<Math>) -> RecExpr<Math> {
    let data = crate::ir::expr_data(env, expr);
    let column_exp = |x: Id, k: Id| -> Option<(Id, Shape)> {
        let Math::Fn(crate::ops::Func::Exp, args) = &expr[x] else {
            return None;
        };
        let shape = data[usize::from(args[0])].shape().filter(|s| s.is_column())?.clone();
        match expr[k] {
            Math::Pow([total, m])
                if matches!(expr[total], Math::Sum(e) if e == x) && matches!(expr[m], Math::Num(c) if c.0 == -1.0) =>
            {
                Some((total, shape))
            }
            _ => None,
        }
    };
    let mut out = RecExpr::default();
    let mut ids: Vec<Id> = Vec::with_capacity(expr.as_ref().len());
    for node in expr.as_ref() {
        let found = match node {
            Math::Scale([k, x]) => match expr[*x] {
                Math::Mul([e, rest]) => column_exp(e, *k).map(|(t, s)| (e, t, s, Some(rest))),
                _ => column_exp(*x, *k).map(|(t, s)| (*x, t, s, None)),
            },
            _ => None,
        };
        let id = match found {
            Some((e, total, shape, rest)) => {
                let (e, total) = (ids[usize::from(e)], ids[usize::from(total)]);
                let n = out.add(Math::Dim(DimNode(shape.rows.clone())));
                let one = out.add(Math::Dim(DimNode(Dim::one())));
                let ones = out.add(Math::Ones([n, one]));
                let denominator = out.add(Math::Scale([total, ones]));
                let softmax = out.add(Math::HDiv([e, denominator]));
                match rest {
                    Some(r) => out.add(Math::Mul([softmax, ids[usize::from(r)]])),
                    None => softmax,
                }
            }
            None => out.add(node.clone().map_children(|c| ids[usize::from(c)])),
        };
        ids.push(id);
    }
    out
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
    fn a_minus_goes_into_a_difference_the_script_does_not_write() {
        // −(Y − S) = S − Y.
        assert_eq!(
            arranged("(+ S Y)", "(scale -1 (+ Y (scale -1 S)))"),
            "(+ S (scale -1 Y))"
        );
        // −Xᵀ·(t − p) = Xᵀ·(p − t): the script has no t − p.
        let logistic =
            "(+ (* (T t) (log p)) (* (T (+ (ones @1 @n) (scale -1 t))) (log (+ (ones @n @1) (scale -1 p)))))";
        assert_eq!(
            arranged(logistic, "(scale -1 (* (T X) (+ t (scale -1 p))))"),
            "(* (T X) (+ p (scale -1 t)))"
        );
        // Through Hadamard products too, when there is one difference to take it.
        assert_eq!(
            arranged("(+ P Y)", "(scale -1 (* (T X) (.* (* (+ Y (scale -1 P)) W) S)))"),
            "(* (T X) (.* S (* (+ P (scale -1 Y)) W)))"
        );
        // −(u ⊘ v + w) with a difference in u: each term takes the minus.
        assert_eq!(
            arranged(
                "(+ t p)",
                "(scale -1 (+ (./ (+ t (scale -1 (ones @n @1))) v) (./ t p)))"
            ),
            "(+ (./ (+ (ones @n @1) (scale -1 t)) v) (scale -1 (./ t p)))"
        );
        // −S⁻¹·(x − μ) stays: the script writes x − μ.
        let gaussian = "(* (T (+ x (scale -1 mu))) (* (inv S) (+ x (scale -1 mu))))";
        let kept = "(scale -1 (* (inv S) (+ x (scale -1 mu))))";
        assert_eq!(arranged(gaussian, kept), kept);
    }

    #[test]
    fn a_product_of_scalars_scales_in_turn() {
        assert_eq!(
            arranged("x", "(scale (scale 0.5 (pow s -0.5)) x)"),
            "(scale 0.5 (scale (pow s -0.5) x))"
        );
    }
}
