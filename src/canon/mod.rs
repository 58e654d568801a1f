//! A canonical form computed outside the e-graph: every sum as a list of terms with like
//! terms combined, every term as one number times scalar factors (each once, with its
//! exponent) times one matrix part: a matrix product, flattened with transposes pushed to
//! the leaves and inverse pairs cancelled (`product.rs`), or an elementwise monomial with
//! its quotients cancelled (`elementwise.rs`). How sums become factors and in what order
//! their terms stand is in `terms.rs`.
//!
//! These are the rewrites that cancel (`0.5·2 = 1`, `s·s⁻¹ = 1`, `A − A = 0`,
//! `A·A⁻¹ = I`, `x ⊘ x = 1`). Inside an e-graph that also knows associativity and commutativity they
//! make it infinite: once a class Y holds `0.5·(2·Y)`, every `2ᵏ·Y` is a new class before
//! it is found equal to Y. Done once here, on a tree, they cost one pass.
//!
//! Every step is an identity of matrix algebra, valid wherever both sides are defined
//! (a factor and its inverse cancel only where the inverse exists).

use crate::dim::{Dim, Shape};
use crate::ir::{expr_data, node_data, Const, Data, DimNode, Env, ExprBuilder, Math};
use crate::order::ReadingOrder;
use egg::{Id, Language, RecExpr, Symbol};
use std::collections::HashMap;

mod elementwise;
mod facts;
mod product;
mod scaling;
mod terms;
mod zeros;

use product::orient;
use terms::Signature;
pub use zeros::{depends_on, fold_zeros};

/// `coeff · Π scalars[i].0 ^ scalars[i].1 · core`.
#[derive(Clone, Debug, PartialEq)]
struct Term {
    coeff: f64,
    /// Scalar factors sorted by id, each with a non-zero exponent.
    scalars: Vec<(Id, f64)>,
    /// The matrix part; `None` in a scalar term.
    core: Option<Id>,
}

impl Term {
    fn constant(c: f64) -> Term {
        Term {
            coeff: c,
            scalars: Vec::new(),
            core: None,
        }
    }

    fn times(&self, other: &Term) -> Term {
        let mut scalars = self.scalars.clone();
        for &(f, e) in &other.scalars {
            match scalars.binary_search_by_key(&f, |(g, _)| *g) {
                Ok(k) => scalars[k].1 += e,
                Err(k) => scalars.insert(k, (f, e)),
            }
        }
        scalars.retain(|(_, e)| *e != 0.0);
        Term {
            coeff: self.coeff * other.coeff,
            scalars,
            core: self.core.or(other.core),
        }
    }

    fn same_kind(&self, other: &Term) -> bool {
        self.core == other.core && self.scalars == other.scalars
    }
}

/// A sum of terms in order of first appearance; no two alike, none with coefficient 0.
#[derive(Clone, Debug, Default)]
struct Poly(Vec<Term>);

impl Poly {
    fn single(term: Term) -> Poly {
        if term.coeff == 0.0 {
            Poly::default()
        } else {
            Poly(vec![term])
        }
    }

    fn plus(&self, other: &Poly) -> Poly {
        let mut terms = self.0.clone();
        for t in &other.0 {
            match terms.iter_mut().find(|u| u.same_kind(t)) {
                Some(u) => u.coeff += t.coeff,
                None => terms.push(t.clone()),
            }
        }
        terms.retain(|t| t.coeff != 0.0);
        Poly(terms)
    }

    fn as_single(&self) -> Option<&Term> {
        match self.0.as_slice() {
            [t] => Some(t),
            _ => None,
        }
    }
}

/// The canonical form of `expr`. A sum that is a factor keeps the sign of the term whose
/// names come first in `reading` (`Xᵀ·(X·w − y)`). Wherever the canonical form of a
/// definition's body appears (a sum: its terms, in any multiple; also transposed) the
/// definition's name stands for it, so the result keeps the script's intermediates; `env`
/// gives the definitions' shapes.
///
/// `None` when the canonical form would outgrow the expression many times over: a
/// product flattened into every term of a long sum no longer shares its factors.
pub fn canonical(
    env: &Env,
    reading: &ReadingOrder,
    definitions: &[(Symbol, &RecExpr<Math>)],
    expr: &RecExpr<Math>,
) -> Option<RecExpr<Math>> {
    canonical_all(env, reading, definitions, std::slice::from_ref(expr)).and_then(|mut all| all.pop())
}

/// The canonical forms of several expressions over the same definitions, which are read
/// once (a gradient in named pieces: reading every definition again for each piece would
/// cost the square of the script's length). `None` when together they would outgrow their
/// inputs, as for [`canonical`].
pub fn canonical_all(
    env: &Env,
    reading: &ReadingOrder,
    definitions: &[(Symbol, &RecExpr<Math>)],
    exprs: &[RecExpr<Math>],
) -> Option<Vec<RecExpr<Math>>> {
    let inputs = exprs.iter().map(|e| e.as_ref().len()).sum::<usize>()
        + definitions.iter().map(|(_, d)| d.as_ref().len()).sum::<usize>();
    let mut canon = Canon::new(env, reading, inputs);
    for (name, body) in definitions {
        let (poly, data) = canon.read(body);
        let known = poly.0.iter().any(|t| t.core.is_some() || !t.scalars.is_empty());
        if known {
            let symbol = canon.add(Math::Symbol(*name));
            // What follows from the body (`1ᵀ·xc = 0`): facts.rs. The probe reads the body
            // with every definition inlined, which for a body that fans out (a residual
            // stack's `h24`) is exponential in its depth: 2.6 GB and 42 s at 24 layers.
            // The facts sought (a centred matrix) sit in small bodies.
            if !crate::derive::fans_out(body) {
                canon.probe(symbol, body, &poly);
            }
            if let Some(Term {
                coeff,
                scalars,
                core: Some(body),
            }) = poly.as_single()
            {
                let elementwise = matches!(canon.out.expr()[*body], Math::Had(_) | Math::HDiv(_));
                if *coeff == 1.0 && scalars.is_empty() && elementwise {
                    canon.elementwise_definitions.insert(symbol, *body);
                }
            }
            let transposed = (!data.is_scalar()).then(|| canon.transposed(&poly));
            canon.known.push(Known {
                symbol,
                poly,
                transposed,
            });
        }
    }
    let mut roots = Vec::with_capacity(exprs.len());
    for expr in exprs {
        let (poly, data) = canon.read(expr);
        roots.push(canon.build(&poly, data.shape()));
        if canon.data.len() > canon.budget {
            return None;
        }
    }
    let canonical = canon.out.finish();
    let oriented = roots
        .into_iter()
        .map(|root| {
            let mut oriented = ExprBuilder::default();
            orient(&canonical, root, &mut oriented, &mut HashMap::new());
            oriented.finish()
        })
        .collect();
    Some(oriented)
}

/// The canonical form may have this many nodes per node of its input, plus `SLACK`.
const GROWTH: usize = 4;
const SLACK: usize = 1000;

/// A definition: its name's node and its body's canonical sum, as written and transposed.
struct Known {
    symbol: Id,
    poly: Poly,
    transposed: Option<Poly>,
}

struct Canon<'a> {
    env: &'a Env,
    /// The sums made single factors (by `single_or_factor`), by their node.
    sums: HashMap<Id, Poly>,
    /// The definitions whose body is an elementwise product or quotient: name to body.
    elementwise_definitions: HashMap<Id, Id>,
    /// The most nodes `out` may have; past it, reading stops.
    budget: usize,
    known: Vec<Known>,
    reading: &'a ReadingOrder,
    /// The earliest rank in reading order of a node's names.
    first_name: HashMap<Id, usize>,
    out: ExprBuilder,
    /// The data of each node of `out`.
    data: Vec<Data>,
    transposed: HashMap<Id, Id>,
    signatures: HashMap<Id, Signature>,
    /// What follows from the definitions' bodies (facts.rs).
    facts: facts::Facts,
}

impl<'a> Canon<'a> {
    fn new(env: &'a Env, reading: &'a ReadingOrder, inputs: usize) -> Canon<'a> {
        Canon {
            env,
            sums: HashMap::new(),
            elementwise_definitions: HashMap::new(),
            budget: GROWTH * inputs + SLACK,
            known: Vec::new(),
            reading,
            first_name: HashMap::new(),
            out: ExprBuilder::default(),
            data: Vec::new(),
            transposed: HashMap::new(),
            signatures: HashMap::new(),
            facts: facts::Facts::default(),
        }
    }
}

impl Canon<'_> {
    /// The canonical sum of an expression's root, and the root's data.
    fn read(&mut self, expr: &RecExpr<Math>) -> (Poly, Data) {
        let input = expr_data(self.env, expr);
        let mut polys: Vec<Poly> = Vec::with_capacity(expr.as_ref().len());
        for (node, data) in expr.as_ref().iter().zip(&input) {
            if self.data.len() > self.budget {
                return (Poly::default(), data.clone());
            }
            let poly = self.poly(node, data, &polys, &input);
            let poly = self.recognise(poly);
            polys.push(poly);
        }
        let data = input.last().cloned().unwrap_or(Data {
            kind: crate::ir::Kind::Invalid,
            constant: None,
        });
        (polys.pop().unwrap_or_default(), data)
    }

    fn add(&mut self, node: Math) -> Id {
        let id = self.out.add(node.clone());
        if usize::from(id) == self.data.len() {
            let data = node_data(self.env, &node, |c| self.data[usize::from(c)].clone());
            self.data.push(data);
        }
        id
    }

    fn num(&mut self, c: f64) -> Id {
        self.add(Math::Num(Const(if c == 0.0 { 0.0 } else { c })))
    }

    fn dim(&mut self, d: &Dim) -> Id {
        self.add(Math::Dim(DimNode(d.clone())))
    }

    fn is_scalar(&self, id: Id) -> bool {
        self.data[usize::from(id)].is_scalar()
    }

    fn shape(&self, id: Id) -> Option<Shape> {
        self.data[usize::from(id)].shape().cloned()
    }

    /// A node of `out` as a one-term sum: a scalar factor or the matrix part.
    fn atom(&self, id: Id) -> Poly {
        if let Some(c) = self.data[usize::from(id)].constant {
            return Poly::single(Term::constant(c));
        }
        let term = if self.is_scalar(id) {
            Term {
                coeff: 1.0,
                scalars: vec![(id, 1.0)],
                core: None,
            }
        } else {
            Term {
                coeff: 1.0,
                scalars: Vec::new(),
                core: Some(id),
            }
        };
        Poly(vec![term])
    }

    /// The canonical sum of one input node, from its children's.
    fn poly(&mut self, node: &Math, data: &Data, polys: &[Poly], input: &[Data]) -> Poly {
        if let Some(c) = data.constant {
            return Poly::single(Term::constant(c));
        }
        let p = |id: &Id| &polys[usize::from(*id)];
        let scalar = |id: &Id| input[usize::from(*id)].is_scalar();
        match node {
            // A zero matrix is the empty sum, so it cannot keep a sum's terms from sharing a factor.
            Math::Zeros(_) => Poly::default(),
            Math::Add([a, b]) => self.sum(p(a), p(b)),
            Math::Scale([s, a]) => self.product(p(s), p(a)),
            Math::Mul([a, b]) | Math::Had([a, b]) if scalar(a) => self.product(p(a), p(b)),
            Math::Mul([a, b]) | Math::Had([a, b]) if scalar(b) => self.product(p(b), p(a)),
            Math::Mul([a, b]) => self.matrix_product(p(a), p(b), data),
            Math::HDiv([a, b]) if scalar(b) => {
                let inverse = self.power(p(b), -1.0);
                self.product(&inverse, p(a))
            }
            Math::Had([a, b]) => self.hadamard(p(a), p(b), data),
            Math::HDiv([a, b]) => {
                let inverse = self.elementwise_power(p(b), -1.0, data);
                self.hadamard(p(a), &inverse, data)
            }
            Math::EPow([a, k]) => match polys[usize::from(*k)].as_single() {
                Some(Term {
                    coeff,
                    scalars,
                    core: None,
                }) if scalars.is_empty() && coeff.fract() == 0.0 => {
                    let k = *coeff;
                    self.elementwise_power(p(a), k, data)
                }
                _ => self.opaque(node, data, polys, input),
            },
            Math::Transpose(a) if scalar(a) => p(a).clone(),
            Math::Transpose(a) => self.transposed(p(a)),
            Math::Pow([a, k]) => match polys[usize::from(*k)].as_single() {
                Some(Term {
                    coeff,
                    scalars,
                    core: None,
                }) if scalars.is_empty() => {
                    let k = *coeff;
                    self.power(p(a), k)
                }
                _ => self.opaque(node, data, polys, input),
            },
            Math::Inv(a) if scalar(a) => self.power(p(a), -1.0),
            Math::Inv(a) => match p(a).as_single() {
                Some(t) if t.core.is_some() => {
                    let inverse_scalars = Term {
                        coeff: 1.0 / t.coeff,
                        scalars: t.scalars.iter().map(|&(f, e)| (f, -e)).collect(),
                        core: None,
                    };
                    let core = t.core.map(|c| self.inverse(c));
                    Poly::single(Term {
                        core,
                        ..inverse_scalars
                    })
                }
                _ => self.opaque(node, data, polys, input),
            },
            // tr(s·A) = s·tr(A); a sum inside stays whole (tr(A − B), as written).
            Math::Trace(a) | Math::Sum(a) if !p(a).0.is_empty() => {
                let t = self.single_or_factor(p(a));
                match t.core {
                    Some(c) => {
                        let inner = self.add(if matches!(node, Math::Trace(_)) {
                            Math::Trace(c)
                        } else {
                            Math::Sum(c)
                        });
                        Poly::single(Term { core: None, ..t }.times(&Term {
                            coeff: 1.0,
                            scalars: vec![(inner, 1.0)],
                            core: None,
                        }))
                    }
                    None => Poly::single(t),
                }
            }
            _ => self.opaque(node, data, polys, input),
        }
    }

    /// The node rebuilt over its children's canonical forms, as one factor.
    fn opaque(&mut self, node: &Math, data: &Data, polys: &[Poly], input: &[Data]) -> Poly {
        let node = match &data.kind {
            crate::ir::Kind::Dim(d) => Math::Dim(DimNode(d.clone())),
            _ => node
                .clone()
                .map_children(|c| self.build(&polys[usize::from(c)], input[usize::from(c)].shape())),
        };
        let id = self.add(node);
        self.atom(id)
    }

    /// `s·a` for a scalar `s`. A sum is not multiplied out: it stays one factor, as the
    /// script wrote it (`2·(x − a)`, not `2·x − 2·a`).
    /// `a + b`, a multiple of a sum multiplied out where its terms then combine with the
    /// others (`t − (1 − t)` is `2·t − 1`); kept whole otherwise.
    fn sum(&mut self, a: &Poly, b: &Poly) -> Poly {
        let terms: Vec<Term> = a.0.iter().chain(&b.0).cloned().collect();
        self.opened(&terms).unwrap_or_else(|| a.plus(b))
    }

    /// The terms with each multiple of a sum multiplied out, if that makes terms combine.
    fn opened(&mut self, terms: &[Term]) -> Option<Poly> {
        let mut raw = Vec::new();
        let mut opened = false;
        for t in terms {
            match t.core.and_then(|c| self.sums.get(&c)) {
                Some(inner) => {
                    opened = true;
                    let factor = Term {
                        core: None,
                        ..t.clone()
                    };
                    raw.extend(inner.0.iter().map(|u| factor.times(u)));
                }
                None => raw.push(t.clone()),
            }
        }
        if !opened {
            return None;
        }
        let expanded = raw
            .iter()
            .fold(Poly::default(), |acc, t| acc.plus(&Poly::single(t.clone())));
        (expanded.0.len() < raw.len()).then_some(expanded)
    }

    fn product(&mut self, s: &Poly, a: &Poly) -> Poly {
        if s.0.is_empty() || a.0.is_empty() {
            return Poly::default();
        }
        let (x, y) = (self.single_or_factor(s), self.single_or_factor(a));
        Poly::single(x.times(&y))
    }

    fn power(&mut self, a: &Poly, k: f64) -> Poly {
        let whole = |this: &mut Self| {
            let base = this.build(a, None);
            Poly::single(Term {
                coeff: 1.0,
                scalars: vec![(base, k)],
                core: None,
            })
        };
        match a.as_single() {
            None if a.0.is_empty() => self.zero_power(k),
            // (c·Π fᵉ)ᵏ = cᵏ·Π fᵉᵏ for a whole k; otherwise only a lone factor's exponent scales
            // (√(x²) is |x|, not x).
            Some(t) if t.core.is_none() && k.fract() == 0.0 => Poly::single(Term {
                coeff: t.coeff.powf(k),
                scalars: t.scalars.iter().map(|&(f, e)| (f, e * k)).collect(),
                core: None,
            }),
            Some(t) if t.core.is_none() && t.coeff == 1.0 && t.scalars.len() == 1 && t.scalars[0].1 == 1.0 => {
                Poly::single(Term {
                    coeff: 1.0,
                    scalars: vec![(t.scalars[0].0, k)],
                    core: None,
                })
            }
            _ => whole(self),
        }
    }

    /// 0ᵏ: 0 for k > 0; left as written otherwise (the check reports what it is).
    fn zero_power(&mut self, k: f64) -> Poly {
        if k > 0.0 {
            Poly::default()
        } else {
            let zero = self.num(0.0);
            let k = self.num(k);
            let id = self.add(Math::Pow([zero, k]));
            self.atom(id)
        }
    }

    /// Writes a sum out as an expression, its terms in a fixed order (so equal sums are
    /// one node), zero of the node's shape when it is empty.
    ///
    /// What all terms share comes out as one factor: scalar factors (`(A − B)/N`, not
    /// `A/N − B/N`) and coefficients of one size (`2·(A − B)`, not `2·A − 2·B`, with the sign
    /// of the term whose names come first).
    fn build(&mut self, poly: &Poly, shape: Option<&Shape>) -> Id {
        let mut sorted = poly.0.clone();
        self.sort_terms(&mut sorted);
        if sorted.len() > 1 {
            // Scalar factors every term has, with one exponent, come out: s·(A − B).
            let common: Vec<(Id, f64)> = sorted[0]
                .scalars
                .iter()
                .filter(|f| sorted.iter().all(|t| t.scalars.contains(f)))
                .copied()
                .collect();
            if !common.is_empty() {
                let inner: Vec<Term> = sorted
                    .iter()
                    .map(|t| Term {
                        scalars: t.scalars.iter().filter(|f| !common.contains(f)).copied().collect(),
                        ..t.clone()
                    })
                    .collect();
                let inner = self.build(&Poly(inner), shape);
                let outer = Term {
                    coeff: 1.0,
                    scalars: common,
                    core: None,
                };
                return self.build_term(&outer.times(&self.atom(inner).0[0]));
            }
            if let Some(factored) = self.common_elementwise_factor(&sorted) {
                return factored;
            }
            let size = sorted[0].coeff.abs();
            if size != 1.0 && sorted.iter().all(|t| t.coeff.abs() == size) {
                let factor = self.single_or_factor(&Poly(sorted));
                return self.build_term(&factor);
            }
        }
        let terms: Vec<Id> = sorted.iter().map(|t| self.build_term(t)).collect();
        match terms.split_first() {
            Some((&first, rest)) => rest.iter().fold(first, |acc, &t| self.add(Math::Add([acc, t]))),
            None => match shape {
                Some(shape) if !shape.is_scalar() => {
                    let (r, c) = (self.dim(&shape.rows), self.dim(&shape.cols));
                    self.add(Math::Zeros([r, c]))
                }
                _ => self.num(0.0),
            },
        }
    }

    /// `G ⊙ x − μ·G` as `G ⊙ (x − μ·1)`: the elementwise factors every term's matrix part has
    /// (with one exponent) come out, and what is left may be a definition (`G ⊙ xc`).
    fn common_elementwise_factor(&mut self, terms: &[Term]) -> Option<Id> {
        let cores: Vec<Id> = terms.iter().map(|t| t.core).collect::<Option<_>>()?;
        let shape = self.shape(cores[0])?;
        let mut factors: Vec<Vec<(Id, f64)>> = Vec::with_capacity(cores.len());
        for &c in &cores {
            let mut f = Vec::new();
            self.elementwise_factors(c, 1.0, false, &mut f);
            factors.push(elementwise::merge_factors(f));
        }
        let common: Vec<(Id, f64)> = factors[0]
            .iter()
            .filter(|f| factors.iter().all(|fs| fs.contains(f)))
            .copied()
            .collect();
        if common.is_empty() {
            return None;
        }
        let mut inner = Vec::new();
        for (t, fs) in terms.iter().zip(&factors) {
            let rest: Vec<(Id, f64)> = fs.iter().filter(|f| !common.contains(f)).copied().collect();
            let core = self.elementwise_monomial(rest, &shape);
            inner.push(Term {
                core: Some(core),
                ..t.clone()
            });
        }
        // What is left after the common factor may combine (`G ⊙ t − G ⊙ (1 − t)`: `2·t − 1`).
        let inner = self.opened(&inner).unwrap_or(Poly(inner));
        let inner = self.recognise(inner);
        let inner = self.build(&inner, Some(&shape));
        let mut all = common;
        all.push((inner, 1.0));
        Some(self.elementwise_monomial(all, &shape))
    }

    fn build_term(&mut self, t: &Term) -> Id {
        let mut factors: Vec<Id> = Vec::new();
        for &(f, e) in &t.scalars {
            factors.push(if e == 1.0 {
                f
            } else {
                let k = self.num(e);
                self.add(Math::Pow([f, k]))
            });
        }
        let mut acc = match t.core.or_else(|| factors.pop()) {
            Some(inner) => inner,
            None => return self.num(t.coeff),
        };
        for f in factors.into_iter().rev() {
            acc = self.add(Math::Scale([f, acc]));
        }
        if t.coeff != 1.0 {
            let c = self.num(t.coeff);
            acc = self.add(Math::Scale([c, acc]));
        }
        acc
    }
}

#[cfg(test)]
mod tests;
