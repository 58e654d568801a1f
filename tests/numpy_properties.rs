//! Property tests of the numpy dialect (issue 14, Tests).
//!
//! 1. Random forward passes, generated shape-directed as a CS231n student writes them
//!    (annotated parameters over 2-3 symbolic dimensions, broadcasting, keepdims columns,
//!    reductions as functions and methods, `@`/`.dot`, `.T`, the kinks `max min abs maximum
//!    where clip` and comparison masks, labels, block slices, concatenation, reassignment,
//!    augmented assignment, helper functions), each read and derived through the library
//!    with respect to every parameter. Every script must be accepted, and every gradient is
//!    checked independently of matdiff: the generated file itself runs under real numpy
//!    (tests/numpy_properties_check.py, one Python process for the whole batch), whose
//!    finite differences are compared with each `numpy_expression` and with the `python`
//!    backward function.
//! 2. Malformed input never panics or hangs: mutations of the corpus files in
//!    `tests/cases/numpy/` through `numpy_dialect::read` and `backward`, each Ok or an error
//!    that renders with a caret, each within a time limit. Its long run is recorded in
//!    FUZZING.md (the stable stand-in for the `numpy` cargo-fuzz target).
//!
//! Cases: `MATDIFF_NUMPY_PROPTEST_CASES` (generated functions, default 60) and
//! `MATDIFF_NUMPY_MUTATIONS` (default 300); seed `MATDIFF_NUMPY_PROPTEST_SEED` (default fixed).
//! A failing generated function is printed in full; there is no shrinking (the checks run
//! in one batch), but the cases are small.

mod common;

use common::python;

use matdiff::{numpy_dialect, Options};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEFAULT_CASES: u64 = 60;
const DEFAULT_MUTATIONS: u64 = 1000;
const DEFAULT_SEED: u64 = 0x6e75_6d70_7920_6469;
/// A derivation (or a refusal) slower than this counts as a hang. Generous: debug build, a
/// shared 2-core machine; the corpus's slowest layer derives in well under it.
const HANG: Duration = Duration::from_secs(20);
const DIMS: [&str; 3] = ["N", "D", "H"];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn seed() -> u64 {
    env_u64("MATDIFF_NUMPY_PROPTEST_SEED").unwrap_or(DEFAULT_SEED)
}

/// The `count` case seeds, drawn by proptest's runner from the fixed seed.
fn case_seeds(seed: u64, salt: u8, count: u64) -> Vec<u64> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8] = salt;
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    (0..count)
        .map(|_| any::<u64>().new_tree(&mut runner).expect("a seed").current())
        .collect()
}

/// Runs `f` on a thread with the CLI's large stack, returning its result, its panic message,
/// or `None` if it did not finish within `limit` (the thread is then left running).
fn timed<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<Result<T, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            let _ = tx.send(r);
        })
        .expect("spawn");
    rx.recv_timeout(limit).ok()
}

// ---------------------------------------------------------------------------------------
// Shapes: numpy shapes over the case's dimensions.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ax {
    One,
    D(usize),
    /// `2*H`: an axis cut into two blocks by slices, or made by a concatenation.
    Two(usize),
}

type Shape = Vec<Ax>;

fn ax_text(a: Ax) -> String {
    match a {
        Ax::One => "1".into(),
        Ax::D(i) => DIMS[i].into(),
        Ax::Two(i) => format!("2*{}", DIMS[i]),
    }
}

fn annotation(s: &Shape, scalar_style: bool) -> String {
    match s.as_slice() {
        [] if scalar_style => "float".into(),
        [] => "\"scalar\"".into(),
        [a] => format!("\"{}\"", ax_text(*a)),
        [a, b] => format!("\"{} x {}\"", ax_text(*a), ax_text(*b)),
        _ => unreachable!("no 3-D arrays"),
    }
}

// ---------------------------------------------------------------------------------------
// The generator: Python text, built shape-directed so that numpy accepts it.

const HELPERS: [(&str, &str); 4] = [
    ("sigmoid", "def sigmoid(z):\n    return 1 / (1 + np.exp(-z))\n"),
    ("softplus", "def softplus(z):\n    return np.log(1 + np.exp(z))\n"),
    (
        "center",
        "def center(z):\n    mu = z.mean(axis=1, keepdims=True)\n    return z - mu\n",
    ),
    (
        "affine",
        "def affine(a, w, b):\n    \"\"\"An affine layer as CS231n writes it.\"\"\"\n    out = a.dot(w) + b\n    cache = (a, w, b)\n    return out, cache\n",
    ),
];

struct Gen {
    rng: ChaCha8Rng,
    ndims: usize,
    /// The dimension that may also appear doubled (`2*H`), if any.
    twice: Option<usize>,
    params: Vec<(String, Shape, bool)>,
    /// `y: "A labels of B"`.
    labels: Option<(usize, usize)>,
    /// Locals: name, shape, and whether it holds a fresh array (so `+=` cannot write
    /// through a view into a parameter).
    locals: Vec<(String, Shape, bool)>,
    needed: BTreeSet<usize>,
    helpers: BTreeSet<&'static str>,
    lines: Vec<String>,
    fresh_names: usize,
    has_eps: bool,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ndims = if rng.random_bool(0.5) { 2 } else { 3 };
        let twice = rng.random_bool(0.35).then_some(ndims - 1);
        let labels = rng.random_bool(0.35).then(|| (0, 1 + rng.random_range(0..ndims - 1)));
        let mut g = Gen {
            rng,
            ndims,
            twice,
            params: Vec::new(),
            labels,
            locals: Vec::new(),
            needed: BTreeSet::new(),
            helpers: BTreeSet::new(),
            lines: Vec::new(),
            fresh_names: 0,
            has_eps: false,
        };
        g.has_eps = g.pct(15);
        // Anchors: parameters that carry every dimension, so the body can name them.
        g.params.push(("x".into(), vec![Ax::D(0), Ax::D(1)], false));
        if ndims == 3 {
            g.params.push(("w".into(), vec![Ax::D(1), Ax::D(2)], false));
        }
        g
    }

    fn pct(&mut self, p: u32) -> bool {
        self.rng.random_range(0..100) < p
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())].clone()
    }

    fn dim(&mut self) -> Ax {
        let i = self.rng.random_range(0..self.ndims);
        let doubled = self.pct(25);
        match self.twice {
            Some(t) if t == i && doubled => Ax::Two(i),
            _ => Ax::D(i),
        }
    }

    fn name_of(&mut self, a: Ax) -> String {
        match a {
            Ax::One => "1".into(),
            Ax::D(i) => {
                self.needed.insert(i);
                DIMS[i].into()
            }
            Ax::Two(i) => {
                self.needed.insert(i);
                format!("2 * {}", DIMS[i])
            }
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        self.fresh_names += 1;
        format!("{base}{}", self.fresh_names)
    }

    /// A number, sometimes negative, as numpy code writes them.
    fn number(&mut self) -> String {
        // A negative literal is parenthesised: `-1.5 ** 2` is `-(1.5 ** 2)` in Python.
        self.pick(&["2", "0.5", "3.0", "1.5", "0.25", "(-1.5)", "4"])
            .to_string()
    }

    /// A leaf of shape `want`: a parameter or local of that shape, or a new parameter.
    fn leaf(&mut self, want: &Shape) -> String {
        let mut have: Vec<String> = self
            .params
            .iter()
            .filter(|(_, s, _)| s == want)
            .map(|(n, _, _)| n.clone())
            .collect();
        let locals: Vec<String> = self
            .locals
            .iter()
            .filter(|(_, s, _)| s == want)
            .map(|(n, _, _)| n.clone())
            .collect();
        // Prefer the intermediates, so that the outputs depend on the whole body.
        for _ in 0..3 {
            have.extend(locals.iter().cloned());
        }
        if want.is_empty() && self.pct(30) {
            return self.number();
        }
        if !have.is_empty() && (self.pct(80) || want.contains(&Ax::One)) {
            return have[self.rng.random_range(0..have.len())].clone();
        }
        if want.contains(&Ax::One) {
            // A size-1 axis comes from `[:, None]` or a keepdims reduction, not a parameter.
            return self.expr(want, 1);
        }
        let base = match want.len() {
            0 => "s",
            1 => "v",
            _ => "m",
        };
        let name = self.fresh(base);
        let scalar_style = self.pct(50);
        self.params.push((name.clone(), want.clone(), scalar_style));
        name
    }

    fn broadcast_partner(&mut self, want: &Shape) -> Shape {
        // The other operand of an elementwise operation whose result has shape `want`.
        match want.as_slice() {
            [r, c] if *r != Ax::One && *c != Ax::One => match self.rng.random_range(0..6) {
                0 => vec![*c],          // a vector onto rows
                1 => vec![*r, Ax::One], // a keepdims column
                2 => vec![Ax::One, *c],
                3 => vec![],
                _ => want.clone(),
            },
            [_] if self.pct(25) => vec![],
            _ => want.clone(),
        }
    }

    /// A positive expression of shape `s`, for denominators and roots.
    fn positive(&mut self, s: &Shape, depth: usize) -> String {
        let e = self.expr(s, depth);
        match self.rng.random_range(0..4) {
            0 => format!("np.exp({e})"),
            1 => format!("({e} * {e} + 1)"),
            2 if !s.is_empty() || self.pct(50) => format!("({e} ** 2 + 1)"),
            _ => format!("(np.abs({e}) + 1.0)"),
        }
    }

    /// An expression of shape `want`, at most `depth` operations deep.
    fn expr(&mut self, want: &Shape, depth: usize) -> String {
        // A size-1 axis below the top is built, not a leaf (no parameter has one).
        if depth == 0 || (self.pct(20) && !want.contains(&Ax::One)) {
            return self.shaped_leaf(want);
        }
        let d = depth - 1;
        loop {
            let choice = self.rng.random_range(0..22);
            if let Some(e) = self.try_op(choice, want, d) {
                return e;
            }
        }
    }

    /// A leaf, or for a shape with a size-1 axis the smallest construction of it.
    fn shaped_leaf(&mut self, want: &Shape) -> String {
        match want.as_slice() {
            [r, Ax::One] if *r != Ax::One => {
                let v = self.leaf(&vec![*r]);
                let how = self.pick(&["[:, None]", "[:, np.newaxis]"]);
                format!("{v}{how}")
            }
            [Ax::One, c] if *c != Ax::One => {
                let v = self.leaf(&vec![*c]);
                format!("{v}[None, :]")
            }
            _ => self.leaf(want),
        }
    }

    fn try_op(&mut self, choice: u32, want: &Shape, d: usize) -> Option<String> {
        let two_d = want.len() == 2 && !want.contains(&Ax::One);
        Some(match choice {
            // Elementwise arithmetic with broadcasting, either side.
            0..=3 => {
                let other = self.broadcast_partner(want);
                let a = self.expr(want, d);
                let b = self.expr(&other, d);
                let op = self.pick(&["+", "-", "*", "+", "*"]);
                if self.pct(50) {
                    format!("({a} {op} {b})")
                } else {
                    format!("({b} {op} {a})")
                }
            }
            4 => {
                // `(N, 1)` with `(1, M)`.
                let [r, c] = want.as_slice() else { return None };
                if *r == Ax::One || *c == Ax::One {
                    return None;
                }
                let a = self.expr(&vec![*r, Ax::One], d);
                let b = self.expr(&vec![Ax::One, *c], d);
                let op = self.pick(&["+", "-", "*"]);
                format!("({a} {op} {b})")
            }
            5 => {
                let other = self.broadcast_partner(want);
                let a = self.expr(want, d);
                let b = if self.pct(20) {
                    let i = self.rng.random_range(0..self.ndims);
                    self.name_of(Ax::D(i))
                } else {
                    self.positive(&other, d)
                };
                format!("({a} / {b})")
            }
            6 => {
                let a = self.expr(want, d);
                match self.rng.random_range(0..4) {
                    0 => format!("({a} ** 2)"),
                    1 => format!("({a} ** 3)"),
                    2 => format!("(({a} ** 2 + 1) ** 0.5)"),
                    _ => format!("(({a} ** 2 + 1) ** -1)"),
                }
            }
            7 | 8 => {
                let a = self.expr(want, d);
                match self.rng.random_range(0..9) {
                    0 => format!("np.exp({a})"),
                    1 => format!("np.tanh({a})"),
                    2 => format!("np.log({a} ** 2 + 1)"),
                    3 => format!("np.sqrt({a} ** 2 + 1)"),
                    4 => format!("np.abs({a})"),
                    5 => format!("np.maximum(0, {a})"),
                    6 => format!("np.clip({a}, -0.5, 0.5)"),
                    7 => format!("(-{a})"),
                    _ => {
                        let h = self.pick(&["sigmoid", "softplus"]);
                        self.helpers.insert(h);
                        format!("{h}({a})")
                    }
                }
            }
            9 => {
                let other = self.broadcast_partner(want);
                let a = self.expr(want, d);
                let b = self.expr(&other, d);
                let f = self.pick(&["np.maximum", "np.minimum"]);
                format!("{f}({a}, {b})")
            }
            10 => {
                let c = self.expr(want, d);
                let other = self.broadcast_partner(want);
                let a = self.expr(want, d);
                let b = self.expr(&other, d);
                let cmp = self.pick(&[">", "<", ">="]);
                format!("np.where({c} {cmp} 0, {a}, {b})")
            }
            11 => {
                // A comparison as a mask.
                let m = self.expr(want, d);
                let a = self.expr(want, d);
                let cmp = self.pick(&["> 0", "< 0.5", ">= -0.25"]);
                format!("(({m} {cmp}) * {a})")
            }
            12 => {
                let k = self.number();
                let a = self.expr(want, d);
                if self.pct(30) {
                    let s = self.leaf(&vec![]);
                    format!("({s} * {a})")
                } else {
                    format!("({k} * {a})")
                }
            }
            13 | 14 => self.reduction(want, d)?,
            15 | 16 => self.matmul(want, d)?,
            17 => {
                let [r, c] = want.as_slice() else { return None };
                let a = self.expr(&vec![*c, *r], d);
                format!("{a}.T")
            }
            18 => self.labels_op(want, d)?,
            19 => self.block(want, d)?,
            20 => {
                if !two_d {
                    return None;
                }
                let a = self.expr(want, d);
                self.helpers.insert("center");
                format!("center({a})")
            }
            _ => {
                if self.has_eps && !want.is_empty() {
                    let a = self.expr(want, d);
                    format!("({a} / np.sqrt({a} ** 2 + eps))")
                } else {
                    return None;
                }
            }
        })
    }

    fn reduction(&mut self, want: &Shape, d: usize) -> Option<String> {
        // (the source shape, the axis, keepdims)
        let (from, axis, keepdims): (Shape, Option<usize>, bool) = match want.as_slice() {
            [] => {
                let a = self.dim();
                let b = self.dim();
                (if self.pct(30) { vec![a] } else { vec![a, b] }, None, false)
            }
            [a] => {
                let k = self.dim();
                if self.pct(50) {
                    (vec![*a, k], Some(1), false)
                } else {
                    (vec![k, *a], Some(0), false)
                }
            }
            [r, Ax::One] if *r != Ax::One => {
                let k = self.dim();
                (vec![*r, k], Some(1), true)
            }
            [Ax::One, c] if *c != Ax::One => {
                let k = self.dim();
                (vec![k, *c], Some(0), true)
            }
            _ => return None,
        };
        let mut f = self.pick(&["sum", "sum", "mean", "var", "max", "min", "std"]);
        if axis.is_none() && from.len() == 2 && matches!(f, "max" | "min") {
            // The whole-matrix max is refused (an open bug, see
            // `bug_the_maximum_of_a_whole_matrix_is_refused`): take it over the vector of row maxima.
            f = "sum";
        }
        // std is a square root: at zero variance (an axis something was broadcast along)
        // it has no derivative, so it reads a parameter only.
        let e = if f == "std" {
            if from.contains(&Ax::One) {
                return None;
            }
            self.leaf(&from)
        } else {
            self.expr(&from, d)
        };
        let mut args = Vec::new();
        if let Some(a) = axis {
            args.push(if self.pct(70) {
                format!("axis={a}")
            } else {
                a.to_string()
            });
            if keepdims {
                args.push("keepdims=True".into());
            }
        }
        let method = self.pct(50);
        Some(if method {
            format!("{e}.{f}({})", args.join(", "))
        } else {
            let mut all = vec![e];
            all.extend(args);
            format!("np.{f}({})", all.join(", "))
        })
    }

    fn matmul(&mut self, want: &Shape, d: usize) -> Option<String> {
        let k = self.dim();
        let (a, b) = match want.as_slice() {
            [r, c] if *r != Ax::One && *c != Ax::One => (vec![*r, k], vec![k, *c]),
            [r] if self.pct(40) => (vec![*r, k], vec![k]),
            [] if self.pct(30) => (vec![k], vec![k]),
            _ => return None,
        };
        let a = self.expr(&a, d);
        let b = self.expr(&b, d);
        Some(match self.rng.random_range(0..3) {
            0 => format!("({a} @ {b})"),
            1 => format!("{a}.dot({b})"),
            _ => format!("np.dot({a}, {b})"),
        })
    }

    fn labels_op(&mut self, want: &Shape, d: usize) -> Option<String> {
        let (n, c) = self.labels?;
        match want.as_slice() {
            [Ax::D(i)] if *i == n => {
                let scores = self.expr(&vec![Ax::D(n), Ax::D(c)], d);
                let rows = self.name_of(Ax::D(n));
                Some(format!("{scores}[np.arange({rows}), y]"))
            }
            [Ax::D(i), Ax::D(j)] if *i == n && *j == c => {
                let classes = self.name_of(Ax::D(c));
                let a = self.expr(want, d);
                Some(format!("(np.eye({classes})[y] * {a})"))
            }
            _ => None,
        }
    }

    /// Block slices of a `2*H` axis, and concatenations of two equal parts.
    fn block(&mut self, want: &Shape, d: usize) -> Option<String> {
        let t = self.twice?;
        let h = Ax::D(t);
        let hn = DIMS[t];
        let pos = want.iter().position(|a| *a == h || *a == Ax::Two(t))?;
        if want[pos] == h {
            let mut from = want.clone();
            from[pos] = Ax::Two(t);
            self.needed.insert(t);
            let e = self.expr(&from, d);
            let cut = match self.rng.random_range(0..3) {
                0 => format!(":{hn}"),
                1 => format!("{hn}:"),
                _ => format!("{hn}:2 * {hn}"),
            };
            Some(match (want.len(), pos) {
                (1, _) => format!("{e}[{cut}]"),
                (_, 0) if self.pct(50) => format!("{e}[{cut}]"),
                (_, 0) => format!("{e}[{cut}, :]"),
                _ => format!("{e}[:, {cut}]"),
            })
        } else {
            let mut part = want.clone();
            part[pos] = h;
            let a = self.expr(&part, d);
            let b = self.expr(&part, d);
            Some(match (want.len(), pos) {
                (1, _) => format!("np.concatenate([{a}, {b}])"),
                (_, 0) if self.pct(50) => format!("np.vstack([{a}, {b}])"),
                (_, 0) => format!("np.concatenate([{a}, {b}], axis=0)"),
                _ if self.pct(50) => format!("np.hstack([{a}, {b}])"),
                _ => format!("np.concatenate([{a}, {b}], axis=1)"),
            })
        }
    }

    fn random_shape(&mut self) -> Shape {
        match self.rng.random_range(0..10) {
            0 => vec![],
            1 | 2 => vec![self.dim()],
            3 => vec![self.dim(), Ax::One],
            _ => vec![self.dim(), self.dim()],
        }
    }

    /// A shape, half the time one an intermediate already has, so that later statements
    /// and the outputs read the earlier ones.
    fn chained_shape(&mut self) -> Shape {
        if !self.locals.is_empty() && self.pct(50) {
            let k = self.rng.random_range(0..self.locals.len());
            return self.locals[k].1.clone();
        }
        self.random_shape()
    }

    /// Whether `e` is a fresh array: not a name, a transpose or a slice that could alias
    /// another array when updated in place.
    fn is_fresh(e: &str) -> bool {
        !(e.ends_with(".T") || e.ends_with(']') || e.chars().all(|c| c.is_alphanumeric() || c == '_'))
    }

    fn statement(&mut self) {
        let depth = self.rng.random_range(1..=2);
        let choice = self.rng.random_range(0..10);
        if choice < 2 && !self.locals.is_empty() {
            // Reassignment: the name's latest value, as numpy means it.
            let k = self.rng.random_range(0..self.locals.len());
            let (name, shape, _) = self.locals[k].clone();
            let e = self.expr(&shape, depth - 1);
            let op = self.pick(&["+", "-", "*"]);
            let f = self.pick(&["", "np.tanh", "np.exp"]);
            let value = if f.is_empty() {
                format!("{name} {op} {e}")
            } else {
                format!("{f}({name}) {op} {e}")
            };
            self.lines.push(format!("{name} = {value}"));
            self.locals[k].2 = true;
            return;
        }
        if choice < 4 {
            let fresh: Vec<usize> = (0..self.locals.len()).filter(|&k| self.locals[k].2).collect();
            if let Some(&k) = fresh.get(self.rng.random_range(0..fresh.len().max(1))) {
                let (name, shape, _) = self.locals[k].clone();
                let partner = if shape.contains(&Ax::One) {
                    shape.clone()
                } else {
                    self.broadcast_partner(&shape)
                };
                let op = self.pick(&["+=", "-=", "*=", "/="]);
                let e = if op == "/=" {
                    self.positive(&partner, depth - 1)
                } else {
                    self.expr(&partner, depth - 1)
                };
                self.lines.push(format!("{name} {op} {e}"));
                return;
            }
        }
        if choice == 4 {
            // A helper layer that returns (out, cache), unpacked as CS231n composes layers.
            let r = self.dim();
            let k = self.dim();
            let c = self.dim();
            let a = self.expr(&vec![r, k], depth - 1);
            let w = self.leaf(&vec![k, c]);
            let b = self.leaf(&vec![c]);
            self.helpers.insert("affine");
            let name = self.fresh("h");
            let cache = self.fresh("cache");
            self.lines.push(format!("{name}, {cache} = affine({a}, {w}, {b})"));
            self.locals.push((name, vec![r, c], true));
            return;
        }
        let shape = self.chained_shape();
        let e = self.expr(&shape, depth);
        let name = self.fresh("t");
        let fresh = Self::is_fresh(&e) && !e.starts_with("np.eye");
        self.lines.push(format!("{name} = {e}"));
        self.locals.push((name, shape, fresh));
    }

    fn dims_binding(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let needed: Vec<usize> = self.needed.iter().copied().collect();
        // `N, D = x.shape` when both are needed, else one `.shape[k]` each from an anchor.
        let mut done = BTreeSet::new();
        if needed.contains(&0) && needed.contains(&1) && self.pct(60) {
            lines.push("N, D = x.shape".to_string());
            done.insert(0);
            done.insert(1);
        }
        for i in needed {
            if done.contains(&i) {
                continue;
            }
            lines.push(match i {
                0 if self.pct(30) => "N = len(x)".to_string(),
                0 => "N = x.shape[0]".to_string(),
                1 => "D = x.shape[1]".to_string(),
                _ => "H = w.shape[1]".to_string(),
            });
        }
        lines
    }

    /// Statements that read the labels and cut or join the `2*H` axis: left to chance, the
    /// shape-directed choice rarely lands on them.
    fn indexing_statements(&mut self) {
        let mut wanted = Vec::new();
        if let Some((n, c)) = self.labels {
            wanted.push(vec![Ax::D(n)]);
            wanted.push(vec![Ax::D(n), Ax::D(c)]);
        }
        if let Some(t) = self.twice {
            let r = Ax::D(self.rng.random_range(0..self.ndims));
            let sliced = self.pick(&[vec![Ax::D(t)], vec![r, Ax::D(t)], vec![Ax::D(t), r]]);
            let joined = self.pick(&[vec![Ax::Two(t)], vec![r, Ax::Two(t)], vec![Ax::Two(t), r]]);
            wanted.push(sliced);
            wanted.push(joined);
        }
        for shape in wanted {
            if self.pct(25) {
                continue;
            }
            let e = if self.labels.is_some() && shape.len() <= 2 && self.pct(60) {
                self.labels_op(&shape, 1)
            } else {
                None
            };
            let Some(e) = e.or_else(|| self.block(&shape, 1)) else {
                continue;
            };
            let name = self.fresh("t");
            let fresh = Self::is_fresh(&e);
            self.lines.push(format!("{name} = {e}"));
            self.locals.push((name, shape, fresh));
        }
    }

    /// The whole file.
    fn program(mut self) -> String {
        for _ in 0..self.rng.random_range(1..=3) {
            self.statement();
        }
        self.indexing_statements();
        let mode = self.rng.random_range(0..10);
        let mut returns = Vec::new();
        if mode < 4 {
            // Mostly a reduction, as losses are.
            let e = loop {
                if self.pct(20) {
                    break self.expr(&vec![], 3);
                }
                if let Some(e) = self.reduction(&vec![], 2) {
                    break e;
                }
            };
            self.lines.push(format!("loss = {e}"));
            if self.pct(30) {
                let s = self.leaf(&vec![]);
                let m = self.leaf(&vec![Ax::D(0), Ax::D(1)]);
                self.lines.push(format!("loss += 0.5 * {s} * np.sum({m} * {m})"));
            }
            returns.push("loss".to_string());
            if self.pct(30) {
                returns.push("cache".into());
                self.lines.push("cache = (x, loss)".into());
            }
        } else {
            let outputs = if mode < 8 { 1 } else { 2 };
            for k in 0..outputs {
                let shape = loop {
                    let s = self.chained_shape();
                    if !s.is_empty() {
                        break s;
                    }
                };
                let e = self.expr(&shape, 2);
                let name = if k == 0 { "out" } else { "aux" };
                self.lines.push(format!("{name} = {e}"));
                returns.push(name.to_string());
            }
            self.lines.push("cache = (x, out)".into());
            returns.push("cache".into());
        }
        let mut body = self.dims_binding();
        body.append(&mut self.lines);
        let mut params: Vec<String> = self
            .params
            .iter()
            .map(|(n, s, style)| format!("{n}: {}", annotation(s, *style)))
            .collect();
        if let Some((n, c)) = self.labels {
            params.push(format!("y: \"{} labels of {}\"", DIMS[n], DIMS[c]));
        }
        if self.has_eps {
            params.push("eps=1e-5".into());
        }
        let mut text = String::from("import numpy as np\n\n\n");
        for (name, source) in HELPERS {
            if self.helpers.contains(name) {
                text.push_str(source);
                text.push_str("\n\n");
            }
        }
        text.push_str(&format!("def forward({}):\n", params.join(", ")));
        for line in body {
            text.push_str(&format!("    {line}\n"));
        }
        text.push_str(&format!("    return {}\n", returns.join(", ")));
        text
    }
}

fn generate(seed: u64) -> String {
    Gen::new(seed).program()
}

// ---------------------------------------------------------------------------------------
// Property 1: generated forward passes, derived by the library, checked under numpy.

/// What the library made of one generated file.
struct Derived {
    /// (parameter, its one numpy expression, what matdiff's own check said)
    gradients: Vec<(String, String, String)>,
    python: String,
    text: String,
}

fn derive(source: String) -> Result<Derived, String> {
    let program = numpy_dialect::read(&source, None)
        .map_err(|e| format!("rejected:\n{}", e.render("case.py", &source, false)))?;
    let pass = program
        .backward(&program.variables, &Options::default())
        .map_err(|e| format!("backward failed:\n{}", e.render("case.py", &source, false)))?;
    let gradients = pass
        .gradients
        .iter()
        .map(|d| (d.wrt.clone(), program.numpy_expression(d), format!("{:?}", d.check)))
        .collect();
    Ok(Derived {
        gradients,
        python: pass.python.clone(),
        text: pass.text(),
    })
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("matdiff-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Generates `count` forward passes from `seed`, derives each, checks them all in one
/// Python process. Returns the failures (each with its file in full) and a summary line.
fn run_generated(seed: u64, count: u64) -> (Vec<String>, String) {
    let dir = scratch_dir("numpy-properties");
    let mut failures = Vec::new();
    let mut manifest = Vec::new();
    let mut derived = Vec::new();
    let mut own_check_failed = 0;
    let start = Instant::now();
    let mut slowest = (Duration::ZERO, 0);
    for (i, case_seed) in case_seeds(seed, 0, count).into_iter().enumerate() {
        let source = generate(case_seed);
        let path = dir.join(format!("case_{i:05}.py"));
        std::fs::write(&path, &source).expect("the case file writes");
        let owned = source.clone();
        let began = Instant::now();
        let outcome = timed(HANG, move || derive(owned));
        slowest = slowest.max((began.elapsed(), i));
        if std::env::var_os("MATDIFF_NUMPY_PROPTEST_TRACE").is_some() {
            eprintln!("case {i}: {:.1?}\n{source}", began.elapsed());
        }
        let problem = match outcome {
            None => Some(format!("no result within {HANG:?} (a hang)")),
            Some(Err(panic)) => Some(format!("panicked: {panic}")),
            Some(Ok(Err(refusal))) => Some(refusal),
            Some(Ok(Ok(d))) => {
                own_check_failed += d.gradients.iter().filter(|g| g.2.starts_with("Failed")).count();
                manifest.push(serde_json::json!({
                    "path": path.to_string_lossy(),
                    "python": d.python,
                    "expressions": d.gradients.iter().map(|(n, e, _)| (n.clone(), serde_json::Value::from(e.clone()))).collect::<serde_json::Map<_, _>>(),
                }));
                derived.push((path.clone(), source.clone(), d));
                None
            }
        };
        if let Some(p) = problem {
            failures.push(format!(
                "case {i} (seed {case_seed}), {}: {p}\n{source}",
                path.display()
            ));
        }
    }
    let derive_time = start.elapsed();
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::Value::Array(manifest).to_string()).expect("the manifest writes");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/numpy_properties_check.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&manifest_path)
        .output()
        .expect("python runs (.venv with numpy, or MATDIFF_PYTHON)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("summary:"),
        "the Python checker failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in report.lines().filter(|l| l.starts_with("FAIL ")) {
        let (path, source, d) = derived
            .iter()
            .find(|(p, _, _)| line.starts_with(&format!("FAIL {}:", p.display())))
            .expect("a failing line names its case");
        let checks: Vec<String> = d.gradients.iter().map(|(n, _, c)| format!("{n}: {c}")).collect();
        failures.push(format!(
            "{line}\n--- {} ---\n{source}--- matdiff's own check: {} ---\n{}\n{}",
            path.display(),
            checks.join(", "),
            d.text,
            d.python
        ));
    }
    let summary = format!(
        "numpy properties: seed {seed}, {count} generated functions, {} derived ({} gradients, {} failed matdiff's own check), derived in {derive_time:.1?} (slowest case {} {:.1?}), Python {}, {} failing, total {:.1?}",
        derived.len(),
        derived.iter().map(|d| d.2.gradients.len()).sum::<usize>(),
        own_check_failed,
        slowest.1,
        slowest.0,
        report.lines().last().unwrap_or(""),
        failures.len(),
        start.elapsed()
    );
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    (failures, summary)
}

#[test]
fn generated_forward_passes_are_accepted_and_their_gradients_agree_with_numpy() {
    let cases = env_u64("MATDIFF_NUMPY_PROPTEST_CASES").unwrap_or(DEFAULT_CASES);
    let (failures, summary) = run_generated(seed(), cases);
    eprintln!("{summary}");
    assert!(
        failures.is_empty(),
        "{} failing cases:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Prints generated functions, to see what the generator writes:
/// `MATDIFF_NUMPY_PROPTEST_CASES=5 cargo test --test numpy_properties show -- --ignored --nocapture`.
#[test]
#[ignore = "a look at the generator's output"]
fn show_generated_functions() {
    let cases = env_u64("MATDIFF_NUMPY_PROPTEST_CASES").unwrap_or(5);
    for s in case_seeds(seed(), 0, cases) {
        println!("# seed {s}\n{}", generate(s));
    }
}

// ---------------------------------------------------------------------------------------
// Property 2: mutated corpus files never panic, never hang, and fail with a located error.

fn corpus() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/numpy");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the corpus folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .map(|p| {
            let name = p.file_name().expect("a file").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("a corpus file reads"))
        })
        .collect();
    files.sort();
    files
}

/// Splits Python text into tokens: names, numbers, strings, runs of spaces, newlines and
/// single punctuation characters, so that a mutation can act on whole tokens.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        i += 1;
        if c.is_alphanumeric() || c == '_' || c == '.' && chars.get(i).is_some_and(|d| d.is_ascii_digit()) {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.' && chars[start].is_ascii_digit())
            {
                i += 1;
            }
        } else if c == '"' || c == '\'' {
            while i < chars.len() && chars[i] != c && chars[i] != '\n' {
                i += 1;
            }
            i = (i + 1).min(chars.len());
        } else if c == ' ' {
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

/// Tokens worth inserting: the dialect's vocabulary, Python's constructs outside it, and
/// numbers and shapes that stress the pipeline's limits.
const VOCABULARY: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "+",
    "-",
    "*",
    "/",
    "**",
    "@",
    ".",
    "\n",
    "    ",
    "\t",
    "np",
    "np.sum",
    "np.max",
    "np.maximum",
    "np.where",
    "np.concatenate",
    "np.eye",
    "np.arange",
    "axis=0",
    "axis=1",
    "keepdims=True",
    ".T",
    ".shape",
    "[0]",
    "[:, None]",
    "None",
    "return",
    "def",
    "if",
    "for",
    "lambda",
    "x",
    "y",
    "N",
    "H",
    "0",
    "1",
    "2",
    "-1",
    "1e-5",
    "1e308",
    "1000",
    "777777777777",
    "\"N x D\"",
    "\"N labels of C\"",
    "\"4*H\"",
    "\"scalar\"",
    "\"1000 x 1000\"",
    "\"\"\"",
    "#",
    "\\",
    ";",
    "+=",
    "*=",
    "cache",
    "def f(x: \"N x D\"):\n    return x\n",
];

/// Applies 1 to 3 random mutations to `text`.
fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut toks = tokens(text);
    for _ in 0..rng.random_range(1..=3) {
        if toks.is_empty() {
            toks.push("x".into());
        }
        let k = rng.random_range(0..toks.len());
        match rng.random_range(0..10) {
            0 | 1 => {
                toks.remove(k);
            }
            2 => {
                let t = toks[k].clone();
                toks.insert(k, t);
            }
            3 | 4 => {
                let t = VOCABULARY[rng.random_range(0..VOCABULARY.len())].to_string();
                toks.insert(k, t);
            }
            5 => {
                let t = VOCABULARY[rng.random_range(0..VOCABULARY.len())].to_string();
                toks[k] = t;
            }
            6 => {
                // Swap with a token elsewhere.
                let j = rng.random_range(0..toks.len());
                toks.swap(k, j);
            }
            7 => {
                // Change a line's indentation.
                let lines: Vec<usize> = (0..toks.len()).filter(|&i| toks[i] == "\n").collect();
                if let Some(&at) = lines.get(rng.random_range(0..lines.len().max(1))) {
                    let indent = ["", " ", "  ", "    ", "        ", "\t", "     "][rng.random_range(0..7)];
                    if toks.get(at + 1).is_some_and(|t| t.starts_with(' ')) {
                        toks[at + 1] = indent.to_string();
                    } else {
                        toks.insert(at + 1, indent.to_string());
                    }
                }
            }
            8 => {
                // A character deleted or inserted inside a token.
                let mut chars: Vec<char> = toks[k].chars().collect();
                let at = rng.random_range(0..=chars.len());
                if rng.random_bool(0.5) && at < chars.len() {
                    chars.remove(at);
                } else {
                    let c =
                        ['x', '(', ')', ':', ',', ' ', '\n', '0', '9', 'é', '∑', '"', '\0'][rng.random_range(0..13)];
                    chars.insert(at, c);
                }
                toks[k] = chars.into_iter().collect();
            }
            _ => {
                // A whole line duplicated or deleted.
                let starts: Vec<usize> = (0..toks.len()).filter(|&i| i == 0 || toks[i - 1] == "\n").collect();
                let s = starts[rng.random_range(0..starts.len())];
                let e = (s..toks.len()).find(|&i| toks[i] == "\n").map_or(toks.len(), |i| i + 1);
                if rng.random_bool(0.5) {
                    toks.drain(s..e);
                } else {
                    let line: Vec<String> = toks[s..e].to_vec();
                    toks.splice(s..s, line);
                }
            }
        }
    }
    toks.concat()
}

/// Reads and derives `source` with respect to every variable; `Err` describes a violation.
/// Returns whether the source was accepted.
fn mutation_case(source: &str) -> Result<bool, String> {
    let owned = source.to_string();
    let outcome = timed(HANG, move || {
        let error = match numpy_dialect::read(&owned, None) {
            Ok(program) => match program.backward(&program.variables, &Options::default()) {
                Ok(pass) => {
                    let _ = (pass.text(), pass.latex());
                    for d in &pass.gradients {
                        let _ = program.numpy_expression(d);
                    }
                    return None;
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        Some(error.render("case.py", &owned, false))
    });
    match outcome {
        None => Err(format!("no result within {HANG:?} (a hang)")),
        Some(Err(panic)) => Err(format!("panicked: {panic}")),
        Some(Ok(None)) => Ok(true),
        Some(Ok(Some(rendered))) if rendered.contains('^') => Ok(false),
        Some(Ok(Some(rendered))) => Err(format!("an error without a caret:\n{rendered}")),
    }
}

/// Runs `count` mutations from `seed`; returns the failures and a summary.
fn run_mutations(seed: u64, first: u64, count: u64) -> (Vec<String>, String) {
    let files = corpus();
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut accepted = 0;
    let mut slowest = (Duration::ZERO, 0);
    for i in first..count {
        // Each case from (seed, index) alone, so that a failing one is reproducible by itself.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (name, text) = &files[rng.random_range(0..files.len())];
        let source = mutate(text, &mut rng);
        let began = Instant::now();
        let result = mutation_case(&source);
        slowest = slowest.max((began.elapsed(), i));
        match result {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(problem) => {
                let entry =
                    format!("mutation {i} of {name} (seed {seed}): {problem}\n--- input ---\n{source}\n--- end ---");
                eprintln!("{entry}");
                failures.push(entry);
            }
        }
    }
    let summary = format!(
        "numpy mutations: seed {seed}, cases {first}..{count}, {accepted} still accepted and derived, {} failing, slowest case {} {:.1?}, total {:.1?}",
        failures.len(),
        slowest.1,
        slowest.0,
        start.elapsed()
    );
    (failures, summary)
}

#[test]
fn mutated_corpus_files_never_panic_or_hang_and_fail_with_a_located_error() {
    let count = env_u64("MATDIFF_NUMPY_MUTATIONS").unwrap_or(DEFAULT_MUTATIONS);
    let (failures, summary) = run_mutations(seed(), 0, count);
    eprintln!("{summary}");
    assert!(
        failures.is_empty(),
        "{} failing mutations:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The long run, recorded in FUZZING.md: `MATDIFF_NUMPY_MUTATIONS` (default 20 000) mutations
/// from `MATDIFF_NUMPY_MUTATIONS_START` (default 0), listing every failure.
#[test]
#[ignore = "long run, tens of minutes: see FUZZING.md"]
fn mutations_long_run() {
    let count = env_u64("MATDIFF_NUMPY_MUTATIONS").unwrap_or(20_000);
    let first = env_u64("MATDIFF_NUMPY_MUTATIONS_START").unwrap_or(0);
    std::panic::set_hook(Box::new(|_| {}));
    let (failures, summary) = run_mutations(seed(), first, count);
    let _ = std::panic::take_hook();
    eprintln!("{summary}");
    assert!(failures.is_empty(), "{} failing mutations", failures.len());
}

// ---------------------------------------------------------------------------------------
// Bugs found by these properties (FUZZING.md, Bugs found), fixed; their reproducers stay.

/// Found by the generated forward passes: `np.max`/`np.min` of a whole 2-D array (function
/// or method) is refused, while README lists `max min` among the reductions "(functions and
/// methods, `axis=` keyword or positional, `keepdims=`)" and issue 15 asks for whole-array
/// max; of a 1-D array it works. The generator avoids it until it is fixed.
#[test]
fn the_maximum_of_a_whole_matrix_derives() {
    for body in ["np.max(x)", "x.min()"] {
        let src = format!("import numpy as np\n\n\ndef f(x: \"N x D\"):\n    return {body}\n");
        let program =
            numpy_dialect::read(&src, None).unwrap_or_else(|e| panic!("{}", e.render("case.py", &src, false)));
        let pass = program
            .backward(&program.variables, &Options::default())
            .expect("the gradient derives");
        assert!(pass.all_checked(), "{}", pass.text());
    }
}

/// Found by the mutation property: a non-ASCII character in any string literal (an
/// annotation such as `"D∑"`, or a docstring `"""Résumé."""`) panics in the tokenizer
/// (`src/numpy_dialect/syntax.rs:249`, "byte index is not a char boundary"); the CLI says
/// "matdiff stopped unexpectedly".
#[test]
fn non_ascii_in_a_string_literal_is_read_or_refused_with_its_place() {
    for src in [
        "def f(x: \"N\"):\n    \"\"\"Résumé.\"\"\"\n    return x.sum()\n",
        "def f(w: \"D∑\"):\n    return w.sum()\n",
    ] {
        let owned = src.to_string();
        let outcome = timed(HANG, move || {
            numpy_dialect::read(&owned, None).map(|_| ()).map_err(|e| e.to_string())
        });
        // A docstring is read; `D∑` is no size, and says so: neither panics nor hangs.
        assert!(matches!(outcome, Some(Ok(_))), "{src:?}: {outcome:?}");
    }
}

/// Found by the mutation property: an "unexpected character" error at a NUL (or any
/// zero-width character) is rendered with its line and column but no caret under it.
#[test]
fn an_error_at_a_nul_character_has_a_caret() {
    let src = "def f(x: \"N\"):\n    return x\0.sum()\n";
    let error = numpy_dialect::read(src, None).expect_err("a NUL is refused");
    let rendered = error.render("case.py", src, false);
    assert!(rendered.contains('^'), "{rendered}");
}
