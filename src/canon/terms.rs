//! The terms of sums in the canonical form: a sum made one factor (its sign and content
//! taken out), the fixed order of terms, and definitions recognised by their bodies.

use super::*;

/// A node's size (without transposes, numbers, scalings and powers) and its leaves' names:
/// the same for a sum and its transpose, so both sort their terms alike.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Signature {
    size: usize,
    names: Vec<&'static str>,
}

impl Signature {
    fn join(&mut self, other: &Signature) {
        self.size += other.size;
        self.names.extend(&other.names);
        self.names.sort_unstable();
    }
}

/// The number r with `pattern`'s terms, times r, all among `poly`'s terms.
pub(super) fn multiple(poly: &Poly, pattern: &Poly) -> Option<f64> {
    let mut ratio = None;
    for p in &pattern.0 {
        let t = poly.0.iter().find(|t| t.same_kind(p))?;
        let r = t.coeff / p.coeff;
        match ratio {
            None => ratio = Some(r),
            Some(q) if (q - r).abs() <= 1e-12 * q.abs().max(r.abs()) => {}
            Some(_) => return None,
        }
    }
    ratio
}

impl Canon<'_> {
    /// The terms of `poly` that make up a multiple of a definition (latest first, so the
    /// largest), replaced by that multiple of its name.
    pub(super) fn recognise(&mut self, mut poly: Poly) -> Poly {
        for k in (0..self.known.len()).rev() {
            for transposed in [false, true] {
                let known = &self.known[k];
                let Some(pattern) = (if transposed {
                    known.transposed.as_ref()
                } else {
                    Some(&known.poly)
                }) else {
                    continue;
                };
                let Some(ratio) = multiple(&poly, pattern) else {
                    continue;
                };
                let rest: Vec<Term> = poly
                    .0
                    .iter()
                    .filter(|t| !pattern.0.iter().any(|p| p.same_kind(t)))
                    .cloned()
                    .collect();
                let symbol = known.symbol;
                let name = if transposed { self.transpose(symbol) } else { symbol };
                let named = self.atom(name).0[0].times(&Term::constant(ratio));
                poly = Poly(rest).plus(&Poly::single(named));
            }
        }
        poly
    }

    /// A sum with every matrix part transposed.
    pub(super) fn transposed(&mut self, poly: &Poly) -> Poly {
        Poly(
            poly.0
                .iter()
                .map(|t| Term {
                    core: t.core.map(|c| self.transpose(c)),
                    ..t.clone()
                })
                .collect(),
        )
    }

    /// A single term as it is; a sum as one factor, with the coefficient of its constant
    /// term or else of its term whose names come first taken out, so that `0.5·x − 0.5·μ`,
    /// `μ − x` and `x − μ` are one factor, as are `1 − σ` and `σ − 1`.
    pub(super) fn single_or_factor(&mut self, a: &Poly) -> Term {
        if let Some(t) = a.as_single() {
            return t.clone();
        }
        let mut terms = a.0.clone();
        self.sort_terms(&mut terms);
        let leading = terms
            .iter()
            .enumerate()
            .min_by_key(|(k, t)| {
                // A constant term first (1 − σ, as written), then the term read first (x − μ).
                let first = self.term_first_name(t);
                (first != usize::MAX, first, *k)
            })
            .map(|(_, t)| t.coeff)
            .expect("a sum has terms");
        for t in &mut terms {
            t.coeff /= leading;
        }
        let normalised = Poly(terms);
        let mut id = self.build(&normalised, None);
        if !self.is_scalar(id) {
            let flipped = self.transpose(id);
            if self.transposes(flipped) < self.transposes(id) {
                // The sum is kept the other way round, transposed (see `transpose`).
                id = self.add(Math::Transpose(flipped));
            }
            if !self.sums.contains_key(&id) {
                self.probe_sum(id, &normalised);
            }
            self.sums.insert(id, normalised);
        }
        self.atom(id).0[0].times(&Term::constant(leading))
    }

    pub(super) fn term_first_name(&mut self, t: &Term) -> usize {
        let ids: Vec<Id> = t.scalars.iter().map(|(f, _)| *f).chain(t.core).collect();
        ids.into_iter()
            .map(|id| self.first_name(id))
            .min()
            .unwrap_or(usize::MAX)
    }

    pub(super) fn first_name(&mut self, id: Id) -> usize {
        if let Some(&r) = self.first_name.get(&id) {
            return r;
        }
        let node = self.out.expr()[id].clone();
        let own = match node {
            Math::Symbol(s) => self.reading.rank(s).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        let r = node.children().iter().fold(own, |r, &c| r.min(self.first_name(c)));
        self.first_name.insert(id, r);
        r
    }

    pub(super) fn summands(&self, id: Id, out: &mut Vec<Id>) {
        match self.out.expr()[id] {
            Math::Add([a, b]) => {
                self.summands(a, out);
                self.summands(b, out);
            }
            _ => out.push(id),
        }
    }

    /// Sorts a sum's terms by their signatures: an order that transposing every term keeps.
    pub(super) fn sort_terms(&mut self, terms: &mut [Term]) {
        let mut keyed: Vec<(Signature, usize)> = terms
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let mut sig = Signature::default();
                for id in t.scalars.iter().map(|(f, _)| *f).chain(t.core) {
                    sig.join(&self.signature(id));
                }
                (sig, k)
            })
            .collect();
        keyed.sort();
        let sorted: Vec<Term> = keyed.iter().map(|(_, k)| terms[*k].clone()).collect();
        terms.clone_from_slice(&sorted);
    }

    /// What a node is made of, whichever way it is transposed: its size (without transposes
    /// and numbers) and its leaves' names.
    pub(super) fn signature(&mut self, id: Id) -> Signature {
        if let Some(sig) = self.signatures.get(&id) {
            return sig.clone();
        }
        let node = self.out.expr()[id].clone();
        let mut sig = match &node {
            Math::Symbol(s) => Signature {
                size: 1,
                names: vec![s.as_str()],
            },
            Math::Num(_) | Math::Transpose(_) | Math::Scale(_) | Math::Pow(_) => Signature::default(),
            _ => Signature { size: 1, names: vec![] },
        };
        for &c in node.children() {
            sig.join(&self.signature(c));
        }
        self.signatures.insert(id, sig.clone());
        sig
    }
}
