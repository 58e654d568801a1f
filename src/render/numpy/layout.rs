//! numpy's broadcasting in place of products with ones. The IR writes every broadcast and
//! every reduction as a product with a ones vector (`1_N·bᵀ`, `Xᵀ·1_N`); numpy code writes
//! `b` and `X.sum(axis=0)`. This pass writes each node as a numpy value in a [`Layout`]:
//! the array of the node's exact shape, or a smaller one that numpy broadcasts to it (a
//! scalar, a 1-D row, a keepdims column), or a 1-D array for a column. A value is
//! materialised (given its exact 2-D shape) only where numpy needs that shape: an operand
//! of an operation no broadcasting idiom covers (a matrix product with two full operands,
//! `inv`, `kron`, …) and the root. Every idiom here is an identity of the ones algebra
//! (`1ᵀ·X` = the column sums, `X·diag(v)` = X with column j scaled by v_j); the emitted
//! numpy is run against finite differences by the tests.

use super::Numpy;
use crate::dim::{Dim, Shape};
use crate::ir::{expr_data, Env, Math};
use crate::render::{dim_prec, row_softmax, Form, Piece, Prec};
use egg::{Id, Language, RecExpr, Symbol};
use std::collections::HashMap;

/// How a numpy value stands for a node of shape (r, c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The array of exactly the shape (r, c).
    Full,
    /// A scalar equal to every entry.
    Scalar,
    /// A 1-D array of length c equal to every row.
    Row,
    /// An (r, 1) array equal to every column (c > 1; at c = 1 it is `Full`).
    Col,
    /// A 1-D array of length r: the column (r, 1) itself (c = 1).
    Flat,
}

/// How each name is written and laid out: a 1-D parameter `gamma` is `Flat`, a named
/// intermediate keeps the layout it was defined in. A name not listed is written as the
/// matdiff language passes it: a vector (1-D or a column) as `np.ravel(b)`.
pub type Names = HashMap<Symbol, (String, Layout)>;

/// A node written in its layout.
#[derive(Debug, Clone)]
pub struct Laid {
    pub piece: Piece,
    pub layout: Layout,
    pub shape: Option<Shape>,
    /// The same value as a 1-D array, when it is a column written with `keepdims=True`.
    flat: Option<Piece>,
}

/// A plain reduction over one axis (`X.sum(axis=0)`), which a division by the axis's size
/// turns into `X.mean(axis=0)`.
#[derive(Debug, Clone)]
struct Summed {
    array: String,
    axis: u8,
    keepdims: bool,
    size: Dim,
}

/// Writes `expr` with numpy's broadcasting; the root in its layout.
pub fn lay_out(expr: &RecExpr<Math>, env: &Env, names: &Names) -> Laid {
    let mut pass = Pass {
        expr,
        writer: Numpy { env },
        names,
        shapes: expr_data(env, expr).into_iter().map(|d| d.shape().cloned()).collect(),
        lazy: Vec::with_capacity(expr.len()),
        layouts: Vec::with_capacity(expr.len()),
        konst: Vec::with_capacity(expr.len()),
        sums: Vec::with_capacity(expr.len()),
        flats: Vec::with_capacity(expr.len()),
    };
    for i in 0..expr.len() {
        let id = Id::from(i);
        let mut out = pass.node(id);
        let shape = pass.shapes[i].as_ref();
        // A layout is only kept where it is known what it stands for.
        match (out.layout, shape) {
            (_, None) => out.layout = Layout::Full,
            (Layout::Col, Some(s)) if s.cols.is_one() => out.layout = Layout::Full,
            _ => {}
        }
        pass.lazy.push(out.piece);
        pass.layouts.push(out.layout);
        pass.konst.push(out.konst.filter(|_| out.layout == Layout::Scalar));
        pass.sums.push(out.sum);
        pass.flats.push(out.flat);
    }
    match pass.lazy.pop() {
        Some(piece) => Laid {
            piece,
            layout: pass.layouts.pop().unwrap_or(Layout::Full),
            shape: pass.shapes.pop().flatten(),
            flat: pass.flats.pop().flatten(),
        },
        None => Laid {
            piece: Piece::new("", Prec::Atom),
            layout: Layout::Full,
            shape: None,
            flat: None,
        },
    }
}

/// The `op` of a scalar root, which is a Python float as it is written.
pub const SCALAR: &str = "scalar";

/// The `op` of a materialised column `v[:, None]` whose `v` is 1-D, so that a caller
/// reshaping the column again can reshape `v` instead.
pub const FLAT_COLUMN: &str = "[:, None]";

impl Laid {
    /// The value as the 2-D array of its shape (a scalar stays a scalar at 1 x 1, marked
    /// [`SCALAR`]).
    pub fn materialised(&self) -> Piece {
        match &self.shape {
            Some(shape) if shape.is_scalar() && self.layout == Layout::Scalar => self.piece.clone().with_op(SCALAR),
            Some(shape) => materialise(&self.piece, self.layout, shape),
            None => self.piece.clone(),
        }
    }

    /// The value as a 1-D array (the node is a column).
    pub fn flat(&self) -> String {
        if let Some(f) = &self.flat {
            return f.text.clone();
        }
        let rows = self.shape.as_ref().map(|s| s.rows.render("*")).unwrap_or_default();
        match self.layout {
            Layout::Flat => self.piece.text.clone(),
            Layout::Scalar => format!("np.full({rows}, {})", self.piece.text),
            Layout::Row => format!("np.tile({}, {rows})", self.piece.text),
            Layout::Full | Layout::Col => format!("np.ravel({})", self.piece.text),
        }
    }

    /// The value as a Python float (the node is 1 x 1).
    pub fn float(&self) -> String {
        match self.layout {
            Layout::Scalar => format!("float({})", self.piece.text),
            _ => format!("float(np.reshape({}, -1)[0])", self.piece.text),
        }
    }

    /// The layout a named intermediate keeps: a row, column or scalar broadcast to a larger
    /// matrix is materialised, so that every name holds a value of the script's own shape or
    /// its 1-D form.
    pub fn for_definition(self) -> Laid {
        let spread = |s: &Shape| match self.layout {
            Layout::Row => !s.rows.is_one(),
            Layout::Scalar => !s.is_scalar(),
            Layout::Col => true,
            Layout::Full | Layout::Flat => false,
        };
        match &self.shape {
            Some(s) if spread(s) => Laid {
                piece: self.materialised(),
                layout: Layout::Full,
                shape: self.shape.clone(),
                flat: None,
            },
            _ => self,
        }
    }
}

fn materialise(piece: &Piece, layout: Layout, shape: &Shape) -> Piece {
    let (r, c) = (shape.rows.render("*"), shape.cols.render("*"));
    match layout {
        Layout::Full => piece.clone(),
        Layout::Scalar if shape.is_scalar() => piece.clone(),
        Layout::Scalar => match piece.text.as_str() {
            "1.0" => Piece::new(format!("np.ones(({r}, {c}))"), Prec::Atom),
            "0.0" => Piece::new(format!("np.zeros(({r}, {c}))"), Prec::Atom),
            s => Piece::new(format!("np.full(({r}, {c}), {s})"), Prec::Atom),
        },
        Layout::Row if shape.rows.is_one() => Piece::new(format!("np.reshape({}, (1, -1))", piece.text), Prec::Atom),
        Layout::Row => Piece::new(format!("np.tile({}, ({r}, 1))", piece.text), Prec::Atom),
        Layout::Col => Piece::new(format!("np.tile({}, (1, {c}))", piece.text), Prec::Atom),
        Layout::Flat => column(piece).with_op(FLAT_COLUMN),
    }
}

struct Out {
    piece: Piece,
    layout: Layout,
    konst: Option<f64>,
    sum: Option<Summed>,
    flat: Option<Piece>,
}

impl Out {
    fn new(piece: Piece, layout: Layout) -> Out {
        Out {
            piece,
            layout,
            konst: None,
            sum: None,
            flat: None,
        }
    }
}

struct Pass<'a> {
    expr: &'a RecExpr<Math>,
    writer: Numpy<'a>,
    names: &'a Names,
    shapes: Vec<Option<Shape>>,
    /// Each node's text in its layout (a dimension node: its text).
    lazy: Vec<Piece>,
    layouts: Vec<Layout>,
    /// The number every entry equals, for a scalar layout known to be one (`ones` is 1).
    konst: Vec<Option<f64>>,
    sums: Vec<Option<Summed>>,
    flats: Vec<Option<Piece>>,
}

fn postfix(x: &Piece, call: &str) -> Piece {
    Piece::new(format!("{}.{call}", x.at(Prec::Postfix)), Prec::Postfix)
}

/// `np.sum(x)`: every entry's sum, a scalar.
fn total(x: &Piece) -> Piece {
    Piece::new(format!("np.sum({})", x.text), Prec::Atom)
}

/// `v[:, None]`: a 1-D array as a column.
fn column(v: &Piece) -> Piece {
    // A negated name's column is the negated column: `-y[:, None]`, not `(-y)[:, None]`.
    let negated_name = (v.prec == Prec::Neg)
        .then(|| v.text.strip_prefix('-'))
        .flatten()
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'));
    match negated_name {
        Some(name) => Piece::new(format!("-{name}{FLAT_COLUMN}"), Prec::Neg),
        None => Piece::new(format!("{}{FLAT_COLUMN}", v.at(Prec::Postfix)), Prec::Postfix),
    }
}

fn times(a: &Piece, b: &Piece) -> Piece {
    Piece::new(format!("{} * {}", a.at(Prec::Product), b.at(Prec::Neg)), Prec::Product)
}

fn over(a: &Piece, b: &Piece) -> Piece {
    Piece::new(format!("{} / {}", a.at(Prec::Product), b.at(Prec::Neg)), Prec::Product)
}

fn dim_piece(d: &Dim) -> Piece {
    Piece::new(d.render("*"), dim_prec(d))
}

/// Elementwise operands: the layout of the result, or `None` when a 1-D column meets a
/// 2-D operand and must become a column first.
fn combined(a: Layout, b: Layout) -> Option<Layout> {
    use Layout::*;
    match (a, b) {
        (x, y) if x == y => Some(x),
        (Scalar, y) => Some(y),
        (x, Scalar) => Some(x),
        (Flat, _) | (_, Flat) => None,
        // (c,) with (r, 1), (r, c) with either: numpy broadcasts to (r, c).
        _ => Some(Full),
    }
}

impl Pass<'_> {
    fn shape(&self, id: Id) -> Option<&Shape> {
        self.shapes[usize::from(id)].as_ref()
    }
    fn lay(&self, id: Id) -> Layout {
        self.layouts[usize::from(id)]
    }
    fn text(&self, id: Id) -> &Piece {
        &self.lazy[usize::from(id)]
    }
    fn is_one(&self, id: Id) -> bool {
        self.konst[usize::from(id)] == Some(1.0)
    }

    /// `s * x`, without a factor 1.
    fn scaled(&self, s: Id, x: Piece) -> Piece {
        if self.is_one(s) {
            x
        } else {
            times(self.text(s), &x)
        }
    }

    fn materialised(&self, id: Id) -> Piece {
        match self.shape(id) {
            Some(s) => materialise(self.text(id), self.lay(id), s),
            None => self.text(id).clone(),
        }
    }

    /// The node as the notation writes it from its children, with the children in
    /// `full` materialised first.
    fn write(&mut self, id: Id, full: &[Id]) -> Piece {
        let materialised: Vec<(Id, Piece)> = full
            .iter()
            .filter(|c| self.lay(**c) != Layout::Full && self.shape(**c).is_some())
            .map(|c| (*c, self.materialised(*c)))
            .collect();
        self.write_with(id, materialised)
    }

    /// The node as the notation writes it, with the children in `instead` written so.
    fn write_with(&mut self, id: Id, instead: Vec<(Id, Piece)>) -> Piece {
        let saved: Vec<(Id, Piece)> = instead
            .into_iter()
            .map(|(c, p)| (c, std::mem::replace(&mut self.lazy[usize::from(c)], p)))
            .collect();
        let piece = self.writer.piece(self.expr, id, &self.lazy);
        for (c, p) in saved.into_iter().rev() {
            self.lazy[usize::from(c)] = p;
        }
        piece
    }

    /// The node written from materialised children, for what broadcasting does not cover.
    fn fallback(&mut self, id: Id) -> Out {
        let children = self.expr[id].children().to_vec();
        let piece = self.write(id, &children);
        let layout = match self.expr[id] {
            Math::Sum(_) | Math::Trace(_) | Math::Det(_) | Math::LogDet(_) | Math::Norm(_) => Layout::Scalar,
            _ => Layout::Full,
        };
        Out::new(piece, layout)
    }

    /// The sums over `axis` of the full 2-D node `a`, 1-D or with `keepdims`; a transposed
    /// array is summed over its other axis rather than transposed.
    fn reduce(&self, a: Id, axis: u8, keepdims: bool) -> (Piece, Summed) {
        let size = match self.shape(a) {
            Some(s) if axis == 0 => s.rows.clone(),
            Some(s) => s.cols.clone(),
            None => Dim::one(),
        };
        let (array, axis) = match self.expr[a] {
            Math::Transpose(y) if !keepdims && self.lay(y) == Layout::Full => (self.text(y), 1 - axis),
            _ => (self.text(a), axis),
        };
        let call = if keepdims {
            format!("sum(axis={axis}, keepdims=True)")
        } else {
            format!("sum(axis={axis})")
        };
        let summed = Summed {
            array: array.at(Prec::Postfix),
            axis,
            keepdims,
            size,
        };
        (postfix(array, &call), summed)
    }

    fn node(&mut self, id: Id) -> Out {
        use Layout::*;
        let expr = self.expr;
        match &expr[id] {
            Math::Symbol(s) => match self.names.get(s) {
                Some((text, layout)) => Out::new(Piece::new(text.clone(), Prec::Atom), *layout),
                None => match self.shape(id) {
                    Some(shape) if shape.is_scalar() => Out::new(Piece::new(s.as_str(), Prec::Atom), Scalar),
                    Some(shape) if shape.is_column() => {
                        Out::new(Piece::new(format!("np.ravel({s})"), Prec::Atom), Flat)
                    }
                    _ => Out::new(Piece::new(s.as_str(), Prec::Atom), Full),
                },
            },
            Math::Num(c) => Out {
                konst: Some(c.0),
                ..Out::new(self.write(id, &[]), Scalar)
            },
            Math::DimValue(d) => Out {
                konst: crate::render::dim_at(expr, *d).and_then(Dim::as_size).map(|n| n as f64),
                ..Out::new(self.write(id, &[]), Scalar)
            },
            Math::Ones(_) | Math::Zeros(_) => {
                let one = matches!(expr[id], Math::Ones(_));
                let text = if one { "1.0" } else { "0.0" };
                Out {
                    konst: Some(if one { 1.0 } else { 0.0 }),
                    ..Out::new(Piece::new(text, Prec::Atom), Scalar)
                }
            }
            Math::Transpose(a) => {
                let a = *a;
                let rows_one = self.shape(a).is_some_and(|s| s.rows.is_one());
                match self.lay(a) {
                    Scalar => Out {
                        konst: self.konst[usize::from(a)],
                        ..Out::new(self.text(a).clone(), Scalar)
                    },
                    Flat => Out::new(self.text(a).clone(), Row),
                    Row if rows_one => Out::new(self.text(a).clone(), Flat),
                    Row => Out::new(column(self.text(a)), Col),
                    Col => Out::new(Piece::new(format!("np.ravel({})", self.text(a).text), Prec::Atom), Row),
                    Full => Out::new(self.write(id, &[]), Full),
                }
            }
            Math::Mul([a, b]) => {
                let (a, b) = (*a, *b);
                self.product(id, a, b).unwrap_or_else(|| self.fallback(id))
            }
            Math::Scale([k, x]) => {
                let (k, x) = (*k, *x);
                if self.lay(k) != Scalar {
                    return Out::new(self.write(id, &[x]), Full);
                }
                let konst = self.konst[usize::from(k)]
                    .zip(self.konst[usize::from(x)])
                    .map(|(p, q)| p * q);
                if self.is_one(x) {
                    return Out {
                        konst,
                        ..Out::new(self.text(k).clone(), Scalar)
                    };
                }
                if let Some(mean) = self.mean(k, x) {
                    return mean;
                }
                // A keepdims column's 1-D form scales alike.
                let flat = self.flats[usize::from(x)]
                    .clone()
                    .map(|f| self.write_with(id, vec![(x, f)]));
                Out {
                    konst,
                    flat,
                    ..Out::new(self.write(id, &[]), self.lay(x))
                }
            }
            Math::Add([a, b]) | Math::Had([a, b]) | Math::HDiv([a, b]) => {
                let (a, b) = (*a, *b);
                if let (Math::HDiv(_), Some(arg)) = (&expr[id], row_softmax(expr, a, b)) {
                    return Out::new(self.write(id, &[arg]), Full);
                }
                if matches!(expr[id], Math::Had(_)) {
                    // x ⊙ (1 ⊘ y) is x / y.
                    for (x, r) in [(a, b), (b, a)] {
                        if let Math::HDiv([one, y]) = expr[r] {
                            if self.is_one(one) {
                                return self.elementwise(x, y, over);
                            }
                        }
                    }
                }
                match combined(self.lay(a), self.lay(b)) {
                    Some(layout) => Out::new(self.write(id, &[]), layout),
                    None => {
                        let flats: Vec<Id> = [a, b].into_iter().filter(|c| self.lay(*c) == Flat).collect();
                        let piece = self.write(id, &flats);
                        let with_columns = |c: Id| if self.lay(c) == Flat { Full } else { self.lay(c) };
                        Out::new(piece, combined(with_columns(a), with_columns(b)).unwrap_or(Full))
                    }
                }
            }
            Math::EPow([a, k]) | Math::Pow([a, k]) if self.lay(*k) == Scalar => {
                let a = *a;
                Out::new(self.write(id, &[]), self.lay(a))
            }
            Math::Fn(_, args) if args[1..].iter().all(|p| self.lay(*p) == Scalar) => {
                let a = args[0];
                Out::new(self.write(id, &[]), self.lay(a))
            }
            Math::Sum(a) => {
                let a = *a;
                let times_dim = |d: Option<&Dim>, p: Piece| match d {
                    Some(d) if !d.is_one() => times(&dim_piece(d), &p),
                    _ => p,
                };
                let shape = self.shape(a).cloned().unwrap_or_else(Shape::scalar);
                let piece = match self.lay(a) {
                    Full | Flat => self.write(id, &[]),
                    Scalar => times_dim(Some(&shape.rows.times(&shape.cols)), self.text(a).clone()),
                    Row => times_dim(Some(&shape.rows), self.write(id, &[])),
                    Col => times_dim(Some(&shape.cols), self.write(id, &[])),
                };
                Out::new(piece, Scalar)
            }
            Math::Diag(v) if matches!(self.lay(*v), Flat | Full) => Out::new(self.write(id, &[]), Full),
            Math::DiagVec(a) => {
                let a = *a;
                let m = self.materialised(a);
                Out::new(Piece::new(format!("np.diag({})", m.text), Prec::Atom), Flat)
            }
            _ => self.fallback(id),
        }
    }

    /// `x op y` elementwise, each in its layout where numpy broadcasts them together.
    fn elementwise(&self, x: Id, y: Id, op: impl Fn(&Piece, &Piece) -> Piece) -> Out {
        let (lx, ly) = (self.lay(x), self.lay(y));
        match combined(lx, ly) {
            Some(layout) => Out::new(op(self.text(x), self.text(y)), layout),
            None => {
                let column = |c: Id| match self.lay(c) {
                    Layout::Flat => (self.materialised(c), Layout::Full),
                    l => (self.text(c).clone(), l),
                };
                let ((px, lx), (py, ly)) = (column(x), column(y));
                Out::new(op(&px, &py), combined(lx, ly).unwrap_or(Layout::Full))
            }
        }
    }

    /// `Σ/n` over an axis of size n is numpy's `mean`.
    fn mean(&self, k: Id, x: Id) -> Option<Out> {
        let Math::Pow([base, e]) = self.expr[k] else {
            return None;
        };
        if self.konst[usize::from(e)] != Some(-1.0) {
            return None;
        }
        let size = match self.expr[base] {
            Math::DimValue(d) => crate::render::dim_at(self.expr, d)?,
            _ => return None,
        };
        let s = self.sums[usize::from(x)].as_ref()?;
        if &s.size != size {
            return None;
        }
        let call = |keepdims: bool| {
            let kd = if keepdims { ", keepdims=True" } else { "" };
            Piece::new(format!("{}.mean(axis={}{kd})", s.array, s.axis), Prec::Postfix)
        };
        Some(Out {
            flat: s.keepdims.then(|| call(false)),
            ..Out::new(call(s.keepdims), self.lay(x))
        })
    }

    /// A matrix product with a broadcast or ones operand, as a reduction or a broadcast.
    fn product(&mut self, id: Id, a: Id, b: Id) -> Option<Out> {
        use Layout::*;
        let (sa, sb) = (self.shape(a)?.clone(), self.shape(b)?.clone());
        let (r, k, c) = (&sa.rows, &sa.cols, &sb.cols);
        let (la, lb) = (self.lay(a), self.lay(b));
        let (ta, tb) = (self.text(a).clone(), self.text(b).clone());
        let dk = dim_piece(k);
        if let Some(out) = self.diagonal_product(a, b) {
            return Some(out);
        }
        Some(match (la, lb) {
            // s·1_r·1_kᵀ·B = s·1_r·(1_kᵀ·B): B's column sums on every row.
            (Scalar, _) if k.is_one() => match lb {
                Scalar => Out::new(self.scaled(a, tb), Scalar),
                Row | Flat => Out::new(self.scaled(a, tb), Row),
                Full if r.is_one() => Out::new(self.scaled(a, tb), Full),
                Full => Out::new(
                    self.scaled(a, Piece::new(format!("np.ravel({})", tb.text), Prec::Atom)),
                    Row,
                ),
                Col => return None,
            },
            (Scalar, _) => match lb {
                Full if c.is_one() => Out::new(self.scaled(a, total(&tb)), Scalar),
                Full => {
                    let (p, s) = self.reduce(b, 0, false);
                    let plain = self.is_one(a);
                    Out {
                        sum: plain.then_some(s),
                        ..Out::new(self.scaled(a, p), Row)
                    }
                }
                Scalar => Out::new(self.scaled(a, times(&dk, &tb)), Scalar),
                Row => Out::new(self.scaled(a, times(&dk, &tb)), Row),
                Col | Flat => Out::new(self.scaled(a, total(&tb)), Scalar),
            },
            // A·1_k·s·1_cᵀ: A's row sums in every column.
            (_, Scalar) if k.is_one() => match la {
                Full => Out::new(self.scaled(b, ta), Col),
                Flat if c.is_one() => Out::new(self.scaled(b, ta), Flat),
                Flat => Out::new(self.scaled(b, column(&ta)), Col),
                Row if c.is_one() => Out::new(self.scaled(b, ta), Row),
                _ => return None,
            },
            (_, Scalar) => match la {
                Full if r.is_one() => Out::new(self.scaled(b, total(&ta)), Scalar),
                Full => {
                    if self.is_one(b) {
                        if let Some(m) = self.row_max(a) {
                            return Some(Out::new(m, Col));
                        }
                    }
                    // Column sums of a transpose read as the array's own sums over axis 0, 1-D
                    // (batch statistics); a row's sums keep their axis (per-example statistics).
                    let transposed = matches!(self.expr[a], Math::Transpose(y) if self.lay(y) == Full);
                    let plain = self.is_one(b);
                    if c.is_one() && transposed {
                        let (p, s) = self.reduce(a, 1, false);
                        Out {
                            sum: plain.then_some(s),
                            ..Out::new(self.scaled(b, p), Flat)
                        }
                    } else {
                        let (p, s) = self.reduce(a, 1, true);
                        let (flat, _) = self.reduce(a, 1, false);
                        Out {
                            sum: plain.then_some(s),
                            flat: (plain && c.is_one()).then_some(flat),
                            ..Out::new(self.scaled(b, p), Col)
                        }
                    }
                }
                Row => Out::new(self.scaled(b, total(&ta)), Scalar),
                Col => Out::new(self.scaled(b, times(&dk, &ta)), Col),
                Flat | Scalar => return None,
            },
            // 1_r·vᵀ·B = 1_r·(Bᵀ·v)ᵀ.
            (Row, Full) => Out::new(
                Piece::new(format!("{} @ {}", ta.at(Prec::Neg), tb.at(Prec::Neg)), Prec::Product),
                Row,
            ),
            (Row, Flat) => Out::new(
                Piece::new(format!("{} @ {}", ta.at(Prec::Neg), tb.at(Prec::Neg)), Prec::Product),
                Scalar,
            ),
            // A·1_k·vᵀ: A's row sums (A itself when k = 1) times v, broadcast.
            (Full, Row) if k.is_one() => Out::new(times(&ta, &tb), Full),
            (Full, Row) => {
                let (p, _) = self.reduce(a, 1, true);
                Out::new(times(&p, &tb), Full)
            }
            (Flat, Row) | (Flat, Full) => Out::new(
                Piece::new(format!("np.outer({}, {})", ta.text, tb.text), Prec::Atom),
                Full,
            ),
            (Flat, Flat) => Out::new(times(&ta, &tb), Flat),
            (Full, Flat) => Out::new(
                Piece::new(format!("{} @ {}", ta.at(Prec::Neg), tb.at(Prec::Neg)), Prec::Product),
                Flat,
            ),
            // w·1_kᵀ·B: w times B's column sums, broadcast.
            (Col, Full) => {
                let (p, _) = self.reduce(b, 0, false);
                Out::new(times(&ta, &p), Full)
            }
            (Full, Col) => Out::new(
                Piece::new(format!("{} @ {}", ta.at(Prec::Neg), tb.at(Prec::Neg)), Prec::Product),
                Col,
            ),
            (Full, Full) => Out::new(self.write(id, &[]), Full),
            _ => return None,
        })
    }

    /// `(X ⊙ ismax(X))·1`: each row's maximum.
    fn row_max(&self, a: Id) -> Option<Piece> {
        let Math::Had([p, q]) = self.expr[a] else {
            return None;
        };
        let x = [(p, q), (q, p)]
            .into_iter()
            .find_map(|(x, m)| matches!(self.expr[m], Math::IsMax(y) if y == x).then_some(x))?;
        (self.lay(x) == Layout::Full).then(|| postfix(self.text(x), "max(axis=1, keepdims=True)"))
    }

    /// `X·diag(v)` scales X's columns by v (`X * v`), `diag(v)·X` its rows (`v[:, None] * X`);
    /// `diag(1 ⊘ y)` divides.
    fn diagonal_product(&mut self, a: Id, b: Id) -> Option<Out> {
        let (diag_right, x, v) = match (&self.expr[a], &self.expr[b]) {
            (_, Math::Diag(v)) => (true, a, *v),
            (Math::Diag(v), _) => (false, b, *v),
            _ => return None,
        };
        let (v, divide) = match self.expr[v] {
            Math::HDiv([one, y]) if self.is_one(one) => (y, true),
            _ => (v, false),
        };
        let vt = self.text(v).clone();
        // As a row (right) or a column (left) that broadcasts onto X.
        let factor = match (self.lay(v), diag_right) {
            (Layout::Flat, true) => vt,
            (Layout::Flat, false) => column(&vt),
            (Layout::Full, true) => Piece::new(format!("{}.T", vt.at(Prec::Atom)), Prec::Postfix),
            (Layout::Full, false) => vt,
            _ => return None,
        };
        let px = self.materialised(x);
        let piece = if divide {
            over(&px, &factor)
        } else {
            times(&px, &factor)
        };
        Some(Out::new(piece, Layout::Full))
    }
}
