//! The strict pass: every shape checked with its place in the input, numpy broadcasting
//! made explicit as products with ones vectors, and the target lowered to the IR.

use crate::diagnostic::{closest, Error, Span};
use crate::dim::{Dim, Shape};
use crate::infer::{declared_shape, dim_of, infer};
use crate::ir::{Env, ExprBuilder, Math};
use crate::ops::{Builtin, Func, Function};
use crate::syntax::{BinOp, Expr, ExprKind, PostfixOp, ShapeDecl, Statement};
use egg::{Id, RecExpr, Symbol};
use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

/// The most distinct subexpressions a target may have: beyond this, simplification and
/// extraction would take more than a few seconds.
pub const MAX_TARGET_NODES: usize = 4_000;

/// The functions of the language with their accepted argument counts, from the operator
/// table (`ops.rs`).
pub static FUNCTIONS: LazyLock<Vec<(&'static str, usize, usize)>> = LazyLock::new(|| {
    Function::all()
        .map(|f| {
            let (min, max) = f.arity();
            (f.name(), min, max)
        })
        .collect()
});

/// Names people reach for from other tools, and what matdiff calls them.
const ALIASES: &[(&str, &str)] = &[("frobenius", "norm"), ("norm2", "norm"), ("diagm", "diag")];

pub fn is_function(name: &str) -> bool {
    FUNCTIONS.iter().any(|(f, _, _)| *f == name)
}

/// The differentiation target: the last expression statement or definition.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: Option<String>,
    pub expr: RecExpr<Math>,
    pub shape: Shape,
    pub span: Span,
}

/// A script after checking: every variable's shape, and the target in IR form.
#[derive(Debug, Clone)]
pub struct Checked {
    pub env: Env,
    /// Variables in order of declaration, then of first use.
    pub variables: Vec<String>,
    /// Shapes the script leaves out, as its own language writes them (`H x C`, `N labels of C`).
    pub inferred: Vec<(String, String)>,
    pub dims: BTreeSet<String>,
    pub definitions: Vec<String>,
    /// Each definition's expression over the variables (definitions inlined), in order.
    pub definition_exprs: Vec<(String, RecExpr<Math>, Shape)>,
    pub target: Target,
    /// One line per broadcast made explicit, e.g. `b : M broadcast over the B rows`.
    pub broadcasts: Vec<String>,
    /// The upstream gradient's name when the script's language fixes it (`dout` in numpy).
    pub upstream: Option<String>,
}

impl Checked {
    pub fn shape_of(&self, variable: &str) -> Option<&Shape> {
        self.env.shapes.get(&Symbol::from(variable))
    }
}

pub fn check(statements: &[Statement]) -> Result<Checked, Error> {
    let mut declared: HashMap<String, Shape> = HashMap::new();
    let mut declared_at: HashMap<String, Span> = HashMap::new();
    let mut symmetric: Vec<String> = Vec::new();
    let mut dims: BTreeSet<String> = BTreeSet::new();
    let mut variables: Vec<String> = Vec::new();
    for st in statements {
        if let Statement::Declare {
            name,
            name_span,
            shape,
            symmetric: sym,
        } = st
        {
            let s = declared_shape(shape);
            for factor in dim_lits(shape).into_iter().flat_map(|lit| &lit.factors) {
                if let crate::syntax::DimLitKind::Name(d) = factor {
                    dims.insert(d.clone());
                }
            }
            if let Some(previous) = declared.get(name) {
                if *previous != s {
                    return Err(
                        Error::name(format!("`{name}` is declared twice with different shapes"), *name_span)
                            .with_label(format!("declared here as {s}"))
                            .with_note(format!("it was first declared as {previous}")),
                    );
                }
            }
            if *sym && !s.is_square() {
                return Err(Error::shape(
                    format!("`{name}` is declared symmetric but its shape {s} is not square"),
                    *name_span,
                ));
            }
            if *sym {
                symmetric.push(name.clone());
            }
            if !declared.contains_key(name) {
                variables.push(name.clone());
            }
            declared.insert(name.clone(), s);
            declared_at.insert(name.clone(), *name_span);
        }
    }
    for name in declared.keys() {
        if dims.contains(name) {
            return Err(Error::name(
                format!("`{name}` is used both as a dimension and as a variable"),
                declared_at[name],
            ));
        }
    }

    let inferred = infer(statements, &declared, &dims, &is_function).shapes;
    let mut env = Env::default();
    for (name, s) in declared.iter().chain(inferred.iter().map(|(n, s)| (n, s))) {
        env.shapes.insert(Symbol::from(name.as_str()), s.clone());
    }
    for name in &symmetric {
        env.symmetric.insert(Symbol::from(name.as_str()));
    }
    for (name, s) in &inferred {
        variables.push(name.clone());
        for d in [&s.rows, &s.cols] {
            dims.extend(d.factors().into_iter().map(str::to_string));
        }
    }

    let mut lowering = Lowering {
        env: &env,
        dims: &dims,
        builder: ExprBuilder::default(),
        defs: HashMap::new(),
        broadcasts: Vec::new(),
    };
    let mut target: Option<(Option<String>, Id, Shape, Span)> = None;
    let mut definitions = Vec::new();
    let mut definition_exprs = Vec::new();
    let mut versions = Versions::new(statements, &declared, &dims);
    for st in statements {
        match st {
            Statement::Declare { .. } => {}
            Statement::Define { name, name_span, expr } => {
                if inferred.iter().any(|(n, _)| n == name) {
                    return Err(Error::name(
                        format!("`{name}` is used as a variable before (or in) its own definition"),
                        *name_span,
                    )
                    .with_note("a definition must come after its parts, under a new name"));
                }
                if declared.contains_key(name) || dims.contains(name) {
                    return Err(Error::name(
                        format!("`{name}` is already declared; a definition needs a new name"),
                        *name_span,
                    ));
                }
                // A definition may take a function's name (`mean = x·1_D/D`, as numpy code
                // names its statistics): a name is its value, a call still the function.
                let (id, shape) = lowering.lower(expr)?;
                // A reassigned name has its latest value from here on, as in numpy.
                lowering.defs.insert(name.clone(), (id, shape.clone()));
                let label = versions.next(name);
                let alias = matches!(lowering.builder.expr()[id], Math::Symbol(_) | Math::Num(_));
                if !alias {
                    definitions.push(label.clone());
                    definition_exprs.push((
                        label.clone(),
                        extract_rooted(lowering.builder.expr(), id),
                        shape.clone(),
                    ));
                }
                let shown = (!alias).then_some(label);
                target = Some((shown, id, shape, name_span.join(expr.span)));
            }
            Statement::Expr(expr) => {
                let (id, shape) = lowering.lower(expr)?;
                target = Some((None, id, shape, expr.span));
            }
        }
    }
    let (name, root, shape, span) = target.ok_or_else(|| {
        Error::new(
            crate::diagnostic::ErrorKind::Syntax,
            "the script has no expression to differentiate",
            Some(Span::new(0, 0)),
        )
        .with_note("write an expression, e.g. `X : n x n; tr(X)`, or a definition `h = ...`")
    })?;
    let broadcasts = lowering.broadcasts;
    let expr = extract_rooted(lowering.builder.expr(), root);
    if expr.as_ref().len() > MAX_TARGET_NODES {
        return Err(Error::unsupported(
            format!(
                "the expression has {} distinct parts, more than the {MAX_TARGET_NODES} matdiff differentiates",
                expr.as_ref().len()
            ),
            span,
        )
        .with_note("split it into definitions of shared parts, or differentiate a smaller expression"));
    }
    let used: BTreeSet<String> = expr
        .iter()
        .filter_map(|n| match n {
            Math::Symbol(s) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    // Variables that only appear in declarations still count; undeclared ones only if used somewhere.
    variables.retain(|v| declared.contains_key(v) || used.contains(v) || inferred.iter().any(|(n, _)| n == v));
    Ok(Checked {
        env,
        variables,
        inferred: inferred.iter().map(|(n, s)| (n.clone(), s.to_string())).collect(),
        dims,
        definitions,
        definition_exprs,
        target: Target {
            name,
            expr,
            shape,
            span,
        },
        broadcasts,
        upstream: None,
    })
}

/// The names under which a definition's versions are shown: a name defined k times reads
/// `h_1`, …, `h_(k−1)`, then `h` (the latest, as numpy reads it), each unlike every other name.
struct Versions {
    total: HashMap<String, usize>,
    seen: HashMap<String, usize>,
    taken: BTreeSet<String>,
}

impl Versions {
    fn new(statements: &[Statement], declared: &HashMap<String, Shape>, dims: &BTreeSet<String>) -> Versions {
        let mut total: HashMap<String, usize> = HashMap::new();
        for st in statements {
            if let Statement::Define { name, .. } = st {
                *total.entry(name.clone()).or_insert(0) += 1;
            }
        }
        let mut taken: BTreeSet<String> = declared.keys().cloned().collect();
        taken.extend(dims.iter().cloned());
        taken.extend(total.keys().cloned());
        Versions {
            total,
            seen: HashMap::new(),
            taken,
        }
    }

    fn next(&mut self, name: &str) -> String {
        let k = self.seen.entry(name.to_string()).or_insert(0);
        *k += 1;
        if *k >= self.total.get(name).copied().unwrap_or(1) {
            return name.to_string();
        }
        let mut label = format!("{name}_{k}");
        while self.taken.contains(&label) {
            label.push('_');
        }
        self.taken.insert(label.clone());
        label
    }
}

fn dim_lits(shape: &ShapeDecl) -> Vec<&crate::syntax::DimLit> {
    match shape {
        ShapeDecl::Scalar => vec![],
        ShapeDecl::Vector(n) => vec![n],
        ShapeDecl::Matrix(m, n) => vec![m, n],
    }
}

/// Copies the part of a shared expression that `root` reaches, with `root` last.
pub fn extract_rooted(expr: &RecExpr<Math>, root: Id) -> RecExpr<Math> {
    use egg::Language;
    expr[root].build_recexpr(|id| expr[id].clone())
}

struct Lowering<'a> {
    env: &'a Env,
    dims: &'a BTreeSet<String>,
    builder: ExprBuilder,
    defs: HashMap<String, (Id, Shape)>,
    broadcasts: Vec<String>,
}

type Lowered = Result<(Id, Shape), Error>;

impl Lowering<'_> {
    fn add(&mut self, node: Math) -> Id {
        self.builder.add(node)
    }

    fn scale(&mut self, s: Id, a: Id) -> Id {
        if matches!(self.builder.expr()[s], Math::Num(c) if c.0 == 1.0) {
            return a;
        }
        self.add(Math::Scale([s, a]))
    }

    fn negate(&mut self, a: Id) -> Id {
        if let Math::Num(c) = self.builder.expr()[a] {
            return self.builder.num(-c.0);
        }
        let m1 = self.builder.num(-1.0);
        self.scale(m1, a)
    }

    fn reciprocal(&mut self, s: Id) -> Id {
        if let Math::Num(c) = self.builder.expr()[s] {
            return self.builder.num(1.0 / c.0);
        }
        let m1 = self.builder.num(-1.0);
        self.add(Math::Pow([s, m1]))
    }

    fn lower(&mut self, e: &Expr) -> Lowered {
        match &e.kind {
            ExprKind::Number(c) => Ok((self.builder.num(*c), Shape::scalar())),
            ExprKind::Name(n) => self.name(n, e.span),
            ExprKind::Neg(a) => {
                let (a, s) = self.lower(a)?;
                Ok((self.negate(a), s))
            }
            ExprKind::Postfix(PostfixOp::Transpose, a) => {
                let (a, s) = self.lower(a)?;
                if s.is_scalar() {
                    return Ok((a, s));
                }
                Ok((self.add(Math::Transpose(a)), s.transposed()))
            }
            ExprKind::Postfix(PostfixOp::Inverse, a) => {
                let (a, s) = self.lower(a)?;
                self.inverse(a, s, e.span, "^-1")
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, e.span),
            ExprKind::Call { name, name_span, args } => self.call(name, *name_span, args, e.span),
        }
    }

    fn name(&mut self, n: &str, span: Span) -> Lowered {
        if let Some((id, s)) = self.defs.get(n) {
            return Ok((*id, s.clone()));
        }
        let sym = Symbol::from(n);
        if let Some(s) = self.env.shapes.get(&sym) {
            return Ok((self.add(Math::Symbol(sym)), s.clone()));
        }
        if self.dims.contains(n) {
            // A dimension used as a value is its size: `norm(X*w - y)^2 / N`.
            let dim = self.builder.dim(&crate::dim::Dim::named(n));
            return Ok((self.add(Math::DimValue(dim)), Shape::scalar()));
        }
        if let Some(size) = crate::infer::identity_size(n, self.dims) {
            let d = self.builder.dim(&size);
            return Ok((self.add(Math::Eye(d)), Shape::new(size.clone(), size)));
        }
        if is_function(n) {
            return Err(Error::name(
                format!("`{n}` is a function; call it with arguments, e.g. `{n}(X)`"),
                span,
            ));
        }
        Err(Error::name(format!("unknown name `{n}`"), span))
    }

    fn inverse(&mut self, a: Id, s: Shape, span: Span, op: &str) -> Lowered {
        if s.is_scalar() {
            return Ok((self.reciprocal(a), s));
        }
        if !s.is_square() {
            return Err(Error::shape(
                format!("`{op}` needs a square matrix, but this is {s}"),
                span,
            ));
        }
        Ok((self.add(Math::Inv(a)), s))
    }

    fn constant(&self, e: &Expr) -> Option<f64> {
        match &e.kind {
            ExprKind::Number(c) => Some(*c),
            ExprKind::Neg(a) => Some(-self.constant(a)?),
            ExprKind::Binary(op, a, b) => {
                let (x, y) = (self.constant(a)?, self.constant(b)?);
                Some(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul | BinOp::ElemMul => x * y,
                    BinOp::Div | BinOp::ElemDiv => x / y,
                    BinOp::Pow | BinOp::ElemPow => x.powf(y),
                    BinOp::Kron => x * y,
                })
            }
            _ => None,
        }
    }

    fn exponent(&self, b: &Expr) -> Result<f64, Error> {
        self.constant(b).filter(|k| k.is_finite()).ok_or_else(|| {
            Error::unsupported("an exponent must be a number", b.span)
                .with_note("write e.g. `s^2`, `X.^0.5`, `(x'*x)^-1`")
        })
    }

    fn binary(&mut self, op: BinOp, ea: &Expr, eb: &Expr, span: Span) -> Lowered {
        if op == BinOp::Pow || op == BinOp::ElemPow {
            let (a, sa) = self.lower(ea)?;
            let k = self.exponent(eb)?;
            return self.power(op, a, sa, k, span, ea.span);
        }
        let (a, sa) = self.lower(ea)?;
        let (b, sb) = self.lower(eb)?;
        match op {
            BinOp::Mul => {
                if sa.is_scalar() {
                    Ok((self.scale(a, b), sb))
                } else if sb.is_scalar() {
                    Ok((self.scale(b, a), sa))
                } else if sa.cols == sb.rows {
                    Ok((self.add(Math::Mul([a, b])), Shape::new(sa.rows, sb.cols)))
                } else {
                    Err(Error::shape(format!("shape mismatch in `*`: {sa} times {sb}"), span)
                        .with_label(format!(
                            "the left side has {} columns, the right side {} rows",
                            sa.cols, sb.rows
                        ))
                        .with_note("`*` is the matrix product; use `.*` for the elementwise product"))
                }
            }
            BinOp::Div => {
                if !sb.is_scalar() {
                    return Err(
                        Error::shape(format!("`/` divides by a scalar, but the right side is {sb}"), eb.span)
                            .with_note("use `./` for elementwise division or `inv(...)` for the matrix inverse"),
                    );
                }
                let r = self.reciprocal(b);
                Ok((self.scale(r, a), sa))
            }
            BinOp::ElemMul if sa.is_scalar() => Ok((self.scale(a, b), sb)),
            BinOp::ElemMul if sb.is_scalar() => Ok((self.scale(b, a), sa)),
            BinOp::ElemDiv if sb.is_scalar() => {
                let r = self.reciprocal(b);
                Ok((self.scale(r, a), sa))
            }
            BinOp::Kron => {
                let shape = Shape::new(sa.rows.times(&sb.rows), sa.cols.times(&sb.cols));
                Ok((self.add(Math::Kron([a, b])), shape))
            }
            BinOp::Add | BinOp::Sub | BinOp::ElemMul | BinOp::ElemDiv => {
                let (a, b, shape) = self.broadcast(op, (a, sa, ea), (b, sb, eb), span)?;
                let node = match op {
                    BinOp::Add => Math::Add([a, b]),
                    BinOp::Sub => {
                        let nb = self.negate(b);
                        Math::Add([a, nb])
                    }
                    BinOp::ElemMul => Math::Had([a, b]),
                    _ => Math::HDiv([a, b]),
                };
                Ok((self.add(node), shape))
            }
            BinOp::Pow | BinOp::ElemPow => unreachable!("handled above"),
        }
    }

    fn power(&mut self, op: BinOp, a: Id, sa: Shape, k: f64, span: Span, base_span: Span) -> Lowered {
        let kk = self.builder.num(k);
        if sa.is_scalar() {
            return Ok((self.add(Math::Pow([a, kk])), sa));
        }
        if op == BinOp::ElemPow {
            return Ok((self.add(Math::EPow([a, kk])), sa));
        }
        if !sa.is_square() {
            return Err(Error::shape(
                format!("`^` needs a scalar or a square matrix, but this is {sa}"),
                base_span,
            )
            .with_note("use `.^` for the elementwise power"));
        }
        if k.fract() != 0.0 || k == 0.0 || k.abs() > 64.0 {
            return Err(Error::unsupported(
                format!("a matrix power needs a nonzero integer exponent of at most 64 in size, not {k}"),
                span,
            ));
        }
        let mut product = a;
        for _ in 1..(k.abs() as usize) {
            product = self.add(Math::Mul([product, a]));
        }
        if k < 0.0 {
            product = self.add(Math::Inv(product));
        }
        Ok((product, sa))
    }

    /// Makes numpy broadcasting explicit (Cookbook-free fact: `X + b` with `b : M` and X : B x M
    /// adds `ones(B,1)*b^T` to every row).
    fn broadcast(
        &mut self,
        op: BinOp,
        (a, sa, ea): (Id, Shape, &Expr),
        (b, sb, eb): (Id, Shape, &Expr),
        span: Span,
    ) -> Result<(Id, Id, Shape), Error> {
        if sa == sb {
            return Ok((a, b, sa));
        }
        if let Some(b2) = self.stretch(b, &sb, &sa, eb) {
            return Ok((a, b2, sa));
        }
        if let Some(a2) = self.stretch(a, &sa, &sb, ea) {
            return Ok((a2, b, sb));
        }
        Err(
            Error::shape(format!("shape mismatch in `{}`: {sa} and {sb}", op.symbol()), span)
                .with_label(format!("the left side is {sa}, the right side {sb}"))
                .with_note("broadcasting works for a scalar, a vector matching the rows or columns, or a 1 x n row"),
        )
    }

    /// A scalar as a matrix of the given shape: `s·1·1ᵀ`.
    fn stretch_scalar(&mut self, s: Id, shape: &Shape) -> Id {
        let ones = self.builder.ones(shape);
        self.scale(s, ones)
    }

    /// Stretches `x` of shape `small` to `big` as numpy would, if it can.
    fn stretch(&mut self, x: Id, small: &Shape, big: &Shape, e: &Expr) -> Option<Id> {
        let what = describe_operand(e, small);
        if small.is_scalar() {
            let ones = self.builder.ones(big);
            self.broadcasts.push(format!("{what} broadcast to {big}"));
            return Some(self.scale(x, ones));
        }
        let ones_col = |this: &mut Self, n: &Dim| this.builder.ones(&Shape::new(n.clone(), Dim::one()));
        // A length-n vector against n columns: numpy treats a 1-D array as a row.
        if small.is_column() && small.rows == big.cols {
            let ones = ones_col(self, &big.rows);
            let xt = self.add(Math::Transpose(x));
            self.broadcasts
                .push(format!("{what} broadcast over the {} rows", big.rows));
            return Some(self.add(Math::Mul([ones, xt])));
        }
        if small.is_row() && small.cols == big.cols && big.rows != Dim::one() {
            let ones = ones_col(self, &big.rows);
            self.broadcasts
                .push(format!("{what} broadcast over the {} rows", big.rows));
            return Some(self.add(Math::Mul([ones, x])));
        }
        if small.is_column() && small.rows == big.rows {
            let ones = ones_col(self, &big.cols);
            let ot = self.add(Math::Transpose(ones));
            self.broadcasts
                .push(format!("{what} broadcast over the {} columns", big.cols));
            return Some(self.add(Math::Mul([x, ot])));
        }
        None
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Expr], span: Span) -> Lowered {
        let Some(function) = Function::named(name) else {
            let mut err = Error::name(format!("unknown function `{name}`"), name_span);
            let alias = ALIASES.iter().find(|(a, _)| *a == name).map(|(_, f)| *f);
            if let Some(s) = alias.or_else(|| closest(name, FUNCTIONS.iter().map(|(f, _, _)| *f))) {
                err = err.with_note(format!("did you mean `{s}`?"));
            }
            return Err(err);
        };
        let (min, max) = function.arity();
        if args.len() < min || args.len() > max {
            let wanted = if min == max {
                format!("{min}")
            } else {
                format!("{min} or {max}")
            };
            let plural = if max == 1 { "" } else { "s" };
            return Err(Error::name(
                format!(
                    "`{name}` takes {wanted} argument{plural}, but {} were given",
                    args.len()
                ),
                span,
            ));
        }
        let builtin = match function {
            Function::Elementwise(f) => return self.elementwise(f, args),
            Function::Builtin(b) => b,
        };
        match builtin {
            Builtin::Ones | Builtin::Zeros | Builtin::Eye => {
                let m = self.dim_arg(&args[0])?;
                let n = match args.get(1) {
                    Some(a) => self.dim_arg(a)?,
                    None if builtin == Builtin::Eye => m.clone(),
                    None => Dim::one(),
                };
                let shape = Shape::new(m.clone(), n.clone());
                let (dm, dn) = (self.builder.dim(&m), self.builder.dim(&n));
                let node = match builtin {
                    Builtin::Ones => Math::Ones([dm, dn]),
                    Builtin::Zeros => Math::Zeros([dm, dn]),
                    _ => Math::Eye(dm),
                };
                Ok((self.add(node), shape))
            }
            Builtin::Transpose => {
                let (a, s) = self.lower(&args[0])?;
                if s.is_scalar() {
                    return Ok((a, s));
                }
                Ok((self.add(Math::Transpose(a)), s.transposed()))
            }
            Builtin::Norm if args.len() == 2 => {
                let (a, s) = self.lower(&args[0])?;
                match self.constant(&args[1]) {
                    Some(p) if p == 1.0 && (s.is_column() || s.is_row() || s.is_scalar()) => {
                        let magnitudes = self.add(Math::function(Func::Abs, &[a]));
                        Ok((self.add(Math::Sum(magnitudes)), Shape::scalar()))
                    }
                    Some(p) if p == 2.0 && (s.is_column() || s.is_row() || s.is_scalar()) => {
                        self.unary_call(Builtin::Norm, a, s, span)
                    }
                    _ => Err(Error::unsupported(
                        "`norm(x, p)` takes p = 1 or 2 for a vector; `norm(X)` is the Frobenius norm",
                        args[1].span,
                    )),
                }
            }
            Builtin::Dot | Builtin::Outer => {
                let (a, sa) = self.lower(&args[0])?;
                let (b, sb) = self.lower(&args[1])?;
                let vector = |s: &Shape| s.is_column() || s.is_scalar();
                if !vector(&sa) || !vector(&sb) {
                    return Err(Error::shape(
                        format!("`{name}` takes two column vectors, not {sa} and {sb}"),
                        span,
                    ));
                }
                if builtin == Builtin::Dot {
                    if sa.rows != sb.rows {
                        return Err(Error::shape(
                            format!("`dot` needs vectors of one length, not {sa} and {sb}"),
                            span,
                        ));
                    }
                    let at = self.add(Math::Transpose(a));
                    Ok((self.add(Math::Mul([at, b])), Shape::scalar()))
                } else {
                    let bt = self.add(Math::Transpose(b));
                    Ok((self.add(Math::Mul([a, bt])), Shape::new(sa.rows, sb.rows)))
                }
            }
            Builtin::Maximum | Builtin::Minimum => {
                // numpy's maximum and minimum, with its broadcasting: max(a, b) = b + relu(a − b),
                // min(a, b) = b − relu(b − a), so the derivative is ReLU's (`step`, the first
                // argument's at a tie).
                let (a, sa) = self.lower(&args[0])?;
                let (b, sb) = self.lower(&args[1])?;
                let (a, b, shape) = self.broadcast(BinOp::Add, (a, sa, &args[0]), (b, sb, &args[1]), span)?;
                let (x, y) = if builtin == Builtin::Maximum { (a, b) } else { (b, a) };
                let ny = self.negate(y);
                let difference = self.add(Math::Add([x, ny]));
                let r = self.add(Math::function(Func::Relu, &[difference]));
                let node = if builtin == Builtin::Maximum {
                    Math::Add([b, r])
                } else {
                    let nr = self.negate(r);
                    Math::Add([b, nr])
                };
                Ok((self.add(node), shape))
            }
            Builtin::Kron => {
                let (a, sa) = self.lower(&args[0])?;
                let (b, sb) = self.lower(&args[1])?;
                let shape = Shape::new(sa.rows.times(&sb.rows), sa.cols.times(&sb.cols));
                Ok((self.add(Math::Kron([a, b])), shape))
            }
            Builtin::Commute => {
                let (m, n) = (self.dim_arg(&args[0])?, self.dim_arg(&args[1])?);
                let size = m.times(&n);
                let (dm, dn) = (self.builder.dim(&m), self.builder.dim(&n));
                Ok((self.add(Math::Commute([dm, dn])), Shape::new(size.clone(), size)))
            }
            Builtin::Unit => {
                let m = self.dim_arg(&args[0])?;
                let i = match self.dim_arg(&args[1])?.as_size() {
                    Some(i) if m.as_size().is_none_or(|m| i <= m) => i,
                    _ => {
                        return Err(Error::shape(
                            format!("a unit column of length {m} has positions 1 to {m}"),
                            args[1].span,
                        ))
                    }
                };
                let dm = self.builder.dim(&m);
                // The IR counts positions from 0, mathematics (and the printed `e_(i of m)`) from 1.
                let index = self.builder.num((i - 1) as f64);
                Ok((self.add(Math::Unit([dm, index])), Shape::new(m, Dim::one())))
            }
            Builtin::BlockSum | Builtin::BlockAdd => {
                let (a, s) = self.lower(&args[0])?;
                let (m, n) = (self.dim_arg(&args[1])?, self.dim_arg(&args[2])?);
                if s.rows.over(&m).is_none() || s.cols.over(&n).is_none() {
                    return Err(Error::shape(
                        format!("`{name}` of {s} into {m} x {n} blocks: the sizes do not divide"),
                        span,
                    ));
                }
                let (dm, dn) = (self.builder.dim(&m), self.builder.dim(&n));
                let node = if builtin == Builtin::BlockSum {
                    Math::BlockSum([a, dm, dn])
                } else {
                    Math::BlockAdd([a, dm, dn])
                };
                Ok((self.add(node), Shape::new(m, n)))
            }
            Builtin::Tr
            | Builtin::Det
            | Builtin::LogDet
            | Builtin::Inv
            | Builtin::Diag
            | Builtin::Sum
            | Builtin::Norm
            | Builtin::Mean
            | Builtin::Softmax
            | Builtin::LogSumExp
            | Builtin::Softplus
            | Builtin::Vec
            | Builtin::IsMax => {
                let (a, s) = self.lower(&args[0])?;
                self.unary_call(builtin, a, s, span)
            }
        }
    }

    /// `f(x)`, or `f(x, a)` with `a` a number (its default when not given).
    fn elementwise(&mut self, f: Func, args: &[Expr]) -> Lowered {
        let (a, s) = self.lower(&args[0])?;
        let mut children = vec![a];
        if let Some(default) = f.spec().parameter {
            let value = match args.get(1) {
                Some(p) => self.constant(p).ok_or_else(|| {
                    Error::unsupported(
                        format!("the second argument of `{}` must be a number", f.name()),
                        p.span,
                    )
                })?,
                None => default,
            };
            children.push(self.builder.num(value));
        }
        Ok((self.add(Math::function(f, &children)), s))
    }

    /// A builtin of one argument, `a` of shape `s`.
    fn unary_call(&mut self, builtin: Builtin, a: Id, s: Shape, span: Span) -> Lowered {
        let name = builtin.name();
        let scalar = Shape::scalar();
        let square = |s: &Shape| -> Result<(), Error> {
            if s.is_square() {
                Ok(())
            } else {
                Err(Error::shape(
                    format!("`{name}` needs a square matrix, but its argument is {s}"),
                    span,
                ))
            }
        };
        match builtin {
            Builtin::Tr | Builtin::Det => {
                square(&s)?;
                if s.is_scalar() {
                    return Ok((a, s));
                }
                let node = if builtin == Builtin::Tr {
                    Math::Trace(a)
                } else {
                    Math::Det(a)
                };
                Ok((self.add(node), scalar))
            }
            Builtin::LogDet => {
                square(&s)?;
                let node = if s.is_scalar() {
                    Math::function(Func::Log, &[a])
                } else {
                    Math::LogDet(a)
                };
                Ok((self.add(node), scalar))
            }
            Builtin::Inv => self.inverse(a, s, span, "inv"),
            Builtin::Mean => {
                // sum(A) / (rows·cols)
                let total = self.add(Math::Sum(a));
                let count = self.builder.dim(&s.rows.times(&s.cols));
                let count = self.add(Math::DimValue(count));
                let reciprocal = self.reciprocal(count);
                Ok((self.scale(reciprocal, total), scalar))
            }
            Builtin::LogSumExp => {
                let e = self.add(Math::function(Func::Exp, &[a]));
                let total = self.add(Math::Sum(e));
                Ok((self.add(Math::function(Func::Log, &[total])), scalar))
            }
            Builtin::Softplus => {
                // log(1 + exp(x)), entrywise
                let e = self.add(Math::function(Func::Exp, &[a]));
                let ones = self.builder.ones(&s);
                let sum = self.add(Math::Add([ones, e]));
                Ok((self.add(Math::function(Func::Log, &[sum])), s))
            }
            Builtin::Softmax => {
                // A vector is normalised as a whole; a matrix row by row (numpy's last axis).
                let e = self.add(Math::function(Func::Exp, &[a]));
                let denominator = if s.is_column() || s.is_scalar() {
                    let total = self.add(Math::Sum(e));
                    self.stretch_scalar(total, &s)
                } else {
                    let cols = Shape::new(s.cols.clone(), s.cols.clone());
                    let ones = self.builder.ones(&cols);
                    self.add(Math::Mul([e, ones]))
                };
                Ok((self.add(Math::HDiv([e, denominator])), s))
            }
            Builtin::Vec if s.is_column() || s.is_scalar() => Ok((a, s)),
            Builtin::Vec => Ok((self.add(Math::Vec(a)), Shape::new(s.rows.times(&s.cols), Dim::one()))),
            Builtin::IsMax => Ok((self.add(Math::IsMax(a)), s)),
            Builtin::Sum if s.is_scalar() => Ok((a, s)),
            Builtin::Sum => Ok((self.add(Math::Sum(a)), scalar)),
            Builtin::Norm => Ok((self.add(Math::Norm(a)), scalar)),
            Builtin::Diag => {
                if s.is_scalar() {
                    Ok((a, s))
                } else if s.is_column() {
                    Ok((self.add(Math::Diag(a)), Shape::new(s.rows.clone(), s.rows)))
                } else if s.is_square() {
                    Ok((self.add(Math::DiagVec(a)), Shape::new(s.rows, Dim::one())))
                } else {
                    Err(Error::shape(
                        format!("`diag` takes a column vector or a square matrix, not {s}"),
                        span,
                    ))
                }
            }
            Builtin::Ones
            | Builtin::Zeros
            | Builtin::Eye
            | Builtin::Kron
            | Builtin::Dot
            | Builtin::Outer
            | Builtin::Maximum
            | Builtin::Minimum
            | Builtin::Transpose
            | Builtin::Commute
            | Builtin::Unit
            | Builtin::BlockSum
            | Builtin::BlockAdd => unreachable!("`{name}` takes its arguments as written and is lowered in `call`"),
        }
    }

    fn dim_arg(&self, e: &Expr) -> Result<Dim, Error> {
        match &e.kind {
            ExprKind::Binary(crate::syntax::BinOp::Mul, a, b) => Ok(self.dim_arg(a)?.times(&self.dim_arg(b)?)),
            ExprKind::Name(n) if self.dims.contains(n) => Ok(Dim::named(n)),
            ExprKind::Number(k) if *k >= 1.0 && k.fract() == 0.0 && *k < 1e9 => Ok(Dim::size(*k as u64)),
            ExprKind::Name(n) if self.env.shapes.contains_key(&Symbol::from(n.as_str())) => Err(Error::shape(
                format!("`{n}` is a variable; a size here must be a dimension name or a positive integer"),
                e.span,
            )),
            ExprKind::Name(n) => Err(Error::name(format!("unknown dimension `{n}`"), e.span)
                .with_note("dimensions are the sizes named in declarations such as `X : B x N`")),
            _ => Err(Error::shape(
                "a size must be a dimension name or a positive integer",
                e.span,
            )),
        }
    }
}

fn describe_operand(e: &Expr, s: &Shape) -> String {
    match &e.kind {
        ExprKind::Name(n) => format!("{n} : {s}"),
        ExprKind::Number(c) => format!("{c}"),
        _ => format!("a {s} operand"),
    }
}

/// The declared dimension literal, for callers outside this module.
pub fn dim_literal(lit: &crate::syntax::DimLit) -> Dim {
    dim_of(lit)
}
