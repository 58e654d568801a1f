//! Shape inference for undeclared names: a best-effort unification pass over the AST.
//!
//! Every undeclared name gets a pair of dimension variables; operators unify what they
//! constrain (`*` the inner sizes, `+` both shapes unless one side is a known scalar,
//! `tr` rows with columns…). Conflicts are ignored here: the strict pass in `lower`
//! reports them with their place. Names that nothing fixes get the defaults the README
//! states: uppercase-initial names are matrices, lowercase-initial names column vectors.

use crate::dim::{Dim, Shape};
use crate::ops::{Builtin, Function};
use crate::syntax::{BinOp, ExprKind, PostfixOp, ShapeDecl, Statement};
use crate::syntax::{DimLit, DimLitKind, Expr};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Known(Dim),
    Var(usize),
}

type Pair = (Term, Term);

#[derive(Default)]
struct Unifier {
    bindings: Vec<Option<Term>>,
}

impl Unifier {
    fn fresh(&mut self) -> Term {
        self.bindings.push(None);
        Term::Var(self.bindings.len() - 1)
    }
    fn resolve(&self, t: &Term) -> Term {
        let mut t = t.clone();
        while let Term::Var(v) = t {
            match &self.bindings[v] {
                Some(next) => t = next.clone(),
                None => return Term::Var(v),
            }
        }
        t
    }
    /// Returns whether anything new was learned.
    fn unify(&mut self, a: &Term, b: &Term) -> bool {
        match (self.resolve(a), self.resolve(b)) {
            (Term::Var(x), Term::Var(y)) if x == y => false,
            (Term::Var(x), other) | (other, Term::Var(x)) => {
                self.bindings[x] = Some(other);
                true
            }
            _ => false,
        }
    }
    fn known(&self, t: &Term) -> Option<Dim> {
        match self.resolve(t) {
            Term::Known(d) => Some(d),
            Term::Var(_) => None,
        }
    }
    fn is_one(&self, t: &Term) -> bool {
        self.known(t).is_some_and(|d| d.is_one())
    }
    fn is_scalar(&self, s: &Pair) -> bool {
        self.is_one(&s.0) && self.is_one(&s.1)
    }
}

fn one() -> Term {
    Term::Known(Dim::one())
}

pub fn dim_of(lit: &DimLit) -> Dim {
    lit.factors.iter().fold(Dim::one(), |product, factor| {
        product.times(&match factor {
            DimLitKind::Name(n) => Dim::named(n),
            DimLitKind::Size(n) => Dim::size(*n),
        })
    })
}

/// A size written as a call's argument (`ones(B)`, `ones(4*H)`), if it is one.
fn size_argument(e: &Expr) -> Option<Dim> {
    match &e.kind {
        ExprKind::Name(n) => Some(Dim::named(n)),
        ExprKind::Number(k) if *k >= 1.0 && k.fract() == 0.0 => Some(Dim::size(*k as u64)),
        ExprKind::Binary(crate::syntax::BinOp::Mul, a, b) => Some(size_argument(a)?.times(&size_argument(b)?)),
        _ => None,
    }
}

pub fn declared_shape(decl: &ShapeDecl) -> Shape {
    match decl {
        ShapeDecl::Scalar => Shape::scalar(),
        ShapeDecl::Vector(n) => Shape::new(dim_of(n), Dim::one()),
        ShapeDecl::Matrix(m, n) => Shape::new(dim_of(m), dim_of(n)),
    }
}

/// What inference concluded: the shape of every undeclared name, in order of first use.
pub struct Inferred {
    pub shapes: Vec<(String, Shape)>,
}

struct Inference<'a> {
    declared: &'a HashMap<String, Shape>,
    dims: &'a BTreeSet<String>,
    unifier: Unifier,
    undeclared: Vec<(String, Pair)>,
    defs: HashMap<String, Pair>,
    progress: bool,
}

/// Infers the shapes of names the script uses without declaring them.
pub fn infer(
    statements: &[Statement],
    declared: &HashMap<String, Shape>,
    dims: &BTreeSet<String>,
    functions: &dyn Fn(&str) -> bool,
) -> Inferred {
    let mut inf = Inference {
        declared,
        dims,
        unifier: Unifier::default(),
        undeclared: Vec::new(),
        defs: HashMap::new(),
        progress: false,
    };
    let mut used_dims: BTreeSet<String> = dims.clone();
    // Each round walks the whole script; a round that learns nothing lets one name take its default.
    for _ in 0..(4 * statements.len() + 8) {
        inf.progress = false;
        inf.defs.clear();
        for statement in statements {
            match statement {
                Statement::Define { name, expr, .. } => {
                    let s = inf.walk(expr, functions);
                    inf.defs.insert(name.clone(), s);
                }
                Statement::Expr(expr) => {
                    inf.walk(expr, functions);
                }
                Statement::Declare { .. } => {}
            }
        }
        if !inf.progress && !inf.apply_one_default(&mut used_dims) {
            break;
        }
    }
    let shapes = inf
        .undeclared
        .iter()
        .map(|(name, (r, c))| {
            let dim = |t: &Term| inf.unifier.known(t).unwrap_or_else(Dim::one);
            (name.clone(), Shape::new(dim(r), dim(c)))
        })
        .collect();
    Inferred { shapes }
}

impl Inference<'_> {
    fn apply_one_default(&mut self, used: &mut BTreeSet<String>) -> bool {
        for i in 0..self.undeclared.len() {
            let (name, (r, c)) = self.undeclared[i].clone();
            let (r_known, c_known) = (self.unifier.known(&r).is_some(), self.unifier.known(&c).is_some());
            if r_known && c_known {
                continue;
            }
            let lowercase = name.chars().next().is_some_and(|ch| ch.is_lowercase());
            if lowercase {
                // A column vector; a name whose columns are already fixed becomes a row vector.
                if !c_known && !r_known {
                    let d = fresh_dim(&format!("n_{name}"), used);
                    self.unifier.unify(&c, &one());
                    self.unifier.unify(&r, &Term::Known(d));
                } else if !c_known {
                    self.unifier.unify(&c, &one());
                } else {
                    self.unifier.unify(&r, &one());
                }
            } else {
                if !r_known {
                    let d = fresh_dim(&format!("m_{name}"), used);
                    self.unifier.unify(&r, &Term::Known(d));
                }
                if self.unifier.known(&c).is_none() {
                    let d = fresh_dim(&format!("n_{name}"), used);
                    self.unifier.unify(&c, &Term::Known(d));
                }
            }
            return true;
        }
        false
    }

    fn unify(&mut self, a: &Term, b: &Term) {
        if self.unifier.unify(a, b) {
            self.progress = true;
        }
    }

    fn unify_pair(&mut self, a: &Pair, b: &Pair) {
        self.unify(&a.0, &b.0);
        self.unify(&a.1, &b.1);
    }

    fn known_pair(s: &Shape) -> Pair {
        (Term::Known(s.rows.clone()), Term::Known(s.cols.clone()))
    }

    fn name(&mut self, name: &str) -> Pair {
        if let Some(s) = self.declared.get(name) {
            return Self::known_pair(s);
        }
        if let Some(s) = self.defs.get(name) {
            return s.clone();
        }
        if self.dims.contains(name) {
            return (one(), one());
        }
        if let Some(n) = identity_size(name, self.dims) {
            return Self::known_pair(&Shape::new(n.clone(), n));
        }
        if let Some((_, s)) = self.undeclared.iter().find(|(n, _)| n == name) {
            return s.clone();
        }
        let s = (self.unifier.fresh(), self.unifier.fresh());
        self.undeclared.push((name.to_string(), s.clone()));
        s
    }

    fn is_undeclared_lowercase_leaf(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Name(n) => {
                !self.declared.contains_key(n)
                    && !self.defs.contains_key(n)
                    && n.chars().next().is_some_and(|c| c.is_lowercase())
            }
            _ => false,
        }
    }

    fn walk(&mut self, e: &Expr, functions: &dyn Fn(&str) -> bool) -> Pair {
        match &e.kind {
            ExprKind::Number(_) => (one(), one()),
            ExprKind::Name(n) => self.name(n),
            ExprKind::Neg(a) => self.walk(a, functions),
            ExprKind::Postfix(PostfixOp::Transpose, a) => {
                let (r, c) = self.walk(a, functions);
                (c, r)
            }
            ExprKind::Postfix(PostfixOp::Inverse, a) => {
                let s = self.walk(a, functions);
                self.unify(&s.0, &s.1);
                s
            }
            ExprKind::Binary(op, a, b) => {
                let sa = self.walk(a, functions);
                let sb = self.walk(b, functions);
                self.binary(*op, sa, sb, a, b)
            }
            ExprKind::Call { name, args, .. } => {
                let shapes: Vec<Pair> = args.iter().map(|a| self.walk(a, functions)).collect();
                if !functions(name) {
                    return (self.unifier.fresh(), self.unifier.fresh());
                }
                self.call(name, args, shapes)
            }
        }
    }

    fn binary(&mut self, op: BinOp, sa: Pair, sb: Pair, a: &Expr, b: &Expr) -> Pair {
        let u = &self.unifier;
        match op {
            BinOp::Add | BinOp::Sub | BinOp::ElemMul | BinOp::ElemDiv => {
                if u.is_scalar(&sa) {
                    sb
                } else if u.is_scalar(&sb) {
                    sa
                } else if u.known(&sa.0).is_some()
                    && u.known(&sa.1).is_some()
                    && u.known(&sb.0).is_some()
                    && u.known(&sb.1).is_some()
                {
                    // Both known: broadcasting (if any) is the strict pass's business.
                    let wider = |x: &Term, y: &Term| if u.is_one(x) { y.clone() } else { x.clone() };
                    (wider(&sa.0, &sb.0), wider(&sa.1, &sb.1))
                } else {
                    self.unify_pair(&sa, &sb);
                    sa
                }
            }
            BinOp::Mul => {
                if u.is_scalar(&sa) {
                    sb
                } else if u.is_scalar(&sb) {
                    sa
                } else {
                    self.unify(&sa.1, &sb.0);
                    (sa.0, sb.1)
                }
            }
            BinOp::Div | BinOp::ElemPow => {
                self.unify_pair(&sb, &(one(), one()));
                sa
            }
            BinOp::Pow => {
                self.unify_pair(&sb, &(one(), one()));
                let integer_exponent = matches!(&b.kind, ExprKind::Number(k) if k.fract() == 0.0 && *k >= 1.0);
                if !integer_exponent || self.is_undeclared_lowercase_leaf(a) {
                    self.unify_pair(&sa, &(one(), one()));
                } else {
                    self.unify(&sa.0, &sa.1);
                }
                sa
            }
            BinOp::Kron => self.kron(&sa, &sb),
        }
    }

    fn kron(&mut self, sa: &Pair, sb: &Pair) -> Pair {
        let u = &self.unifier;
        let product = |x: &Term, y: &Term| Some(Term::Known(u.known(x)?.times(&u.known(y)?)));
        match (product(&sa.0, &sb.0), product(&sa.1, &sb.1)) {
            (Some(r), Some(c)) => (r, c),
            _ => (self.unifier.fresh(), self.unifier.fresh()),
        }
    }

    fn call(&mut self, name: &str, args: &[Expr], shapes: Vec<Pair>) -> Pair {
        let dim_arg = |i: usize| -> Term { args.get(i).and_then(size_argument).map_or_else(one, Term::Known) };
        let first = shapes.first().cloned().unwrap_or((one(), one()));
        let builtin = match Function::named(name) {
            Some(Function::Builtin(b)) => b,
            // An elementwise function has its (first) argument's shape.
            Some(Function::Elementwise(_)) => return first,
            None => return (self.unifier.fresh(), self.unifier.fresh()),
        };
        match builtin {
            Builtin::Ones | Builtin::Zeros => (dim_arg(0), if args.len() > 1 { dim_arg(1) } else { one() }),
            Builtin::Eye => (dim_arg(0), dim_arg(0)),
            Builtin::Tr | Builtin::Det | Builtin::LogDet => {
                self.unify(&first.0, &first.1);
                (one(), one())
            }
            Builtin::Inv => {
                self.unify(&first.0, &first.1);
                first
            }
            Builtin::Sum | Builtin::Norm | Builtin::Mean | Builtin::LogSumExp | Builtin::Dot => (one(), one()),
            Builtin::Outer if shapes.len() == 2 => (shapes[0].0.clone(), shapes[1].0.clone()),
            Builtin::Transpose => (first.1, first.0),
            Builtin::Diag => {
                let as_vector = self.unifier.is_one(&first.1)
                    || (self.unifier.known(&first.1).is_none()
                        && args.first().is_some_and(|a| self.is_undeclared_lowercase_leaf(a)));
                if as_vector {
                    self.unify(&first.1, &one());
                    (first.0.clone(), first.0)
                } else {
                    self.unify(&first.0, &first.1);
                    (first.0, one())
                }
            }
            Builtin::Kron if shapes.len() == 2 => self.kron(&shapes[0], &shapes[1]),
            Builtin::Vec => match (self.unifier.known(&first.0), self.unifier.known(&first.1)) {
                (Some(r), Some(c)) => (Term::Known(r.times(&c)), one()),
                _ => (self.unifier.fresh(), one()),
            },
            Builtin::Commute => match (
                args.first().and_then(size_argument),
                args.get(1).and_then(size_argument),
            ) {
                (Some(m), Some(n)) => (Term::Known(m.times(&n)), Term::Known(m.times(&n))),
                _ => (self.unifier.fresh(), self.unifier.fresh()),
            },
            Builtin::Unit => (dim_arg(0), one()),
            Builtin::BlockSum | Builtin::BlockAdd => (dim_arg(1), dim_arg(2)),
            // Shaped like their argument; a miscounted call is the strict pass's to report.
            Builtin::Softmax
            | Builtin::Softplus
            | Builtin::Outer
            | Builtin::Kron
            | Builtin::Maximum
            | Builtin::Minimum
            | Builtin::IsMax => first,
        }
    }
}

fn fresh_dim(base: &str, used: &mut BTreeSet<String>) -> Dim {
    let mut name = base.to_string();
    while used.contains(&name) {
        name.push('2');
    }
    used.insert(name.clone());
    Dim::named(&name)
}

/// `I_N` (or `I_3`) as printed: the identity of a size the script names, when no variable
/// or definition takes that name first.
pub fn identity_size(name: &str, dims: &BTreeSet<String>) -> Option<Dim> {
    let size = name.strip_prefix("I_")?;
    if dims.contains(size) {
        return Some(Dim::named(size));
    }
    size.parse::<u64>().ok().filter(|n| *n > 0).map(Dim::size)
}
