//! One Python expression over `np`, the script's names, the dimension names (Python
//! ints) and `G`. Internally every value is 2-D (vectors as columns); vectors come in
//! as 1-D arrays or columns alike through `np.reshape(x, (-1, 1))`.

pub mod layout;

use super::{args, constant_at, number, spelled, Form, Piece, Prec, PLAIN};
use crate::dim::Shape;
use crate::ir::{Env, Math};
use egg::{Id, Language, RecExpr};

pub struct Numpy<'a> {
    pub env: &'a Env,
}

impl Form for Numpy<'_> {
    /// The whole expression with numpy's broadcasting ([`layout`]), as the 2-D array of its shape.
    fn whole(&self, expr: &RecExpr<Math>) -> Piece {
        layout::lay_out(expr, self.env, &layout::Names::new()).materialised()
    }

    /// One node from its children written as full 2-D arrays (or as values that broadcast
    /// alike, where [`layout`] passes them so); a name as itself, [`layout`] decides its layout.
    fn piece(&self, expr: &RecExpr<Math>, id: Id, pieces: &[Piece]) -> Piece {
        use Prec::*;
        let a = args(expr, id, pieces);
        let call = |f: &str| Piece::new(format!("{f}({})", a[0].text), Atom);
        let infix = |op: &str| Piece::new(format!("{} {op} {}", a[0].at(Product), a[1].at(Neg)), Product);
        let dim = |d: &crate::dim::Dim| d.render("*");
        match &expr[id] {
            Math::Num(c) if c.0 < 0.0 => Piece::new(format!("-{}", py_number(-c.0)), Neg),
            Math::Num(c) => Piece::new(py_number(c.0), Atom),
            Math::Dim(d) => Piece::new(dim(&d.0), super::dim_prec(&d.0)),
            Math::Symbol(s) => Piece::new(s.as_str(), Atom),
            Math::Add(_) => {
                if a[1].prec == Neg {
                    if let Some(rest) = a[1].text.strip_prefix('-') {
                        return Piece::new(format!("{} - {rest}", a[0].text), Sum);
                    }
                }
                Piece::new(format!("{} + {}", a[0].text, a[1].at(Product)), Sum)
            }
            Math::Mul(_) => infix("@"),
            Math::Scale([k, x]) => match (&expr[*k], constant_at(expr, *k)) {
                (_, Some(-1.0)) => Piece::new(format!("-{}", pieces[usize::from(*x)].at(Power)), Neg),
                // s·x with s = b^-k reads x / b**k, as numpy code divides.
                (&Math::Pow([b, e]), _) if constant_at(expr, e).is_some_and(|e| e < 0.0) => {
                    let e = -constant_at(expr, e).expect("checked");
                    let b = &pieces[usize::from(b)];
                    let denominator = if e == 1.0 {
                        b.at(Power)
                    } else {
                        format!("{} ** {}", b.at(Postfix), py_number(e))
                    };
                    let x = &pieces[usize::from(*x)];
                    Piece::new(format!("{} / {denominator}", x.at(Product)), Product)
                }
                _ => infix("*"),
            },
            Math::Had(_) => infix("*"),
            Math::HDiv([e, d]) => match super::row_softmax(expr, *e, *d) {
                // exp(A) ⊘ (exp(A)·1·1ᵀ), row by row, shifted by each row's maximum so that no
                // exponential overflows (softmax is invariant to the shift).
                Some(arg) => {
                    let z = unused_name(expr, "z");
                    Piece::new(
                        format!(
                            "(lambda {z}: np.exp({z}) / np.sum(np.exp({z}), axis=1, keepdims=True))({a} - np.max({a}, axis=1, keepdims=True))",
                            a = pieces[usize::from(arg)].at(Product)
                        ),
                        Postfix,
                    )
                }
                None => infix("/"),
            },
            Math::Kron(_) => Piece::new(format!("np.kron({}, {})", a[0].text, a[1].text), Atom),
            Math::Transpose(_) => Piece::new(format!("{}.T", a[0].at(Atom)), Postfix),
            Math::Inv(_) => call("np.linalg.inv"),
            Math::Det(_) => call("np.linalg.det"),
            Math::LogDet(_) => Piece::new(format!("np.linalg.slogdet({})[1]", a[0].text), Postfix),
            Math::Trace(_) => call("np.trace"),
            Math::Sum(_) => call("np.sum"),
            Math::Norm(_) => call("np.linalg.norm"),
            Math::Diag(_) => call("np.diagflat"),
            Math::DiagVec(_) => Piece::new(format!("np.reshape(np.diag({}), (-1, 1))", a[0].text), Atom),
            Math::Pow(_) | Math::EPow(_) => Piece::new(format!("{} ** {}", a[0].at(Postfix), a[1].at(Postfix)), Power),
            Math::Fn(f, _) => spelled(f.spec().numpy, &a, &PLAIN),
            Math::Ones(_) => Piece::new(format!("np.ones(({}, {}))", a[0].text, a[1].text), Atom),
            Math::Zeros(_) => Piece::new(format!("np.zeros(({}, {}))", a[0].text, a[1].text), Atom),
            Math::Eye(_) => Piece::new(format!("np.eye({})", a[0].text), Atom),
            Math::DimValue(_) => a[0].clone(),
            Math::BlockSum(_) | Math::BlockAdd(_) => {
                // (m·p) x (n·q) seen as m x p x n x q: sum the block's axes, or the grid's. The
                // lambda's parameter is a name the expression does not use, so it captures nothing.
                let m = unused_name(expr, "M");
                let (r, c) = (a[1].at(Power), a[2].at(Power));
                let (grid, axes) = if matches!(&expr[id], Math::BlockSum(_)) {
                    (format!("{r}, {m}.shape[0] // {r}, {c}, {m}.shape[1] // {c}"), "(1, 3)")
                } else {
                    (format!("{m}.shape[0] // {r}, {r}, {m}.shape[1] // {c}, {c}"), "(0, 2)")
                };
                Piece::new(
                    format!("(lambda {m}: {m}.reshape({grid}).sum(axis={axes}))({})", a[0].text),
                    Postfix,
                )
            }
            Math::Vec(_) => Piece::new(format!("np.reshape({}, (-1, 1), order=\"F\")", a[0].text), Atom),
            Math::Commute(_) => {
                let (m, n) = (unused_name(expr, "m"), unused_name(expr, "n"));
                Piece::new(
                    format!(
                        "(lambda {m}, {n}: np.eye({m} * {n})[np.arange({m} * {n}).reshape({m}, {n}, order=\"F\").ravel()])({}, {})",
                        a[0].text, a[1].text
                    ),
                    Atom,
                )
            }
            Math::Unit([_, i]) => {
                // The index is a whole number (from 0); written as one, not `int(1.0)`.
                let index = match super::constant_at(expr, *i) {
                    Some(k) => super::number(k),
                    None => format!("int({})", a[1].text),
                };
                Piece::new(format!("np.eye({})[:, [{index}]]", a[0].text), Postfix)
            }
            // The first maximum of each row, as numpy's argmax takes it.
            Math::IsMax(_) => Piece::new(
                format!("np.eye(np.shape({0})[1])[np.argmax({0}, axis=1)]", a[0].text),
                Postfix,
            ),
            Math::Rows(_) => Piece::new(format!("np.shape({})[0]", a[0].text), Postfix),
            Math::Cols(_) => Piece::new(format!("np.shape({})[1]", a[0].text), Postfix),
        }
    }
}

/// An expression written with its repeated parts named: each binding (name, value in its
/// layout) over the names before it, then the result (the whole as a 2-D array).
#[derive(Debug, Clone)]
pub struct Shared {
    pub bindings: Vec<(String, String)>,
    pub result: Piece,
}

/// Nodes of fewer (tree) nodes than this are written where they are used.
const SHARED_SIZE: f64 = 8.0;

/// `expr` (a DAG) with every subexpression that a tree would write more than once, and that
/// is not tiny, named once: written out, a nest of such repeats (a deep network's Hessian)
/// doubles with every level. `None` when nothing repeats.
pub fn shared(expr: &RecExpr<Math>, env: &Env) -> Option<Shared> {
    let nodes = expr.as_ref();
    let data = crate::ir::expr_data(env, expr);
    let mut uses = vec![0usize; nodes.len()];
    let mut size = vec![0.0f64; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        size[i] = 1.0 + node.children().iter().map(|c| size[usize::from(*c)]).sum::<f64>();
        for c in node.children() {
            uses[usize::from(*c)] += 1;
        }
    }
    let root = nodes.len().checked_sub(1)?;
    let named: Vec<usize> = (0..root)
        .filter(|&i| uses[i] >= 2 && size[i] >= SHARED_SIZE && !nodes[i].is_leaf() && data[i].shape().is_some())
        .collect();
    if named.is_empty() {
        return None;
    }
    let prefix = unused_prefix(expr, "h", named.len());
    let mut env = env.clone();
    let mut names = layout::Names::new();
    let mut symbol_of: std::collections::HashMap<usize, egg::Symbol> = std::collections::HashMap::new();
    let mut bindings = Vec::new();
    // Each named node over the names before it (ids are in topological order).
    let rebuilt = |at: usize, symbol_of: &std::collections::HashMap<usize, egg::Symbol>| {
        nodes[at].build_recexpr(|c| match symbol_of.get(&usize::from(c)) {
            Some(s) => Math::Symbol(*s),
            None => nodes[usize::from(c)].clone(),
        })
    };
    for (k, &i) in named.iter().enumerate() {
        let name = format!("{prefix}{}", k + 1);
        let body = rebuilt(i, &symbol_of);
        let laid = layout::lay_out(&body, &env, &names).for_definition();
        let symbol = egg::Symbol::from(name.as_str());
        env.shapes.insert(symbol, data[i].shape().cloned().expect("a value"));
        names.insert(symbol, (name.clone(), laid.layout));
        bindings.push((name, laid.piece.text));
        symbol_of.insert(i, symbol);
    }
    let result = layout::lay_out(&rebuilt(root, &symbol_of), &env, &names).materialised();
    Some(Shared { bindings, result })
}

/// A prefix p such that no name `p1` … `p{count}` is a variable or dimension of `expr`.
fn unused_prefix(expr: &RecExpr<Math>, base: &str, count: usize) -> String {
    let mut prefix = base.to_string();
    let taken = |p: &str| {
        expr.iter().any(|n| {
            let clash = |name: &str| {
                name.strip_prefix(p)
                    .and_then(|k| k.parse::<usize>().ok())
                    .is_some_and(|k| (1..=count).contains(&k))
            };
            match n {
                Math::Symbol(s) => clash(s.as_str()),
                Math::Dim(d) => d.0.factors().iter().any(|f| clash(f)),
                _ => false,
            }
        })
    };
    while taken(&prefix) {
        prefix.push('_');
    }
    prefix
}

/// `base`, or `base` with underscores, unlike every variable and dimension name in `expr`.
fn unused_name(expr: &RecExpr<Math>, base: &str) -> String {
    let used = |name: &str| {
        expr.iter().any(|n| match n {
            Math::Symbol(s) => s.as_str() == name,
            Math::Dim(d) => d.0.factors().contains(&name),
            _ => false,
        })
    };
    let mut name = base.to_string();
    while used(&name) {
        name.push('_');
    }
    name
}

fn py_number(c: f64) -> String {
    let s = number(c);
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Wraps the gradient so it has exactly the shape the variable was passed in: a float
/// for a scalar, the variable's own shape for a vector, the 2-D result for a matrix.
pub fn finish(body: &Piece, wrt: &str, wrt_shape: &Shape) -> String {
    if wrt_shape.is_scalar() && body.op == Some(layout::SCALAR) {
        format!("float({})", body.text)
    } else if wrt_shape.is_scalar() {
        format!("float(np.reshape({}, -1)[0])", body.text)
    } else if wrt_shape.is_column() {
        // A column materialised from a 1-D value is reshaped from the 1-D value.
        let inner = match body.op {
            Some(layout::FLAT_COLUMN) => body.text.strip_suffix(layout::FLAT_COLUMN),
            _ => None,
        };
        format!(
            "np.reshape({}, np.shape({wrt}))",
            inner.map_or(body.text.as_str(), unbracketed)
        )
    } else {
        body.text.clone()
    }
}

/// `t` without the brackets around all of it, if it has them.
pub fn unbracketed(t: &str) -> &str {
    let Some(inside) = t.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return t;
    };
    let mut depth = 0i32;
    for ch in inside.chars() {
        depth += match ch {
            '(' | '[' => 1,
            ')' | ']' => -1,
            _ => 0,
        };
        if depth < 0 {
            return t;
        }
    }
    inside
}

/// The first lines of a generated Python function: each argument as a float array (a
/// float for a scalar), each dimension bound from the first argument that has it alone
/// on an axis (`N = np.shape(X)[0]`, `H = np.shape(Wx)[1] // 4`), every other size asserted.
pub fn bind_arguments(args: &[String], env: &Env) -> Vec<String> {
    bind_arguments_ranked(args, env, |_| None)
}

/// [`bind_arguments`] where some arguments have a known number of axes (`rank`: 1 for the
/// numpy dialect's 1-D parameters), asserted exactly instead of accepting a vector either way.
pub fn bind_arguments_ranked(args: &[String], env: &Env, rank: impl Fn(&str) -> Option<usize>) -> Vec<String> {
    let mut body = Vec::new();
    let mut bound: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for name in args {
        let Some(shape) = env.shapes.get(&egg::Symbol::from(name.as_str())) else {
            continue;
        };
        let rank = rank(name);
        if shape.is_scalar() {
            // An array of shape (1,) or (1, 1) as the scalar the algebra has.
            match rank {
                Some(1 | 2) => body.push(format!("    {name} = float(np.ravel({name})[0])")),
                _ => body.push(format!("    {name} = float({name})")),
            }
            continue;
        }
        // A vector passed either way is measured by its size.
        let either_way = shape.is_column() && rank.is_none();
        let one_d = shape.is_column() && rank == Some(1);
        let axes: Vec<(usize, &crate::dim::Dim)> = if either_way || one_d {
            vec![(0, &shape.rows)]
        } else {
            vec![(0, &shape.rows), (1, &shape.cols)]
        };
        let rows = shape.rows.render("*");
        let expected = if either_way {
            format!("({rows},) or ({rows}, 1)")
        } else if one_d {
            format!("({rows},)")
        } else {
            format!("({rows}, {})", shape.cols.render("*"))
        };
        body.push(format!("    {name} = np.asarray({name}, dtype=float)"));
        // A 1-D array whose length is known already is one assert of its whole shape.
        let binds =
            |d: &crate::dim::Dim| d.as_size().is_none() && matches!(d.factors().as_slice(), [f] if !bound.contains(*f));
        if one_d && !binds(&shape.rows) {
            body.push(format!(
                "    assert np.shape({name}) == ({},), \"{name} must have shape {expected}\"",
                shape.rows.render(" * ")
            ));
            continue;
        }
        if one_d {
            body.push(format!(
                "    assert np.ndim({name}) == 1, \"{name} must have shape {expected}\""
            ));
        }
        for (axis, d) in axes {
            let size = if either_way {
                format!("np.size({name})")
            } else {
                format!("np.shape({name})[{axis}]")
            };
            match (d.as_size(), d.factors().as_slice()) {
                (None, [f]) if !bound.contains(*f) => {
                    bound.insert(f.to_string());
                    match d.coeff() {
                        1 => body.push(format!("    {f} = {size}")),
                        k => body.push(format!("    {f} = {size} // {k}")),
                    }
                }
                (Some(n), _) => body.push(format!(
                    "    assert {size} == {n}, \"{name} must have shape {expected}\""
                )),
                _ => body.push(format!(
                    "    assert {size} == {}, \"{name} must have shape {expected}\"",
                    d.render("*")
                )),
            }
        }
    }
    body
}
