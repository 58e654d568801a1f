//! Facts that follow from a definition's body, found by canonicalising two probes of it:
//! `1ᵀ·d` and `d·1`. Where a probe is zero (a centred matrix, `xc = x − 1·μᵀ` with
//! `μ = xᵀ·1/N`, has `1ᵀ·xc = 0`), every product that sums `d` along that axis is zero, also
//! through a scaling of its rows or columns (`1ᵀ·(xc ⊙ 1·wᵀ) = (1ᵀ·xc)·diag(w) = 0`). Such a
//! zero is what turns batch and layer normalisation's backward pass into the textbook form
//! (the mean's gradient vanishes against the centred input). A product with a sum for a
//! factor is multiplied out where a fact makes one of its terms vanish. Row sums of one are
//! the other fact: a one-hot `Y` has `Y·1 = 1` (always taken), a softmax `E ⊘ (E·1·1ᵀ)` too
//! (taken where terms then cancel: `(S − Y)·1 = 0`, so a max shift's gradient vanishes).

use super::*;
use std::collections::HashSet;

/// The names (and their transposes) whose sums along an axis are zero.
#[derive(Debug, Default)]
pub(super) struct Facts {
    /// Nodes d with `1ᵀ·d = 0`: each column sums to zero.
    columns: HashSet<Id>,
    /// Nodes d with `d·1 = 0`: each row sums to zero.
    rows: HashSet<Id>,
}

impl Canon<'_> {
    /// Probes a definition's body (read with every definition inlined, so that `μ` in
    /// `x − 1·μᵀ` can cancel) and records what is zero about its name.
    ///
    /// The inlined body is also a form to recognise: the derivative may hold it where the
    /// earlier names it was read with never appear as nodes (`x·1_(D x D)/D`, no `x·1_D`).
    pub(super) fn probe(&mut self, symbol: Id, body: &RecExpr<Math>, named: &Poly) {
        let before = self.data.len();
        let known = std::mem::take(&mut self.known);
        let (poly, data) = self.read(body);
        self.known = known;
        if poly.0 != named.0 && !poly.0.is_empty() {
            let transposed = (!data.is_scalar()).then(|| self.transposed(&poly));
            self.known.push(Known {
                symbol,
                poly: poly.clone(),
                transposed,
            });
        }
        // A single term (a product, a quotient) sums to zero only by accident of its
        // values; a sum can cancel term by term.
        if poly.0.len() >= 2 && poly.0.iter().all(|t| t.core.is_some()) {
            if let Some(shape) = data.shape().filter(|s| !s.is_scalar()).cloned() {
                let transposed = self.transpose(symbol);
                // The body as the derivative holds it, inlined, is the same sum.
                let inlined = self.single_or_factor(&poly).core.expect("a matrix sum");
                let inlined_transposed = self.transpose(inlined);
                if self.probe_side(&poly, &shape, true) {
                    self.facts.columns.extend([symbol, inlined]);
                    self.facts.rows.extend([transposed, inlined_transposed]);
                }
                if self.probe_side(&poly, &shape, false) {
                    self.facts.rows.extend([symbol, inlined]);
                    self.facts.columns.extend([transposed, inlined_transposed]);
                }
            }
        }
        // A definition that scales a name's columns (`x̂ = xc ⊘ (1·σᵀ)`) sums to zero along
        // the axis that name does (`1ᵀ·x̂ = (1ᵀ·xc)·diag(1 ⊘ σ)`).
        if let Some(core) = named.as_single().and_then(|t| t.core) {
            let transposed = self.transpose(symbol);
            if self.scaled(core, true).is_some_and(|c| self.facts.columns.contains(&c)) {
                self.facts.columns.insert(symbol);
                self.facts.rows.insert(transposed);
            }
            if self.scaled(core, false).is_some_and(|c| self.facts.rows.contains(&c)) {
                self.facts.rows.insert(symbol);
                self.facts.columns.insert(transposed);
            }
        }
        // The probes' nodes are not the canonical form's growth.
        self.budget += self.data.len() - before;
    }

    /// Records what is zero about a sum made a factor without a name (`x − mean·1ᵀ` inside
    /// `np.var`), as `probe` does for a definition: its columns' or rows' sums.
    pub(super) fn probe_sum(&mut self, id: Id, poly: &Poly) {
        if poly.0.len() < 2 || !poly.0.iter().all(|t| t.core.is_some()) {
            return;
        }
        let Some(shape) = self.shape(id).filter(|s| !s.is_scalar()) else {
            return;
        };
        let before = self.data.len();
        if self.probe_side(poly, &shape, true) {
            let transposed = self.transpose(id);
            self.facts.columns.insert(id);
            self.facts.rows.insert(transposed);
        }
        if self.probe_side(poly, &shape, false) {
            let transposed = self.transpose(id);
            self.facts.rows.insert(id);
            self.facts.columns.insert(transposed);
        }
        self.budget += self.data.len() - before;
    }

    /// Whether `1ᵀ·poly` (`left`) or `poly·1` is zero: each term's product with the ones
    /// vector, blocks of ones multiplied together (`1_mᵀ·1_m = m`), like terms combined.
    pub(super) fn probe_side(&mut self, poly: &Poly, shape: &Shape, left: bool) -> bool {
        let one = Dim::one();
        let ones = if left {
            let (r, c) = (self.dim(&one), self.dim(&shape.rows));
            self.add(Math::Ones([r, c]))
        } else {
            let (r, c) = (self.dim(&shape.cols), self.dim(&one));
            self.add(Math::Ones([r, c]))
        };
        let mut sum = Poly::default();
        for t in &poly.0 {
            let Some(core) = t.core else { return false };
            let mut list = Vec::new();
            self.factors(core, &mut list);
            if left {
                list.insert(0, ones);
            } else {
                list.push(ones);
            }
            let (scale, word) = self.ones_folded(list);
            let term = Term {
                core: Some(word),
                ..t.times(&scale)
            };
            sum = sum.plus(&Poly::single(term));
        }
        sum.0.is_empty()
    }

    /// A word with adjacent blocks of ones multiplied (`1_(a x k)·1_(k x b) = k·1_(a x b)`,
    /// ones·ones rule of the e-graph) and 1 x 1 ones dropped beside other factors: the
    /// factor taken out and the word left.
    fn ones_folded(&mut self, list: Vec<Id>) -> (Term, Id) {
        let mut scale = Term::constant(1.0);
        let mut stack: Vec<Id> = Vec::new();
        for f in list {
            let merged = match (stack.last().map(|&t| self.out.expr()[t].clone()), &self.out.expr()[f]) {
                (Some(Math::Ones([a, k])), Math::Ones([k2, b])) if k == *k2 => Some((a, k, *b)),
                _ => None,
            };
            match merged {
                Some((a, k, b)) => {
                    stack.pop();
                    let size = self.add(Math::DimValue(k));
                    scale = scale.times(&self.atom(size).0[0]);
                    stack.push(self.add(Math::Ones([a, b])));
                }
                None => stack.push(f),
            }
        }
        if stack.len() > 1 {
            stack.retain(|&f| !self.is_one_by_one_ones(f));
        }
        let last = stack.pop().expect("a word has factors");
        let word = stack
            .into_iter()
            .rev()
            .fold(last, |acc, f| self.add(Math::Mul([f, acc])));
        (scale, word)
    }

    fn is_one_by_one_ones(&self, id: Id) -> bool {
        matches!(self.out.expr()[id], Math::Ones(_)) && self.shape(id).is_some_and(|s| s.is_scalar())
    }

    /// Whether a product's word sums a name with a zero sum along that axis: `1ᵀ·xc`,
    /// `xc·1`, also with `xc`'s rows or columns scaled (`(xc ⊙ (v·1ᵀ))·1 = diag(v)·xc·1`).
    pub(super) fn vanishes(&mut self, word: Id) -> bool {
        if self.facts.columns.is_empty() && self.facts.rows.is_empty() {
            return false;
        }
        let mut list = Vec::new();
        self.factors(word, &mut list);
        let is_ones = |this: &Self, f: Id| matches!(this.out.expr()[f], Math::Ones(_));
        (1..list.len()).any(|k| {
            let (a, b) = (list[k - 1], list[k]);
            (is_ones(self, b) && self.scaled(a, false).is_some_and(|c| self.facts.rows.contains(&c)))
                || (is_ones(self, a) && self.scaled(b, true).is_some_and(|c| self.facts.columns.contains(&c)))
        })
    }

    /// The one factor of an elementwise monomial left when the factors constant along its
    /// columns (`1·wᵀ`, with `columns`) or along its rows (`v·1ᵀ`) are set aside: those are
    /// `A·diag(w)` and `diag(v)·A`, which a product from that side passes through.
    fn scaled(&mut self, id: Id, columns: bool) -> Option<Id> {
        let mut factors = Vec::new();
        // Through the names of elementwise quotients: x̂ = xc ⊘ (1·σᵀ) is xc with its columns scaled.
        self.elementwise_factors(id, 1.0, true, &mut factors);
        let mut rest = elementwise::merge_factors(factors)
            .into_iter()
            .filter(|&(f, _)| !self.repeats(f, columns));
        match (rest.next(), rest.next()) {
            (Some((f, 1.0)), None) => Some(f),
            _ => None,
        }
    }

    /// Whether a node is constant along its columns (`columns`: `1·wᵀ`) or rows (`v·1ᵀ`), also
    /// as the transpose of a monomial of broadcasts the other way (`((v·1ᵀ) ⊘ (σ·1ᵀ))ᵀ`).
    fn repeats(&mut self, id: Id, columns: bool) -> bool {
        if self.broadcast(id, columns).is_some() {
            return true;
        }
        let Math::Transpose(inner) = self.out.expr()[id] else {
            return false;
        };
        if !matches!(self.out.expr()[inner], Math::Had(_) | Math::HDiv(_)) {
            return false;
        }
        let mut factors = Vec::new();
        self.elementwise_factors(inner, 1.0, false, &mut factors);
        factors.into_iter().all(|(f, _)| self.broadcast(f, !columns).is_some())
    }

    /// A term whose word has a sum for a factor, multiplied out over that sum's terms when a
    /// fact makes one of them vanish (`(G − xc ⊙ (w·1ᵀ))·1 = G·1`); `None` otherwise.
    pub(super) fn expanded(&mut self, term: &Term, data: &Data) -> Option<Poly> {
        let word = term.core?;
        let mut list = Vec::new();
        self.factors(word, &mut list);
        for k in 0..list.len() {
            let Some(sum) = self.sums.get(&list[k]).cloned() else {
                continue;
            };
            if sum.0.len() > elementwise::EXPANSION {
                continue;
            }
            let mut out = Poly::default();
            let mut vanished = false;
            let mut summed_to_ones = false;
            for t in &sum.0 {
                let core = t.core?;
                let mut factors = list[..k].to_vec();
                self.factors(core, &mut factors);
                factors.extend_from_slice(&list[k + 1..]);
                let last = *factors.last()?;
                let word = factors[..factors.len() - 1]
                    .iter()
                    .rev()
                    .fold(last, |acc, &f| self.add(Math::Mul([f, acc])));
                if self.vanishes(word) {
                    vanished = true;
                    continue;
                }
                let (word, ones) = match self.unit_rows_summed(word, true) {
                    Some(w) => (w, true),
                    None => (word, false),
                };
                summed_to_ones |= ones;
                let scalars = Term {
                    core: None,
                    ..t.clone()
                }
                .times(&Term {
                    core: None,
                    ..term.clone()
                });
                let word = self.scalings_out(word, data).unwrap_or(word);
                out = out.plus(&Poly::single(Term {
                    core: Some(word),
                    ..scalars
                }));
            }
            // Row sums of one are taken only where they cancel (`(S − Y)·1 = 1 − 1 = 0`).
            if vanished || (summed_to_ones && out.0.len() < sum.0.len()) {
                return Some(out);
            }
        }
        None
    }

    /// A word with `R·1_(C x k)` for an `R` whose rows each sum to one, replaced by
    /// `1_(N x k)`; `None` when it has none. Without `normalised`, only one-hot label matrices
    /// count (`Y·1 = 1` always reads simpler; a softmax's row sums only where they cancel).
    pub(super) fn unit_rows_summed(&mut self, word: Id, normalised: bool) -> Option<Id> {
        let mut list = Vec::new();
        self.factors(word, &mut list);
        let k = (1..list.len()).find(|&k| {
            matches!(self.out.expr()[list[k]], Math::Ones(_))
                && (self.is_onehot(list[k - 1]) || (normalised && self.rows_sum_to_one(list[k - 1])))
        })?;
        let Math::Ones([_, cols]) = self.out.expr()[list[k]] else {
            unreachable!("found as ones")
        };
        let rows = self.dim(&self.shape(list[k - 1])?.rows);
        let ones = self.add(Math::Ones([rows, cols]));
        list.splice(k - 1..=k, [ones]);
        let last = list.pop().expect("a word has factors");
        Some(
            list.into_iter()
                .rev()
                .fold(last, |acc, f| self.add(Math::Mul([f, acc]))),
        )
    }

    fn is_onehot(&self, id: Id) -> bool {
        matches!(self.out.expr()[id], Math::Symbol(s) if self.env.onehot.contains(&s))
    }

    /// Whether each row of a node is a row-normalised quotient `E ⊘ (E·1·1ᵀ)`, softmax over
    /// the rows, whose rows each sum to one.
    fn rows_sum_to_one(&mut self, id: Id) -> bool {
        if !matches!(self.out.expr()[id], Math::HDiv(_) | Math::Had(_) | Math::Symbol(_)) {
            return false;
        }
        let mut factors = Vec::new();
        self.elementwise_factors(id, 1.0, true, &mut factors);
        let merged = elementwise::merge_factors(factors);
        let (Some(&(e, _)), Some(&(w, _))) = (
            merged.iter().find(|(_, k)| *k == 1.0),
            merged.iter().find(|(_, k)| *k == -1.0),
        ) else {
            return false;
        };
        if merged.len() != 2 {
            return false;
        }
        let mut normaliser = Vec::new();
        self.factors(w, &mut normaliser);
        // `E·1_(C x C)` or `E·1_C·1_Cᵀ`: each row's sum, repeated along the row.
        matches!(normaliser.as_slice(), [f, ones @ ..] if *f == e && !ones.is_empty()
            && ones.iter().all(|&o| matches!(self.out.expr()[o], Math::Ones(_))))
    }
}
