//! Hadamard products in the canonical form: elementwise monomials (each factor once with
//! its exponent, `⊘` a negative one), cancelled first; a sum among the factors multiplied
//! out only where that cancels.

use super::*;
use crate::ops::Func;

/// The most terms a Hadamard product of sums is multiplied out to.
pub(super) const EXPANSION: usize = 16;

/// Factors with exponents, each once, by id, none with exponent 0.
pub(super) fn merge_factors(mut factors: Vec<(Id, f64)>) -> Vec<(Id, f64)> {
    factors.sort_by_key(|(f, _)| *f);
    let mut merged: Vec<(Id, f64)> = Vec::new();
    for (f, e) in factors {
        match merged.last_mut() {
            Some((g, k)) if *g == f => *k += e,
            _ => merged.push((f, e)),
        }
    }
    merged.retain(|(_, e)| *e != 0.0);
    merged
}

/// Whether some factor appears both multiplying and dividing.
pub(super) fn cancelling(factors: &[(Id, f64)]) -> bool {
    factors
        .iter()
        .any(|(f, e)| *e > 0.0 && factors.iter().any(|(g, k)| g == f && *k < 0.0))
}

impl Canon<'_> {
    /// The elementwise factors of a matrix part with their exponents (`x ⊙ y ⊘ z.^2`:
    /// x¹, y¹, z⁻²), a ones matrix being none.
    ///
    /// With `through`, a definition that is an elementwise product or quotient (softmax)
    /// gives its body's factors.
    ///
    /// A power of a power folds only where that is an identity: (aᵉ)ᵏ = aᵉᵏ for a whole k, or
    /// for an e that keeps a's sign (odd, or not whole: then a ≥ 0); for an even e and a
    /// k that is not whole it is |a|ᵉᵏ (`(r.^−2).^−0.5` is |r|, not r).
    pub(super) fn elementwise_factors(&mut self, id: Id, k: f64, through: bool, out: &mut Vec<(Id, f64)>) {
        match self.out.expr()[id].clone() {
            Math::Had([a, b]) => {
                self.elementwise_factors(a, k, through, out);
                self.elementwise_factors(b, k, through, out);
            }
            Math::HDiv([a, b]) => {
                self.elementwise_factors(a, k, through, out);
                self.elementwise_factors(b, -k, through, out);
            }
            Math::EPow([a, e]) if self.data[usize::from(e)].constant.is_some() => {
                let e = self.data[usize::from(e)].constant.unwrap_or(1.0);
                let even = e.fract() == 0.0 && e % 2.0 == 0.0;
                if even && k.fract() != 0.0 {
                    let magnitude = self.add(Math::function(Func::Abs, &[a]));
                    out.push((magnitude, k * e));
                } else {
                    self.elementwise_factors(a, k * e, through, out);
                }
            }
            Math::Ones(_) => {}
            Math::Symbol(_) if through && self.elementwise_definitions.contains_key(&id) => {
                let body = self.elementwise_definitions[&id];
                self.elementwise_factors(body, k, through, out);
            }
            _ => out.push((id, k)),
        }
    }

    /// The canonical matrix part of an elementwise monomial: the factors by id, exponents
    /// summed, the cancelled ones gone (`x ⊘ x` is 1 where x has no zero, as the rules'
    /// `hdiv-cancel`), written `n₁ ⊙ n₂ ⊘ (d₁ ⊙ d₂)`; all ones when nothing is left.
    pub(super) fn elementwise_monomial(&mut self, factors: Vec<(Id, f64)>, shape: &Shape) -> Id {
        let merged = self.named(merge_factors(factors));
        let chain = |this: &mut Self, part: Vec<(Id, f64)>| -> Option<Id> {
            let powers: Vec<Id> = part
                .into_iter()
                .map(|(f, e)| {
                    if e == 1.0 {
                        f
                    } else {
                        let k = this.num(e);
                        this.add(Math::EPow([f, k]))
                    }
                })
                .collect();
            powers.into_iter().reduce(|acc, f| this.add(Math::Had([acc, f])))
        };
        // Whole negative powers divide; a fractional one stays a power (G ⊙ x.^(−0.5)).
        let (down, mut up): (Vec<_>, Vec<_>) = merged.into_iter().partition(|(_, e)| *e < 0.0 && e.fract() == 0.0);
        // Functions close the product, and the division goes with the first other factor:
        // ((a·bᵀ) ⊘ sin(X)) ⊙ cos(X).
        up.sort_by_key(|&(f, _)| self.out.expr()[f].is_elementwise());
        let denominator = chain(self, down.into_iter().map(|(f, e)| (f, -e)).collect());
        let mut up = up.into_iter();
        let first = match up.next() {
            Some(f) => chain(self, vec![f]).expect("one factor"),
            None => {
                let (r, c) = (self.dim(&shape.rows), self.dim(&shape.cols));
                self.add(Math::Ones([r, c]))
            }
        };
        let first = match denominator {
            Some(d) => self.add(Math::HDiv([first, d])),
            None => first,
        };
        let rest = chain(self, up.collect());
        match rest {
            Some(r) => self.add(Math::Had([first, r])),
            None => first,
        }
    }

    /// Merged factors with each elementwise definition's body among them (to at most its
    /// exponents, with their signs) replaced by its name, the latest definition first:
    /// `xc ⊙ G ⊘ S.^2` is `xhat ⊙ G ⊘ S` for `xhat = xc ⊘ S`, as a backward pass writes it.
    fn named(&mut self, mut merged: Vec<(Id, f64)>) -> Vec<(Id, f64)> {
        let mut names: Vec<(Id, Id)> = self.elementwise_definitions.iter().map(|(&n, &b)| (n, b)).collect();
        names.sort_unstable_by_key(|&(name, _)| std::cmp::Reverse(name));
        for (name, body) in names {
            let mut own = Vec::new();
            self.elementwise_factors(body, 1.0, false, &mut own);
            let own = merge_factors(own);
            let within = |(f, e): &(Id, f64)| merged.iter().any(|(g, k)| g == f && k * e > 0.0 && k.abs() >= e.abs());
            if own.len() < 2 || !own.iter().all(within) {
                continue;
            }
            merged.extend(own.iter().map(|&(f, e)| (f, -e)));
            merged.push((name, 1.0));
            merged = merge_factors(merged);
        }
        merged
    }

    /// The product of two terms' elementwise factors. Definitions that are elementwise
    /// quotients are seen through only when that cancels a factor (`exp(Z) ⊙ Y ⊘ S` with
    /// `S = exp(Z) ⊘ (exp(Z)·1·1ᵀ)`); left whole, they keep their names.
    pub(super) fn hadamard_terms(&mut self, s: &Term, t: &Term, shape: &Shape) -> Term {
        self.hadamard_cancelling(s, t, shape).0
    }

    /// As `hadamard_terms`, and whether some factor cancelled.
    pub(super) fn hadamard_cancelling(&mut self, s: &Term, t: &Term, shape: &Shape) -> (Term, bool) {
        let factors = |this: &mut Self, through: bool| {
            let mut out = Vec::new();
            for core in s.core.iter().chain(&t.core) {
                this.elementwise_factors(*core, 1.0, through, &mut out);
            }
            out
        };
        let (seen, plain) = (factors(self, true), factors(self, false));
        let through = cancelling(&seen) && merge_factors(seen.clone()).len() <= merge_factors(plain.clone()).len();
        let factors = if through { seen } else { plain };
        let cancelled = cancelling(&factors);
        let core = self.elementwise_monomial(factors, shape);
        let term = Term {
            core: Some(core),
            ..Term {
                core: None,
                ..s.clone()
            }
            .times(&Term {
                core: None,
                ..t.clone()
            })
        };
        (term, cancelled)
    }

    /// `a ⊙ b` with a sum as one factor, factors cancelled. The sums among the factors left
    /// are then multiplied out, but only kept so when that makes factors or terms cancel or combine:
    /// `((1 − t) ⊘ (1 − σ) − t ⊘ σ) ⊙ σ ⊙ (1 − σ)` is `σ − t`, while `G ⊙ (1 − σ)` stays.
    pub(super) fn hadamard(&mut self, a: &Poly, b: &Poly, data: &Data) -> Poly {
        let Some(shape) = data.shape().cloned() else {
            return Poly::default();
        };
        if a.0.is_empty() || b.0.is_empty() {
            return Poly::default();
        }
        let (x, y) = (self.single_or_factor(a), self.single_or_factor(b));
        let product = self.hadamard_terms(&x, &y, &shape);
        let mut raw = Vec::new();
        let cancelled = self.expand(product.clone(), &shape, &mut raw);
        if raw.len() > EXPANSION {
            return Poly::single(product);
        }
        let expanded = raw
            .iter()
            .fold(Poly::default(), |acc, t| acc.plus(&Poly::single(t.clone())));
        if cancelled || expanded.0.len() < raw.len() {
            expanded
        } else {
            Poly::single(product)
        }
    }

    /// A term with each elementwise factor that is a sum (to the first power) multiplied
    /// out; whether a factor cancelled on the way.
    pub(super) fn expand(&mut self, term: Term, shape: &Shape, out: &mut Vec<Term>) -> bool {
        let mut factors = Vec::new();
        if let Some(core) = term.core {
            self.elementwise_factors(core, 1.0, false, &mut factors);
        }
        // The sum with the most divisions goes first: its denominators may cancel against
        // the other factors before those are multiplied out themselves.
        let Some(k) = factors
            .iter()
            .enumerate()
            .filter(|(_, (f, e))| *e == 1.0 && self.sums.contains_key(f))
            .max_by_key(|(_, (f, _))| (self.divisions(*f), *f))
            .map(|(k, _)| k)
        else {
            out.push(term);
            return false;
        };
        let (sum, _) = factors.remove(k);
        let rest = Term {
            core: Some(self.elementwise_monomial(factors, shape)),
            ..term
        };
        let mut cancelled = false;
        for s in self.sums[&sum].0.clone() {
            if out.len() > EXPANSION {
                break;
            }
            let (t, here) = self.hadamard_cancelling(&rest, &s, shape);
            cancelled |= here;
            cancelled |= self.expand(t, shape, out);
        }
        cancelled
    }

    /// How many of a sum's terms divide elementwise.
    pub(super) fn divisions(&self, sum: Id) -> usize {
        self.sums[&sum]
            .0
            .iter()
            .filter(|t| t.core.is_some_and(|c| matches!(self.out.expr()[c], Math::HDiv(_))))
            .count()
    }

    /// `a.^k` elementwise (k = −1 for `1 ⊘ a`): a single term's factors to the k-th power
    /// for a whole k; otherwise `a` is one factor.
    pub(super) fn elementwise_power(&mut self, a: &Poly, k: f64, data: &Data) -> Poly {
        let Some(shape) = data.shape().cloned() else {
            return Poly::default();
        };
        if a.0.is_empty() {
            return Poly::default();
        }
        let t = self.single_or_factor(a);
        let mut factors = Vec::new();
        if let Some(core) = t.core {
            self.elementwise_factors(core, k, false, &mut factors);
        }
        let core = self.elementwise_monomial(factors, &shape);
        Poly::single(Term {
            coeff: t.coeff.powf(k),
            scalars: t.scalars.iter().map(|&(f, e)| (f, e * k)).collect(),
            core: Some(core),
        })
    }
}
