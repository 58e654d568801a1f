//! The full form: Jacobians and Hessians as matrices over vec (Magnus & Neudecker), with
//! their tensor shape, index form and structural nonzeros, checked entry by entry.
//!
//! The Jacobian is built in forward mode by the rule tables' Jacobian entries, which use
//! column-stacking vec; it is then shown in numpy's row-major order (`ravel`), which is
//! `K·J·Kᵀ` with commutation matrices K, simplified by the Kronecker algebra in `rules/vec.rs`.

use crate::dim::{Dim, Shape};
use crate::ir::{DimNode, Math, MathGraph, ShapeAnalysis};
use crate::lower::Checked;
use crate::numeric::{self, check_in, relative_error, stencil, Domain, EvalError, Instance, Matrix};
use crate::rules::jacobian_table;
use crate::{simplify, Check, Error, Options};
use egg::{Id, Language, RecExpr, Subst, Symbol, Var};

/// A full-form derivative, ready to show.
#[derive(Debug, Clone)]
pub struct FullForm {
    pub kind: FullKind,
    pub target_label: String,
    pub target: RecExpr<Math>,
    pub target_shape: Shape,
    pub wrt: String,
    pub wrt_shape: Shape,
    /// For a mixed Hessian block ∂²f/∂vec(x)∂vec(y): x and its shape. The rows follow ∇ₓf,
    /// the columns `wrt` (y); `None` for a Jacobian and for a Hessian in one variable.
    pub gradient_of: Option<(String, Shape)>,
    /// The script's variables in order (the arguments of `--function`).
    pub variables: Vec<String>,
    /// When the simplified matrix was 0 at every entry on every checked instance, it is shown
    /// as the zero matrix, and this holds the form as derived (which the rules did not cancel).
    pub derived_zero: Option<String>,
    /// Why that matrix is 0, where the rules can say (the target simplifies to a constant).
    pub zero_reason: Option<String>,
    /// ∂ravel(T)/∂ravel(X): rows follow T's entries row by row, columns X's.
    pub matrix: RecExpr<Math>,
    pub env: crate::ir::Env,
    pub dims: std::collections::BTreeSet<String>,
    pub index_form: Option<String>,
    /// The index form in LaTeX (for notes).
    pub index_latex: Option<String>,
    /// Nonzeros of the matrix as a dimension expression, when its structure shows them.
    pub nonzeros: Option<Dim>,
    /// (nonzeros, entries) counted on the first checked instance, with its sizes.
    pub counted: Option<Counted>,
    pub check: Check,
    /// For a Jacobian of a non-scalar target: the compact backprop Jᵀ·vec(G), and whether it
    /// agreed numerically with the compact formula.
    pub contraction: Option<(String, bool)>,
}

/// Nonzeros and entries of the matrix counted on one instance, with that instance's sizes.
pub type Counted = (usize, usize, Vec<(String, usize)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullKind {
    Jacobian,
    Hessian,
}

/// Forward mode over `expr`: ∂vec(expr)/∂vec(wrt), column-stacking vec.
fn forward(egraph: &mut MathGraph, expr: &RecExpr<Math>, wrt: Symbol) -> Result<Option<Id>, String> {
    let nodes = expr.as_ref();
    let mut ids: Vec<Id> = Vec::with_capacity(nodes.len());
    let mut jac: Vec<Option<Id>> = Vec::with_capacity(nodes.len());
    let table = jacobian_table();
    let var = |s: &str| s.parse::<Var>().expect("pattern variable");
    let (j, e, a, b) = (var("?j"), var("?e"), var("?a"), var("?b"));
    for node in nodes {
        let id = egraph.add(node.clone().map_children(|c| ids[usize::from(c)]));
        ids.push(id);
        let softmax = vector_softmax(egraph, expr, &ids, node).and_then(|(arg, s)| Some((arg, s, jac[arg]?)));
        let here = match node {
            Math::Symbol(s) if *s == wrt => {
                let v = egraph.add(Math::Vec(id));
                let n = egraph.add(Math::Rows(v));
                Some(egraph.add(Math::Eye(n)))
            }
            // A vector's softmax as a whole: its own Jacobian, diag(s) − s·sᵀ, instead of the
            // quotient rule through its exponentials and their sum, which reads nothing like it.
            _ if softmax.is_some() => {
                let (arg, s, arg_j) = softmax.expect("matched");
                let entry = table
                    .get(&("softmax", 0))
                    .ok_or_else(|| "matdiff has no Jacobian rule for `softmax`".to_string())?;
                let mut subst = Subst::default();
                subst.insert(j, arg_j);
                subst.insert(e, s);
                subst.insert(a, ids[arg]);
                Some(egraph.add_instantiation(entry.pattern(), &subst))
            }
            _ => {
                let mut total: Option<Id> = None;
                let children = node.children();
                for (pos, child) in children.iter().enumerate() {
                    let Some(child_j) = jac[usize::from(*child)] else {
                        continue;
                    };
                    let op = node.to_string();
                    let entry = table
                        .get(&(op.as_str(), pos))
                        .ok_or_else(|| format!("matdiff has no Jacobian rule for `{op}` yet"))?;
                    let mut subst = Subst::default();
                    subst.insert(j, child_j);
                    subst.insert(e, id);
                    subst.insert(a, ids[usize::from(children[0])]);
                    if let Some(second) = children.get(1) {
                        subst.insert(b, ids[usize::from(*second)]);
                    }
                    let term = egraph.add_instantiation(entry.pattern(), &subst);
                    total = Some(match total {
                        Some(t) => egraph.add(Math::Add([t, term])),
                        None => term,
                    });
                }
                total
            }
        };
        jac.push(here);
    }
    Ok(jac.last().copied().flatten())
}

/// When `node` is the softmax of a column vector, as the language writes it
/// (`exp(a) ⊘ (sum(exp(a))·1_n)`) or as a gradient holds it (`exp(a)/sum(exp(a))`, the
/// gradient of log-sum-exp): the index of `a` in `expr`, and the softmax as the language
/// writes it in the e-graph (so that it is shown as `softmax(a)`).
fn vector_softmax(egraph: &mut MathGraph, expr: &RecExpr<Math>, ids: &[Id], node: &Math) -> Option<(usize, Id)> {
    let exp_of = |x: Id| match &expr[x] {
        Math::Fn(crate::ops::Func::Exp, args) => Some(args[0]),
        _ => None,
    };
    let sum_of = |x: Id, e: Id| matches!(expr[x], Math::Sum(y) if y == e);
    let (e, a) = match node {
        Math::HDiv([e, d]) => match expr[*d] {
            Math::Scale([total, o]) if sum_of(total, *e) && matches!(expr[o], Math::Ones(_)) => (*e, exp_of(*e)?),
            _ => return None,
        },
        Math::Scale([k, e]) => match expr[*k] {
            Math::Pow([total, m]) if sum_of(total, *e) && matches!(expr[m], Math::Num(c) if c.0 == -1.0) => {
                (*e, exp_of(*e)?)
            }
            _ => return None,
        },
        _ => return None,
    };
    let shape = egraph[ids[usize::from(a)]].data.shape()?.clone();
    if !shape.is_column() {
        return None;
    }
    let (exp, total) = (ids[usize::from(e)], egraph.add(Math::Sum(ids[usize::from(e)])));
    let (n, one) = (dim_node(egraph, &shape.rows), dim_node(egraph, &Dim::one()));
    let ones = egraph.add(Math::Ones([n, one]));
    let denominator = egraph.add(Math::Scale([total, ones]));
    Some((usize::from(a), egraph.add(Math::HDiv([exp, denominator]))))
}

fn dim_node(egraph: &mut MathGraph, d: &Dim) -> Id {
    egraph.add(Math::Dim(DimNode(d.clone())))
}

/// ∂ravel(expr)/∂ravel(wrt) in the e-graph: K·J·Kᵀ around the column-stacking Jacobian.
fn row_major_jacobian(
    egraph: &mut MathGraph,
    expr: &RecExpr<Math>,
    expr_shape: &Shape,
    wrt: Symbol,
    wrt_shape: &Shape,
) -> Result<Id, String> {
    let j = match forward(egraph, expr, wrt)? {
        Some(j) => j,
        None => {
            let r = dim_node(egraph, &expr_shape.rows.times(&expr_shape.cols));
            let c = dim_node(egraph, &wrt_shape.rows.times(&wrt_shape.cols));
            egraph.add(Math::Zeros([r, c]))
        }
    };
    let (m, n) = (dim_node(egraph, &expr_shape.rows), dim_node(egraph, &expr_shape.cols));
    let (p, q) = (dim_node(egraph, &wrt_shape.rows), dim_node(egraph, &wrt_shape.cols));
    let left = egraph.add(Math::Commute([m, n]));
    let right = egraph.add(Math::Commute([q, p]));
    let jr = egraph.add(Math::Mul([j, right]));
    Ok(egraph.add(Math::Mul([left, jr])))
}

/// ∂ravel(expr)/∂ravel(wrt), simplified within the options' limits.
fn simplified_jacobian(
    env: &crate::ir::Env,
    expr: &RecExpr<Math>,
    expr_shape: &Shape,
    wrt: Symbol,
    wrt_shape: &Shape,
    options: &Options,
) -> Result<RecExpr<Math>, String> {
    let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() });
    let root = row_major_jacobian(&mut egraph, expr, expr_shape, wrt, wrt_shape)?;
    crate::simplify::rebuild(&mut egraph);
    let (egraph, _) = simplify::saturate(egraph, options.limits);
    Ok(crate::order::softmax_restored(env, &simplify::extract(&egraph, root)))
}

impl FullForm {
    /// The form before its check has run.
    fn unchecked(
        kind: FullKind,
        checked: &Checked,
        wrt: &str,
        wrt_shape: Shape,
        matrix: RecExpr<Math>,
        index_form: Option<[String; 2]>,
    ) -> FullForm {
        let target = &checked.target;
        FullForm {
            kind,
            target_label: label(target.name.as_deref()),
            target: target.expr.clone(),
            target_shape: target.shape.clone(),
            wrt: wrt.to_string(),
            wrt_shape,
            gradient_of: None,
            variables: checked.variables.clone(),
            derived_zero: None,
            zero_reason: None,
            index_latex: index_form.as_ref().map(|[_, l]| l.clone()),
            index_form: index_form.map(|[t, _]| t),
            nonzeros: structural_nonzeros(&matrix),
            matrix,
            env: checked.env.clone(),
            dims: checked.dims.clone(),
            counted: None,
            check: Check::Skipped,
            contraction: None,
        }
    }
}

fn label(name: Option<&str>) -> String {
    name.unwrap_or("f").to_string()
}

/// The Jacobian ∂T/∂X of the script's target with respect to `wrt`.
///
/// ```
/// let checked = matdiff::check_script("X : B x N; W : N x M; b : M; h = X*W + b")?;
/// let j = matdiff::fullform::jacobian(&checked, "b", &matdiff::Options::default())?;
/// assert_eq!(j.matrix_text(), "1_B ⊗ I_M");
/// assert_eq!(j.index_form.as_deref(), Some("∂h_ij/∂b_k = δ_jk"));
/// assert!(j.check.passed());
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn jacobian(checked: &Checked, wrt: &str, options: &Options) -> Result<FullForm, Error> {
    let wrt_shape = crate::resolve_wrt(checked, wrt)?;
    let target = &checked.target;
    let wrt_sym = Symbol::from(wrt);
    let env = checked.env.clone();
    let (simplest, _) = simplify::simplest(&env, &target.expr, options.limits.for_target());
    let matrix = simplified_jacobian(&env, &simplest, &target.shape, wrt_sym, &wrt_shape, options)
        .map_err(|m| Error::unsupported(m, target.span))?;

    let index = index_form(
        &env,
        &matrix,
        &target.shape,
        &wrt_shape,
        &label(target.name.as_deref()),
        wrt,
    );
    let mut form = FullForm::unchecked(FullKind::Jacobian, checked, wrt, wrt_shape, matrix, index);
    if !options.no_check {
        check_jacobian(&mut form, &target.expr, options);
        if !target.shape.is_scalar() {
            form.contraction = contraction(checked, wrt, &form, options);
        }
    }
    Ok(form)
}

/// The Hessian of a scalar target: the Jacobian of its gradient, ∂ravel(∇f)/∂ravel(X).
///
/// ```
/// let checked = matdiff::check_script("x : n; A : n x n; x'*A*x")?;
/// let h = matdiff::fullform::hessian(&checked, "x", &matdiff::Options::default())?;
/// assert_eq!(h.matrix_text(), "A + Aᵀ");
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn hessian(checked: &Checked, wrt: &str, options: &Options) -> Result<FullForm, Error> {
    hessian_block(checked, wrt, wrt, options)
}

/// The mixed block ∂²f/∂vec(x)∂vec(y) of a scalar target: the Jacobian with respect to `y`
/// of the gradient with respect to `x` (rows follow ravel(∇ₓf), columns ravel(y)).
///
/// ```
/// let checked = matdiff::check_script("x : n; y : m; A : n x m; x'*A*y")?;
/// let h = matdiff::fullform::hessian_mixed(&checked, "x", "y", &matdiff::Options::default())?;
/// assert_eq!(h.matrix_text(), "A");
/// assert!(h.check.passed());
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn hessian_mixed(checked: &Checked, x: &str, y: &str, options: &Options) -> Result<FullForm, Error> {
    hessian_block(checked, x, y, options)
}

fn hessian_block(checked: &Checked, of: &str, wrt: &str, options: &Options) -> Result<FullForm, Error> {
    let target = &checked.target;
    if !target.shape.is_scalar() {
        return Err(Error::shape(
            format!("a Hessian needs a scalar target, but this one is {}", target.shape),
            target.span,
        )
        .with_note("use `jacobian` for the full-form derivative of a non-scalar target"));
    }
    let wrt_shape = crate::resolve_wrt(checked, wrt)?;
    // The Hessian is the Jacobian of the gradient in the variable's own shape.
    let denominator = Options {
        layout: crate::Layout::Denominator,
        ..options.clone()
    };
    let unchecked = Options {
        no_check: true,
        ..denominator.clone()
    };
    let gradient = crate::grad_checked(checked, of, &unchecked)?;
    let of_shape = gradient.wrt_shape.clone();
    let wrt_sym = Symbol::from(wrt);
    let env = checked.env.clone();
    let matrix = simplified_jacobian(&env, &gradient.formula, &of_shape, wrt_sym, &wrt_shape, options)
        .map_err(|m| Error::unsupported(m, target.span))?;
    let mut form = FullForm::unchecked(FullKind::Hessian, checked, wrt, wrt_shape, matrix, None);
    if of != wrt {
        form.gradient_of = Some((of.to_string(), of_shape));
    }
    if !options.no_check {
        // The gradient is first checked against the target; the Hessian is then checked
        // against finite differences of that checked gradient.
        let gradient_check = crate::grad_checked(checked, of, &denominator)?.check;
        if !gradient_check.passed() {
            form.check = gradient_check;
            return Ok(form);
        }
        check_jacobian(&mut form, &gradient.formula, options);
    }
    Ok(form)
}

/// Entry by entry: each column of the matrix against finite differences of ravel(expr).
fn check_jacobian(form: &mut FullForm, expr: &RecExpr<Math>, options: &Options) {
    let wrt = Symbol::from(form.wrt.as_str());
    let domain = Domain {
        env: &form.env,
        dims: &form.dims,
        target: &form.target,
        upstream: None,
    };
    let mut counted = None;
    let mut all_zero = true;
    let matrix = form.matrix.clone();
    form.check = check_in(&domain, &options.check, |inst| {
        let analytic = numeric::eval(&matrix, inst)?;
        all_zero &= analytic.amax() <= ZERO;
        let x0 = inst
            .values
            .get(&wrt)
            .cloned()
            .ok_or(EvalError::Missing(form.wrt.clone()))?;
        let value = ravel(&numeric::eval(expr, inst)?);
        let (p, q) = x0.shape();
        let mut numeric_j = Matrix::zeros(value.len(), p * q);
        let mut probe = inst.clone();
        for k in 0..p {
            for l in 0..q {
                let column = stencil(&mut |t: f64| {
                    let mut x = x0.clone();
                    x[(k, l)] += t;
                    probe.values.insert(wrt, x);
                    numeric::eval(expr, &probe).map(|v| ravel(&v))
                })?;
                numeric_j.set_column(k * q + l, &column.column(0));
            }
        }
        if counted.is_none() && analytic.shape() == numeric_j.shape() {
            let nonzero = analytic.iter().filter(|v| v.abs() > 1e-12).count();
            let mut sizes: Vec<(String, usize)> = inst.sizes.iter().map(|(k, v)| (k.clone(), *v)).collect();
            sizes.sort();
            counted = Some((nonzero, analytic.len(), sizes));
        }
        Ok(relative_error(&numeric_j, &analytic))
    });
    form.counted = counted;
    let already_zero = matches!(form.matrix.as_ref().last(), Some(Math::Zeros(_)));
    if form.check.passed() && all_zero && !already_zero {
        // Cancellations the rules do not see (softmax's shift invariance: the Hessian of the
        // sum of a softmax) leave a long formula equal to 0; show 0 and keep what was derived.
        form.derived_zero = Some(form.matrix_text());
        // A block ∂²f/∂x∂y vanishes when f is constant in x or in y.
        form.zero_reason = [form.gradient_variable(), form.wrt.as_str()].iter().find_map(|x| {
            crate::reason::constant_target(
                &form.env,
                &form.target,
                Symbol::from(*x),
                &form.target_label,
                options.limits,
            )
        });
        let (rows, cols) = (FullForm::size(form.row_shape()), FullForm::size(&form.wrt_shape));
        form.matrix = zero_matrix(rows, cols);
        form.index_form = None;
        form.index_latex = None;
        form.nonzeros = None;
    }
}

/// The zero matrix of the given size.
pub(crate) fn zero_matrix(rows: Dim, cols: Dim) -> RecExpr<Math> {
    let mut zero = RecExpr::default();
    let r = zero.add(Math::Dim(DimNode(rows)));
    let c = zero.add(Math::Dim(DimNode(cols)));
    zero.add(Math::Zeros([r, c]));
    zero
}

/// The line saying a result is shown as 0 and what was derived (its first 100 characters),
/// with the reason where the rules know one.
pub(crate) fn zero_note(derived: &str, reason: Option<&str>) -> String {
    let shown: String = derived.chars().take(100).collect();
    let more = if derived.chars().count() > 100 { "…" } else { "" };
    match reason {
        Some(reason) => format!(
            "identically 0: {reason}; the derived form {shown}{more} was 0 at every entry on every checked instance (|entry| ≤ {ZERO:.0e})"
        ),
        None => format!(
            "identically 0: the derived form {shown}{more} was 0 at every entry on every checked instance (|entry| ≤ {ZERO:.0e}); the rules did not cancel it"
        ),
    }
}

/// An entry this small, with the check's inputs of order one, is a rounding error of 0.
pub(crate) const ZERO: f64 = 1e-9;

/// The entries of a matrix row by row, as one column (numpy's ravel).
fn ravel(m: &Matrix) -> Matrix {
    Matrix::from_iterator(m.len(), 1, m.transpose().iter().copied())
}

/// Jᵀ·ravel(G), reshaped to X's shape, compared with the compact backprop formula.
fn contraction(checked: &Checked, wrt: &str, form: &FullForm, options: &Options) -> Option<(String, bool)> {
    let denominator = Options {
        layout: crate::Layout::Denominator,
        ..options.clone()
    };
    let compact = crate::grad_checked(checked, wrt, &denominator).ok()?;
    let (g, _) = compact.upstream.clone()?;
    let domain = Domain {
        env: &compact.env,
        dims: &compact.dims,
        target: &compact.target,
        upstream: compact.upstream.as_ref(),
    };
    let agree = check_in(&domain, &options.check, |inst: &Instance| {
        let j = numeric::eval(&form.matrix, inst)?;
        let gm = inst.values.get(&g).ok_or(EvalError::Missing("G".into()))?;
        let contracted = j.transpose() * ravel(gm);
        let formula = numeric::eval(&compact.formula, inst)?;
        let (r, c) = formula.shape();
        // Undo ravel: row-major entries back into an r x c matrix.
        let reshaped = Matrix::from_row_iterator(r, c, contracted.iter().copied());
        Ok(relative_error(&reshaped, &formula))
    });
    Some((compact.formula_text(), agree.passed() && compact.check.passed()))
}

/// Nonzeros of a Kronecker product of identities, ones and dense factors.
fn structural_nonzeros(m: &RecExpr<Math>) -> Option<Dim> {
    nonzeros_at(m, Id::from(m.as_ref().len() - 1))
}

fn nonzeros_at(m: &RecExpr<Math>, id: Id) -> Option<Dim> {
    let dim = |x: Id| match &m[x] {
        Math::Dim(DimNode(d)) => Some(d.clone()),
        _ => None,
    };
    match &m[id] {
        Math::Kron([a, b]) => Some(nonzeros_at(m, *a)?.times(&nonzeros_at(m, *b)?)),
        Math::Eye(n) => dim(*n),
        Math::Ones([r, c]) => Some(dim(*r)?.times(&dim(*c)?)),
        Math::Scale([_, a]) | Math::Transpose(a) => nonzeros_at(m, *a),
        Math::Symbol(_) => None,
        _ => None,
    }
}

/// ∂T_ij/∂X_kl as a product of factor entries, when the matrix is one Kronecker product
/// (possibly scaled) whose factors line up with T's and X's indices; in text and in LaTeX.
fn index_form(
    env: &crate::ir::Env,
    m: &RecExpr<Math>,
    t: &Shape,
    x: &Shape,
    t_name: &str,
    x_name: &str,
) -> Option<[String; 2]> {
    let text = index_form_in(env, m, t, x, t_name, x_name, Notation::Text)?;
    let latex = index_form_in(env, m, t, x, t_name, x_name, Notation::Latex)?;
    Some([text, latex])
}

/// The two notations an index form is written in.
#[derive(Clone, Copy)]
enum Notation {
    Text,
    Latex,
}

impl Notation {
    fn expr(self, e: &RecExpr<Math>) -> String {
        match self {
            Notation::Text => crate::render::render(e, &crate::render::text::Text).text,
            Notation::Latex => crate::render::render(e, &crate::render::latex::Latex).text,
        }
    }

    fn name(self, n: &str) -> String {
        match self {
            Notation::Text => n.to_string(),
            Notation::Latex => crate::render::latex::name(n),
        }
    }

    /// `base` with the index letters `idx` as a subscript; a LaTeX base with a subscript of its own is braced.
    fn indexed(self, base: &str, idx: &str) -> String {
        match (self, idx.is_empty()) {
            (_, true) => base.to_string(),
            (Notation::Text, false) => format!("{base}_{idx}"),
            (Notation::Latex, false) if base.contains('_') => format!("{{{base}}}_{{{idx}}}"),
            (Notation::Latex, false) => format!("{base}_{{{idx}}}"),
        }
    }

    fn delta(self) -> &'static str {
        match self {
            Notation::Text => "δ",
            Notation::Latex => "\\delta",
        }
    }

    fn times(self) -> &'static str {
        match self {
            Notation::Text => "·",
            Notation::Latex => " ",
        }
    }

    fn bracketed(self, s: &str) -> String {
        match self {
            Notation::Text => format!("({s})"),
            Notation::Latex => format!("\\left({s}\\right)"),
        }
    }
}

fn index_form_in(
    env: &crate::ir::Env,
    m: &RecExpr<Math>,
    t: &Shape,
    x: &Shape,
    t_name: &str,
    x_name: &str,
    n: Notation,
) -> Option<String> {
    let root = Id::from(m.as_ref().len() - 1);
    let (coefficient, kron) = match &m[root] {
        Math::Scale([s, k]) => (Some(n.expr(&sub(m, *s))), *k),
        _ => (None, root),
    };
    let t_idx = indices(t, ["i", "j"]);
    let x_idx = indices(x, ["k", "l"]);
    let (dt, dx) = (
        n.indexed(&n.name(t_name), &t_idx.concat()),
        n.indexed(&n.name(x_name), &x_idx.concat()),
    );
    let lhs = match n {
        Notation::Text => format!("∂{dt}/∂{dx}"),
        Notation::Latex => format!("\\frac{{\\partial {dt}}}{{\\partial {dx}}}"),
    };
    let body = match &m[kron] {
        Math::Kron([p, q]) => {
            let (ps, qs) = (factor_shape(env, m, *p)?, factor_shape(env, m, *q)?);
            let rows = split(t, &t_idx, &ps.rows, &qs.rows)?;
            let cols = split(x, &x_idx, &ps.cols, &qs.cols)?;
            let terms: Vec<String> = [entry(m, *p, &rows.0, &cols.0, n), entry(m, *q, &rows.1, &cols.1, n)]
                .into_iter()
                .flatten()
                .collect();
            if terms.is_empty() {
                "1".to_string()
            } else {
                terms.join(n.times())
            }
        }
        Math::Eye(_) => {
            let pairs: Vec<String> = t_idx
                .iter()
                .zip(x_idx.iter())
                .map(|(a, b)| n.indexed(n.delta(), &format!("{a}{b}")))
                .collect();
            if pairs.is_empty() {
                "1".into()
            } else {
                pairs.join(n.times())
            }
        }
        _ => return None,
    };
    Some(match coefficient {
        Some(c) => format!("{lhs} = {c}{}{body}", n.times()),
        None => format!("{lhs} = {body}"),
    })
}

fn sub(m: &RecExpr<Math>, id: Id) -> RecExpr<Math> {
    m[id].build_recexpr(|c| m[c].clone())
}

fn factor_shape(env: &crate::ir::Env, m: &RecExpr<Math>, id: Id) -> Option<Shape> {
    let data = crate::ir::expr_data(env, &sub(m, id));
    data.last()?.shape().cloned()
}

/// The index letters of a shape's non-unit dimensions.
fn indices(s: &Shape, letters: [&'static str; 2]) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !s.rows.is_one() {
        out.push(letters[0]);
    }
    if !s.cols.is_one() {
        out.push(letters[1]);
    }
    out
}

fn subscript(idx: &[&str]) -> String {
    if idx.is_empty() {
        String::new()
    } else {
        format!("_{}", idx.concat())
    }
}

/// Which of the shape's indices run over the first factor's size and which over the second's.
fn split(s: &Shape, idx: &[&'static str], first: &Dim, second: &Dim) -> Option<(Vec<&'static str>, Vec<&'static str>)> {
    let dims: Vec<&Dim> = [&s.rows, &s.cols].into_iter().filter(|d| !d.is_one()).collect();
    match (dims.as_slice(), idx) {
        ([a, b], [i, j]) if *a == first && *b == second => Some((vec![*i], vec![*j])),
        ([a], [i]) if first.is_one() && *a == second => Some((vec![], vec![*i])),
        ([a], [i]) if second.is_one() && *a == first => Some((vec![*i], vec![])),
        ([], []) if first.is_one() && second.is_one() => Some((vec![], vec![])),
        _ => None,
    }
}

/// One factor's entry at the given row and column indices: `A_ik`, `δ_jl`, or nothing for ones.
fn entry(m: &RecExpr<Math>, id: Id, rows: &[&str], cols: &[&str], n: Notation) -> Option<String> {
    let idx = format!("{}{}", rows.concat(), cols.concat());
    match &m[id] {
        Math::Eye(_) if idx.len() == 2 => Some(n.indexed(n.delta(), &idx)),
        Math::Eye(_) | Math::Ones(_) => None,
        Math::Num(c) => Some(crate::render::number(c.0)),
        Math::Symbol(s) => Some(n.indexed(&n.name(s.as_str()), &idx)),
        Math::Transpose(a) if matches!(m[*a], Math::Symbol(_)) => {
            let swapped = format!("{}{}", cols.concat(), rows.concat());
            Some(n.indexed(&n.name(&m[*a].to_string()), &swapped))
        }
        _ => {
            let text = n.bracketed(&n.expr(&sub(m, id)));
            Some(n.indexed(&text, &idx))
        }
    }
}

impl FullForm {
    /// The shape whose entries the rows follow: the target's (Jacobian), the gradient's (Hessian).
    pub fn row_shape(&self) -> &Shape {
        match (self.kind, &self.gradient_of) {
            (FullKind::Jacobian, _) => &self.target_shape,
            (FullKind::Hessian, Some((_, s))) => s,
            (FullKind::Hessian, None) => &self.wrt_shape,
        }
    }

    /// The variable whose gradient a Hessian differentiates (`wrt` unless a mixed block).
    pub fn gradient_variable(&self) -> &str {
        self.gradient_of.as_ref().map_or(self.wrt.as_str(), |(x, _)| x.as_str())
    }

    /// The matrix as one numpy expression: a 2-D array of shape (entries of the rows'
    /// shape, entries of the variable), both over row-major vec (numpy's `ravel`).
    ///
    /// Parts the matrix repeats are named once, inside an immediately applied lambda (one
    /// expression still, and no name leaks into the caller's scope).
    pub fn numpy(&self) -> String {
        match crate::render::numpy::shared(&self.matrix, &self.env) {
            Some(shared) => {
                let mut bound: Vec<String> = shared.bindings.iter().map(|(n, v)| format!("{n} := {v}")).collect();
                bound.push(self.as_matrix(&shared.result.text));
                format!("(lambda: [{}][-1])()", bound.join(", "))
            }
            None => {
                let body = crate::render::render(&self.matrix, &crate::render::numpy::Numpy { env: &self.env });
                self.as_matrix(&body.text)
            }
        }
    }

    /// The numpy value of the matrix as a 2-D array: a 1 x 1 matrix may evaluate to a
    /// Python float; everything else is already 2-D.
    fn as_matrix(&self, value: &str) -> String {
        let matrix_shape = crate::ir::expr_data(&self.env, &self.matrix)
            .last()
            .and_then(|d| d.shape().cloned());
        if matrix_shape.is_some_and(|s| s.is_scalar()) {
            format!("np.reshape({value}, (1, 1))")
        } else {
            value.to_string()
        }
    }

    /// The function's name in `--function`: `jacobian_b`, `hessian_w`, `hessian_W_b`.
    pub fn function_name(&self) -> String {
        match (self.kind, &self.gradient_of) {
            (FullKind::Jacobian, _) => format!("jacobian_{}", self.wrt),
            (FullKind::Hessian, None) => format!("hessian_{}", self.wrt),
            (FullKind::Hessian, Some((x, _))) => format!("hessian_{x}_{}", self.wrt),
        }
    }

    /// A complete Python function returning the matrix, with shape asserts on its arguments
    /// (the script's variables); each part the matrix repeats is assigned once.
    pub fn numpy_function(&self) -> String {
        let mut body = crate::render::numpy::bind_arguments(&self.variables, &self.env);
        let value = match crate::render::numpy::shared(&self.matrix, &self.env) {
            Some(shared) => {
                body.extend(shared.bindings.iter().map(|(n, v)| format!("    {n} = {v}")));
                self.as_matrix(&shared.result.text)
            }
            None => self.numpy(),
        };
        let (rows, cols) = (Self::size(self.row_shape()), Self::size(&self.wrt_shape));
        let of = match self.kind {
            FullKind::Jacobian => self.target_label.clone(),
            FullKind::Hessian if self.gradient_of.is_some() => {
                format!("∇_{} {}", self.gradient_variable(), self.target_label)
            }
            FullKind::Hessian => format!("∇{}", self.target_label),
        };
        let doc = format!(
            "    \"\"\"∂vec({of})/∂vec({}), a ({}, {}) array over row-major vec (numpy's ravel), derived and checked by matdiff.\"\"\"",
            self.wrt,
            rows.render("*"),
            cols.render("*")
        );
        format!(
            "import numpy as np\n\n\ndef {}({}):\n{doc}\n{}\n    return {}\n",
            self.function_name(),
            self.variables.join(", "),
            body.join("\n"),
            value
        )
    }

    pub fn matrix_text(&self) -> String {
        crate::render::render(&self.matrix, &crate::render::text::Text).text
    }

    pub fn matrix_latex(&self) -> String {
        crate::render::render(&self.matrix, &crate::render::latex::Latex).text
    }

    /// The tensor's shape in index order: the target's non-unit sizes, then the variable's.
    pub fn tensor_shape(&self) -> Vec<Dim> {
        let of = |s: &Shape| {
            [s.rows.clone(), s.cols.clone()]
                .into_iter()
                .filter(|d| !d.is_one())
                .collect::<Vec<_>>()
        };
        let mut dims = of(self.row_shape());
        dims.extend(of(&self.wrt_shape));
        dims
    }

    fn size(s: &Shape) -> Dim {
        s.rows.times(&s.cols)
    }

    pub fn check_text(&self) -> String {
        let drawn = crate::numeric::how_drawn(&self.dims);
        match &self.check {
            Check::Passed { instances, max_rel_err, .. } => format!(
                "checked entry by entry against finite differences on {instances} random instances{drawn}{}, max relative error {max_rel_err:.1e}",
                self.check.drawn_note()
            ),
            Check::Failed { instances, max_rel_err, .. } => format!(
                "CHECK FAILED on {instances} random instances{drawn}: max relative error {max_rel_err:.1e}; this matrix must not be trusted"
            ),
            Check::NoDomain { tried, .. } => format!(
                "unchecked: no valid instance found in {tried} random draws ({})",
                self.check.no_domain_reason()
            ),
            Check::TooLarge { entries } => crate::numeric::too_large(*entries),
            Check::Skipped => "unchecked (--no-check)".into(),
        }
    }
}

impl std::fmt::Display for FullForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target_text = crate::render::render(&self.target, &crate::render::text::Text).text;
        writeln!(f, "{} = {}    ({})", self.target_label, target_text, self.target_shape)?;
        let shape: Vec<String> = self.tensor_shape().iter().map(|d| d.to_string()).collect();
        let (rows, cols) = (Self::size(self.row_shape()), Self::size(&self.wrt_shape));
        match self.kind {
            FullKind::Jacobian => {
                let t_idx = indices(&self.target_shape, ["i", "j"]);
                let x_idx = indices(&self.wrt_shape, ["k", "l"]);
                let all: Vec<&str> = t_idx.iter().chain(x_idx.iter()).copied().collect();
                writeln!(
                    f,
                    "∂{}/∂{} : a tensor of shape ({}); entry [{}] is ∂{}{}/∂{}{}",
                    self.target_label,
                    self.wrt,
                    shape.join(", "),
                    all.join(", "),
                    self.target_label,
                    subscript(&t_idx),
                    self.wrt,
                    subscript(&x_idx),
                )?;
                writeln!(
                    f,
                    "∂vec({})/∂vec({}) = {}    ({rows} x {cols}; vec lists entries row by row, as numpy's ravel)",
                    self.target_label,
                    self.wrt,
                    self.matrix_text()
                )?;
            }
            FullKind::Hessian => {
                let gradient = match &self.gradient_of {
                    Some((x, _)) => {
                        writeln!(
                            f,
                            "∂²{}/∂{x}∂{} : shape ({}); the Jacobian in {} of the gradient in {x}",
                            self.target_label,
                            self.wrt,
                            shape.join(", "),
                            self.wrt
                        )?;
                        format!("∇_{x} {}", self.target_label)
                    }
                    None => {
                        writeln!(f, "∇²{} : shape ({})", self.target_label, shape.join(", "))?;
                        format!("∇{}", self.target_label)
                    }
                };
                writeln!(
                    f,
                    "∂vec({gradient})/∂vec({}) = {}    ({rows} x {cols}; vec lists entries row by row, as numpy's ravel)",
                    self.wrt,
                    self.matrix_text()
                )?;
            }
        }
        if let Some(derived) = &self.derived_zero {
            writeln!(f, "{}", zero_note(derived, self.zero_reason.as_deref()))?;
        }
        if let Some(index) = &self.index_form {
            writeln!(f, "index form: {index}")?;
        }
        let total = rows.times(&cols);
        match (&self.nonzeros, &self.counted) {
            (Some(nz), Some((n, all, sizes))) => {
                let at: Vec<String> = sizes.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                writeln!(
                    f,
                    "structural nonzeros: {nz} of {total} (at {}: {n} of {all})",
                    at.join(", ")
                )?;
            }
            (Some(nz), None) => writeln!(f, "structural nonzeros: {nz} of {total}")?,
            (None, Some((n, all, sizes))) => {
                let at: Vec<String> = sizes.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                writeln!(f, "nonzeros at {}: {n} of {all}", at.join(", "))?;
            }
            (None, None) => {}
        }
        if let Some((compact, agrees)) = &self.contraction {
            let verdict = if *agrees {
                "agrees numerically"
            } else {
                "DISAGREES numerically"
            };
            writeln!(
                f,
                "contraction with G = ∂L/∂{}: ∂L/∂{} = reshape(Jᵀ·vec(G)) = {compact}    (the compact form; {verdict})",
                self.target_label, self.wrt
            )?;
        }
        write!(f, "{}", self.check_text())
    }
}
