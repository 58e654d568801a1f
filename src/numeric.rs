//! Numeric evaluation with nalgebra, and the check every derived formula must pass
//! before it is shown: random instances with every symbolic dimension drawn
//! independently, compared against finite differences of the target.

use crate::dim::Shape;
use crate::ir::{Env, Math};
use crate::ops::Admits;
use egg::{Id, Language, RecExpr, Symbol};
use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap, HashSet};

pub type Matrix = DMatrix<f64>;

/// Sizes for the symbolic dimensions and values for the variables.
#[derive(Debug, Clone)]
pub struct Instance {
    pub sizes: HashMap<String, usize>,
    pub values: HashMap<Symbol, Matrix>,
    /// How many entries each variable has.
    pub entries: HashMap<Symbol, usize>,
    /// The factor the entries were drawn smaller by (finite differences step as much smaller).
    pub scale: f64,
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            sizes: HashMap::new(),
            values: HashMap::new(),
            entries: HashMap::new(),
            scale: 1.0,
        }
    }
}

impl Instance {
    pub fn size_of(&self, shape: &Shape) -> (usize, usize) {
        let f = |name: &str| self.sizes.get(name).copied().unwrap_or(1);
        (shape.rows.evaluate(&f), shape.cols.evaluate(&f))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// A value left its domain (log of a negative, a singular inverse, an overflow).
    Domain,
    /// An argument of abs, relu, sign or step is too close to its kink to difference across.
    NearKink,
    Missing(String),
}

#[derive(Clone)]
enum Value {
    M(Matrix),
    Size(usize),
}

/// The largest condition number (Frobenius) of a matrix inverted during a check.
const MAX_CONDITION: f64 = 1e8;

/// Evaluates an expression on an instance.
pub fn eval(expr: &RecExpr<Math>, inst: &Instance) -> Result<Matrix, EvalError> {
    let mut vals: Vec<Value> = Vec::with_capacity(expr.len());
    for node in expr.iter() {
        let v = eval_node(node, &vals, inst)?;
        if let Value::M(m) = &v {
            if m.iter().any(|x| !x.is_finite()) {
                return Err(EvalError::Domain);
            }
        }
        vals.push(v);
    }
    match vals.pop() {
        Some(Value::M(m)) => Ok(m),
        _ => Err(EvalError::Missing("a value".into())),
    }
}

/// nalgebra panics on the trace, determinant or inverse of a non-square matrix; an
/// ill-typed formula must be an error instead.
fn square(x: &Matrix) -> Result<&Matrix, EvalError> {
    if x.is_square() {
        Ok(x)
    } else {
        Err(EvalError::Missing("a square matrix".into()))
    }
}

fn eval_node(node: &Math, vals: &[Value], inst: &Instance) -> Result<Value, EvalError> {
    let m = |id: &Id| -> Result<&Matrix, EvalError> {
        match &vals[usize::from(*id)] {
            Value::M(m) => Ok(m),
            Value::Size(_) => Err(EvalError::Missing("a matrix".into())),
        }
    };
    let size = |id: &Id| -> Result<usize, EvalError> {
        match &vals[usize::from(*id)] {
            Value::Size(n) => Ok(*n),
            Value::M(_) => Err(EvalError::Missing("a size".into())),
        }
    };
    let s = |id: &Id| -> Result<f64, EvalError> {
        let x = m(id)?;
        if x.len() == 1 {
            Ok(x[(0, 0)])
        } else {
            Err(EvalError::Missing("a scalar".into()))
        }
    };
    let scalar = |x: f64| Value::M(Matrix::from_element(1, 1, x));
    let same_shape = |a: &Matrix, b: &Matrix| {
        if a.shape() == b.shape() {
            Ok(())
        } else {
            Err(EvalError::Missing("matching shapes".into()))
        }
    };
    Ok(match node {
        Math::Num(c) => scalar(c.0),
        Math::Dim(d) => Value::Size(d.0.evaluate(&|n| inst.sizes.get(n).copied().unwrap_or(1))),
        Math::Symbol(name) => Value::M(
            inst.values
                .get(name)
                .cloned()
                .ok_or_else(|| EvalError::Missing(name.to_string()))?,
        ),
        Math::Add([a, b]) => {
            same_shape(m(a)?, m(b)?)?;
            Value::M(m(a)? + m(b)?)
        }
        Math::Mul([a, b]) => {
            if m(a)?.ncols() != m(b)?.nrows() {
                return Err(EvalError::Missing("matching inner sizes".into()));
            }
            Value::M(m(a)? * m(b)?)
        }
        Math::Scale([k, a]) => Value::M(m(a)? * s(k)?),
        Math::Transpose(a) => Value::M(m(a)?.transpose()),
        Math::Had([a, b]) => {
            same_shape(m(a)?, m(b)?)?;
            Value::M(m(a)?.component_mul(m(b)?))
        }
        Math::HDiv([a, b]) => {
            same_shape(m(a)?, m(b)?)?;
            Value::M(m(a)?.component_div(m(b)?))
        }
        Math::Kron([a, b]) => Value::M(m(a)?.kronecker(m(b)?)),
        Math::Inv(a) => {
            let x = square(m(a)?)?;
            let inverse = x.clone().try_inverse().ok_or(EvalError::Domain)?;
            // Near-singular matrices make finite differences meaningless: out of the domain.
            if x.norm() * inverse.norm() > MAX_CONDITION {
                return Err(EvalError::Domain);
            }
            Value::M(inverse)
        }
        Math::Det(a) => scalar(square(m(a)?)?.determinant()),
        Math::LogDet(a) => {
            // ln|det X|, as the Cookbook's eq. 57 and numpy's slogdet.
            let d = square(m(a)?)?.determinant();
            if d == 0.0 {
                return Err(EvalError::Domain);
            }
            scalar(d.abs().ln())
        }
        Math::Trace(a) => scalar(square(m(a)?)?.trace()),
        Math::Sum(a) => scalar(m(a)?.sum()),
        Math::Norm(a) => scalar(m(a)?.norm()),
        Math::Diag(a) => Value::M(Matrix::from_diagonal(&m(a)?.column(0).into_owned())),
        Math::DiagVec(a) => {
            let d = m(a)?.diagonal();
            Value::M(Matrix::from_column_slice(d.len(), 1, d.as_slice()))
        }
        Math::Pow([a, k]) | Math::EPow([a, k]) => {
            let k = s(k)?;
            Value::M(m(a)?.map(|x| x.powf(k)))
        }
        Math::Fn(f, args) => {
            let x = m(&args[0])?;
            let p = args.get(1).map_or(Ok(0.0), s)?;
            let domain = f.spec().domain;
            for v in x.iter() {
                match domain.admits(*v) {
                    Admits::Yes => {}
                    Admits::Outside => return Err(EvalError::Domain),
                    Admits::NearKink => return Err(EvalError::NearKink),
                }
            }
            Value::M(x.map(|v| f.apply(v, p)))
        }
        Math::Ones([r, c]) => Value::M(Matrix::from_element(size(r)?, size(c)?, 1.0)),
        Math::Zeros([r, c]) => Value::M(Matrix::zeros(size(r)?, size(c)?)),
        Math::Eye(n) => Value::M(Matrix::identity(size(n)?, size(n)?)),
        Math::Unit([n, i]) => {
            let (n, i) = (size(n)?, m(i)?[(0, 0)] as usize);
            if i >= n {
                return Err(EvalError::Missing("a unit vector's index inside its length".into()));
            }
            let mut e = Matrix::zeros(n, 1);
            e[(i, 0)] = 1.0;
            Value::M(e)
        }
        Math::IsMax(a) => {
            let x = m(a)?;
            let mut mask = Matrix::zeros(x.nrows(), x.ncols());
            for r in 0..x.nrows() {
                // The first maximum, as numpy's argmax takes it.
                let mut best = 0;
                for c in 1..x.ncols() {
                    if x[(r, c)] > x[(r, best)] {
                        best = c;
                    }
                }
                if x.ncols() > 0 {
                    mask[(r, best)] = 1.0;
                }
            }
            Value::M(mask)
        }
        Math::BlockSum([x, r, c]) | Math::BlockAdd([x, r, c]) => {
            let x = m(x)?;
            let (r, c) = (size(r)?, size(c)?);
            let (blocks_r, blocks_c) = match node {
                Math::BlockSum(_) => (r, c),
                _ => (x.nrows() / r.max(1), x.ncols() / c.max(1)),
            };
            if blocks_r == 0 || blocks_c == 0 || x.nrows() % blocks_r != 0 || x.ncols() % blocks_c != 0 {
                return Err(EvalError::Missing("a divisible block shape".into()));
            }
            let (p, q) = (x.nrows() / blocks_r, x.ncols() / blocks_c);
            let mut out = Matrix::zeros(r, c);
            for i in 0..blocks_r {
                for k in 0..p {
                    for j in 0..blocks_c {
                        for l in 0..q {
                            let v = x[(i * p + k, j * q + l)];
                            match node {
                                Math::BlockSum(_) => out[(i, j)] += v,
                                _ => out[(k, l)] += v,
                            }
                        }
                    }
                }
            }
            Value::M(out)
        }
        Math::Vec(a) => {
            let x = m(a)?;
            Value::M(Matrix::from_column_slice(x.len(), 1, x.as_slice()))
        }
        Math::Commute([r, c]) => {
            let (r, c) = (size(r)?, size(c)?);
            let mut k = Matrix::zeros(r * c, r * c);
            for i in 0..r {
                for j in 0..c {
                    // vec(A) holds A_ij at i + j·r; vec(Aᵀ) holds it at j + i·c.
                    k[(j + i * c, i + j * r)] = 1.0;
                }
            }
            Value::M(k)
        }
        Math::Rows(a) => Value::Size(m(a)?.nrows()),
        Math::Cols(a) => Value::Size(m(a)?.ncols()),
        Math::DimValue(d) => scalar(size(d)? as f64),
    })
}

/// What the numeric check concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `instances: 0`: the target does not depend on the variable and the formula is an
    /// exact zero, so nothing needed drawing.
    Passed {
        instances: usize,
        max_rel_err: f64,
        /// The factor the variables' entries were scaled by to keep values finite (1: as usual).
        scale: f64,
    },
    Failed {
        instances: usize,
        max_rel_err: f64,
        scale: f64,
    },
    /// No instance in the expression's domain was found, so nothing was checked.
    NoDomain {
        tried: usize,
        /// The operator no draw brought inside its domain (`log`, `sqrt`, a fractional power,
        /// overflow), when one was seen.
        empty: Option<String>,
    },
    /// Literal sizes too large to check by finite differences: nothing was checked.
    TooLarge {
        entries: usize,
    },
    Skipped,
}

impl Check {
    pub fn passed(&self) -> bool {
        matches!(self, Check::Passed { .. })
    }

    /// What the draws were, beyond the usual (` with entries scaled by 0.1`), for the
    /// check's report.
    pub fn drawn_note(&self) -> String {
        match self {
            Check::Passed { scale, .. } | Check::Failed { scale, .. } if *scale != 1.0 => {
                format!(", entries scaled by {scale} to keep values finite")
            }
            _ => String::new(),
        }
    }

    /// Why no instance was found, for the check's report.
    pub fn no_domain_reason(&self) -> String {
        match self {
            Check::NoDomain { empty: Some(op), .. } if op == OVERFLOW => {
                "values overflow at every scale tried, down to entries of 1e-3".to_string()
            }
            Check::NoDomain { empty: Some(op), .. } => {
                format!("no draw brought the argument of `{op}` inside its domain: it may have no real-valued domain")
            }
            _ => "the expression may have no real-valued domain".to_string(),
        }
    }
}

/// [`Check::NoDomain`]'s `empty` when values overflowed rather than left a domain.
pub const OVERFLOW: &str = "overflow";

/// How the check runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub instances: usize,
    pub seed: u64,
    pub tolerance: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            instances: 3,
            seed: 0x006d_6174_6469_6666,
            tolerance: 1e-6,
        }
    }
}

/// A derivative claim to check: `formula` is ∂f/∂wrt (denominator layout, or its
/// transpose when `transposed`), where f is the scalar target, or ⟨G, target⟩ when
/// `upstream` names the G of a non-scalar target.
pub struct Claim<'a> {
    pub env: &'a Env,
    pub dims: &'a BTreeSet<String>,
    pub target: &'a RecExpr<Math>,
    pub wrt: Symbol,
    pub upstream: Option<(Symbol, Shape)>,
    pub formula: &'a RecExpr<Math>,
    pub transposed: bool,
}

/// A formula over definition names, with each definition's expression over the variables.
#[derive(Clone, Copy)]
pub struct Named<'a> {
    pub formula: &'a RecExpr<Math>,
    pub definitions: &'a [(Symbol, RecExpr<Math>)],
}

/// The instance extended by the value of every definition, in order.
pub fn with_definitions(inst: &Instance, definitions: &[(Symbol, RecExpr<Math>)]) -> Result<Instance, EvalError> {
    let mut out = inst.clone();
    for (name, expr) in definitions {
        let value = eval(expr, &out)?;
        out.values.insert(*name, value);
    }
    Ok(out)
}

const FD_STEP: f64 = 1e-3;
/// Enough to learn which variables must be positive and to shrink through every scale.
const DRAWS_PER_INSTANCE: usize = 24;
/// Draws failing for reasons the target does not show before all are drawn positive.
const UNDIAGNOSED_BEFORE_POSITIVE: usize = 4;

pub fn check(claim: &Claim, opts: &CheckOptions) -> Check {
    check_named(claim, None, opts)
}

/// As [`check`], also requiring the formula written with definition names (the form that
/// is shown) to agree with the claim's formula on every instance.
pub fn check_named(claim: &Claim, named: Option<Named>, opts: &CheckOptions) -> Check {
    let domain = Domain {
        env: claim.env,
        dims: claim.dims,
        target: claim.target,
        upstream: claim.upstream.as_ref(),
    };
    if constant(claim, named) {
        return Check::Passed {
            instances: 0,
            max_rel_err: 0.0,
            scale: 1.0,
        };
    }
    check_measured(&domain, opts, |inst| compare(claim, named, inst, opts.tolerance))
}

/// Whether the formula is 0 at every entry of every instance the check draws: a gradient
/// that passed its check and vanishes there is identically zero, however long the formula
/// the rules left (a softmax's shift invariance is not a rewrite).
pub fn vanishes(claim: &Claim, opts: &CheckOptions) -> bool {
    let domain = Domain {
        env: claim.env,
        dims: claim.dims,
        target: claim.target,
        upstream: claim.upstream.as_ref(),
    };
    let check = check_measured(&domain, opts, |inst| {
        let largest = eval(claim.formula, inst)?.amax();
        Ok(Measured {
            err: largest,
            passes: largest <= crate::fullform::ZERO,
        })
    });
    matches!(check, Check::Passed { instances, .. } if instances > 0)
}

/// Whether the claim is that a constant has gradient zero, exactly: the target does not
/// depend on the variable (as written, or once its zeros and cancellations are folded) and
/// the formula, in both forms, is a zero of the variable's shape. No instance can add
/// anything to that, and a constant's instances may all overflow (`softmax` of a large
/// scalar is 1, computed as ∞/∞).
fn constant(claim: &Claim, named: Option<Named>) -> bool {
    let zero_of_wrt = |formula: &RecExpr<Math>| {
        let folded = crate::canon::fold_zeros(claim.env, formula);
        let last = folded.as_ref().last();
        let is_zero = matches!(last, Some(Math::Zeros(_))) || matches!(last, Some(Math::Num(c)) if c.0 == 0.0);
        let shape = crate::ir::expr_data(claim.env, &folded)
            .last()
            .and_then(|d| d.shape().cloned());
        let wanted = claim.env.shapes.get(&claim.wrt).map(|s| {
            if claim.transposed {
                Shape::new(s.cols.clone(), s.rows.clone())
            } else {
                s.clone()
            }
        });
        is_zero && shape.is_some() && shape == wanted
    };
    !crate::canon::depends_on(claim.env, claim.target, claim.wrt)
        && zero_of_wrt(claim.formula)
        && named.is_none_or(|n| zero_of_wrt(n.formula))
}

/// Where instances are drawn from: the variables' shapes, the dimensions, the target
/// (whose inverses need well-conditioned values) and the upstream G if any.
pub struct Domain<'a> {
    pub env: &'a Env,
    pub dims: &'a BTreeSet<String>,
    pub target: &'a RecExpr<Math>,
    pub upstream: Option<&'a (Symbol, Shape)>,
}

/// How one instance compared: the relative error, and whether it is within the tolerance
/// plus what the finite differences' own error can explain.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub err: f64,
    pub passes: bool,
}

impl Measured {
    fn failed() -> Measured {
        Measured {
            err: f64::INFINITY,
            passes: false,
        }
    }
}

/// Runs `compare` (returning a relative error) on `opts.instances` instances in the
/// domain, redrawing those where a value leaves its domain.
pub fn check_in(
    domain: &Domain,
    opts: &CheckOptions,
    mut compare: impl FnMut(&Instance) -> Result<f64, EvalError>,
) -> Check {
    check_measured(domain, opts, |inst| {
        compare(inst).map(|err| Measured {
            err,
            passes: err <= opts.tolerance,
        })
    })
}

/// The scales the draws shrink through when values overflow: `cosh(det(|det(A)|·S))` is
/// finite only for small entries.
const SCALES: [f64; 7] = [1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 0.001];

/// As [`check_in`], with each instance's own allowance for finite-difference error.
///
/// A draw that leaves the domain is diagnosed on the target: when the argument of `log`,
/// `sqrt` or a fractional power went out of its domain, only the variables in that argument
/// are drawn positive from then on (every other variable keeps both signs, so a formula
/// that holds only for positive values of it still fails); when values overflowed, every
/// entry is drawn smaller.
pub fn check_measured(
    domain: &Domain,
    opts: &CheckOptions,
    mut compare: impl FnMut(&Instance) -> Result<Measured, EvalError>,
) -> Check {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // Symbolic sizes are drawn small; literal ones are what they are. Past this many entries
    // in one variable, finite differences would take too long: say so rather than hang.
    let mut draws = Draws {
        invertible: under_inverse(domain.target),
        positive: HashSet::new(),
        all_positive: false,
        scale: 0,
    };
    let probe = draw_instance(domain, &draws, &mut ChaCha8Rng::seed_from_u64(0), true);
    let mut largest = probe.entries.values().copied().max().unwrap_or(0);
    // Intermediate values too: a chain of Kronecker products grows past any variable.
    for data in crate::ir::expr_data(domain.env, domain.target) {
        if let Some(shape) = data.shape() {
            let (r, c) = probe.size_of(shape);
            largest = largest.max(r.saturating_mul(c) / 100);
        }
    }
    if largest > MAX_CHECKED_ENTRIES {
        return Check::TooLarge { entries: largest };
    }
    let mut worst: f64 = 0.0;
    let mut failed = false;
    let mut tried = 0;
    let mut empty = None;
    let mut undiagnosed = 0;
    for _ in 0..opts.instances {
        let mut done = false;
        for _ in 0..DRAWS_PER_INSTANCE {
            tried += 1;
            let inst = draw_instance(domain, &draws, &mut rng, false);
            match compare(&inst) {
                Ok(m) => {
                    worst = worst.max(m.err);
                    failed |= !m.passes;
                    done = true;
                    break;
                }
                Err(EvalError::Domain) => match leaves_domain(domain.target, &inst) {
                    Some(Leaves::Outside { op, vars }) => {
                        draws.positive.extend(vars);
                        empty = Some(op);
                    }
                    Some(Leaves::Overflow) if draws.scale + 1 < SCALES.len() => draws.scale += 1,
                    Some(Leaves::Overflow) => empty = Some(OVERFLOW.to_string()),
                    // A singular matrix, or trouble only in the formula or its differences:
                    // after a few, every variable is drawn positive (the formula's own
                    // domain may need it, and the target says nothing about which).
                    None => {
                        undiagnosed += 1;
                        draws.all_positive |= undiagnosed >= UNDIAGNOSED_BEFORE_POSITIVE;
                    }
                },
                // Too near a kink: draw again.
                Err(EvalError::NearKink) => continue,
                // A formula that cannot even be evaluated (wrong shapes) is wrong.
                Err(EvalError::Missing(_)) => {
                    return Check::Failed {
                        instances: opts.instances,
                        max_rel_err: f64::INFINITY,
                        scale: SCALES[draws.scale],
                    }
                }
            }
        }
        if !done {
            return Check::NoDomain { tried, empty };
        }
    }
    let (instances, max_rel_err, scale) = (opts.instances, worst, SCALES[draws.scale]);
    if failed {
        Check::Failed {
            instances,
            max_rel_err,
            scale,
        }
    } else {
        Check::Passed {
            instances,
            max_rel_err,
            scale,
        }
    }
}

/// How instances are drawn, learnt from the draws that left the domain.
struct Draws {
    /// Variables under inv, det or logdet: a diagonal shift keeps them well conditioned.
    invertible: HashSet<Symbol>,
    /// Variables in an argument that must be positive (of `log`, `sqrt`, a fractional power).
    positive: HashSet<Symbol>,
    /// Every variable positive: draws failed where the target could not say why.
    all_positive: bool,
    /// An index into `SCALES`.
    scale: usize,
}

/// Why the target cannot be evaluated on an instance.
#[derive(Debug)]
enum Leaves {
    /// The argument of `op` is outside its domain; `vars` are the variables in it.
    Outside { op: String, vars: Vec<Symbol> },
    /// A value became infinite (or NaN) with every argument inside its domain.
    Overflow,
}

/// Evaluates the target node by node to find the first that leaves its domain.
fn leaves_domain(expr: &RecExpr<Math>, inst: &Instance) -> Option<Leaves> {
    use egg::Language;
    let nodes = expr.as_ref();
    let mut vals: Vec<Value> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let argument = |k: usize| -> Option<&Matrix> {
            match vals.get(usize::from(*node.children().get(k)?))? {
                Value::M(m) => Some(m),
                Value::Size(_) => None,
            }
        };
        let outside = match node {
            Math::Fn(f, _) => {
                let domain = f.spec().domain;
                argument(0)
                    .is_some_and(|x| x.iter().any(|v| domain.admits(*v) == Admits::Outside))
                    .then(|| f.spec().name.to_string())
            }
            Math::Pow([_, _]) | Math::EPow([_, _]) => {
                let fractional = argument(1).is_some_and(|k| k.len() == 1 && k[(0, 0)].fract() != 0.0);
                (fractional && argument(0).is_some_and(|x| x.iter().any(|v| *v < 0.0)))
                    .then(|| "a fractional power".to_string())
            }
            _ => None,
        };
        if let Some(op) = outside {
            let vars = symbols_below(expr, node.children()[0]);
            return Some(Leaves::Outside { op, vars });
        }
        match eval_node(node, &vals, inst) {
            Ok(Value::M(m)) if m.iter().any(|x| !x.is_finite()) => return Some(Leaves::Overflow),
            Ok(v) => vals.push(v),
            Err(_) => return None,
        }
        debug_assert_eq!(vals.len(), i + 1);
    }
    None
}

/// The variables a subexpression reads.
fn symbols_below(expr: &RecExpr<Math>, root: Id) -> Vec<Symbol> {
    use egg::Language;
    let mut out = Vec::new();
    let mut stack = vec![root];
    let mut seen = HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        match &expr[id] {
            Math::Symbol(s) => out.push(*s),
            node => stack.extend(node.children()),
        }
    }
    out
}

/// Variables that appear under inv, det or logdet need well-conditioned values.
fn under_inverse(expr: &RecExpr<Math>) -> HashSet<Symbol> {
    let nodes = expr.as_ref();
    let mut inside = vec![false; nodes.len()];
    let mut out = HashSet::new();
    for i in (0..nodes.len()).rev() {
        let here = inside[i] || matches!(nodes[i], Math::Inv(_) | Math::Det(_) | Math::LogDet(_));
        if let Math::Symbol(s) = nodes[i] {
            if here {
                out.insert(s);
            }
        }
        use egg::Language;
        for c in nodes[i].children() {
            inside[usize::from(*c)] |= here;
        }
    }
    out
}

/// What the output says for a [`Check::TooLarge`].
pub fn too_large(entries: usize) -> String {
    format!(
        "unchecked: a variable has {entries} entries, more than the {MAX_CHECKED_ENTRIES} a finite-difference check can cover; use symbolic sizes (`X : n x n`) to have it checked"
    )
}

/// The most entries a variable may have for the check to run.
pub const MAX_CHECKED_ENTRIES: usize = 10_000;

fn draw_instance(claim: &Domain, draws: &Draws, rng: &mut ChaCha8Rng, sizes_only: bool) -> Instance {
    // Distinct sizes for distinct dimensions, so a mix-up of two of them cannot pass.
    let mut pool: Vec<usize> = (2..(2 + claim.dims.len().max(5))).collect();
    for i in (1..pool.len()).rev() {
        let j = rng.random_range(0..=i);
        pool.swap(i, j);
    }
    let mut inst = Instance {
        scale: SCALES[draws.scale],
        ..Instance::default()
    };
    for (name, size) in claim.dims.iter().zip(pool) {
        inst.sizes.insert(name.clone(), size);
    }
    let mut names: Vec<&Symbol> = claim.env.shapes.keys().collect();
    names.sort_by_key(|s| s.as_str());
    for name in names {
        let shape = &claim.env.shapes[name];
        let (r, c) = inst.size_of(shape);
        inst.entries.insert(*name, r.saturating_mul(c));
        if sizes_only {
            continue;
        }
        // Entries of either sign, kept away from 0 so that divisions and kinks stay tame.
        let positive = draws.all_positive || draws.positive.contains(name);
        let mut x = Matrix::from_fn(r, c, |_, _| {
            let size = rng.random_range(0.25..1.25);
            if positive || rng.random_bool(0.5) {
                size + if positive { 0.25 } else { 0.0 }
            } else {
                -size
            }
        });
        if claim.env.symmetric.contains(name) {
            x = (&x + x.transpose()) * 0.5;
        }
        if claim.env.onehot.contains(name) {
            // Integer labels: one 1 in each row, at a random class; never scaled.
            let mut y = Matrix::zeros(r, c);
            for i in 0..r {
                y[(i, rng.random_range(0..c.max(1)))] = 1.0;
            }
            inst.values.insert(*name, y);
            continue;
        }
        if draws.invertible.contains(name) && r == c {
            x += Matrix::identity(r, c) * (r as f64 + 1.0);
        }
        // The shift scales too, so a scaled matrix is as well conditioned as before.
        inst.values.insert(*name, x * SCALES[draws.scale]);
    }
    if let Some((g, shape)) = claim.upstream {
        let (r, c) = inst.size_of(shape);
        inst.entries.insert(*g, r.saturating_mul(c));
        if sizes_only {
            return inst;
        }
        let gm = Matrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0));
        inst.values.insert(*g, gm);
    }
    inst
}

/// Values whose size finite differences can compare.
pub trait Magnitude: Clone {
    fn magnitude(&self) -> f64;
}

impl Magnitude for f64 {
    fn magnitude(&self) -> f64 {
        self.abs()
    }
}

impl Magnitude for Matrix {
    fn magnitude(&self) -> f64 {
        self.amax()
    }
}

/// The five-point stencil at step h (error O(h⁴)).
fn five_point<T>(at: &mut impl FnMut(f64) -> Result<T, EvalError>, h: f64) -> Result<T, EvalError>
where
    T: std::ops::Sub<Output = T> + std::ops::Add<Output = T> + std::ops::Mul<f64, Output = T>,
{
    let (m2, m1, p1, p2) = (at(-2.0 * h)?, at(-h)?, at(h)?, at(2.0 * h)?);
    Ok((m2 - m1 * 8.0 + p1 * 8.0 - p2) * (1.0 / (12.0 * h)))
}

/// The derivative at 0 of `at`: five-point stencils at h and h/2 combined by Richardson
/// extrapolation. When the two disagree badly (a pole, a kink or a near-singular matrix close
/// by), the instance cannot decide anything: it is treated as out of the domain and redrawn.
pub fn stencil<T>(at: &mut impl FnMut(f64) -> Result<T, EvalError>) -> Result<T, EvalError>
where
    T: std::ops::Sub<Output = T> + std::ops::Add<Output = T> + std::ops::Mul<f64, Output = T> + Magnitude,
{
    stencil_step(at, FD_STEP).map(|(d, _)| d)
}

/// As [`stencil`] at step `h`, with an estimate of its error: the two stencils'
/// disagreement. For a smooth function that is about 15 times the finer one's truncation
/// error and far more than the extrapolated one's; where round-off dominates (an
/// ill-conditioned inverse, a large determinant) the two steps' noise differs by as much
/// as the noise itself.
fn stencil_step<T>(at: &mut impl FnMut(f64) -> Result<T, EvalError>, h: f64) -> Result<(T, f64), EvalError>
where
    T: std::ops::Sub<Output = T> + std::ops::Add<Output = T> + std::ops::Mul<f64, Output = T> + Magnitude,
{
    let coarse = five_point(at, h)?;
    let fine = five_point(at, h / 2.0)?;
    let scale = coarse.magnitude().max(fine.magnitude()).max(1e-3);
    let disagreement = (coarse.clone() - fine.clone()).magnitude();
    if disagreement > 1e-4 * scale {
        return Err(EvalError::Domain);
    }
    Ok((fine.clone() + (fine - coarse) * (1.0 / 15.0), disagreement))
}

/// How the check drew the symbolic dimensions, for its report: ` (n drawn at random)`,
/// ` (m, n drawn independently)`, or nothing.
pub fn how_drawn(dims: &BTreeSet<String>) -> String {
    let dims: Vec<&str> = dims.iter().map(String::as_str).collect();
    match dims.len() {
        0 => String::new(),
        1 => format!(" ({} drawn at random)", dims[0]),
        _ => format!(" ({} drawn independently)", dims.join(", ")),
    }
}

/// The largest entrywise disagreement of two matrices, relative to their size.
pub fn relative_error(numeric: &Matrix, analytic: &Matrix) -> f64 {
    error_above(numeric, analytic, 1e-3)
}

/// The largest entrywise disagreement relative to the larger matrix's size or `floor`.
fn error_above(numeric: &Matrix, analytic: &Matrix, floor: f64) -> f64 {
    if numeric.shape() != analytic.shape() {
        return f64::INFINITY;
    }
    let scale = numeric.amax().max(analytic.amax()).max(floor);
    (numeric - analytic).amax() / scale
}

/// Finite differences against a formula, with what the differences' own error allows.
struct Differences {
    numeric: Matrix,
    /// Each entry's estimated error (the two steps' disagreement).
    estimate: Matrix,
    analytic: Matrix,
}

/// How many times its estimate a difference's error may be.
const ESTIMATE_SAFETY: f64 = 2.0;
/// The most the estimates may excuse, relative to the gradient's size: a wrong formula is
/// off by far more (a sign, a transpose, a factor), and an instance noisier than this is
/// redrawn by the stencil anyway.
const MAX_EXCUSED: f64 = 1e-3;

impl Differences {
    /// The error relative to the gradient's size (or, below it, 1e-5·|f0|: a five-point
    /// stencil at h = 1e-3 rounds off at about 1.3e-12·|f0| (weights summing to 1.5, step
    /// h/2, machine ε), so a zero gradient of a large objective is not failed on noise), and
    /// whether every entry is within the tolerance plus what its finite difference's error
    /// estimate and the instance's conditioning excuse.
    fn measure(&self, f0: f64, noise: f64, tolerance: f64) -> Measured {
        let (numeric, analytic) = (&self.numeric, &self.analytic);
        if numeric.shape() != analytic.shape() {
            return Measured::failed();
        }
        let scale = numeric.amax().max(analytic.amax()).max((1e-5 * f0.abs()).max(1e-3));
        let mut passes = true;
        for ((n, a), e) in numeric.iter().zip(analytic.iter()).zip(self.estimate.iter()) {
            let excused = (ESTIMATE_SAFETY * e + noise).min(MAX_EXCUSED * scale);
            passes &= (n - a).abs() <= tolerance * scale + excused;
        }
        Measured {
            err: (numeric - analytic).amax() / scale,
            passes,
        }
    }
}

/// The scalar whose gradient is claimed: f itself, or ⟨G, f⟩.
fn objective(claim: &Claim, inst: &Instance) -> Result<f64, EvalError> {
    objective_from(claim, inst, None)
}

/// [`objective`] on an instance that differs from `prefix`'s only in `claim.wrt`.
fn objective_from(claim: &Claim, inst: &Instance, prefix: Option<&Prefix>) -> Result<f64, EvalError> {
    let value = match prefix {
        Some(prefix) => prefix.eval(claim.target, inst)?,
        None => eval(claim.target, inst)?,
    };
    match &claim.upstream {
        None => Ok(value[(0, 0)]),
        Some((g, _)) => Ok(inst.values[g].component_mul(&value).sum()),
    }
}

/// The target evaluated on an instance, kept for evaluating it again with only one variable
/// changed, as finite differences do: a node that does not depend on that variable keeps its
/// value, so only the nodes from where the variable enters (in a deep network, its layer
/// onwards) are evaluated again. Each node's value is a function of its children's and the
/// instance's, so the result is the full evaluation's, bit for bit; the check of every
/// gradient of an L-layer network costs about half as much.
struct Prefix {
    depends: Vec<bool>,
    /// The values of the nodes that do not depend on the variable and are read by one that
    /// does (or are the root); the nodes below them are never read again.
    kept: Vec<Option<Value>>,
}

impl Prefix {
    /// `None` when the target cannot be evaluated on `inst` (a full evaluation then says why).
    fn new(expr: &RecExpr<Math>, inst: &Instance, wrt: Symbol) -> Option<Prefix> {
        let nodes = expr.as_ref();
        let mut depends: Vec<bool> = Vec::with_capacity(nodes.len());
        for node in nodes {
            let on = matches!(node, Math::Symbol(s) if *s == wrt)
                || node.children().iter().any(|c| depends[usize::from(*c)]);
            depends.push(on);
        }
        let mut read = vec![false; nodes.len()];
        for (node, _) in nodes.iter().zip(&depends).filter(|(_, d)| **d) {
            for c in node.children() {
                read[usize::from(*c)] = true;
            }
        }
        *read.last_mut()? = true;
        let mut vals: Vec<Value> = Vec::with_capacity(nodes.len());
        for node in nodes {
            let v = eval_node(node, &vals, inst).ok()?;
            if matches!(&v, Value::M(m) if m.iter().any(|x| !x.is_finite())) {
                return None;
            }
            vals.push(v);
        }
        let kept = vals
            .into_iter()
            .enumerate()
            .map(|(i, v)| (read[i] && !depends[i]).then_some(v))
            .collect();
        Some(Prefix { depends, kept })
    }

    /// As [`eval`], on an instance that differs from the kept one only in the variable.
    fn eval(&self, expr: &RecExpr<Math>, inst: &Instance) -> Result<Matrix, EvalError> {
        let mut vals: Vec<Value> = Vec::with_capacity(expr.len());
        for (i, node) in expr.iter().enumerate() {
            let v = if self.depends[i] {
                let v = eval_node(node, &vals, inst)?;
                if matches!(&v, Value::M(m) if m.iter().any(|x| !x.is_finite())) {
                    return Err(EvalError::Domain);
                }
                v
            } else {
                // Never read unless kept.
                self.kept[i].clone().unwrap_or(Value::Size(0))
            };
            vals.push(v);
        }
        match vals.pop() {
            Some(Value::M(m)) => Ok(m),
            _ => Err(EvalError::Missing("a value".into())),
        }
    }
}

/// The largest relative disagreement between the formula and finite differences.
/// Variables with more entries than this are checked along random directions, not entry by entry.
const ENTRYWISE_UP_TO: usize = 100;
/// How many random directions check a large variable.
const DIRECTIONS: usize = 12;

/// For a large variable (a literal size): the directional derivative along random directions
/// V, by finite differences of the objective, against ⟨∇, V⟩. A wrong gradient agrees with a
/// random direction only by accident.
fn along_random_directions(
    claim: &Claim,
    inst: &Instance,
    x0: &Matrix,
    analytic: &Matrix,
    symmetric: bool,
) -> Result<Option<Differences>, EvalError> {
    if symmetric && (analytic - analytic.transpose()).amax() > 1e-9 * analytic.amax().max(1.0) {
        return Ok(None);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(x0.len() as u64);
    let mut probe = inst.clone();
    let prefix = Prefix::new(claim.target, inst, claim.wrt);
    let (mut numeric, mut estimate, mut exact) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..DIRECTIONS {
        let mut v = Matrix::from_fn(x0.nrows(), x0.ncols(), |_, _| rng.random_range(-1.0..1.0));
        if symmetric {
            v = (&v + v.transpose()) * 0.5;
        }
        v /= v.norm().max(1e-12);
        let (d, e) = stencil_step(
            &mut |t: f64| {
                probe.values.insert(claim.wrt, x0 + &v * t);
                objective_from(claim, &probe, prefix.as_ref())
            },
            FD_STEP * inst.scale,
        )?;
        numeric.push(d);
        estimate.push(e);
        exact.push(analytic.component_mul(&v).sum());
    }
    Ok(Some(Differences {
        numeric: Matrix::from_vec(DIRECTIONS, 1, numeric),
        estimate: Matrix::from_vec(DIRECTIONS, 1, estimate),
        analytic: Matrix::from_vec(DIRECTIONS, 1, exact),
    }))
}

/// The largest condition number of a matrix the target inverts or takes the determinant
/// of on this instance (1 when there is none): evaluating the target then loses about
/// that many times machine ε, relative to its value.
fn conditioning(expr: &RecExpr<Math>, inst: &Instance) -> f64 {
    let mut vals: Vec<Value> = Vec::with_capacity(expr.len());
    let mut worst: f64 = 1.0;
    for node in expr.iter() {
        if let Math::Inv(a) | Math::Det(a) | Math::LogDet(a) = node {
            if let Some(Value::M(x)) = vals.get(usize::from(*a)) {
                let inverse_norm = x.clone().try_inverse().map_or(f64::INFINITY, |i| i.norm());
                worst = worst.max(x.norm() * inverse_norm);
            }
        }
        match eval_node(node, &vals, inst) {
            Ok(v) => vals.push(v),
            Err(_) => break,
        }
    }
    worst.min(MAX_CONDITION)
}

fn compare(claim: &Claim, named: Option<Named>, inst: &Instance, tolerance: f64) -> Result<Measured, EvalError> {
    let f0 = objective(claim, inst)?;
    let mut analytic = eval(claim.formula, inst)?;
    // The named form is what is shown: it must equal the expanded one.
    let naming_error = match &named {
        Some(named) => relative_error(
            &eval(named.formula, &with_definitions(inst, named.definitions)?)?,
            &analytic,
        ),
        None => 0.0,
    };
    if claim.transposed {
        analytic = analytic.transpose();
    }
    let x0 = inst
        .values
        .get(&claim.wrt)
        .ok_or(EvalError::Missing(claim.wrt.to_string()))?
        .clone();
    if analytic.shape() != x0.shape() {
        return Ok(Measured::failed());
    }
    let symmetric = claim.env.symmetric.contains(&claim.wrt);
    let h = FD_STEP * inst.scale;
    let differences = if x0.len() > ENTRYWISE_UP_TO {
        along_random_directions(claim, inst, &x0, &analytic, symmetric)?
    } else {
        entrywise(claim, inst, &x0, analytic, symmetric, h)?
    };
    let Some(differences) = differences else {
        return Ok(Measured::failed());
    };
    // Evaluating through a matrix of condition κ loses about κ·ε of the value; a stencil
    // divides that by its step (weights summing to 3 at h/2, extrapolated).
    let noise = 4.0 * conditioning(claim.target, inst) * f64::EPSILON * f0.abs() / h;
    let m = differences.measure(f0, noise, tolerance);
    Ok(Measured {
        err: m.err.max(naming_error),
        passes: m.passes && naming_error <= tolerance,
    })
}

/// Finite differences entry by entry (along E_ij + E_ji for a symmetric variable); `None`
/// when a symmetric variable's gradient is not symmetric.
fn entrywise(
    claim: &Claim,
    inst: &Instance,
    x0: &Matrix,
    mut analytic: Matrix,
    symmetric: bool,
    h: f64,
) -> Result<Option<Differences>, EvalError> {
    let mut numeric = Matrix::zeros(x0.nrows(), x0.ncols());
    let mut estimate = Matrix::zeros(x0.nrows(), x0.ncols());
    let mut probe = inst.clone();
    let prefix = Prefix::new(claim.target, inst, claim.wrt);
    for i in 0..x0.nrows() {
        for j in 0..x0.ncols() {
            let mut at = |t: f64| -> Result<f64, EvalError> {
                let mut x = x0.clone();
                x[(i, j)] += t;
                if symmetric && i != j {
                    x[(j, i)] += t;
                }
                probe.values.insert(claim.wrt, x);
                objective_from(claim, &probe, prefix.as_ref())
            };
            (numeric[(i, j)], estimate[(i, j)]) = stencil_step(&mut at, h)?;
        }
    }
    if symmetric {
        // The gradient on symmetric matrices is itself symmetric (Srinivasan & Panda 2020).
        let asymmetry = (&analytic - analytic.transpose()).amax();
        if asymmetry > 1e-9 * analytic.amax().max(1.0) {
            return Ok(None);
        }
        // The directional derivative along E_ij + E_ji is <∇, E_ij + E_ji> = ∇_ij + ∇_ji.
        let sym = &analytic + analytic.transpose();
        for i in 0..x0.nrows() {
            for j in 0..x0.ncols() {
                if i != j {
                    analytic[(i, j)] = sym[(i, j)];
                }
            }
        }
    }
    Ok(Some(Differences {
        numeric,
        estimate,
        analytic,
    }))
}
