//! Matrix products in the canonical form: flattened words with inverse pairs cancelled
//! (Cookbook eq. 1 for square factors), transposes pushed to the leaves, and long products
//! written the way with fewer transposes.

use super::*;

/// Products at least this long are written with the fewer transposes (see `orient`).
pub(super) const LONG_PRODUCT: usize = 8;

/// Writes a long product with transposes pushed in (`Zᵀ·…·Bᵀ·Aᵀ`) as the transpose of one
/// with fewer (`(A·B·…·Z)ᵀ`) when most of its factors are transposed: the same value, and
/// far fewer nodes for the rules to rearrange (a chain of a thousand transposed factors
/// otherwise fills the e-graph with their partial products). Short products are left as
/// they are: extraction picks their form.
pub(super) fn orient(expr: &RecExpr<Math>, id: Id, out: &mut ExprBuilder, memo: &mut HashMap<Id, Id>) -> Id {
    if let Some(&done) = memo.get(&id) {
        return done;
    }
    let built = match &expr[id] {
        Math::Mul(_) => {
            let mut factors = Vec::new();
            flatten_product(expr, id, &mut factors);
            let transposed = factors
                .iter()
                .filter(|&&f| matches!(expr[f], Math::Transpose(_)))
                .count();
            let chain = |out: &mut ExprBuilder, list: Vec<Id>| {
                let (&last, rest) = list.split_last().expect("a product has factors");
                rest.iter().rev().fold(last, |acc, &f| out.add(Math::Mul([f, acc])))
            };
            if factors.len() >= LONG_PRODUCT && 2 * transposed > factors.len() {
                let list: Vec<Id> = factors
                    .iter()
                    .rev()
                    .map(|&f| match expr[f] {
                        Math::Transpose(x) => orient(expr, x, out, memo),
                        _ => {
                            let g = orient(expr, f, out, memo);
                            out.add(Math::Transpose(g))
                        }
                    })
                    .collect();
                let product = chain(out, list);
                out.add(Math::Transpose(product))
            } else {
                let list: Vec<Id> = factors.iter().map(|&f| orient(expr, f, out, memo)).collect();
                chain(out, list)
            }
        }
        node => {
            let node = node.clone().map_children(|c| orient(expr, c, out, memo));
            out.add(node)
        }
    };
    memo.insert(id, built);
    built
}

pub(super) fn flatten_product(expr: &RecExpr<Math>, id: Id, out: &mut Vec<Id>) {
    match expr[id] {
        Math::Mul([a, b]) => {
            flatten_product(expr, a, out);
            flatten_product(expr, b, out);
        }
        _ => out.push(id),
    }
}

impl Canon<'_> {
    /// `A·B` for matrices: a single term's scalars move out; a sum stays one factor, unless
    /// a definition's fact makes a term vanish (`facts.rs`).
    pub(super) fn matrix_product(&mut self, a: &Poly, b: &Poly, data: &Data) -> Poly {
        if a.0.is_empty() || b.0.is_empty() {
            return Poly::default();
        }
        let (ta, tb) = (self.single_or_factor(a), self.single_or_factor(b));
        let (Some(x), Some(y)) = (ta.core, tb.core) else {
            unreachable!("a matrix factor has a matrix part")
        };
        let core = self.word(x, y, data);
        if core.is_some_and(|c| self.vanishes(c)) {
            return Poly::default();
        }
        let scalars = Term { core: None, ..ta }.times(&Term { core: None, ..tb });
        let mut term = Term { core, ..scalars };
        if let Some(expanded) = self.expanded(&term, data) {
            return expanded;
        }
        term.core = term.core.map(|c| self.scalings_out(c, data).unwrap_or(c));
        if data.is_scalar() {
            if let Some(c) = term.core.take() {
                term = term.times(&Term {
                    coeff: 1.0,
                    scalars: vec![(c, 1.0)],
                    core: None,
                });
            }
        }
        Poly::single(term)
    }

    /// The factors of a matrix product as a flat list.
    pub(super) fn factors(&self, id: Id, out: &mut Vec<Id>) {
        match self.out.expr()[id] {
            Math::Mul([a, b]) => {
                self.factors(a, out);
                self.factors(b, out);
            }
            Math::Eye(_) => {}
            _ => out.push(id),
        }
    }

    /// `x·y` as a right-nested product, inverse pairs cancelled: `f·f⁻¹`, `f⁻¹·f`, and
    /// `f·(W·f)⁻¹ = W⁻¹`, `(f·W)⁻¹·f = W⁻¹` for a square f (Cookbook eq. 1).
    pub(super) fn word(&mut self, x: Id, y: Id, data: &Data) -> Option<Id> {
        let mut list = Vec::new();
        self.factors(x, &mut list);
        self.factors(y, &mut list);
        let mut stack: Vec<Id> = Vec::new();
        for f in list {
            // 1_m·1_nᵀ is the block 1_(m x n): one form, so that a definition's body and the
            // derivative's copy of it (where the target's run merged them) are one node.
            if let Some(&top) = stack.last() {
                if let (Math::Ones([m, k]), Math::Ones([k2, n])) = (&self.out.expr()[top], &self.out.expr()[f]) {
                    let (m, n) = (*m, *n);
                    if k == k2 && matches!(&self.data[usize::from(*k)].kind, crate::ir::Kind::Dim(d) if d.is_one()) {
                        stack.pop();
                        stack.push(self.add(Math::Ones([m, n])));
                        continue;
                    }
                }
            }
            let mut next = Some(f);
            while let (Some(f), Some(&top)) = (next, stack.last()) {
                next = if self.inverse_of(top) == Some(f) || self.inverse_of(f) == Some(top) {
                    None
                } else if let Some(rest) = self.peel(f, top, false).or_else(|| self.peel(top, f, true)) {
                    Some(rest)
                } else {
                    break;
                };
                stack.pop();
            }
            if let Some(f) = next.filter(|&f| !matches!(self.out.expr()[f], Math::Eye(_))) {
                stack.push(f);
            }
        }
        match stack.pop() {
            None => {
                let shape = data.shape()?;
                let n = self.dim(&shape.rows);
                Some(self.add(Math::Eye(n)))
            }
            Some(last) => {
                let word = stack
                    .into_iter()
                    .rev()
                    .fold(last, |acc, f| self.add(Math::Mul([f, acc])));
                // `Y·1 = 1` for one-hot labels, wherever a product is made (also a scaling's).
                Some(self.unit_rows_summed(word, false).unwrap_or(word))
            }
        }
    }

    /// For `inverse = (W·f)⁻¹` (or `(f·W)⁻¹` when `front`) and a square `f`: `W⁻¹`.
    pub(super) fn peel(&mut self, inverse: Id, f: Id, front: bool) -> Option<Id> {
        let Math::Inv(w) = self.out.expr()[inverse] else {
            return None;
        };
        let square = self.shape(f).is_some_and(|s| s.rows == s.cols);
        if !square {
            return None;
        }
        let mut list = Vec::new();
        self.factors(w, &mut list);
        if list.len() < 2 {
            return None;
        }
        let rest = if front {
            (list[0] == f).then(|| list[1..].to_vec())?
        } else {
            (list[list.len() - 1] == f).then(|| list[..list.len() - 1].to_vec())?
        };
        let last = *rest.last()?;
        let w = rest[..rest.len() - 1]
            .iter()
            .rev()
            .fold(last, |acc, &g| self.add(Math::Mul([g, acc])));
        Some(self.inverse(w))
    }

    pub(super) fn inverse_of(&self, id: Id) -> Option<Id> {
        match self.out.expr()[id] {
            Math::Inv(x) => Some(x),
            _ => None,
        }
    }

    /// `A⁻¹`; the inverse of a power is the power of the inverse ((X·X)⁻¹ = X⁻¹·X⁻¹, Cookbook
    /// eq. 1), so that it can cancel against the factors around it.
    pub(super) fn inverse(&mut self, id: Id) -> Id {
        match self.out.expr()[id] {
            Math::Inv(x) => x,
            Math::Eye(_) => id,
            Math::Mul(_) => {
                let mut list = Vec::new();
                self.factors(id, &mut list);
                if list.iter().all(|&f| f == list[0]) {
                    let inverse = self.inverse(list[0]);
                    (1..list.len()).fold(inverse, |acc, _| self.add(Math::Mul([inverse, acc])))
                } else {
                    self.add(Math::Inv(id))
                }
            }
            _ => self.add(Math::Inv(id)),
        }
    }

    /// The transpose of a node of `out`, pushed through products, sums, scalings and
    /// inverses (not into Hadamard products or functions, where the rules would not pull it
    /// back out; only into a monomial of broadcasts, which stays one: scaling.rs).
    pub(super) fn transpose(&mut self, id: Id) -> Id {
        if self.is_scalar(id) {
            return id;
        }
        if let Some(&t) = self.transposed.get(&id) {
            return t;
        }
        let node = self.out.expr()[id].clone();
        let t = match node {
            Math::Transpose(x) => x,
            Math::Symbol(s) if self.env.symmetric.contains(&s) => id,
            Math::Eye(_) => id,
            Math::Ones([m, n]) => self.add(Math::Ones([n, m])),
            Math::Zeros([m, n]) => self.add(Math::Zeros([n, m])),
            Math::Mul([a, b]) => {
                let (tb, ta) = (self.transpose(b), self.transpose(a));
                let mut list = Vec::new();
                self.factors(tb, &mut list);
                self.factors(ta, &mut list);
                let last = list.pop().expect("a product has factors");
                let product = list
                    .into_iter()
                    .rev()
                    .fold(last, |acc, f| self.add(Math::Mul([f, acc])));
                // As any product, with the scalings of its ends taken out (scaling.rs).
                let data = self.data[usize::from(product)].clone();
                self.scalings_out(product, &data).unwrap_or(product)
            }
            Math::Add(_) => {
                let mut terms = Vec::new();
                self.summands(id, &mut terms);
                let mut terms: Vec<(Signature, Id)> = terms
                    .into_iter()
                    .map(|t| {
                        let t = self.transpose(t);
                        (self.signature(t), t)
                    })
                    .collect();
                // Stable: terms of one signature keep their order.
                terms.sort_by(|a, b| a.0.cmp(&b.0));
                let first = terms[0].1;
                let pushed = terms[1..]
                    .iter()
                    .fold(first, |acc, &(_, t)| self.add(Math::Add([acc, t])));
                // A sum keeps the way round with fewer transposes: (A + Xᵀ·C·X)ᵀ, not Aᵀ + Xᵀ·Cᵀ·X.
                if self.transposes(pushed) > self.transposes(id) {
                    self.add(Math::Transpose(id))
                } else {
                    pushed
                }
            }
            Math::Scale([s, a]) => {
                let ta = self.transpose(a);
                self.add(Math::Scale([s, ta]))
            }
            Math::Had(_) | Math::HDiv(_) => self
                .transposed_scalings(id)
                .unwrap_or_else(|| self.add(Math::Transpose(id))),
            Math::Inv(x) => {
                let tx = self.transpose(x);
                self.add(Math::Inv(tx))
            }
            _ => self.add(Math::Transpose(id)),
        };
        self.transposed.insert(id, t);
        t
    }

    /// The transposes among the distinct nodes of a subexpression.
    pub(super) fn transposes(&self, id: Id) -> usize {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![id];
        let mut count = 0;
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                count += usize::from(matches!(self.out.expr()[id], Math::Transpose(_)));
                stack.extend(self.out.expr()[id].children());
            }
        }
        count
    }
}
