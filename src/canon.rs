//! A canonical form computed outside the e-graph: every sum as a list of terms with like
//! terms combined, every term as one number times scalar factors (each once, with its
//! exponent) times one matrix part, matrix products flattened with transposes pushed to
//! the leaves and inverse pairs cancelled.
//!
//! These are the rewrites that cancel (`0.5·2 = 1`, `s·s⁻¹ = 1`, `A − A = 0`,
//! `A·A⁻¹ = I`). Inside an e-graph that also knows associativity and commutativity they
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
    let inputs = expr.as_ref().len() + definitions.iter().map(|(_, d)| d.as_ref().len()).sum::<usize>();
    let mut canon = Canon {
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
    };
    for (name, body) in definitions {
        let (poly, data) = canon.read(body);
        let known = poly.0.iter().any(|t| t.core.is_some() || !t.scalars.is_empty());
        if known {
            let symbol = canon.add(Math::Symbol(*name));
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
    let (poly, data) = canon.read(expr);
    let root = canon.build(&poly, data.shape());
    if canon.data.len() > canon.budget {
        return None;
    }
    let canonical = canon.out.finish();
    let mut oriented = ExprBuilder::default();
    orient(&canonical, root, &mut oriented, &mut HashMap::new());
    Some(oriented.finish())
}

/// The most terms a Hadamard product of sums is multiplied out to.
const EXPANSION: usize = 16;

/// The canonical form may have this many nodes per node of its input, plus `SLACK`.
const GROWTH: usize = 4;
const SLACK: usize = 1000;

/// Products at least this long are written with the fewer transposes (see `orient`).
const LONG_PRODUCT: usize = 8;

/// Writes a long product with transposes pushed in (`Zᵀ·…·Bᵀ·Aᵀ`) as the transpose of one
/// with fewer (`(A·B·…·Z)ᵀ`) when most of its factors are transposed: the same value, and
/// far fewer nodes for the rules to rearrange (a chain of a thousand transposed factors
/// otherwise fills the e-graph with their partial products). Short products are left as
/// they are: extraction picks their form.
fn orient(expr: &RecExpr<Math>, id: Id, out: &mut ExprBuilder, memo: &mut HashMap<Id, Id>) -> Id {
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

fn flatten_product(expr: &RecExpr<Math>, id: Id, out: &mut Vec<Id>) {
    match expr[id] {
        Math::Mul([a, b]) => {
            flatten_product(expr, a, out);
            flatten_product(expr, b, out);
        }
        _ => out.push(id),
    }
}

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
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Signature {
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

    /// The terms of `poly` that make up a multiple of a definition (latest first, so the
    /// largest), replaced by that multiple of its name.
    fn recognise(&mut self, mut poly: Poly) -> Poly {
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
    fn transposed(&mut self, poly: &Poly) -> Poly {
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
            Math::Add([a, b]) => p(a).plus(p(b)),
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

    /// `A·B` for matrices: a single term's scalars move out; a sum stays one factor.
    fn matrix_product(&mut self, a: &Poly, b: &Poly, data: &Data) -> Poly {
        if a.0.is_empty() || b.0.is_empty() {
            return Poly::default();
        }
        let (ta, tb) = (self.single_or_factor(a), self.single_or_factor(b));
        let (Some(x), Some(y)) = (ta.core, tb.core) else {
            unreachable!("a matrix factor has a matrix part")
        };
        let core = self.word(x, y, data);
        let scalars = Term { core: None, ..ta }.times(&Term { core: None, ..tb });
        let mut term = Term { core, ..scalars };
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

    /// A single term as it is; a sum as one factor, with the coefficient of its constant
    /// term or else of its term whose names come first taken out, so that `0.5·x − 0.5·μ`,
    /// `μ − x` and `x − μ` are one factor, as are `1 − σ` and `σ − 1`.
    fn single_or_factor(&mut self, a: &Poly) -> Term {
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
            self.sums.insert(id, normalised);
        }
        self.atom(id).0[0].times(&Term::constant(leading))
    }

    /// The elementwise factors of a matrix part with their exponents (`x ⊙ y ⊘ z.^2`:
    /// x¹, y¹, z⁻²), a ones matrix being none.
    /// With `through`, a definition that is an elementwise product or quotient (softmax)
    /// gives its body's factors.
    fn elementwise_factors(&self, id: Id, k: f64, through: bool, out: &mut Vec<(Id, f64)>) {
        match self.out.expr()[id] {
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
                self.elementwise_factors(a, k * e, through, out);
            }
            Math::Ones(_) => {}
            Math::Symbol(_) if through && self.elementwise_definitions.contains_key(&id) => {
                self.elementwise_factors(self.elementwise_definitions[&id], k, through, out);
            }
            _ => out.push((id, k)),
        }
    }

    /// The canonical matrix part of an elementwise monomial: the factors by id, exponents
    /// summed, the cancelled ones gone (`x ⊘ x` is 1 where x has no zero, as the rules'
    /// `hdiv-cancel`), written `n₁ ⊙ n₂ ⊘ (d₁ ⊙ d₂)`; all ones when nothing is left.
    fn elementwise_monomial(&mut self, factors: Vec<(Id, f64)>, shape: &Shape) -> Id {
        let merged = self.sigmoids(merge_factors(factors));
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

    /// `exp(u) ⊘ (1 + exp(u))` and `1 ⊘ (1 + exp(−u))` among the factors, as `σ(u)`, and
    /// `exp(−u) ⊙ σ(u)` as `σ(−u)`.
    fn sigmoids(&mut self, mut factors: Vec<(Id, f64)>) -> Vec<(Id, f64)> {
        let mut k = 0;
        while k < factors.len() {
            let (sum, e) = factors[k];
            let argument = (e == -1.0).then(|| self.one_plus_exp(sum)).flatten();
            let Some(u) = argument else {
                k += 1;
                continue;
            };
            let exp_u = self.out.expr()[u].clone();
            let numerator = factors
                .iter()
                .position(|(f, e)| *e == 1.0 && self.out.expr()[*f] == Math::Exp(u));
            let sigmoid_of = match (numerator, exp_u) {
                (Some(n), _) => {
                    factors.remove(n.max(k));
                    factors.remove(n.min(k));
                    Some(u)
                }
                // 1 + exp(−v): σ(v) = 1/(1 + e⁻ᵛ).
                (None, Math::Scale([minus, v])) if self.data[usize::from(minus)].constant == Some(-1.0) => {
                    factors.remove(k);
                    Some(v)
                }
                _ => None,
            };
            match sigmoid_of {
                Some(v) => {
                    let sigma = self.add(Math::Sigmoid(v));
                    factors.push((sigma, 1.0));
                    k = 0;
                }
                None => k += 1,
            }
        }
        // exp(−v) ⊙ σ(v) = σ(−v)
        let mut k = 0;
        while k < factors.len() {
            let (f, e) = factors[k];
            let found = match self.out.expr()[f] {
                Math::Sigmoid(v) if e == 1.0 => factors.iter().position(|&(g, e)| {
                    e == 1.0
                        && matches!(self.out.expr()[g], Math::Exp(w)
                            if matches!(self.out.expr()[w], Math::Scale([m, x]) if x == v && self.data[usize::from(m)].constant == Some(-1.0)))
                }),
                _ => None,
            };
            match found {
                Some(n) => {
                    let Math::Exp(w) = self.out.expr()[factors[n].0] else {
                        unreachable!("matched an exponential")
                    };
                    factors.remove(n.max(k));
                    factors.remove(n.min(k));
                    let sigma = self.add(Math::Sigmoid(w));
                    factors.push((sigma, 1.0));
                    k = 0;
                }
                None => k += 1,
            }
        }
        merge_factors(factors)
    }

    /// For a sum `1 + exp(u)` (ones and one exponential, both with coefficient 1): u.
    fn one_plus_exp(&self, sum: Id) -> Option<Id> {
        let terms = &self.sums.get(&sum)?.0;
        let [a, b] = terms.as_slice() else { return None };
        let plain = |t: &Term| t.coeff == 1.0 && t.scalars.is_empty();
        if !plain(a) || !plain(b) {
            return None;
        }
        let (x, y) = (a.core?, b.core?);
        match (&self.out.expr()[x], &self.out.expr()[y]) {
            (Math::Ones(_), Math::Exp(u)) | (Math::Exp(u), Math::Ones(_)) => Some(*u),
            _ => None,
        }
    }

    /// The product of two terms' elementwise factors. Definitions that are elementwise
    /// quotients are seen through only when that cancels a factor (`exp(Z) ⊙ Y ⊘ S` with
    /// `S = exp(Z) ⊘ (exp(Z)·1·1ᵀ)`); left whole, they keep their names.
    fn hadamard_terms(&mut self, s: &Term, t: &Term, shape: &Shape) -> Term {
        self.hadamard_cancelling(s, t, shape).0
    }

    /// As `hadamard_terms`, and whether some factor cancelled.
    fn hadamard_cancelling(&mut self, s: &Term, t: &Term, shape: &Shape) -> (Term, bool) {
        let factors = |this: &Self, through: bool| {
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
    fn hadamard(&mut self, a: &Poly, b: &Poly, data: &Data) -> Poly {
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
    fn expand(&mut self, term: Term, shape: &Shape, out: &mut Vec<Term>) -> bool {
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
    fn divisions(&self, sum: Id) -> usize {
        self.sums[&sum]
            .0
            .iter()
            .filter(|t| t.core.is_some_and(|c| matches!(self.out.expr()[c], Math::HDiv(_))))
            .count()
    }

    /// `a.^k` elementwise (k = −1 for `1 ⊘ a`): a single term's factors to the k-th power
    /// for a whole k; otherwise `a` is one factor.
    fn elementwise_power(&mut self, a: &Poly, k: f64, data: &Data) -> Poly {
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

    fn term_first_name(&mut self, t: &Term) -> usize {
        let ids: Vec<Id> = t.scalars.iter().map(|(f, _)| *f).chain(t.core).collect();
        ids.into_iter()
            .map(|id| self.first_name(id))
            .min()
            .unwrap_or(usize::MAX)
    }

    fn first_name(&mut self, id: Id) -> usize {
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

    /// The factors of a matrix product as a flat list.
    fn factors(&self, id: Id, out: &mut Vec<Id>) {
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
    fn word(&mut self, x: Id, y: Id, data: &Data) -> Option<Id> {
        let mut list = Vec::new();
        self.factors(x, &mut list);
        self.factors(y, &mut list);
        let mut stack: Vec<Id> = Vec::new();
        for f in list {
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
            Some(last) => Some(
                stack
                    .into_iter()
                    .rev()
                    .fold(last, |acc, f| self.add(Math::Mul([f, acc]))),
            ),
        }
    }

    /// For `inverse = (W·f)⁻¹` (or `(f·W)⁻¹` when `front`) and a square `f`: `W⁻¹`.
    fn peel(&mut self, inverse: Id, f: Id, front: bool) -> Option<Id> {
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

    fn inverse_of(&self, id: Id) -> Option<Id> {
        match self.out.expr()[id] {
            Math::Inv(x) => Some(x),
            _ => None,
        }
    }

    /// `A⁻¹`; the inverse of a power is the power of the inverse ((X·X)⁻¹ = X⁻¹·X⁻¹, Cookbook
    /// eq. 1), so that it can cancel against the factors around it.
    fn inverse(&mut self, id: Id) -> Id {
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
    /// inverses (not into Hadamard products or functions, where the rules would not pull it back out).
    fn transpose(&mut self, id: Id) -> Id {
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
                list.into_iter()
                    .rev()
                    .fold(last, |acc, f| self.add(Math::Mul([f, acc])))
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
            Math::Inv(x) => {
                let tx = self.transpose(x);
                self.add(Math::Inv(tx))
            }
            _ => self.add(Math::Transpose(id)),
        };
        self.transposed.insert(id, t);
        t
    }

    /// Writes a sum out as an expression (zero of the node's shape when it is empty).
    /// Writes a sum out as an expression, its terms in a fixed order (so equal sums are
    /// one node), zero of the node's shape when it is empty.
    ///
    /// Coefficients all of one size come out as one factor: `2·(A − B)`, not `2·A − 2·B`,
    /// with the sign of the term whose names come first.
    fn build(&mut self, poly: &Poly, shape: Option<&Shape>) -> Id {
        let mut sorted = poly.0.clone();
        self.sort_terms(&mut sorted);
        if sorted.len() > 1 {
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

    /// The transposes among the distinct nodes of a subexpression.
    fn transposes(&self, id: Id) -> usize {
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

    fn summands(&self, id: Id, out: &mut Vec<Id>) {
        match self.out.expr()[id] {
            Math::Add([a, b]) => {
                self.summands(a, out);
                self.summands(b, out);
            }
            _ => out.push(id),
        }
    }

    /// Sorts a sum's terms by their signatures: an order that transposing every term keeps.
    fn sort_terms(&mut self, terms: &mut [Term]) {
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
    fn signature(&mut self, id: Id) -> Signature {
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

/// Factors with exponents, each once, by id, none with exponent 0.
fn merge_factors(mut factors: Vec<(Id, f64)>) -> Vec<(Id, f64)> {
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
fn cancelling(factors: &[(Id, f64)]) -> bool {
    factors
        .iter()
        .any(|(f, e)| *e > 0.0 && factors.iter().any(|(g, k)| g == f && *k < 0.0))
}

/// The number r with `pattern`'s terms, times r, all among `poly`'s terms.
fn multiple(poly: &Poly, pattern: &Poly) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dim::{Dim, Shape};

    fn env(square: &[&str], vectors: &[&str], scalars: &[&str]) -> Env {
        let mut env = Env::default();
        let n = || Dim::named("n");
        for s in square {
            env.shapes.insert(Symbol::from(*s), Shape::new(n(), n()));
        }
        for s in vectors {
            env.shapes.insert(Symbol::from(*s), Shape::new(n(), Dim::one()));
        }
        for s in scalars {
            env.shapes.insert(Symbol::from(*s), Shape::scalar());
        }
        env
    }

    fn canon_with(env: &Env, reading: &str, definitions: &[(&str, &str)], expr: &str) -> String {
        let mut order = ReadingOrder::default();
        order.read(&reading.parse().expect("an expression"));
        let bodies: Vec<(Symbol, RecExpr<Math>)> = definitions
            .iter()
            .map(|(name, body)| (Symbol::from(*name), body.parse().expect("an expression")))
            .collect();
        let borrowed: Vec<(Symbol, &RecExpr<Math>)> = bodies.iter().map(|(s, b)| (*s, b)).collect();
        canonical(env, &order, &borrowed, &expr.parse().expect("an expression"))
            .expect("within budget")
            .to_string()
    }

    fn canon(expr: &str) -> String {
        let env = env(&["A", "B", "X"], &["x", "y", "mu"], &["s", "t"]);
        canon_with(&env, expr, &[], expr)
    }

    #[test]
    fn numbers_fold_and_scalar_factors_meet_once() {
        assert_eq!(canon("(scale 0.5 (scale 2 x))"), "x");
        assert_eq!(canon("(scale (scale (scale s 0.5) 2) (scale (pow s -1) x))"), "x");
        assert_eq!(canon("(scale s (scale s x))"), "(scale (pow s 2) x)");
    }

    #[test]
    fn like_terms_combine_and_cancel() {
        assert_eq!(canon("(+ (scale s x) (scale s x))"), "(scale 2 (scale s x))");
        assert_eq!(canon("(+ x (scale -1 x))"), "(zeros @n @1)");
        // 0.5·x − 0.5·μ and μ − x are one factor: −S⁻¹(x − μ) twice over.
        assert_eq!(
            canon("(+ (* A (+ (scale 0.5 x) (scale -0.5 mu))) (* A (+ mu (scale -1 x))))"),
            "(scale -0.5 (* A (+ (scale -1 mu) x)))"
        );
    }

    #[test]
    fn inverse_pairs_cancel_through_products_and_transposes() {
        assert_eq!(canon("(* A (* (inv A) B))"), "B");
        // Aᵀ·(A·X·B)⁻ᵀ·Bᵀ = X⁻ᵀ (Cookbook eq. 1 peels the square factors off).
        assert_eq!(canon("(* (T A) (* (T (inv (* A (* X B)))) (T B)))"), "(inv (T X))");
        assert_eq!(canon("(* (inv (* A B)) A)"), "(inv B)");
        assert_eq!(canon("(* (inv (* A B)) B)"), "(* (inv (* A B)) B)");
        // The inverse of a power is the power of the inverse.
        assert_eq!(canon("(* X (inv (* X (* X X))))"), "(* (inv X) (inv X))");
    }

    #[test]
    fn a_sum_keeps_the_sign_of_its_first_name() {
        assert_eq!(canon("(* A (+ (scale -1 x) y))"), "(scale -1 (* A (+ x (scale -1 y))))");
        // The terms of a sum are in a fixed order; the reading order only sets the signs.
        assert_eq!(canon("(* A (+ y (scale -1 x)))"), "(* A (+ (scale -1 x) y))");
    }

    #[test]
    fn elementwise_factors_cancel_then_sums_multiply_out_when_that_cancels() {
        // Logistic regression: ((1 − t) ⊘ (1 − p) − t ⊘ p) ⊙ p ⊙ (1 − p) = p − t.
        let ones = "(ones @n @1)";
        let one_minus = |v: &str| format!("(+ {ones} (scale -1 {v}))");
        let expr = format!(
            "(.* (+ (./ {} {}) (scale -1 (./ t p))) (.* p {}))",
            one_minus("t"),
            one_minus("p"),
            one_minus("p")
        );
        let env = env(&[], &["t", "p"], &[]);
        assert_eq!(canon_with(&env, "(+ p t)", &[], &expr), "(+ p (scale -1 t))");
        // Nothing cancels: the sum stays one factor.
        let kept = format!("(.* t {})", one_minus("p"));
        assert_eq!(
            canon_with(&env, "(+ p t)", &[], &kept),
            format!("(.* t (+ (scale -1 p) {ones}))")
        );
    }

    #[test]
    fn a_quotient_of_exponentials_is_a_sigmoid() {
        let env = env(&[], &["x", "y"], &[]);
        let ones = "(ones @n @1)";
        let expr = format!("(.* y (./ (exp x) (+ {ones} (exp x))))");
        assert_eq!(canon_with(&env, "(+ y x)", &[], &expr), "(.* y (sigmoid x))");
        let expr = format!("(./ y (+ {ones} (exp (scale -1 x))))");
        assert_eq!(canon_with(&env, "(+ y x)", &[], &expr), "(.* y (sigmoid x))");
    }

    #[test]
    fn definitions_stand_for_their_bodies() {
        let mut env = env(&["A", "B"], &["x", "y"], &[]);
        env.shapes
            .insert(Symbol::from("h"), Shape::new(Dim::named("n"), Dim::one()));
        let definitions = [("h", "(+ (* A x) y)")];
        let reading = "(+ (* A x) y)";
        assert_eq!(
            canon_with(&env, reading, &definitions, "(* B (+ y (* A x)))"),
            "(* B h)"
        );
        assert_eq!(canon_with(&env, reading, &definitions, "(T (+ y (* A x)))"), "(T h)");
        assert_eq!(
            canon_with(&env, reading, &definitions, "(+ (scale 2 y) (+ x (scale 2 (* A x))))"),
            "(+ (scale 2 h) x)"
        );
    }

    #[test]
    fn a_canonical_form_that_would_not_share_its_factors_is_refused() {
        let env = env(&["A"], &["x"], &[]);
        // Σ Aᵏ·x·xᵀ·Aᵏ: the input shares each Aᵏ, the flattened products share nothing.
        let mut b = ExprBuilder::default();
        let (a, x) = (b.add(Math::Symbol("A".into())), b.add(Math::Symbol("x".into())));
        let xt = b.add(Math::Transpose(x));
        let outer = b.add(Math::Mul([x, xt]));
        let mut power = a;
        let mut sum = None;
        for _ in 0..300 {
            power = b.add(Math::Mul([power, a]));
            let left = b.add(Math::Mul([power, outer]));
            let term = b.add(Math::Mul([left, power]));
            sum = Some(sum.map_or(term, |s| b.add(Math::Add([s, term]))));
        }
        let parsed = b.finish();
        let out = canonical(&env, &ReadingOrder::default(), &[], &parsed);
        assert!(
            out.is_none(),
            "{} nodes from {}",
            out.map_or(0, |o| o.as_ref().len()),
            parsed.as_ref().len()
        );
    }
}
