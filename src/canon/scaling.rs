//! Broadcasts among the factors of an elementwise monomial are diagonal scalings:
//! `A ⊙ (v·1ᵀ) = diag(v)·A` scales A's rows, `A ⊙ (1·wᵀ) = A·diag(w)` its columns. So they
//! pass through a matrix product on the other side, `(A ⊙ (v·1ᵀ))·B = (A·B) ⊙ (v·1ᵀ)`, and a
//! broadcast of a monomial is the monomial of the broadcasts, `(a ⊘ b)·1ᵀ = (a·1ᵀ) ⊘ (b·1ᵀ)`.
//! Taken out of products, the scalings of a sum's terms become factors they share (σ in batch
//! normalisation's dx, `common_elementwise_factor`), and the names of elementwise
//! definitions are found around them (`x̂ = xc ⊘ (1·σᵀ)`).

use super::*;

impl Canon<'_> {
    /// The vector a broadcast repeats: `v` for `v·1_nᵀ` (or `a·1_(k x n)`, whose `v` is
    /// `a·1_k`) when `columns` is false, the row `w` for `1_m·w` (or `1_(m x k)·b`) when it
    /// is true.
    pub(super) fn broadcast(&mut self, id: Id, columns: bool) -> Option<Id> {
        let Math::Mul([a, b]) = self.out.expr()[id] else {
            return None;
        };
        // The block of ones, the vector it repeats, and the block's sizes across and along.
        let (ones, vector) = if columns { (a, b) } else { (b, a) };
        let Math::Ones([r, c]) = self.out.expr()[ones] else {
            return None;
        };
        let (across, along) = if columns { (r, c) } else { (c, r) };
        let one = |this: &Self, d: Id| matches!(&this.data[usize::from(d)].kind, crate::ir::Kind::Dim(d) if d.is_one());
        if one(self, across) || self.is_scalar(vector) {
            return None;
        }
        if one(self, along) {
            return Some(vector);
        }
        let o = self.dim(&Dim::one());
        Some(if columns {
            let row = self.add(Math::Ones([o, along]));
            self.add(Math::Mul([row, vector]))
        } else {
            let column = self.add(Math::Ones([along, o]));
            self.add(Math::Mul([vector, column]))
        })
    }

    /// `v` repeated over `n` columns (`columns` false) or the row `w` over `n` rows.
    fn spread(&mut self, v: Id, n: &Dim, columns: bool) -> Id {
        if n.is_one() {
            return v;
        }
        let (o, n) = (self.dim(&Dim::one()), self.dim(n));
        if columns {
            let ones = self.add(Math::Ones([n, o]));
            self.add(Math::Mul([ones, v]))
        } else {
            let ones = self.add(Math::Ones([o, n]));
            self.add(Math::Mul([v, ones]))
        }
    }

    /// A product's word with the scalings of its first factor's rows and of its last
    /// factor's columns taken out as elementwise factors, and a broadcast of a monomial
    /// written as the monomial of broadcasts; `None` when there is nothing to take out.
    pub(super) fn scalings_out(&mut self, word: Id, data: &Data) -> Option<Id> {
        let shape = data.shape().filter(|s| !s.is_scalar())?.clone();
        let mut list = Vec::new();
        self.factors(word, &mut list);
        if list.len() < 2 {
            return None;
        }
        let elementwise = |this: &Self, f: Id| matches!(this.out.expr()[f], Math::Had(_) | Math::HDiv(_));
        let ones = |this: &Self, f: Id| matches!(this.out.expr()[f], Math::Ones(_));
        if let [a, b] = list[..] {
            let spread = if ones(self, b) && elementwise(self, a) && self.shape(a)?.cols.is_one() {
                Some((a, false))
            } else if ones(self, a) && elementwise(self, b) && self.shape(b)?.rows.is_one() {
                Some((b, true))
            } else {
                None
            };
            if let Some((v, columns)) = spread {
                let mut factors = Vec::new();
                self.elementwise_factors(v, 1.0, false, &mut factors);
                let n = if columns { &shape.rows } else { &shape.cols };
                let spread: Vec<(Id, f64)> = elementwise::merge_factors(factors)
                    .into_iter()
                    .map(|(f, e)| (self.spread(f, n, columns), e))
                    .collect();
                return Some(self.elementwise_monomial(spread, &shape));
            }
        }
        let mut outer: Vec<(Id, f64)> = Vec::new();
        let last = list.len() - 1;
        for (k, columns) in [(0, false), (last, true)] {
            let f = list[k];
            if !elementwise(self, f) {
                continue;
            }
            let Some(own) = self.shape(f) else { continue };
            let mut factors = Vec::new();
            self.elementwise_factors(f, 1.0, false, &mut factors);
            let mut rest = Vec::new();
            let mut taken = Vec::new();
            for (g, e) in elementwise::merge_factors(factors) {
                match self.broadcast(g, columns) {
                    Some(v) => taken.push((v, e)),
                    None => rest.push((g, e)),
                }
            }
            if taken.is_empty() {
                continue;
            }
            list[k] = self.elementwise_monomial(rest, &own);
            let n = if columns { &shape.rows } else { &shape.cols };
            for (v, e) in taken {
                outer.push((self.spread(v, n, columns), e));
            }
        }
        if outer.is_empty() {
            return None;
        }
        let first = list[0];
        let inner = list[1..].iter().try_fold(first, |acc, &f| self.word(acc, f, data))?;
        outer.push((inner, 1.0));
        Some(self.elementwise_monomial(outer, &shape))
    }

    /// The transpose of an elementwise monomial of broadcasts as the monomial of the
    /// transposed broadcasts, `((v·1ᵀ) ⊘ (σ·1ᵀ))ᵀ = (1·vᵀ) ⊘ (1·σᵀ)`, a broadcast of a
    /// monomial split (`1·(a ⊘ b)ᵀ`); `None` when some factor is no broadcast.
    pub(super) fn transposed_scalings(&mut self, id: Id) -> Option<Id> {
        let shape = self.shape(id)?;
        let shape = Shape::new(shape.cols, shape.rows);
        let mut factors = Vec::new();
        self.elementwise_factors(id, 1.0, false, &mut factors);
        let factors = elementwise::merge_factors(factors);
        let all = factors
            .iter()
            .all(|&(f, _)| self.broadcast(f, true).is_some() || self.broadcast(f, false).is_some());
        if factors.is_empty() || !all {
            return None;
        }
        let mut out = Vec::new();
        for (f, e) in factors {
            let t = self.transpose(f);
            let data = self.data[usize::from(t)].clone();
            match self.scalings_out(t, &data) {
                Some(split) => self.elementwise_factors(split, e, false, &mut out),
                None => out.push((t, e)),
            }
        }
        Some(self.elementwise_monomial(out, &shape))
    }
}
