//! The intermediate representation: an egg language over shaped matrix expressions,
//! and the e-graph analysis that carries each class's shape and constant value.
//!
//! Everything after shape checking speaks this language: the lowered target (with
//! broadcasting explicit), the backprop rules, the simplifier, the numeric checker
//! and the renderers.

use crate::dim::{Dim, Shape};
use crate::ops::Func;
use egg::{define_language, Analysis, DidMerge, EGraph, Id, Language, RecExpr, Symbol};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// A real constant with a total order, so it can sit in an e-node.
#[derive(Debug, Clone, Copy)]
pub struct Const(pub f64);

impl PartialEq for Const {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Const {}
impl std::hash::Hash for Const {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
impl PartialOrd for Const {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Const {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl fmt::Display for Const {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl FromStr for Const {
    type Err = std::num::ParseFloatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Const)
    }
}

/// A dimension as an e-node leaf, spelled `@B`, `@3`, `@2*B*N` in patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimNode(pub Dim);

impl fmt::Display for DimNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0.render("*"))
    }
}

impl FromStr for DimNode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix('@').ok_or("not a dimension")?;
        let mut dim = Dim::one();
        for part in body.split('*') {
            let factor = match part.parse::<u64>() {
                Ok(n) if n > 0 => Dim::size(n),
                Ok(_) => return Err("zero dimension".into()),
                Err(_) if !part.is_empty() => Dim::named(part),
                Err(_) => return Err("empty dimension factor".into()),
            };
            dim = dim.times(&factor);
        }
        Ok(DimNode(dim))
    }
}

define_language! {
    /// Operators of the IR. `*` is the true matrix product (inner sizes agree);
    /// `scale` multiplies by a 1 x 1 value. Dimension-valued nodes (`rows`, `cols`,
    /// dimension leaves) only appear as arguments of `ones`, `zeros`, `eye`, `dim`.
    pub enum Math {
        "+" = Add([Id; 2]),
        "*" = Mul([Id; 2]),
        "scale" = Scale([Id; 2]),
        "T" = Transpose(Id),
        ".*" = Had([Id; 2]),
        "./" = HDiv([Id; 2]),
        "kron" = Kron([Id; 2]),
        "inv" = Inv(Id),
        "det" = Det(Id),
        "logdet" = LogDet(Id),
        "tr" = Trace(Id),
        "sum" = Sum(Id),
        "diag" = Diag(Id),
        "diagv" = DiagVec(Id),
        "norm" = Norm(Id),
        "pow" = Pow([Id; 2]),
        ".^" = EPow([Id; 2]),
        "ones" = Ones([Id; 2]),
        "zeros" = Zeros([Id; 2]),
        "eye" = Eye(Id),
        "rows" = Rows(Id),
        "cols" = Cols(Id),
        "dim" = DimValue(Id),
        // The adjoints of the Kronecker product: for M of shape (m·p) x (n·q),
        // `blocksum M m n` is the m x n matrix of the sums of its p x q blocks and
        // `blockadd M p q` the p x q sum of its m x n blocks.
        "blocksum" = BlockSum([Id; 3]),
        "blockadd" = BlockAdd([Id; 3]),
        // Full-form (Jacobian) algebra: `vec` stacks columns (Magnus & Neudecker), and
        // `commute m n` is the commutation matrix K with K·vec(A) = vec(Aᵀ) for A : m x n.
        "vec" = Vec(Id),
        "commute" = Commute([Id; 2]),
        // Selection and masks for numpy's indexing: `unit m i` is the i-th unit column of
        // length m (i from 0), so a block of columns is a product with `unit k i ⊗ I`;
        // `ismax A` is the one-hot mask of each row's first maximum, so a row's maximum is
        // `(A ⊙ ismax A)·1`, and the mask is a constant of differentiation.
        "unit" = Unit([Id; 2]),
        "ismax" = IsMax(Id),
        // Every elementwise function, named by its row of the operator table (`ops.rs`):
        // `(exp ?a)`, `(leaky_relu ?a ?b)`.
        Fn(Func, Box<[Id]>),
        Num(Const),
        Dim(DimNode),
        Symbol(Symbol),
    }
}

/// The names of the elementwise functions (the operator table's rows), for the parser,
/// the rules and the renderers.
pub fn elementwise_names() -> impl Iterator<Item = &'static str> {
    Func::ALL.iter().map(|f| f.name())
}

/// The same names as a list.
pub static ELEMENTWISE: LazyLock<Vec<&'static str>> = LazyLock::new(|| elementwise_names().collect());

impl Math {
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Math::Fn(..))
    }

    /// The node `f(arg)`.
    pub fn function(f: Func, args: &[Id]) -> Math {
        Math::Fn(f, args.into())
    }

    /// Builds the elementwise function node of that name (a function of one argument; one
    /// with a parameter, such as `leaky_relu`, needs it as a second child: [`Math::function`]).
    pub fn elementwise(name: &str, arg: Id) -> Option<Math> {
        let f: Func = name.parse().ok()?;
        f.spec().parameter.is_none().then(|| Math::function(f, &[arg]))
    }
}

/// What the analysis knows of an e-class.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Value(Shape),
    Dim(Dim),
    /// Only reachable through a malformed rule; never produced from checked input.
    Invalid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub kind: Kind,
    /// The value of a 1 x 1 class when it is a known number.
    pub constant: Option<f64>,
}

impl Data {
    pub fn shape(&self) -> Option<&Shape> {
        match &self.kind {
            Kind::Value(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_scalar(&self) -> bool {
        self.shape().is_some_and(Shape::is_scalar)
    }
}

/// The shapes of the script's variables, which the analysis needs for symbol leaves.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub shapes: HashMap<Symbol, Shape>,
    pub symmetric: HashSet<Symbol>,
    /// One-hot matrices of integer labels: each row holds one 1 and zeros.
    pub onehot: HashSet<Symbol>,
}

#[derive(Debug, Clone, Default)]
pub struct ShapeAnalysis {
    pub env: Env,
}

pub type MathGraph = EGraph<Math, ShapeAnalysis>;

/// The shape (or dimension) and constant value of one node, given its children's data.
pub fn node_data(env: &Env, node: &Math, child: impl Fn(Id) -> Data) -> Data {
    let value = |s: Shape| Kind::Value(s);
    let shape = |id: Id| child(id).shape().cloned();
    let konst = |id: Id| child(id).constant;
    let dim = |id: Id| match child(id).kind {
        Kind::Dim(d) => Some(d),
        _ => None,
    };
    let unary_const = |a: Id, f: fn(f64) -> f64| konst(a).map(f);
    let binary_const = |a: Id, b: Id, f: fn(f64, f64) -> f64| Some(f(konst(a)?, konst(b)?));
    let same = |a: Id| shape(a).map(value).unwrap_or(Kind::Invalid);

    let (kind, constant) = match node {
        Math::Num(c) => (value(Shape::scalar()), Some(c.0)),
        Math::Dim(d) => (Kind::Dim(d.0.clone()), None),
        Math::Symbol(s) => (env.shapes.get(s).cloned().map(value).unwrap_or(Kind::Invalid), None),
        Math::Add([a, b]) => (same(*a), binary_const(*a, *b, |x, y| x + y)),
        Math::Mul([a, b]) => (
            match (shape(*a), shape(*b)) {
                (Some(x), Some(y)) if x.cols == y.rows => Some(value(Shape::new(x.rows, y.cols))),
                _ => None,
            }
            .unwrap_or(Kind::Invalid),
            binary_const(*a, *b, |x, y| x * y),
        ),
        Math::Scale([s, a]) => (same(*a), binary_const(*s, *a, |x, y| x * y)),
        Math::Transpose(a) => (
            shape(*a).map(|s| value(s.transposed())).unwrap_or(Kind::Invalid),
            konst(*a),
        ),
        Math::Had([a, b]) => (same(*a), binary_const(*a, *b, |x, y| x * y)),
        Math::HDiv([a, b]) => (same(*a), binary_const(*a, *b, |x, y| x / y)),
        Math::Kron([a, b]) => (
            match (shape(*a), shape(*b)) {
                (Some(x), Some(y)) => Some(value(Shape::new(x.rows.times(&y.rows), x.cols.times(&y.cols)))),
                _ => None,
            }
            .unwrap_or(Kind::Invalid),
            binary_const(*a, *b, |x, y| x * y),
        ),
        Math::Inv(a) => (same(*a), unary_const(*a, |x| 1.0 / x)),
        Math::Det(a) => (value(Shape::scalar()), konst(*a)),
        Math::LogDet(a) => (value(Shape::scalar()), unary_const(*a, |x| x.abs().ln())),
        Math::Trace(a) | Math::Sum(a) => (value(Shape::scalar()), konst(*a)),
        Math::Norm(a) => (value(Shape::scalar()), unary_const(*a, f64::abs)),
        Math::Diag(a) => (
            shape(*a)
                .map(|s| value(Shape::new(s.rows.clone(), s.rows)))
                .unwrap_or(Kind::Invalid),
            konst(*a),
        ),
        Math::DiagVec(a) => (
            shape(*a)
                .map(|s| value(Shape::new(s.rows, Dim::one())))
                .unwrap_or(Kind::Invalid),
            konst(*a),
        ),
        Math::Pow([a, k]) => (value(Shape::scalar()), binary_const(*a, *k, f64::powf)),
        Math::EPow([a, k]) => (same(*a), binary_const(*a, *k, f64::powf)),
        Math::Fn(f, args) => {
            let parameter = args.get(1).map_or(Some(0.0), |p| konst(*p));
            let value = konst(args[0]).zip(parameter).map(|(x, p)| f.apply(x, p));
            (same(args[0]), value)
        }
        Math::Ones([m, n]) | Math::Zeros([m, n]) => {
            let fill = if matches!(node, Math::Ones(_)) { 1.0 } else { 0.0 };
            match (dim(*m), dim(*n)) {
                (Some(r), Some(c)) => {
                    let s = Shape::new(r, c);
                    let constant = s.is_scalar().then_some(fill);
                    (value(s), constant)
                }
                _ => (Kind::Invalid, None),
            }
        }
        Math::Eye(n) => match dim(*n) {
            Some(d) => {
                let constant = d.is_one().then_some(1.0);
                (value(Shape::new(d.clone(), d)), constant)
            }
            None => (Kind::Invalid, None),
        },
        Math::BlockSum([_, m, n]) | Math::BlockAdd([_, m, n]) => match (dim(*m), dim(*n)) {
            (Some(r), Some(c)) => (value(Shape::new(r, c)), None),
            _ => (Kind::Invalid, None),
        },
        Math::Vec(a) => (
            shape(*a)
                .map(|s| value(Shape::new(s.rows.times(&s.cols), Dim::one())))
                .unwrap_or(Kind::Invalid),
            konst(*a),
        ),
        Math::Commute([m, n]) => match (dim(*m), dim(*n)) {
            (Some(r), Some(c)) => {
                let size = r.times(&c);
                let constant = size.is_one().then_some(1.0);
                (value(Shape::new(size.clone(), size)), constant)
            }
            _ => (Kind::Invalid, None),
        },
        Math::Unit([m, i]) => match (dim(*m), konst(*i)) {
            (Some(m), Some(i)) if i >= 0.0 => (value(Shape::new(m, Dim::one())), None),
            _ => (Kind::Invalid, None),
        },
        Math::IsMax(a) => (same(*a), None),
        Math::Rows(a) => (shape(*a).map(|s| Kind::Dim(s.rows)).unwrap_or(Kind::Invalid), None),
        Math::Cols(a) => (shape(*a).map(|s| Kind::Dim(s.cols)).unwrap_or(Kind::Invalid), None),
        Math::DimValue(d) => match dim(*d) {
            Some(d) => {
                let constant = d.as_size().map(|n| n as f64);
                (value(Shape::scalar()), constant)
            }
            None => (Kind::Invalid, None),
        },
    };
    // Constants only describe 1 x 1 values; a folded NaN or infinity is not a constant.
    let constant = match &kind {
        Kind::Value(s) if s.is_scalar() => constant.filter(|c| c.is_finite()),
        _ => None,
    };
    Data { kind, constant }
}

impl Analysis<Math> for ShapeAnalysis {
    type Data = Data;

    fn make(egraph: &mut MathGraph, enode: &Math, _id: Id) -> Data {
        node_data(&egraph.analysis.env, enode, |id| egraph[id].data.clone())
    }

    fn merge(&mut self, to: &mut Data, from: Data) -> DidMerge {
        let mut changed_to = false;
        if to.kind == Kind::Invalid && from.kind != Kind::Invalid {
            to.kind = from.kind.clone();
            changed_to = true;
        }
        let changed_from = from.kind == Kind::Invalid && to.kind != Kind::Invalid;
        match (to.constant, from.constant) {
            (None, Some(c)) => {
                to.constant = Some(c);
                DidMerge(true, changed_from)
            }
            (Some(_), None) => DidMerge(changed_to, true),
            _ => DidMerge(changed_to, changed_from),
        }
    }

    fn modify(egraph: &mut MathGraph, id: Id) {
        let data = egraph[id].data.clone();
        if let Some(c) = data.constant {
            let leaf = egraph.add(Math::Num(Const(normalize_zero(c))));
            egraph.union(id, leaf);
            // A folded constant needs nothing else in its class (egg's tests/math.rs prunes likewise).
            egraph[id].nodes.retain(|n| n.is_leaf());
        } else if let Kind::Dim(d) = data.kind {
            let leaf = egraph.add(Math::Dim(DimNode(d)));
            egraph.union(id, leaf);
            egraph[id].nodes.retain(|n| n.is_leaf());
        }
    }
}

fn normalize_zero(c: f64) -> f64 {
    if c == 0.0 {
        0.0
    } else {
        c
    }
}

/// Computes every node's data of a standalone expression (no e-graph needed).
pub fn expr_data(env: &Env, expr: &RecExpr<Math>) -> Vec<Data> {
    let mut out: Vec<Data> = Vec::with_capacity(expr.len());
    for node in expr.iter() {
        let d = node_data(env, node, |id| out[usize::from(id)].clone());
        out.push(d);
    }
    out
}

/// A builder for expressions that shares identical subexpressions.
#[derive(Default)]
pub struct ExprBuilder {
    expr: RecExpr<Math>,
    memo: HashMap<Math, Id>,
}

impl ExprBuilder {
    pub fn add(&mut self, node: Math) -> Id {
        if let Some(id) = self.memo.get(&node) {
            return *id;
        }
        let id = self.expr.add(node.clone());
        self.memo.insert(node, id);
        id
    }
    pub fn num(&mut self, c: f64) -> Id {
        self.add(Math::Num(Const(normalize_zero(c))))
    }
    pub fn dim(&mut self, d: &Dim) -> Id {
        self.add(Math::Dim(DimNode(d.clone())))
    }
    pub fn ones(&mut self, shape: &Shape) -> Id {
        let (r, c) = (self.dim(&shape.rows), self.dim(&shape.cols));
        self.add(Math::Ones([r, c]))
    }
    pub fn finish(self) -> RecExpr<Math> {
        self.expr
    }
    /// The expression built so far, rooted at its last node.
    pub fn expr(&self) -> &RecExpr<Math> {
        &self.expr
    }
}
