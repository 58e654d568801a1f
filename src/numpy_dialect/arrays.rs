//! numpy arrays over the IR: each value keeps its numpy shape (0-D, 1-D or 2-D) beside
//! the IR node that computes it (a 1-D array is an IR column), and every numpy
//! operation is built as matrix algebra: broadcasting and reductions are products with
//! ones vectors (`x.sum(axis=0)` is `Xᵀ·1_N`, `b` added to every row is `1_N·bᵀ`).

use crate::diagnostic::{Error, Span};
use crate::dim::{Dim, Shape};
use crate::ir::{ExprBuilder, Math};
use egg::Id;

/// A numpy shape: the sizes of its axes, at most two.
pub type NpShape = Vec<Dim>;

#[derive(Debug, Clone)]
pub struct Arr {
    pub id: Id,
    pub shape: NpShape,
    /// The name it was read from, for broadcast notes (`b : M broadcast over the N rows`).
    pub name: Option<String>,
}

pub fn ir_shape(shape: &[Dim]) -> Shape {
    match shape {
        [] => Shape::scalar(),
        [n] => Shape::new(n.clone(), Dim::one()),
        [m, n] => Shape::new(m.clone(), n.clone()),
        _ => unreachable!("arrays have at most two axes"),
    }
}

/// numpy's spelling of a shape: `(N, D)`, `(D,)`, `()`.
pub fn np_shape_text(shape: &[Dim]) -> String {
    match shape {
        [n] => format!("({},)", n.render("*")),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.render("*")).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// numpy's broadcasting rule: trailing axes aligned, equal sizes or a size of 1 stretch.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Option<NpShape> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let da = (k + a.len()).checked_sub(n).map(|i| &a[i]);
        let db = (k + b.len()).checked_sub(n).map(|i| &b[i]);
        out.push(match (da, db) {
            (Some(x), Some(y)) if x == y => x.clone(),
            (Some(x), Some(y)) if x.is_one() => y.clone(),
            (Some(x), Some(y)) if y.is_one() => x.clone(),
            (Some(_), Some(_)) => return None,
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (None, None) => unreachable!("k < n"),
        });
    }
    Some(out)
}

/// Builds IR for numpy operations and keeps the notes of the broadcasts it made explicit.
#[derive(Default)]
pub struct Arrays {
    pub builder: ExprBuilder,
    /// The notes, one clause per kind of broadcast (`mu, gamma : (D,) broadcast over the N
    /// rows`), rewritten from `stretched` at each new broadcast.
    pub broadcasts: Vec<String>,
    /// Each kind of broadcast made (the operand's numpy shape and the axis it stretched over),
    /// in order of first use, with the names of the arrays stretched that way and the nodes of
    /// the unnamed ones.
    stretched: Vec<Stretched>,
}

struct Stretched {
    shape: String,
    over: String,
    names: Vec<String>,
    unnamed: Vec<Id>,
}

impl Arrays {
    pub fn add(&mut self, node: Math) -> Id {
        self.builder.add(node)
    }

    pub fn constant(&mut self, c: f64) -> Arr {
        Arr {
            id: self.builder.num(c),
            shape: vec![],
            name: None,
        }
    }

    pub fn dim_value(&mut self, d: &Dim) -> Arr {
        if let Some(n) = d.as_size() {
            return self.constant(n as f64);
        }
        // `2*N` as the number 2 times the size N, so that numbers cancel (2/(2·N) = 1/N).
        let named = d.factors().iter().fold(Dim::one(), |acc, f| acc.times(&Dim::named(f)));
        let dim = self.builder.dim(&named);
        let size = self.add(Math::DimValue(dim));
        let coeff = self.builder.num(d.coeff() as f64);
        Arr {
            id: self.scale(coeff, size),
            shape: vec![],
            name: None,
        }
    }

    pub fn number_at(&self, id: Id) -> Option<f64> {
        match self.builder.expr()[id] {
            Math::Num(c) => Some(c.0),
            _ => None,
        }
    }

    pub fn scale(&mut self, s: Id, a: Id) -> Id {
        match self.number_at(s) {
            Some(1.0) => a,
            _ => self.add(Math::Scale([s, a])),
        }
    }

    pub fn negate(&mut self, a: Id) -> Id {
        if let Some(c) = self.number_at(a) {
            return self.builder.num(-c);
        }
        let minus_one = self.builder.num(-1.0);
        self.scale(minus_one, a)
    }

    pub fn reciprocal(&mut self, s: Id) -> Id {
        if let Some(c) = self.number_at(s) {
            return self.builder.num(1.0 / c);
        }
        let minus_one = self.builder.num(-1.0);
        self.add(Math::Pow([s, minus_one]))
    }

    fn ones_column(&mut self, n: &Dim) -> Id {
        self.builder.ones(&Shape::new(n.clone(), Dim::one()))
    }

    pub fn transpose(&mut self, a: Id, shape: &[Dim]) -> Id {
        if shape.len() < 2 && !ir_shape(shape).is_row() {
            return a;
        }
        self.add(Math::Transpose(a))
    }

    /// `a` (numpy shape `from`) stretched to the numpy shape `to`, as a product with ones.
    pub fn stretch(&mut self, a: &Arr, to: &[Dim]) -> Id {
        let from = &a.shape;
        if from.as_slice() == to {
            return a.id;
        }
        let target = ir_shape(to);
        let source = ir_shape(from);
        if source.is_scalar() {
            let ones = self.builder.ones(&target);
            return self.scale(a.id, ones);
        }
        match to {
            [m, n] => {
                // Which of the source's axes stretch: the rows when it is a 1-D row or a
                // 1 x n row against more rows, the columns when it is an m x 1 column.
                let row_like = from.len() == 1 || (from[0].is_one() && !m.is_one());
                let stretch_rows = row_like && !m.is_one();
                let stretch_cols = from.len() == 2 && from[1].is_one() && !n.is_one();
                let mut x = a.id;
                if from.len() == 1 {
                    // A 1-D array is a row to numpy: bᵀ.
                    x = self.add(Math::Transpose(x));
                }
                if stretch_rows {
                    let ones = self.ones_column(m);
                    x = self.add(Math::Mul([ones, x]));
                    self.note(a, format!("the {} rows", m.render("·")));
                }
                if stretch_cols {
                    let ones = self.ones_column(n);
                    let ones_t = self.add(Math::Transpose(ones));
                    x = self.add(Math::Mul([x, ones_t]));
                    self.note(a, format!("the {} columns", n.render("·")));
                }
                x
            }
            _ => a.id,
        }
    }

    /// Records that `a` was stretched over `over`, and writes the notes again: one clause per
    /// shape and axis, listing the names (a layer broadcasts several vectors the same way).
    fn note(&mut self, a: &Arr, over: String) {
        let shape = np_shape_text(&a.shape);
        let at = match self.stretched.iter().position(|k| k.shape == shape && k.over == over) {
            Some(i) => i,
            None => {
                self.stretched.push(Stretched {
                    shape,
                    over,
                    names: Vec::new(),
                    unnamed: Vec::new(),
                });
                self.stretched.len() - 1
            }
        };
        let kind = &mut self.stretched[at];
        match &a.name {
            Some(n) if !kind.names.contains(n) => kind.names.push(n.clone()),
            Some(_) => {}
            None if !kind.unnamed.contains(&a.id) => kind.unnamed.push(a.id),
            None => {}
        }
        self.broadcasts = self
            .stretched
            .iter()
            .map(|k| {
                let names = k.names.join(", ");
                let what = match (k.names.len(), k.unnamed.len()) {
                    (0, 1) => format!("a {} operand", k.shape),
                    (0, n) => format!("{n} {} operands", k.shape),
                    (_, 0) => format!("{names} : {}", k.shape),
                    (_, 1) => format!("{names} and an unnamed operand, each {}", k.shape),
                    (_, n) => format!("{names} and {n} unnamed operands, each {}", k.shape),
                };
                format!("{what} broadcast over {}", k.over)
            })
            .collect();
    }

    /// An elementwise binary operation with numpy's broadcasting.
    pub fn elementwise(&mut self, op: Elementwise, a: &Arr, b: &Arr, span: Span) -> Result<Arr, Error> {
        let shape = broadcast_shapes(&a.shape, &b.shape).ok_or_else(|| {
            Error::shape(
                format!(
                    "operands could not be broadcast together with shapes {} {}",
                    np_shape_text(&a.shape),
                    np_shape_text(&b.shape)
                ),
                span,
            )
            .with_label(format!("in `{}`", op.symbol()))
            .with_note("numpy aligns trailing axes; each pair must be equal or one of them 1")
        })?;
        let (sa, sb) = (a.shape.is_empty(), b.shape.is_empty());
        // `loss = 0.0; loss += ...`: adding a zero scalar changes nothing.
        let zero = |x: &Arr| matches!(self.number_at(x.id), Some(z) if z == 0.0) && x.shape.is_empty();
        if op == Elementwise::Add && zero(a) && b.shape == shape {
            return Ok(Arr {
                name: None,
                ..b.clone()
            });
        }
        if matches!(op, Elementwise::Add | Elementwise::Sub) && zero(b) && a.shape == shape {
            return Ok(Arr {
                name: None,
                ..a.clone()
            });
        }
        let id = match op {
            Elementwise::Mul if sa => self.scale(a.id, b.id),
            Elementwise::Mul if sb => self.scale(b.id, a.id),
            Elementwise::Div if sb => {
                let r = self.reciprocal(b.id);
                self.scale(r, a.id)
            }
            _ if sa && sb => self.scalar_op(op, a.id, b.id),
            _ => {
                let x = self.stretch(a, &shape);
                let y = self.stretch(b, &shape);
                match op {
                    Elementwise::Add => self.add(Math::Add([x, y])),
                    Elementwise::Sub => {
                        let ny = self.negate(y);
                        self.add(Math::Add([x, ny]))
                    }
                    Elementwise::Mul => self.add(Math::Had([x, y])),
                    Elementwise::Div => self.add(Math::HDiv([x, y])),
                }
            }
        };
        Ok(Arr { id, shape, name: None })
    }

    fn scalar_op(&mut self, op: Elementwise, a: Id, b: Id) -> Id {
        match op {
            Elementwise::Add => self.add(Math::Add([a, b])),
            Elementwise::Sub => {
                let nb = self.negate(b);
                self.add(Math::Add([a, nb]))
            }
            Elementwise::Mul => self.scale(a, b),
            Elementwise::Div => {
                let r = self.reciprocal(b);
                self.scale(r, a)
            }
        }
    }

    /// The matrix product with numpy's rules for 1-D operands (`@`, `dot`, `matmul`).
    pub fn matmul(&mut self, a: &Arr, b: &Arr, span: Span, op: &str) -> Result<Arr, Error> {
        let mismatch = |k1: &Dim, k2: &Dim| {
            Error::shape(
                format!(
                    "shapes {} and {} not aligned: {} != {}",
                    np_shape_text(&a.shape),
                    np_shape_text(&b.shape),
                    k1.render("*"),
                    k2.render("*")
                ),
                span,
            )
            .with_label(format!("in `{op}`"))
        };
        let (id, shape) = match (a.shape.as_slice(), b.shape.as_slice()) {
            ([m, k1], [k2, n]) => {
                if k1 != k2 {
                    return Err(mismatch(k1, k2));
                }
                (self.add(Math::Mul([a.id, b.id])), vec![m.clone(), n.clone()])
            }
            ([m, k1], [k2]) => {
                if k1 != k2 {
                    return Err(mismatch(k1, k2));
                }
                (self.add(Math::Mul([a.id, b.id])), vec![m.clone()])
            }
            ([k1], [k2, n]) => {
                if k1 != k2 {
                    return Err(mismatch(k1, k2));
                }
                let bt = self.add(Math::Transpose(b.id));
                (self.add(Math::Mul([bt, a.id])), vec![n.clone()])
            }
            ([k1], [k2]) => {
                if k1 != k2 {
                    return Err(mismatch(k1, k2));
                }
                let at = self.add(Math::Transpose(a.id));
                (self.add(Math::Mul([at, b.id])), vec![])
            }
            _ if op == "@" => {
                return Err(Error::shape(
                    "matmul: an operand is a scalar; use `*` to multiply by a scalar",
                    span,
                ))
            }
            _ => return self.elementwise(Elementwise::Mul, a, b, span),
        };
        Ok(Arr { id, shape, name: None })
    }

    /// `sum` over an axis (or all), as a product with ones; `keepdims` keeps the axis as 1.
    pub fn sum(&mut self, a: &Arr, axis: Option<usize>, keepdims: bool) -> Arr {
        let one = Dim::one();
        let (id, shape) = match (a.shape.as_slice(), axis) {
            ([], _) => (a.id, vec![]),
            (s, None) => (
                self.add(Math::Sum(a.id)),
                if keepdims { vec![one; s.len()] } else { vec![] },
            ),
            ([_], Some(_)) => (self.add(Math::Sum(a.id)), if keepdims { vec![one] } else { vec![] }),
            ([m, n], Some(0)) => {
                let ones = self.ones_column(m);
                if keepdims {
                    // 1ᵀ·X, a 1 x n row.
                    let ones_t = self.add(Math::Transpose(ones));
                    (self.add(Math::Mul([ones_t, a.id])), vec![one, n.clone()])
                } else {
                    // Xᵀ·1, the same sums as a 1-D array.
                    let at = self.add(Math::Transpose(a.id));
                    (self.add(Math::Mul([at, ones])), vec![n.clone()])
                }
            }
            ([m, n], Some(_)) => {
                let ones = self.ones_column(n);
                let id = self.add(Math::Mul([a.id, ones]));
                (
                    id,
                    if keepdims {
                        vec![m.clone(), one]
                    } else {
                        vec![m.clone()]
                    },
                )
            }
            _ => unreachable!("arrays have at most two axes"),
        };
        Arr { id, shape, name: None }
    }

    /// The number of entries a reduction over `axis` adds up.
    pub fn count(&self, a: &Arr, axis: Option<usize>) -> Dim {
        match axis {
            Some(k) => a.shape[k].clone(),
            None => a.shape.iter().fold(Dim::one(), |acc, d| acc.times(d)),
        }
    }

    pub fn mean(&mut self, a: &Arr, axis: Option<usize>, keepdims: bool) -> Arr {
        let total = self.sum(a, axis, keepdims);
        let count = self.count(a, axis);
        let count = self.dim_value(&count);
        let r = self.reciprocal(count.id);
        Arr {
            id: self.scale(r, total.id),
            ..total
        }
    }

    /// numpy's `var`: the sum of the squared deviations from the mean over `n − ddof`
    /// (with numpy's default ddof = 0, their mean).
    pub fn var(&mut self, a: &Arr, axis: Option<usize>, keepdims: bool, ddof: f64, span: Span) -> Result<Arr, Error> {
        let mu = self.mean(a, axis, true);
        let centred = self.elementwise(Elementwise::Sub, a, &mu, span)?;
        let two = self.builder.num(2.0);
        let squared = Arr {
            id: self.add(Math::EPow([centred.id, two])),
            ..centred
        };
        if ddof == 0.0 {
            return Ok(self.mean(&squared, axis, keepdims));
        }
        let total = self.sum(&squared, axis, keepdims);
        let count = self.count(a, axis);
        let count = self.dim_value(&count);
        let minus = self.constant(-ddof);
        let dof = self.add(Math::Add([count.id, minus.id]));
        let r = self.reciprocal(dof);
        Ok(Arr {
            id: self.scale(r, total.id),
            ..total
        })
    }

    /// An elementwise function of the operator table, by name, of one array.
    pub fn apply(&mut self, a: &Arr, function: &str) -> Arr {
        let node = Math::elementwise(function, a.id).expect("an elementwise function of the operator table");
        Arr {
            id: self.add(node),
            shape: a.shape.clone(),
            name: None,
        }
    }

    pub fn power(&mut self, a: &Arr, k: f64) -> Arr {
        let kk = self.builder.num(k);
        if let Some(c) = self.number_at(a.id) {
            return self.constant(c.powf(k));
        }
        let node = if a.shape.is_empty() {
            Math::Pow([a.id, kk])
        } else {
            Math::EPow([a.id, kk])
        };
        Arr {
            id: self.add(node),
            shape: a.shape.clone(),
            name: None,
        }
    }

    pub fn ones(&mut self, shape: &[Dim], value: f64) -> Arr {
        if shape.is_empty() {
            return self.constant(value);
        }
        let s = ir_shape(shape);
        let (r, c) = (self.builder.dim(&s.rows), self.builder.dim(&s.cols));
        let node = if value == 0.0 {
            Math::Zeros([r, c])
        } else {
            Math::Ones([r, c])
        };
        let id = self.add(node);
        let v = self.builder.num(value);
        let id = if value == 0.0 { id } else { self.scale(v, id) };
        Arr {
            id,
            shape: shape.to_vec(),
            name: None,
        }
    }

    /// `max` over an axis (or of a vector) as a product with the mask of the maxima:
    /// the maximum of each row of A is `(A ⊙ ismax A)·1`; over the columns, of Aᵀ.
    pub fn max(&mut self, a: &Arr, axis: Option<usize>, keepdims: bool, span: Span) -> Result<Arr, Error> {
        let row_max = |this: &mut Self, rows: Arr| -> Arr {
            let mask = this.add(Math::IsMax(rows.id));
            let picked = Arr {
                id: this.add(Math::Had([rows.id, mask])),
                ..rows
            };
            this.sum(&picked, Some(1), false)
        };
        match (a.shape.as_slice(), axis) {
            ([], _) => Ok(a.clone()),
            ([n], _) => {
                // A vector's maximum: the one row xᵀ.
                let row = Arr {
                    id: self.add(Math::Transpose(a.id)),
                    shape: vec![Dim::one(), n.clone()],
                    name: None,
                };
                let m = row_max(self, row);
                Ok(Arr {
                    shape: if keepdims { vec![Dim::one()] } else { vec![] },
                    ..m
                })
            }
            ([rows, _], Some(1)) => {
                let m = row_max(self, a.clone());
                Ok(Arr {
                    shape: if keepdims {
                        vec![rows.clone(), Dim::one()]
                    } else {
                        m.shape.clone()
                    },
                    ..m
                })
            }
            ([rows, cols], Some(_)) => {
                let at = Arr {
                    id: self.add(Math::Transpose(a.id)),
                    shape: vec![cols.clone(), rows.clone()],
                    name: None,
                };
                let m = row_max(self, at);
                if keepdims {
                    return Ok(Arr {
                        id: self.add(Math::Transpose(m.id)),
                        shape: vec![Dim::one(), cols.clone()],
                        name: None,
                    });
                }
                Ok(m)
            }
            ([_, _], None) => {
                // The maximum of each row, then of those: the first maximum in row-major order,
                // as numpy's argmax of the flattened array.
                let rows = self.max(a, Some(1), false, span)?;
                let m = self.max(&rows, None, false, span)?;
                Ok(Arr {
                    shape: if keepdims { vec![Dim::one(), Dim::one()] } else { vec![] },
                    ..m
                })
            }
            _ => Err(Error::unsupported("matdiff's arrays have at most two axes", span)),
        }
    }

    /// The selection matrix `e_(i+1) ⊗ I_len` (k·len x len) of the i-th of k blocks.
    fn block_selection(&mut self, k: &Dim, i: u64, len: &Dim) -> Id {
        // The one block of one (`scores[:, 0]` of a single column) is all of it.
        if k.is_one() {
            let n = self.builder.dim(len);
            return self.add(Math::Eye(n));
        }
        let kd = self.builder.dim(k);
        let index = self.builder.num(i as f64);
        let e = self.add(Math::Unit([kd, index]));
        let n = self.builder.dim(len);
        let eye = self.add(Math::Eye(n));
        self.add(Math::Kron([e, eye]))
    }

    /// Block `i` of `k` equal blocks of length `len` along `axis`: a product with a
    /// selection matrix (`a[:, H:2*H]` is `A·(e_2 ⊗ I_H)`).
    pub fn block(&mut self, a: &Arr, axis: usize, k: &Dim, i: u64, len: &Dim, keep_axis: bool) -> Arr {
        let s = self.block_selection(k, i, len);
        let len = if keep_axis { len.clone() } else { Dim::one() };
        match (a.shape.as_slice(), axis) {
            ([_], _) => {
                let st = self.add(Math::Transpose(s));
                Arr {
                    id: self.add(Math::Mul([st, a.id])),
                    shape: if keep_axis { vec![len] } else { vec![] },
                    name: None,
                }
            }
            ([_, n], 0) => {
                let st = self.add(Math::Transpose(s));
                let id = self.add(Math::Mul([st, a.id]));
                if keep_axis {
                    return Arr {
                        id,
                        shape: vec![len, n.clone()],
                        name: None,
                    };
                }
                // One row, as a 1-D array: its transpose.
                Arr {
                    id: self.add(Math::Transpose(id)),
                    shape: vec![n.clone()],
                    name: None,
                }
            }
            ([m, _], _) => Arr {
                id: self.add(Math::Mul([a.id, s])),
                shape: if keep_axis {
                    vec![m.clone(), len]
                } else {
                    vec![m.clone()]
                },
                name: None,
            },
            _ => unreachable!("a block of a scalar is refused before"),
        }
    }

    /// `np.concatenate(parts, axis)` of `k` parts of equal length along `axis`: the sum of
    /// each part placed by its selection matrix's transpose.
    pub fn concatenate(&mut self, parts: &[Arr], axis: usize) -> Arr {
        let k = Dim::size(parts.len() as u64);
        let mut total: Option<Id> = None;
        let first = &parts[0].shape;
        let len = first[axis.min(first.len() - 1)].clone();
        for (i, p) in parts.iter().enumerate() {
            let s = self.block_selection(&k, i as u64, &len);
            let placed = match (p.shape.len(), axis) {
                (1, _) | (2, 0) => self.add(Math::Mul([s, p.id])),
                _ => {
                    let st = self.add(Math::Transpose(s));
                    self.add(Math::Mul([p.id, st]))
                }
            };
            total = Some(match total {
                Some(t) => self.add(Math::Add([t, placed])),
                None => placed,
            });
        }
        let mut shape = first.clone();
        let at = axis.min(shape.len() - 1);
        shape[at] = len.times(&k);
        Arr {
            id: total.expect("at least one part"),
            shape,
            name: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elementwise {
    Add,
    Sub,
    Mul,
    Div,
}

impl Elementwise {
    pub fn symbol(self) -> &'static str {
        match self {
            Elementwise::Add => "+",
            Elementwise::Sub => "-",
            Elementwise::Mul => "*",
            Elementwise::Div => "/",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: &str) -> Dim {
        Dim::named(n)
    }

    #[test]
    fn broadcasting_follows_numpy() {
        let (n, m, one) = (d("N"), d("M"), Dim::one());
        let nm = [n.clone(), m.clone()];
        assert_eq!(broadcast_shapes(&nm, &nm[1..]), Some(nm.to_vec()));
        assert_eq!(
            broadcast_shapes(&[n.clone(), one.clone()], &[one, m.clone()]),
            Some(nm.to_vec())
        );
        assert_eq!(broadcast_shapes(&nm, &nm[..1]), None);
        assert_eq!(broadcast_shapes(&[], &nm[..1]), Some(vec![n]));
    }
}
