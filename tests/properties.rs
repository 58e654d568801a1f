//! Property tests: random well-shaped scripts over every differentiable operator, each
//! derived with respect to each of its variables, and the derived formula compared with
//! finite differences computed here.
//!
//! The comparison is independent of matdiff's own machinery: the generator builds its own
//! expression tree next to the script text and evaluates that tree with nalgebra directly
//! (so matdiff's parser, shape inference, broadcasting and lowering are under test too),
//! and the finite differences, instance drawing and tolerances are this file's. Only the
//! derived formula is evaluated with `matdiff::numeric::eval`, since it is matdiff's IR.
//!
//! Cases per run: `MATDIFF_PROPTEST_CASES` (default 300 in CI); the seed of the case
//! generator: `MATDIFF_PROPTEST_SEED` (default fixed, so CI is reproducible). See FUZZING.md
//! for the long run.

mod common;

use common::read_back_script;
use egg::Symbol;
use matdiff::numeric::{eval, EvalError, Instance};
use matdiff::Options;
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Write as _;

type M = DMatrix<f64>;

const DEFAULT_CASES: u32 = 300;
const DEFAULT_SEED: u64 = 0x6d61_7464_6966_6600;
const DIM_NAMES: [&str; 3] = ["m", "n", "p"];
/// Distance from abs/relu/norm kinks below which an instance is not differenced.
const KINK: f64 = 0.02;
/// Values beyond this make finite differences meaningless; such instances are skipped.
const HUGE: f64 = 1e8;
/// Agreement required between the formula and the finite differences (relative).
const TOLERANCE: f64 = 1e-5;
/// Two stencils must agree this well for an instance to count (else it is near a kink or
/// too ill-conditioned to difference, and is skipped).
const STABLE: f64 = 1e-7;
const DRAWS: usize = 10;
const INSTANCES_WANTED: usize = 2;

// ---------------------------------------------------------------------------------------
// A memory cap. A derivation whose memory runs away (as the extraction cycle did, see
// FUZZING.md) would otherwise take the whole machine before the OOM killer stops it; past the cap the
// allocator names the case being run and fails the allocation, which aborts the test
// binary with "memory allocation of N bytes failed".

mod cap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    pub const CAP_BYTES: usize = 1 << 30;
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static REPORTED: AtomicBool = AtomicBool::new(false);
    pub static CURRENT: Mutex<String> = Mutex::new(String::new());

    pub struct Capped;

    unsafe impl GlobalAlloc for Capped {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            if live > CAP_BYTES && !REPORTED.swap(true, Ordering::SeqCst) {
                if let Ok(case) = CURRENT.try_lock() {
                    eprintln!("properties: over the {CAP_BYTES}-byte memory cap while deriving {case}");
                }
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
                return std::ptr::null_mut();
            }
            let p = unsafe { System.alloc(layout) };
            if p.is_null() {
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: cap::Capped = cap::Capped;

// ---------------------------------------------------------------------------------------
// Shapes over the case's symbolic dimensions.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum D {
    One,
    S(u8),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Sh(D, D);

impl Sh {
    const SCALAR: Sh = Sh(D::One, D::One);
    fn t(self) -> Sh {
        Sh(self.1, self.0)
    }
    fn is_scalar(self) -> bool {
        self == Sh::SCALAR
    }
    fn is_column(self) -> bool {
        self.1 == D::One && self.0 != D::One
    }
    fn is_row(self) -> bool {
        self.0 == D::One && self.1 != D::One
    }
}

fn dim_text(d: D) -> &'static str {
    match d {
        D::One => "1",
        D::S(i) => DIM_NAMES[i as usize],
    }
}

// ---------------------------------------------------------------------------------------
// The generator's own expression tree: printed as the script, evaluated with nalgebra.

#[derive(Clone, Copy, Debug)]
enum Fun {
    Exp,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Abs,
    Relu,
    Log,
    Sqrt,
}

impl Fun {
    fn name(self) -> &'static str {
        match self {
            Fun::Exp => "exp",
            Fun::Sin => "sin",
            Fun::Cos => "cos",
            Fun::Tanh => "tanh",
            Fun::Sigmoid => "sigmoid",
            Fun::Abs => "abs",
            Fun::Relu => "relu",
            Fun::Log => "log",
            Fun::Sqrt => "sqrt",
        }
    }
}

/// How a smaller operand is stretched (README: numpy broadcasting made explicit).
#[derive(Clone, Copy, Debug)]
enum Bc {
    Scalar,
    /// A length-c column against c columns: numpy's 1-D array as a row.
    ColAsRow,
    Row,
    /// A length-r column against r rows, over the columns.
    Col,
}

#[derive(Clone, Copy, Debug)]
enum Op2 {
    Add,
    Sub,
    Had(bool),
    HDiv(bool),
}

#[derive(Clone, Debug)]
enum Ex {
    Var(usize),
    Num(f64),
    Ones(Sh),
    Eye(D),
    Named(&'static str, Box<Ex>),
    Stretch(Box<Ex>, Bc, Sh),
    Bin(Op2, Box<Ex>, Box<Ex>),
    Mul(Box<Ex>, Box<Ex>),
    ScaleNum(f64, Box<Ex>, u8),
    DivS(Box<Ex>, Box<Ex>),
    Neg(Box<Ex>),
    T(Box<Ex>, u8),
    F(Fun, Box<Ex>),
    EPow(Box<Ex>, f64),
    Pow(Box<Ex>, f64, u8),
    Tr(Box<Ex>),
    Sum(Box<Ex>),
    Det(Box<Ex>),
    LogDet(Box<Ex>),
    Norm(Box<Ex>),
    Inv(Box<Ex>, u8),
    DiagM(Box<Ex>),
    DiagV(Box<Ex>),
    Kron(Box<Ex>, Box<Ex>, u8),
}

fn bx(e: Ex) -> Box<Ex> {
    Box::new(e)
}

fn num_text(k: f64) -> String {
    format!("{k}")
}

fn show(e: &Ex, vars: &[VarDecl], out: &mut String) {
    let s = |e: &Ex, out: &mut String| show(e, vars, out);
    match e {
        Ex::Var(i) => out.push_str(&vars[*i].name),
        Ex::Num(k) if *k < 0.0 => {
            let _ = write!(out, "(-{})", num_text(-k));
        }
        Ex::Num(k) => out.push_str(&num_text(*k)),
        Ex::Ones(sh) => {
            let _ = write!(out, "ones({}, {})", dim_text(sh.0), dim_text(sh.1));
        }
        Ex::Eye(d) => {
            let _ = write!(out, "eye({})", dim_text(*d));
        }
        Ex::Named(n, _) => out.push_str(n),
        Ex::Stretch(a, _, _) => s(a, out),
        Ex::Bin(op, a, b) => {
            let sym = match op {
                Op2::Add => " + ",
                Op2::Sub => " - ",
                Op2::Had(false) => " .* ",
                Op2::Had(true) => " ⊙ ",
                Op2::HDiv(false) => " ./ ",
                Op2::HDiv(true) => " ⊘ ",
            };
            out.push('(');
            s(a, out);
            out.push_str(sym);
            s(b, out);
            out.push(')');
        }
        Ex::Mul(a, b) => {
            out.push('(');
            s(a, out);
            out.push_str(" * ");
            s(b, out);
            out.push(')');
        }
        Ex::ScaleNum(k, a, style) => {
            out.push('(');
            match style % 3 {
                0 => {
                    let _ = write!(out, "{} * ", num_text(*k));
                    s(a, out);
                }
                1 => {
                    s(a, out);
                    let _ = write!(out, " * {}", num_text(*k));
                }
                _ => {
                    let _ = write!(out, "{} .* ", num_text(*k));
                    s(a, out);
                }
            }
            out.push(')');
        }
        Ex::DivS(a, q) => {
            out.push('(');
            s(a, out);
            out.push_str(" / ");
            s(q, out);
            out.push(')');
        }
        Ex::Neg(a) => {
            out.push_str("(-");
            s(a, out);
            out.push(')');
        }
        Ex::T(a, style) => {
            s(a, out);
            out.push_str(["'", "^T", "ᵀ"][*style as usize % 3]);
        }
        Ex::F(f, a) => call(f.name(), a, vars, out),
        Ex::EPow(a, k) => {
            out.push('(');
            s(a, out);
            let _ = write!(out, " .^ {})", num_text(*k));
        }
        Ex::Pow(a, k, style) => {
            if *k == -1.0 && style % 2 == 1 {
                s(a, out);
                out.push_str(if style % 4 == 1 { "^-1" } else { "⁻¹" });
            } else {
                out.push('(');
                s(a, out);
                let _ = write!(out, " ^ {})", num_text(*k));
            }
        }
        Ex::Tr(a) => call("tr", a, vars, out),
        Ex::Sum(a) => call("sum", a, vars, out),
        Ex::Det(a) => call("det", a, vars, out),
        Ex::LogDet(a) => call("logdet", a, vars, out),
        Ex::Norm(a) => call("norm", a, vars, out),
        Ex::Inv(a, style) => match style % 3 {
            0 => call("inv", a, vars, out),
            1 => {
                s(a, out);
                out.push_str("^-1");
            }
            _ => {
                s(a, out);
                out.push('⁻');
                out.push('¹');
            }
        },
        Ex::DiagM(a) | Ex::DiagV(a) => call("diag", a, vars, out),
        Ex::Kron(a, b, style) => {
            if style % 2 == 0 {
                out.push_str("kron(");
                s(a, out);
                out.push_str(", ");
                s(b, out);
                out.push(')');
            } else {
                out.push('(');
                s(a, out);
                out.push_str(" ⊗ ");
                s(b, out);
                out.push(')');
            }
        }
    }
}

fn call(name: &str, a: &Ex, vars: &[VarDecl], out: &mut String) {
    out.push_str(name);
    out.push('(');
    show(a, vars, out);
    out.push(')');
}

/// Why an instance was not used.
#[derive(Debug)]
enum Skip {
    Domain,
    Kink,
}

struct Values<'a> {
    sizes: &'a [usize],
    vars: &'a [M],
}

impl Values<'_> {
    fn size(&self, d: D) -> usize {
        match d {
            D::One => 1,
            D::S(i) => self.sizes[i as usize],
        }
    }
}

fn ev(e: &Ex, x: &Values) -> Result<M, Skip> {
    let v = ev_node(e, x)?;
    if v.iter().any(|z| !z.is_finite() || z.abs() > HUGE) {
        return Err(Skip::Domain);
    }
    Ok(v)
}

fn scalar(v: f64) -> M {
    M::from_element(1, 1, v)
}

fn ev_node(e: &Ex, x: &Values) -> Result<M, Skip> {
    Ok(match e {
        Ex::Var(i) => x.vars[*i].clone(),
        Ex::Num(k) => scalar(*k),
        Ex::Ones(sh) => M::from_element(x.size(sh.0), x.size(sh.1), 1.0),
        Ex::Eye(d) => M::identity(x.size(*d), x.size(*d)),
        Ex::Named(_, a) => ev(a, x)?,
        Ex::Stretch(a, bc, sh) => {
            let v = ev(a, x)?;
            let (r, c) = (x.size(sh.0), x.size(sh.1));
            match bc {
                Bc::Scalar => M::from_element(r, c, v[(0, 0)]),
                Bc::ColAsRow => {
                    assert_eq!(v.shape(), (c, 1), "generator: column-as-row broadcast");
                    M::from_fn(r, c, |_, j| v[(j, 0)])
                }
                Bc::Row => {
                    assert_eq!(v.shape(), (1, c), "generator: row broadcast");
                    M::from_fn(r, c, |_, j| v[(0, j)])
                }
                Bc::Col => {
                    assert_eq!(v.shape(), (r, 1), "generator: column broadcast");
                    M::from_fn(r, c, |i, _| v[(i, 0)])
                }
            }
        }
        Ex::Bin(op, a, b) => {
            let (a, b) = (ev(a, x)?, ev(b, x)?);
            assert_eq!(a.shape(), b.shape(), "generator: elementwise operands");
            match op {
                Op2::Add => a + b,
                Op2::Sub => a - b,
                Op2::Had(_) => a.component_mul(&b),
                Op2::HDiv(_) => a.component_div(&b),
            }
        }
        Ex::Mul(a, b) => {
            let (a, b) = (ev(a, x)?, ev(b, x)?);
            if a.shape() == (1, 1) {
                b * a[(0, 0)]
            } else if b.shape() == (1, 1) {
                a * b[(0, 0)]
            } else {
                assert_eq!(a.ncols(), b.nrows(), "generator: product");
                a * b
            }
        }
        Ex::ScaleNum(k, a, _) => ev(a, x)? * *k,
        Ex::DivS(a, q) => {
            let q = ev(q, x)?;
            ev(a, x)? / q[(0, 0)]
        }
        Ex::Neg(a) => -ev(a, x)?,
        Ex::T(a, _) => ev(a, x)?.transpose(),
        Ex::F(f, a) => {
            let v = ev(a, x)?;
            if matches!(f, Fun::Abs | Fun::Relu) && v.iter().any(|z| z.abs() < KINK) {
                return Err(Skip::Kink);
            }
            let g: fn(f64) -> f64 = match f {
                Fun::Exp => f64::exp,
                Fun::Sin => f64::sin,
                Fun::Cos => f64::cos,
                Fun::Tanh => f64::tanh,
                Fun::Sigmoid => |z| 1.0 / (1.0 + (-z).exp()),
                Fun::Abs => f64::abs,
                Fun::Relu => |z| z.max(0.0),
                Fun::Log => |z| if z > 0.0 { z.ln() } else { f64::NAN },
                Fun::Sqrt => |z| if z > 0.0 { z.sqrt() } else { f64::NAN },
            };
            v.map(g)
        }
        Ex::EPow(a, k) => ev(a, x)?.map(|z| z.powf(*k)),
        Ex::Pow(a, k, _) => {
            let v = ev(a, x)?;
            if v.shape() == (1, 1) {
                scalar(v[(0, 0)].powf(*k))
            } else {
                let n = k.abs() as usize;
                let mut p = v.clone();
                for _ in 1..n {
                    p = &p * &v;
                }
                if *k < 0.0 {
                    p.try_inverse().ok_or(Skip::Domain)?
                } else {
                    p
                }
            }
        }
        Ex::Tr(a) => scalar(ev(a, x)?.trace()),
        Ex::Sum(a) => scalar(ev(a, x)?.sum()),
        Ex::Det(a) => scalar(ev(a, x)?.determinant()),
        Ex::LogDet(a) => {
            let d = ev(a, x)?.determinant();
            if d <= 0.0 {
                return Err(Skip::Domain);
            }
            scalar(d.ln())
        }
        Ex::Norm(a) => {
            let n = ev(a, x)?.norm();
            if n < KINK {
                return Err(Skip::Kink);
            }
            scalar(n)
        }
        Ex::Inv(a, _) => ev(a, x)?.try_inverse().ok_or(Skip::Domain)?,
        Ex::DiagM(a) => {
            let v = ev(a, x)?;
            assert_eq!(v.ncols(), 1, "generator: diag of a vector");
            M::from_fn(v.nrows(), v.nrows(), |i, j| if i == j { v[(i, 0)] } else { 0.0 })
        }
        Ex::DiagV(a) => {
            let v = ev(a, x)?;
            assert_eq!(v.nrows(), v.ncols(), "generator: diag of a square matrix");
            M::from_fn(v.nrows(), 1, |i, _| v[(i, i)])
        }
        Ex::Kron(a, b, _) => ev(a, x)?.kronecker(&ev(b, x)?),
    })
}

// ---------------------------------------------------------------------------------------
// The random genome (a tree of choices, built with prop_recursive) and its shape-directed
// decoding into a well-shaped, domain-aware expression.

#[derive(Clone, Debug)]
enum Gene {
    Leaf(u8),
    Node(u8, u8, Vec<Gene>),
}

fn gene() -> impl Strategy<Value = Gene> {
    any::<u8>().prop_map(Gene::Leaf).prop_recursive(4, 24, 2, |inner| {
        (any::<u8>(), any::<u8>(), prop::collection::vec(inner, 1..=2))
            .prop_map(|(op, p, kids)| Gene::Node(op, p, kids))
    })
}

#[derive(Clone, Debug)]
struct Case {
    ndims: u8,
    cap: u8,
    top: u8,
    style: u8,
    body: Gene,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (2u8..=3, 2u8..=4, any::<u8>(), any::<u8>(), gene(), any::<u64>()).prop_map(
        |(ndims, cap, top, style, body, seed)| Case {
            ndims,
            cap,
            top,
            style,
            body,
            seed,
        },
    )
}

#[derive(Clone, Debug)]
struct VarDecl {
    name: String,
    sh: Sh,
    symmetric: bool,
    /// Used directly under inv or logdet: the instance adds (k + 1)·I to it.
    shifted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Add,
    Sub,
    Had,
    HDivPos,
    ScaleNum,
    Neg,
    DivScalar,
    Mul,
    Transpose,
    Elem(u8),
    EPowInt,
    EPowPos,
    Bcast,
    Kron,
    Tr,
    Sum,
    Det,
    LogDet,
    Norm,
    PowScalar,
    SumKron,
    InvSpd,
    InvVar,
    MatPow,
    DiagM,
    DiagV,
}

const FUNS: [Fun; 9] = [
    Fun::Exp,
    Fun::Sin,
    Fun::Cos,
    Fun::Tanh,
    Fun::Sigmoid,
    Fun::Abs,
    Fun::Relu,
    Fun::Log,
    Fun::Sqrt,
];

fn applicable(want: Sh) -> Vec<Op> {
    use Op::*;
    let mut ops = vec![
        Add, Sub, Had, HDivPos, ScaleNum, Neg, DivScalar, Mul, Mul, Transpose, EPowInt, EPowPos, Bcast, Kron,
    ];
    ops.extend((0..FUNS.len() as u8).map(Elem));
    if want.is_scalar() {
        ops.extend([Tr, Sum, Sum, Det, LogDet, Norm, PowScalar, SumKron]);
    }
    if want.0 == want.1 {
        ops.extend([InvSpd, InvVar, MatPow, DiagM]);
    }
    if want.1 == D::One {
        ops.push(DiagV);
    }
    ops
}

struct Decoder {
    ndims: usize,
    cap: usize,
    symmetric_ok: bool,
    vars: Vec<VarDecl>,
}

const SCALES: [f64; 5] = [2.0, -1.5, 0.5, 3.0, -0.25];

impl Decoder {
    fn dim(&self, p: u8) -> D {
        let k = p as usize % (self.ndims + 1);
        if k == self.ndims {
            D::One
        } else {
            D::S(k as u8)
        }
    }

    fn var_name(&self, sh: Sh) -> String {
        let i = self.vars.len();
        match (sh.0, sh.1) {
            (D::One, D::One) => format!("s{i}"),
            (_, D::One) => format!("x{i}"),
            (D::One, _) => format!("r{i}"),
            _ => format!("X{i}"),
        }
    }

    fn new_var(&mut self, sh: Sh, sel: u8) -> Ex {
        let symmetric = self.symmetric_ok && sh.0 == sh.1 && sh.0 != D::One && sel.is_multiple_of(3);
        let name = self.var_name(sh);
        self.vars.push(VarDecl {
            name,
            sh,
            symmetric,
            shifted: false,
        });
        Ex::Var(self.vars.len() - 1)
    }

    /// A variable of exactly this shape, if one exists or may be created.
    fn exact_var(&mut self, sel: u8, want: Sh) -> Option<usize> {
        let exact: Vec<usize> = (0..self.vars.len()).filter(|&i| self.vars[i].sh == want).collect();
        if !exact.is_empty() && (!sel.is_multiple_of(4) || self.vars.len() >= self.cap) {
            return Some(exact[sel as usize % exact.len()]);
        }
        if self.vars.len() < self.cap {
            match self.new_var(want, sel) {
                Ex::Var(i) => return Some(i),
                _ => unreachable!(),
            }
        }
        None
    }

    fn leaf(&mut self, sel: u8, want: Sh) -> Ex {
        if sel % 13 == 12 {
            return if want.is_scalar() {
                Ex::Num(0.5 + (sel % 5) as f64)
            } else if want.0 == want.1 {
                Ex::Eye(want.0)
            } else {
                Ex::Ones(want)
            };
        }
        if let Some(i) = self.exact_var(sel, want) {
            return Ex::Var(i);
        }
        let transposed: Vec<usize> = (0..self.vars.len()).filter(|&i| self.vars[i].sh == want.t()).collect();
        if !transposed.is_empty() {
            return Ex::T(bx(Ex::Var(transposed[sel as usize % transposed.len()])), sel / 3);
        }
        let any = Ex::Sum(bx(Ex::Var(sel as usize % self.vars.len())));
        if want.is_scalar() {
            any
        } else {
            Ex::Mul(bx(any), bx(Ex::Ones(want)))
        }
    }

    fn plus_one(e: Ex, sh: Sh) -> Ex {
        Ex::Bin(Op2::Add, bx(e), bx(Ex::Stretch(bx(Ex::Num(1.0)), Bc::Scalar, sh)))
    }

    /// e .* e + 1: positive, of e's shape.
    fn positive(&mut self, g: &Gene, sh: Sh, unicode: bool) -> Ex {
        let e = self.build(g, sh);
        Self::plus_one(Ex::Bin(Op2::Had(unicode), bx(e.clone()), bx(e)), sh)
    }

    /// e·eᵀ + I: symmetric positive definite, k x k.
    fn spd(&mut self, g: &Gene, k: D, inner: D, style: u8) -> Ex {
        let e = self.build(g, Sh(k, inner));
        Ex::Bin(
            Op2::Add,
            bx(Ex::Mul(bx(e.clone()), bx(Ex::T(bx(e), style)))),
            bx(Ex::Eye(k)),
        )
    }

    fn build(&mut self, g: &Gene, want: Sh) -> Ex {
        let (op, p, kids) = match g {
            Gene::Leaf(sel) => return self.leaf(*sel, want),
            Gene::Node(op, p, kids) => (*op, *p, kids),
        };
        let kid = |i: usize| -> Gene { kids.get(i).cloned().unwrap_or(Gene::Leaf(p.wrapping_add(i as u8 * 7))) };
        let ops = applicable(want);
        let chosen = ops[op as usize % ops.len()];
        let unicode = p % 5 == 0;
        match chosen {
            Op::Add | Op::Sub | Op::Had => {
                let a = self.build(&kid(0), want);
                let b = self.build(&kid(1), want);
                let op2 = match chosen {
                    Op::Add => Op2::Add,
                    Op::Sub => Op2::Sub,
                    _ => Op2::Had(unicode),
                };
                Ex::Bin(op2, bx(a), bx(b))
            }
            Op::HDivPos => {
                let a = self.build(&kid(0), want);
                let b = self.positive(&kid(1), want, false);
                Ex::Bin(Op2::HDiv(unicode), bx(a), bx(b))
            }
            Op::ScaleNum => Ex::ScaleNum(SCALES[p as usize % SCALES.len()], bx(self.build(&kid(0), want)), p / 5),
            Op::Neg => Ex::Neg(bx(self.build(&kid(0), want))),
            Op::DivScalar => {
                let a = self.build(&kid(0), want);
                if p % 3 == 0 {
                    Ex::DivS(bx(a), bx(Ex::Num(2.0)))
                } else {
                    let q = self.positive(&kid(1), Sh::SCALAR, false);
                    Ex::DivS(bx(a), bx(q))
                }
            }
            Op::Mul => {
                let k = self.dim(p);
                let a = self.build(&kid(0), Sh(want.0, k));
                let b = self.build(&kid(1), Sh(k, want.1));
                Ex::Mul(bx(a), bx(b))
            }
            Op::Transpose => Ex::T(bx(self.build(&kid(0), want.t())), p),
            Op::Elem(i) => {
                let f = FUNS[i as usize];
                let a = self.build(&kid(0), want);
                match f {
                    // log(exp(e) + 1) and sqrt(e .* e + 1): positive arguments.
                    Fun::Log => Ex::F(Fun::Log, bx(Self::plus_one(Ex::F(Fun::Exp, bx(a)), want))),
                    Fun::Sqrt => Ex::F(
                        Fun::Sqrt,
                        bx(Self::plus_one(Ex::Bin(Op2::Had(unicode), bx(a.clone()), bx(a)), want)),
                    ),
                    _ => Ex::F(f, bx(a)),
                }
            }
            Op::EPowInt => Ex::EPow(bx(self.build(&kid(0), want)), [2.0, 3.0][p as usize % 2]),
            Op::EPowPos => {
                let b = self.positive(&kid(0), want, unicode);
                Ex::EPow(bx(b), [0.5, -1.0, -0.5, 1.5][p as usize % 4])
            }
            Op::Bcast => self.broadcast(&kid(0), &kid(1), want, p),
            Op::Kron => {
                let (r, c) = (want.0, want.1);
                let (sa, sb) = match p % 4 {
                    0 => (Sh(r, D::One), Sh(D::One, c)),
                    1 => (Sh::SCALAR, want),
                    2 => (want, Sh::SCALAR),
                    _ => (Sh(D::One, c), Sh(r, D::One)),
                };
                let a = self.build(&kid(0), sa);
                let b = self.build(&kid(1), sb);
                Ex::Kron(bx(a), bx(b), p / 4)
            }
            Op::Tr => {
                let k = self.dim(p);
                Ex::Tr(bx(self.build(&kid(0), Sh(k, k))))
            }
            Op::Sum => {
                let sh = Sh(self.dim(p), self.dim(p / 4));
                Ex::Sum(bx(self.build(&kid(0), sh)))
            }
            Op::Det => {
                let k = self.dim(p);
                Ex::Det(bx(self.build(&kid(0), Sh(k, k))))
            }
            Op::LogDet => {
                let k = self.dim(p);
                if p % 8 < 3 {
                    if let Some(i) = self.exact_var(kid(0).leaf_sel(), Sh(k, k)) {
                        self.vars[i].shifted = true;
                        return Ex::LogDet(bx(Ex::Var(i)));
                    }
                }
                let inner = self.dim(p / 4);
                Ex::LogDet(bx(self.spd(&kid(0), k, inner, p / 16)))
            }
            Op::Norm => {
                let sh = Sh(self.dim(p), self.dim(p / 4));
                Ex::Norm(bx(self.build(&kid(0), sh)))
            }
            Op::PowScalar => {
                if p % 2 == 0 {
                    Ex::Pow(bx(self.build(&kid(0), want)), [2.0, 3.0][(p / 2) as usize % 2], 0)
                } else {
                    let b = self.positive(&kid(0), want, unicode);
                    Ex::Pow(bx(b), [-1.0, 0.5, -0.5, -1.0][(p / 2) as usize % 4], p / 8)
                }
            }
            Op::SumKron => {
                if p % 2 == 0 {
                    let sa = Sh(self.dim(p / 2), self.dim(p / 8));
                    let sb = Sh(self.dim(p / 32), self.dim(p / 64));
                    let a = self.build(&kid(0), sa);
                    let b = self.build(&kid(1), sb);
                    Ex::Sum(bx(Ex::Kron(bx(a), bx(b), p / 4)))
                } else {
                    let (j, k) = (self.dim(p / 2), self.dim(p / 8));
                    let a = self.build(&kid(0), Sh(j, j));
                    let b = self.build(&kid(1), Sh(k, k));
                    Ex::Tr(bx(Ex::Kron(bx(a), bx(b), p / 4)))
                }
            }
            Op::InvSpd => {
                let inner = self.dim(p);
                Ex::Inv(bx(self.spd(&kid(0), want.0, inner, p / 4)), p / 8)
            }
            Op::InvVar => {
                if let Some(i) = self.exact_var(kid(0).leaf_sel(), want) {
                    self.vars[i].shifted = true;
                    return Ex::Inv(bx(Ex::Var(i)), p);
                }
                let inner = self.dim(p);
                Ex::Inv(bx(self.spd(&kid(0), want.0, inner, p / 4)), p / 8)
            }
            Op::MatPow => {
                if p % 3 == 0 {
                    let inner = self.dim(p / 3);
                    Ex::Pow(bx(self.spd(&kid(0), want.0, inner, p / 4)), -1.0, 1 + 2 * (p / 8 % 2))
                } else {
                    Ex::Pow(bx(self.build(&kid(0), want)), [2.0, 3.0][p as usize % 2], 0)
                }
            }
            Op::DiagM => Ex::DiagM(bx(self.build(&kid(0), Sh(want.0, D::One)))),
            Op::DiagV => Ex::DiagV(bx(self.build(&kid(0), Sh(want.0, want.0)))),
        }
    }

    fn broadcast(&mut self, ga: &Gene, gb: &Gene, want: Sh, p: u8) -> Ex {
        let (r, c) = (want.0, want.1);
        let mut smalls = vec![];
        if !want.is_scalar() {
            smalls.push(Sh::SCALAR);
        }
        if c != D::One {
            smalls.push(Sh(c, D::One));
        }
        if c != D::One && r != D::One {
            smalls.push(Sh(D::One, c));
            smalls.push(Sh(r, D::One));
        }
        if smalls.is_empty() {
            let a = self.build(ga, want);
            let b = self.build(gb, want);
            return Ex::Bin(Op2::Add, bx(a), bx(b));
        }
        let small = smalls[p as usize % smalls.len()];
        // The stretch matdiff applies, in its order of preference (lower.rs `stretch`).
        let kind = if small.is_scalar() {
            Bc::Scalar
        } else if small.is_column() && small.0 == want.1 {
            Bc::ColAsRow
        } else if small.is_row() && small.1 == want.1 && want.0 != D::One {
            Bc::Row
        } else {
            assert!(small.is_column() && small.0 == want.0);
            Bc::Col
        };
        let big = self.build(ga, want);
        let small = Ex::Stretch(bx(self.build(gb, small)), kind, want);
        let op = [Op2::Add, Op2::Sub, Op2::Had(false)][(p / 8) as usize % 3];
        if p & 4 == 0 {
            Ex::Bin(op, bx(big), bx(small))
        } else {
            Ex::Bin(op, bx(small), bx(big))
        }
    }
}

impl Gene {
    fn leaf_sel(&self) -> u8 {
        match self {
            Gene::Leaf(s) => *s,
            Gene::Node(_, p, _) => *p,
        }
    }
}

/// A shape with product dimensions (kron): each side a sorted multiset of dimension
/// indices, empty for 1.
type BigSh = (Vec<u8>, Vec<u8>);

fn big(sh: Sh) -> BigSh {
    let side = |d: D| match d {
        D::One => vec![],
        D::S(i) => vec![i],
    };
    (side(sh.0), side(sh.1))
}

fn shape_of(e: &Ex, vars: &[VarDecl]) -> BigSh {
    let s = |e: &Ex| shape_of(e, vars);
    let scalar: BigSh = (vec![], vec![]);
    match e {
        Ex::Var(i) => big(vars[*i].sh),
        Ex::Num(_) | Ex::Tr(_) | Ex::Sum(_) | Ex::Det(_) | Ex::LogDet(_) | Ex::Norm(_) => scalar,
        Ex::Ones(sh) | Ex::Stretch(_, _, sh) => big(*sh),
        Ex::Eye(d) => big(Sh(*d, *d)),
        Ex::Named(_, a)
        | Ex::Bin(_, a, _)
        | Ex::ScaleNum(_, a, _)
        | Ex::DivS(a, _)
        | Ex::Neg(a)
        | Ex::F(_, a)
        | Ex::EPow(a, _)
        | Ex::Pow(a, _, _)
        | Ex::Inv(a, _) => s(a),
        Ex::T(a, _) => {
            let (r, c) = s(a);
            (c, r)
        }
        Ex::Mul(a, b) => {
            let (sa, sb) = (s(a), s(b));
            if sa == scalar {
                sb
            } else if sb == scalar {
                sa
            } else {
                (sa.0, sb.1)
            }
        }
        Ex::DiagM(a) => {
            let r = s(a).0;
            (r.clone(), r)
        }
        Ex::DiagV(a) => (s(a).0, vec![]),
        Ex::Kron(a, b, _) => {
            let (sa, sb) = (s(a), s(b));
            let mut r: Vec<u8> = sa.0.iter().chain(&sb.0).copied().collect();
            let mut c: Vec<u8> = sa.1.iter().chain(&sb.1).copied().collect();
            r.sort();
            c.sort();
            (r, c)
        }
    }
}

/// Constructs that hit a bug recorded in FUZZING.md ("Bugs found"). The property test skips
/// such cases (counting them) unless `MATDIFF_PROPTEST_KNOWN_BUGS=1`, so that it stays green
/// while the bug is open and keeps covering everything else; each bug has an ignored
/// regression test below.
fn known_bug(script: &Script) -> Option<&'static str> {
    let (e, vars) = (&script.target, &script.vars[..]);
    // `X^-1 .^ k` was read as `X^(-1 .^ k)` until the postfix operators became atomic; no
    // script is filtered for it any more.
    // Fixed in 89a66d4 (tr-kron for non-square factors); the pattern is kept as an example
    // of a structural filter, active only while `FILTER_TR_KRON` is set.
    let mut found = None;
    if FILTER_TR_KRON {
        visit(e, &mut |n| {
            if let Ex::Kron(a, b, _) = n {
                let (sa, sb, sk) = (shape_of(a, vars), shape_of(b, vars), shape_of(n, vars));
                if sk.0 == sk.1 && (sa.0 != sa.1 || sb.0 != sb.1) {
                    found = Some("tr-kron: tr(A⊗B) = tr(A)tr(B) applied to non-square A, B");
                }
            }
        });
    }
    found
}

const FILTER_TR_KRON: bool = false;

fn visit(e: &Ex, f: &mut impl FnMut(&Ex)) {
    f(e);
    match e {
        Ex::Var(_) | Ex::Num(_) | Ex::Ones(_) | Ex::Eye(_) => {}
        Ex::Named(_, a)
        | Ex::Stretch(a, _, _)
        | Ex::ScaleNum(_, a, _)
        | Ex::Neg(a)
        | Ex::T(a, _)
        | Ex::F(_, a)
        | Ex::EPow(a, _)
        | Ex::Pow(a, _, _)
        | Ex::Tr(a)
        | Ex::Sum(a)
        | Ex::Det(a)
        | Ex::LogDet(a)
        | Ex::Norm(a)
        | Ex::Inv(a, _)
        | Ex::DiagM(a)
        | Ex::DiagV(a) => visit(a, f),
        Ex::Bin(_, a, b) | Ex::Mul(a, b) | Ex::DivS(a, b) | Ex::Kron(a, b, _) => {
            visit(a, f);
            visit(b, f);
        }
    }
}

/// A decoded case: the script and everything needed to evaluate it independently.
struct Script {
    text: String,
    vars: Vec<VarDecl>,
    target: Ex,
    ndims: usize,
}

fn shape_decl(sh: Sh, times: &str) -> String {
    match (sh.0, sh.1) {
        (D::One, D::One) => "scalar".into(),
        (r, D::One) => dim_text(r).into(),
        (r, c) => format!("{} {times} {}", dim_text(r), dim_text(c)),
    }
}

fn dims_of(e: &Ex, out: &mut BTreeSet<u8>) {
    let mut add = |d: D| {
        if let D::S(i) = d {
            out.insert(i);
        }
    };
    match e {
        Ex::Ones(sh) => {
            add(sh.0);
            add(sh.1);
        }
        Ex::Eye(d) => add(*d),
        Ex::Stretch(a, _, sh) => {
            add(sh.0);
            add(sh.1);
            dims_of(a, out);
        }
        Ex::Var(_) | Ex::Num(_) => {}
        Ex::Named(_, a)
        | Ex::ScaleNum(_, a, _)
        | Ex::Neg(a)
        | Ex::T(a, _)
        | Ex::F(_, a)
        | Ex::EPow(a, _)
        | Ex::Pow(a, _, _)
        | Ex::Tr(a)
        | Ex::Sum(a)
        | Ex::Det(a)
        | Ex::LogDet(a)
        | Ex::Norm(a)
        | Ex::Inv(a, _)
        | Ex::DiagM(a)
        | Ex::DiagV(a) => dims_of(a, out),
        Ex::Bin(_, a, b) | Ex::Mul(a, b) | Ex::DivS(a, b) | Ex::Kron(a, b, _) => {
            dims_of(a, out);
            dims_of(b, out);
        }
    }
}

fn decode(case: &Case) -> Script {
    let mut dec = Decoder {
        ndims: case.ndims as usize,
        cap: case.cap as usize,
        symmetric_ok: case.style % 4 == 1,
        vars: vec![],
    };
    let top = case.top % 8;
    let mut statements: Vec<String> = vec![];
    let target = match top {
        // A scalar expression as decoded (tr, sum, det, products to 1 x 1, ...).
        0..=2 => dec.build(&case.body, Sh::SCALAR),
        3 => {
            let sh = Sh(dec.dim(case.top / 8), dec.dim(case.top / 32));
            Ex::Sum(bx(dec.build(&case.body, sh)))
        }
        4 => {
            let k = dec.dim(case.top / 8);
            Ex::Tr(bx(dec.build(&case.body, Sh(k, k))))
        }
        // A non-scalar target: its backprop of a random upstream G.
        5 | 6 => {
            let r = D::S((case.top / 8) % case.ndims);
            let c = dec.dim(case.top / 32);
            dec.build(&case.body, Sh(r, c))
        }
        // A definition used twice.
        _ => {
            let sh = Sh(dec.dim(case.top / 8), dec.dim(case.top / 32));
            let h = dec.build(&case.body, sh);
            let hn = Ex::Named("h", bx(h.clone()));
            let mut text = String::from("h = ");
            show(&h, &dec.vars, &mut text);
            statements.push(text);
            Ex::Bin(
                Op2::Sub,
                bx(Ex::Sum(bx(Ex::Bin(Op2::Had(false), bx(hn.clone()), bx(hn.clone()))))),
                bx(Ex::Sum(bx(hn))),
            )
        }
    };
    // Every dimension named by a constant must be declared: declare an unused vector of it
    // (its gradient must come out zero).
    let mut used = BTreeSet::new();
    dims_of(&target, &mut used);
    for v in &dec.vars {
        for d in [v.sh.0, v.sh.1] {
            if let D::S(i) = d {
                used.remove(&i);
            }
        }
    }
    for i in used {
        let sh = Sh(D::S(i), D::One);
        let name = format!("w{}", dec.vars.len());
        dec.vars.push(VarDecl {
            name,
            sh,
            symmetric: false,
            shifted: false,
        });
    }
    let times = if case.style % 8 == 3 { "×" } else { "x" };
    let sep = if case.style.is_multiple_of(2) { "; " } else { "\n" };
    let mut lines: Vec<String> = dec
        .vars
        .iter()
        .map(|v| {
            let sym = if v.symmetric { " symmetric" } else { "" };
            format!("{} : {}{sym}", v.name, shape_decl(v.sh, times))
        })
        .collect();
    lines.extend(statements);
    let mut body = String::new();
    show(&target, &dec.vars, &mut body);
    lines.push(if case.style % 16 >= 12 {
        format!("f = {body}")
    } else {
        body
    });
    Script {
        text: lines.join(sep),
        vars: dec.vars,
        target,
        ndims: case.ndims as usize,
    }
}

// ---------------------------------------------------------------------------------------
// Instances and finite differences.

fn draw_values(script: &Script, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<M>) {
    // Distinct sizes per dimension, so that a mix-up of two dimensions cannot agree.
    let mut pool = [2usize, 3, 4, 5];
    for i in (1..pool.len()).rev() {
        let j = rng.random_range(0..=i);
        pool.swap(i, j);
    }
    let sizes: Vec<usize> = pool[..script.ndims].to_vec();
    let x = Values {
        sizes: &sizes,
        vars: &[],
    };
    let vals = script
        .vars
        .iter()
        .map(|v| {
            let (r, c) = (x.size(v.sh.0), x.size(v.sh.1));
            let mut m = M::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0));
            if v.symmetric {
                m = (&m + m.transpose()) * 0.5;
            }
            if v.shifted {
                m += M::identity(r, c) * (r as f64 + 1.0);
            }
            m
        })
        .collect();
    (sizes, vals)
}

fn objective(script: &Script, sizes: &[usize], vals: &[M], g: Option<&M>) -> Result<f64, Skip> {
    let t = ev(&script.target, &Values { sizes, vars: vals })?;
    Ok(match g {
        None => {
            assert_eq!(t.shape(), (1, 1), "generator: scalar target");
            t[(0, 0)]
        }
        Some(g) => g.component_mul(&t).sum(),
    })
}

/// Five-point central differences of the objective along each entry of variable `v`
/// (along E_ij + E_ji for a symmetric variable).
fn differences(script: &Script, sizes: &[usize], vals: &[M], g: Option<&M>, v: usize, h: f64) -> Result<M, Skip> {
    let x0 = &vals[v];
    let symmetric = script.vars[v].symmetric;
    let mut out = M::zeros(x0.nrows(), x0.ncols());
    let mut probe = vals.to_vec();
    for i in 0..x0.nrows() {
        for j in 0..x0.ncols() {
            let mut at = |t: f64| -> Result<f64, Skip> {
                let mut x = x0.clone();
                x[(i, j)] += t;
                if symmetric && i != j {
                    x[(j, i)] += t;
                }
                probe[v] = x;
                objective(script, sizes, &probe, g)
            };
            out[(i, j)] = (at(-2.0 * h)? - 8.0 * at(-h)? + 8.0 * at(h)? - at(2.0 * h)?) / (12.0 * h);
        }
    }
    Ok(out)
}

#[derive(Default, Debug)]
struct Stats {
    cases: usize,
    derivations: usize,
    checked: usize,
    instances: usize,
    no_valid_instance: usize,
    formula_domain: usize,
    known_bug_skips: Vec<&'static str>,
    worst: f64,
}

fn include_known_bugs() -> bool {
    std::env::var("MATDIFF_PROPTEST_KNOWN_BUGS").is_ok_and(|v| v == "1")
}

/// Derives the case's gradients and compares each with finite differences. `Err` is a
/// disagreement (a bug), with everything needed to reproduce it.
fn run_case(case: &Case, stats: &RefCell<Stats>) -> Result<(), String> {
    let script = decode(case);
    stats.borrow_mut().cases += 1;
    if !include_known_bugs() {
        if let Some(bug) = known_bug(&script) {
            stats.borrow_mut().known_bug_skips.push(bug);
            return Ok(());
        }
    }
    if std::env::var_os("MATDIFF_PROPTEST_TRACE").is_some() {
        eprintln!("case: {:?}", script.text);
    }
    check_decoded(&script, case.seed, stats)
}

/// Derives the script's gradient wrt each variable and compares it with finite differences.
fn check_decoded(script: &Script, seed: u64, stats: &RefCell<Stats>) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fail = |wrt: &str, what: String| {
        let engine = match matdiff::grad_with(&script.text, wrt, &Options::default()) {
            Ok(d) => format!("{:?}", d.check),
            Err(e) => e.message.clone(),
        };
        format!(
            "script: {:?}\n--wrt {wrt}\n{what}\n(matdiff's own check on this derivation: {engine})",
            script.text
        )
    };
    for (v, var) in script.vars.iter().enumerate() {
        let options = Options {
            no_check: true,
            ..Default::default()
        };
        if let Ok(mut current) = cap::CURRENT.lock() {
            *current = format!("{:?} --wrt {}", script.text, var.name);
        }
        let d = match matdiff::grad_with(&script.text, &var.name, &options) {
            Ok(d) => d,
            Err(e) => {
                return Err(fail(
                    &var.name,
                    format!("grad failed: {}", e.render("<script>", &script.text, false)),
                ))
            }
        };
        stats.borrow_mut().derivations += 1;
        // What is printed is input: the formula and the target as displayed, read back in
        // the script, must be the same functions (compared on every instance below).
        let mut read_back = Vec::new();
        let target = matdiff::render::render(&d.target, &matdiff::render::text::Text).text;
        for (what, text) in [("formula", d.expanded_text()), ("target", target)] {
            let pasted = read_back_script(&script.text, &d, &text);
            match matdiff::check_script(&pasted) {
                Ok(c) => read_back.push((what, text, c.target.expr)),
                Err(e) => {
                    return Err(fail(
                        &var.name,
                        format!(
                            "the printed {what} `{text}` does not read back: {}",
                            e.render("<pasted>", &pasted, false)
                        ),
                    ))
                }
            }
        }
        let mut good = 0;
        for _ in 0..DRAWS {
            if good == INSTANCES_WANTED {
                break;
            }
            let (sizes, vals) = draw_values(script, &mut rng);
            let x = Values {
                sizes: &sizes,
                vars: &vals,
            };
            let mut inst = Instance::default();
            for (i, name) in DIM_NAMES.iter().enumerate().take(script.ndims) {
                inst.sizes.insert(name.to_string(), sizes[i]);
            }
            for (decl, val) in script.vars.iter().zip(&vals) {
                inst.values.insert(Symbol::from(decl.name.as_str()), val.clone());
            }
            let Ok(mine) = ev(&script.target, &x) else { continue };
            let g = d.upstream.as_ref().map(|(name, _)| {
                let gm = M::from_fn(mine.nrows(), mine.ncols(), |_, _| rng.random_range(-1.0..1.0));
                inst.values.insert(*name, gm.clone());
                gm
            });
            if d.upstream.is_none() != (mine.shape() == (1, 1)) {
                return Err(fail(
                    &var.name,
                    format!("target shape {:?} vs upstream {:?}", mine.shape(), d.upstream),
                ));
            }
            // matdiff's lowering of the target must compute the same values as the script means.
            match eval(&d.target, &inst) {
                Ok(theirs) => {
                    let scale = mine.amax().max(1.0);
                    if theirs.shape() != mine.shape() || (&theirs - &mine).amax() > 1e-9 * scale {
                        return Err(fail(
                            &var.name,
                            format!("the lowered target evaluates to {theirs} but the script means {mine}"),
                        ));
                    }
                }
                Err(EvalError::Domain | EvalError::NearKink) => continue,
                Err(e) => return Err(fail(&var.name, format!("the lowered target does not evaluate: {e:?}"))),
            }
            let analytic = match eval(&d.formula, &inst) {
                Ok(a) => a,
                Err(EvalError::NearKink) => continue,
                Err(EvalError::Domain) => {
                    stats.borrow_mut().formula_domain += 1;
                    continue;
                }
                Err(e) => {
                    return Err(fail(
                        &var.name,
                        format!("the formula {} does not evaluate: {e:?}", d.formula_text()),
                    ))
                }
            };
            for (what, text, expr) in &read_back {
                let printed = if *what == "formula" { &analytic } else { &mine };
                match eval(expr, &inst) {
                    Ok(pasted)
                        if pasted.shape() == printed.shape()
                            && (&pasted - printed).amax() <= 1e-8 * printed.amax().max(1.0) => {}
                    Err(EvalError::Domain | EvalError::NearKink) => {}
                    other => {
                        return Err(fail(
                            &var.name,
                            format!(
                                "the printed {what} `{text}` reads back as another function: {other:?} vs {printed}"
                            ),
                        ))
                    }
                }
            }
            if analytic.shape() != vals[v].shape() {
                return Err(fail(
                    &var.name,
                    format!(
                        "the formula {} is {:?} but the variable is {:?}",
                        d.formula_text(),
                        analytic.shape(),
                        vals[v].shape()
                    ),
                ));
            }
            let Ok(fd) = differences(script, &sizes, &vals, g.as_ref(), v, 1e-3) else {
                continue;
            };
            let Ok(fd2) = differences(script, &sizes, &vals, g.as_ref(), v, 5e-4) else {
                continue;
            };
            if (&fd - &fd2).amax() > STABLE * fd.amax().max(1.0) {
                continue;
            }
            // For a symmetric variable the gradient is sym(∇), and differencing along
            // E_ij + E_ji measures ∇_ij + ∇_ji.
            let expected = if var.symmetric {
                if (&analytic - analytic.transpose()).amax() > 1e-9 * analytic.amax().max(1.0) {
                    return Err(fail(
                        &var.name,
                        format!("the formula {} is not symmetric: {analytic}", d.formula_text()),
                    ));
                }
                M::from_fn(analytic.nrows(), analytic.ncols(), |i, j| {
                    if i == j {
                        analytic[(i, i)]
                    } else {
                        analytic[(i, j)] + analytic[(j, i)]
                    }
                })
            } else {
                analytic.clone()
            };
            // The stencil rounds off at about 3e-13·|f|: below 1e-5·|f| a disagreement is
            // noise (a zero gradient of a large objective), not a wrong formula.
            let f0 = objective(script, &sizes, &vals, g.as_ref()).map_or(0.0, f64::abs);
            let scale = fd.amax().max(expected.amax()).max(1e-3).max(1e-5 * f0);
            let err = (&fd - &expected).amax() / scale;
            if err > TOLERANCE {
                return Err(fail(
                    &var.name,
                    format!(
                        "formula {} disagrees with finite differences (relative error {err:.2e})\nsizes {:?}\nformula value {analytic}finite differences {fd}",
                        d.formula_text(),
                        sizes
                    ),
                ));
            }
            let mut s = stats.borrow_mut();
            s.instances += 1;
            s.worst = s.worst.max(err);
            good += 1;
        }
        let mut s = stats.borrow_mut();
        if good > 0 {
            s.checked += 1;
        } else {
            s.no_valid_instance += 1;
        }
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

#[test]
fn derived_gradients_agree_with_independent_finite_differences() {
    let cases = env_u64("MATDIFF_PROPTEST_CASES").map_or(DEFAULT_CASES, |n| n as u32);
    let seed = env_u64("MATDIFF_PROPTEST_SEED").unwrap_or(DEFAULT_SEED);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let stats = RefCell::new(Stats::default());
    let start = std::time::Instant::now();
    let result = runner.run(&case(), |c| run_case(&c, &stats).map_err(TestCaseError::fail));
    let s = stats.into_inner();
    eprintln!(
        "properties: seed {seed}, {cases} cases requested, {} cases run (incl. shrinking), {} derivations, {} checked on {} instances ({} without a usable instance, {} formula-domain skips; {} cases skipped for known bugs), worst relative error {:.1e}, {:.1?}",
        s.cases,
        s.derivations,
        s.checked,
        s.instances,
        s.no_valid_instance,
        s.formula_domain,
        s.known_bug_skips.len(),
        s.worst,
        start.elapsed()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, c)) => {
            panic!("{reason}\n(minimal case: {:?})", decode(&c).text)
        }
        Err(e) => panic!("{e}"),
    }
    // The generator must produce checkable cases, not mostly skipped ones.
    assert!(
        s.checked * 10 >= s.derivations * 7,
        "too few derivations could be checked: {s:?}"
    );
}

/// The case at index `i` of a long run, drawn independently of the others so that a run
/// can resume after any case (a case that aborts the process, see FUZZING.md).
fn case_at(seed: u64, i: u64) -> Case {
    use proptest::strategy::ValueTree;
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&i.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    case().new_tree(&mut runner).expect("a case").current()
}

/// The long run (not in CI): `MATDIFF_PROPTEST_CASES` cases (default 20 000) from
/// `MATDIFF_PROPTEST_START` (default 0), each checked like the CI property test but without
/// stopping at the first disagreement: every failing case is listed at the end (and
/// appended to `MATDIFF_PROPTEST_FAILURES` if set, as it happens). If
/// `MATDIFF_PROPTEST_PROGRESS` names a file, the index of the case being run is written
/// there, so a driver can resume after a case that aborts the process at the memory cap
/// (fuzz/proptest-long-run.sh does).
#[test]
#[ignore = "long run, minutes to hours: see FUZZING.md"]
fn long_run() {
    let cases = env_u64("MATDIFF_PROPTEST_CASES").unwrap_or(20_000);
    let first = env_u64("MATDIFF_PROPTEST_START").unwrap_or(0);
    let seed = env_u64("MATDIFF_PROPTEST_SEED").unwrap_or(DEFAULT_SEED);
    let progress = std::env::var_os("MATDIFF_PROPTEST_PROGRESS");
    let failures_file = std::env::var_os("MATDIFF_PROPTEST_FAILURES");
    let stats = RefCell::new(Stats::default());
    let mut failures = vec![];
    let start = std::time::Instant::now();
    std::panic::set_hook(Box::new(|_| {}));
    for i in first..cases {
        if let Some(p) = &progress {
            let _ = std::fs::write(p, i.to_string());
        }
        let c = case_at(seed, i);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&c, &stats)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(message)) => message,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("script: {:?}\npanicked: {what}", decode(&c).text)
            }
        };
        let entry = format!("case {i} (seed {seed}):\n{failure}\n");
        eprintln!("{entry}");
        if let Some(path) = &failures_file {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{entry}");
            }
        }
        failures.push(entry);
    }
    let _ = std::panic::take_hook();
    let s = stats.into_inner();
    eprintln!(
        "long run: seed {seed}, cases {first}..{cases}, {} derivations, {} checked on {} instances ({} without a usable instance, {} formula-domain skips; {} cases skipped for known bugs), worst relative error {:.1e}, {} failing cases, {:.1?}",
        s.derivations,
        s.checked,
        s.instances,
        s.no_valid_instance,
        s.formula_domain,
        s.known_bug_skips.len(),
        s.worst,
        failures.len(),
        start.elapsed()
    );
    assert!(failures.is_empty(), "{} failing cases", failures.len());
}

/// matdiff's own check must reject a wrong formula: on generated cases, the derived
/// formula negated (`Options::plant_fault`) must fail the check unless the true gradient
/// is zero (which these finite differences decide).
#[test]
fn matdiffs_check_rejects_negated_formulas() {
    let cases = env_u64("MATDIFF_PROPTEST_CASES").map_or(60, |n| (n / 5).max(1) as u32);
    let seed = env_u64("MATDIFF_PROPTEST_SEED").unwrap_or(DEFAULT_SEED) ^ 0x5eed;
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 256,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let result = runner.run(&case(), |c| {
        let script = decode(&c);
        if !include_known_bugs() && known_bug(&script).is_some() {
            return Ok(());
        }
        let var = &script.vars[0];
        let planted = Options {
            plant_fault: true,
            ..Default::default()
        };
        let d = matdiff::grad_with(&script.text, &var.name, &planted)
            .map_err(|e| TestCaseError::fail(e.render("<script>", &script.text, false)))?;
        if !d.check.passed() {
            return Ok(());
        }
        // Passed: only right if the gradient is zero on every instance.
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
        for _ in 0..DRAWS {
            let (sizes, vals) = draw_values(&script, &mut rng);
            let x = Values {
                sizes: &sizes,
                vars: &vals,
            };
            let Ok(t) = ev(&script.target, &x) else { continue };
            let g = d
                .upstream
                .as_ref()
                .map(|_| M::from_fn(t.nrows(), t.ncols(), |_, _| rng.random_range(-1.0..1.0)));
            let Ok(fd) = differences(&script, &sizes, &vals, g.as_ref(), 0, 1e-3) else { continue };
            if fd.amax() > 1e-6 {
                return Err(TestCaseError::fail(format!(
                    "script {:?} --wrt {}: matdiff's check passed the negated formula {} ({:?}) though the gradient is not zero: {fd}",
                    script.text,
                    var.name,
                    d.formula_text(),
                    d.check
                )));
            }
            break;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Every generated script is well-shaped by construction; printing and parsing a few and
/// checking the decoder's shapes guards the generator itself.
#[test]
fn the_generator_makes_well_shaped_scripts() {
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    runner
        .run(&case(), |c| {
            let s = decode(&c);
            matdiff::check_script(&s.text)
                .map(|_| ())
                .map_err(|e| TestCaseError::fail(e.render("<script>", &s.text, false)))
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Regressions for the disagreements the property test found (see FUZZING.md).

fn var(name: &str, sh: Sh) -> VarDecl {
    VarDecl {
        name: name.into(),
        sh,
        symmetric: false,
        shifted: false,
    }
}

/// Checks a hand-written case the way the property test checks generated ones.
fn regression(vars: Vec<VarDecl>, target: Ex, ndims: usize) {
    let mut lines: Vec<String> = vars
        .iter()
        .map(|v| format!("{} : {}", v.name, shape_decl(v.sh, "x")))
        .collect();
    let mut body = String::new();
    show(&target, &vars, &mut body);
    lines.push(body);
    let script = Script {
        text: lines.join("; "),
        vars,
        target,
        ndims,
    };
    let stats = RefCell::new(Stats::default());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_decoded(&script, 7, &stats)));
    match result {
        Ok(Ok(())) => assert!(stats.borrow().no_valid_instance == 0, "{:?}", stats.borrow()),
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("matdiff panicked on {:?}", script.text),
    }
}

const M_: D = D::S(0);

/// Found by the property test, fixed in 89a66d4: rule tr-kron rewrote tr(A⊗B) to tr(A)·tr(B)
/// for non-square A, B (`--wrt r0` gave `tr(x1)`, and the check panicked in numeric::eval).
#[test]
fn regression_trace_of_a_kron_of_non_square_factors() {
    // tr(r ⊗ x) = r·x for a row r and a column x of the same length: ∂/∂r = xᵀ, ∂/∂x = rᵀ.
    let vars = vec![var("r0", Sh(D::One, M_)), var("x1", Sh(M_, D::One))];
    let target = Ex::Tr(bx(Ex::Kron(bx(Ex::Var(0)), bx(Ex::Var(1)), 0)));
    regression(vars, target, 1);
}

#[test]
fn regression_trace_of_a_kron_of_square_factors_still_works() {
    let vars = vec![var("A", Sh(M_, M_)), var("B", Sh(D::S(1), D::S(1)))];
    let target = Ex::Tr(bx(Ex::Kron(bx(Ex::Var(0)), bx(Ex::Var(1)), 0)));
    regression(vars, target, 2);
}

#[test]
fn regression_postfix_inverse_before_a_spaced_elementwise_power() {
    let d = matdiff::grad_with(
        "X : m x m; sum(X^-1 .^ 2)",
        "X",
        &Options {
            no_check: true,
            ..Default::default()
        },
    )
    .expect("derives");
    let reference = matdiff::grad_with(
        "X : m x m; sum((X^-1) .^ 2)",
        "X",
        &Options {
            no_check: true,
            ..Default::default()
        },
    )
    .expect("derives");
    assert_eq!(d.target_text(), reference.target_text());
}

/// matdiff's own check on a random corpus (not in CI; FUZZING.md records its runs): how
/// often it fails a formula that the independent finite differences above find right (a
/// false failure), and how often it finds no instance to check on. `MATDIFF_PROPTEST_CASES`
/// cases (default 5 000) from `MATDIFF_PROPTEST_SEED`; each case's every variable.
#[test]
#[ignore = "long run, minutes: see FUZZING.md"]
fn false_failure_rate_of_matdiffs_check() {
    let cases = env_u64("MATDIFF_PROPTEST_CASES").unwrap_or(5_000);
    let seed = env_u64("MATDIFF_PROPTEST_SEED").unwrap_or(DEFAULT_SEED);
    let (mut derivations, mut passed, mut constant, mut unchecked) = (0, 0, 0, 0);
    let (mut false_failures, mut true_failures) = (Vec::new(), 0);
    let start = std::time::Instant::now();
    for i in 0..cases {
        let script = decode(&case_at(seed, i));
        if known_bug(&script).is_some() {
            continue;
        }
        for var in &script.vars {
            let Ok(d) = matdiff::grad_with(&script.text, &var.name, &Options::default()) else {
                continue;
            };
            derivations += 1;
            match &d.check {
                matdiff::Check::Passed { instances: 0, .. } => constant += 1,
                matdiff::Check::Passed { .. } => passed += 1,
                matdiff::Check::Failed { .. } => {
                    // Right or wrong, by the independent differences of every variable.
                    let stats = RefCell::new(Stats::default());
                    match check_decoded(&script, i, &stats) {
                        Ok(()) => false_failures
                            .push(format!("case {i}: {:?} --wrt {}: {:?}", script.text, var.name, d.check)),
                        Err(_) => true_failures += 1,
                    }
                }
                _ => unchecked += 1,
            }
        }
    }
    eprintln!(
        "check on {cases} cases (seed {seed}): {derivations} derivations, {passed} passed on instances, {constant} constant (exact zero), {unchecked} unchecked (no domain or too large), {} false failures, {true_failures} true failures; {:.1?}\n{}",
        false_failures.len(),
        start.elapsed(),
        false_failures.join("\n")
    );
    assert!(false_failures.is_empty(), "{} false failures", false_failures.len());
}
