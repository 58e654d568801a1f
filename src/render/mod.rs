//! Rendering an IR expression in one of several notations. Each notation is a `Form`
//! that writes one node from its children's already-written pieces; the walk is
//! bottom-up over the expression's array, so no input depth can exhaust the stack.

pub mod document;
pub mod json;
pub mod latex;
pub mod notes;
pub mod numpy;
pub mod text;

use crate::ir::Math;
use crate::ops::Spelling;
use egg::{Id, Language, RecExpr};

/// The `op` of a scaling by a scalar, which commutes with every product.
pub const SCALE: &str = "scale";

/// Binding strength, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prec {
    Sum,
    Product,
    Neg,
    Power,
    Postfix,
    Atom,
}

#[derive(Debug, Clone)]
pub struct Piece {
    pub text: String,
    pub prec: Prec,
    /// The product-level operator at the top, so that `·` and `⊙` never mix unbracketed.
    pub op: Option<&'static str>,
    /// Whether the text starts with a scaling bare inside another operator's chain
    /// (`2·X ⊙ Y`): on the right of that operator it needs brackets, or `2` would bind left.
    pub leads_with_scale: bool,
}

impl Piece {
    pub fn new(text: impl Into<String>, prec: Prec) -> Piece {
        Piece {
            text: text.into(),
            prec,
            op: None,
            leads_with_scale: false,
        }
    }
    pub fn with_op(mut self, op: &'static str) -> Piece {
        self.op = Some(op);
        self
    }
    /// The left operand of the product-level operator `op`: bare if it is the same
    /// operator or a scaling, bracketed otherwise.
    pub fn left_of(&self, op: &str) -> String {
        match self.prec {
            Prec::Product if self.op == Some(op) || self.op == Some(SCALE) => self.text.clone(),
            _ => self.at(Prec::Neg),
        }
    }
    /// The right operand of the associative product-level operator `op`.
    pub fn right_of(&self, op: &str) -> String {
        match self.prec {
            Prec::Product if self.op == Some(op) && !self.leads_with_scale => self.text.clone(),
            _ => self.at(Prec::Neg),
        }
    }
    /// The text, in parentheses when it binds looser than `min`.
    pub fn at(&self, min: Prec) -> String {
        if self.prec < min {
            format!("({})", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// For a sum's `k`-th term written `−x` with `x` a product: `x`'s text, unbracketed, since
/// `a − G ⊙ b` needs no brackets of its own.
pub fn subtracted_product(expr: &RecExpr<Math>, id: Id, k: usize, pieces: &[Piece]) -> Option<String> {
    let child = expr[id].children()[k];
    match expr[child] {
        Math::Scale([s, x]) if constant_at(expr, s) == Some(-1.0) && pieces[usize::from(x)].prec >= Prec::Product => {
            Some(pieces[usize::from(x)].text.clone())
        }
        _ => None,
    }
}

/// How a notation writes a call: the head of a named operator, and the brackets.
pub struct CallStyle {
    pub operator: fn(&str) -> String,
    pub open: &'static str,
    pub close: &'static str,
}

/// Calls as text and numpy write them: `name(x, a)`.
pub const PLAIN: CallStyle = CallStyle {
    operator: str::to_string,
    open: "(",
    close: ")",
};

/// An elementwise function in one notation's spelling of it (a column of the operator table).
pub fn spelled(spelling: Spelling, a: &[&Piece], style: &CallStyle) -> Piece {
    let call = |head: &str| {
        let args: Vec<&str> = a.iter().map(|p| p.text.as_str()).collect();
        Piece::new(
            format!("{head}{}{}{}", style.open, args.join(", "), style.close),
            Prec::Atom,
        )
    };
    match spelling {
        Spelling::Call(name) => call(name),
        Spelling::Operator(name) => call(&(style.operator)(name)),
        Spelling::Template(template, arg, prec) => {
            let text = match a.get(1) {
                Some(p) => template.replace("$a", &p.at(arg)),
                None => template.to_string(),
            };
            Piece::new(text.replace("$x", &a[0].at(arg)), prec)
        }
    }
}

pub trait Form {
    /// Writes `expr[id]`, whose children are already written in `pieces`.
    fn piece(&self, expr: &RecExpr<Math>, id: Id, pieces: &[Piece]) -> Piece;

    /// Writes the expression rooted at its last node, bottom-up. A notation whose writing of
    /// a node depends on more than its children's text (numpy's broadcast layouts) overrides it.
    fn whole(&self, expr: &RecExpr<Math>) -> Piece {
        let mut pieces: Vec<Piece> = Vec::with_capacity(expr.len());
        for i in 0..expr.len() {
            let p = self.piece(expr, Id::from(i), &pieces);
            pieces.push(p);
        }
        pieces.pop().unwrap_or_else(|| Piece::new("", Prec::Atom))
    }
}

/// Writes the expression rooted at its last node.
pub fn render(expr: &RecExpr<Math>, form: &dyn Form) -> Piece {
    form.whole(expr)
}

/// Writes a number the way a person would: `2`, `0.5`, `-1`.
pub fn number(c: f64) -> String {
    if c.fract() == 0.0 && c.abs() < 1e15 {
        format!("{}", c as i64)
    } else {
        format!("{c}")
    }
}

/// The constant at `id`, if it is one.
pub fn constant_at(expr: &RecExpr<Math>, id: Id) -> Option<f64> {
    match &expr[id] {
        Math::Num(c) => Some(c.0),
        _ => None,
    }
}

/// How a size binds when written: `N` and `3` are atoms, `2·N` and `B·N` products.
pub fn dim_prec(d: &crate::dim::Dim) -> Prec {
    if d.factors().len() + usize::from(d.coeff() != 1 && !d.factors().is_empty()) > 1 {
        Prec::Product
    } else {
        Prec::Atom
    }
}

/// `A` when `e ⊘ d` is a row-wise softmax: e = exp(A), d = exp(A)·1·1ᵀ (one product or two).
pub fn row_softmax(expr: &RecExpr<Math>, e: Id, d: Id) -> Option<Id> {
    let arg = exp_argument(expr, e)?;
    let ones = |id: Id| matches!(expr[id], Math::Ones(_));
    let summed = match expr[d] {
        Math::Mul([x, o]) if ones(o) => match expr[x] {
            Math::Mul([y, o1]) if ones(o1) => y,
            _ => x,
        },
        _ => return None,
    };
    (summed == e).then_some(arg)
}

/// `A` when the node at `id` is the language's `softmax(A)` written out, so that it reads as
/// the user wrote it: rows of a matrix (`exp(A) ⊘ (exp(A)·1·1ᵀ)`) or a vector as a whole
/// (`exp(a) ⊘ (sum(exp(a))·1_n)`: the ones are a column, so `a` is a vector; without them,
/// as in `exp(a)/sum(exp(a))`, nothing here tells a vector from a matrix, whose softmax is
/// by rows).
pub fn softmax_of(expr: &RecExpr<Math>, id: Id) -> Option<Id> {
    let column = |o: Id| match expr[o] {
        Math::Ones([_, c]) => dim_at(expr, c).is_some_and(|c| *c == crate::dim::Dim::one()),
        _ => false,
    };
    match expr[id] {
        Math::HDiv([e, d]) => row_softmax(expr, e, d).or_else(|| match expr[d] {
            Math::Scale([sum, o]) if column(o) && matches!(expr[sum], Math::Sum(x) if x == e) => exp_argument(expr, e),
            _ => None,
        }),
        _ => None,
    }
}

/// `A` when the node at `id` is the language's `logsumexp(A)` written out, `log(sum(exp(A)))`
/// (over every entry, so it reads back as the same function whatever A's shape).
pub fn logsumexp_of(expr: &RecExpr<Math>, id: Id) -> Option<Id> {
    match &expr[id] {
        Math::Fn(crate::ops::Func::Log, args) => match expr[args[0]] {
            Math::Sum(e) => exp_argument(expr, e),
            _ => None,
        },
        _ => None,
    }
}

/// `(a, b, true)` when the node at `id` is the language's `maximum(a, b)` written out,
/// `b + relu(a − b)` (either order); `(a, b, false)` for `minimum(a, b)`, `b − relu(b − a)`.
pub fn extremum_of(expr: &RecExpr<Math>, id: Id) -> Option<(Id, Id, bool)> {
    let Math::Add([l, r]) = expr[id] else {
        return None;
    };
    let negated = |x: Id| match expr[x] {
        Math::Scale([s, y]) if constant_at(expr, s) == Some(-1.0) => Some(y),
        _ => None,
    };
    // relu(x − y) as (x, y).
    let relu_of_difference = |x: Id| match &expr[x] {
        Math::Fn(crate::ops::Func::Relu, args) => match expr[args[0]] {
            Math::Add([p, q]) => negated(q).map(|q| (p, q)),
            _ => None,
        },
        _ => None,
    };
    for (b, other) in [(l, r), (r, l)] {
        if let Some((a, b2)) = relu_of_difference(other) {
            if b2 == b {
                return Some((a, b, true));
            }
        }
    }
    let (b, r) = (l, negated(r)?);
    match relu_of_difference(r) {
        Some((b2, a)) if b2 == b => Some((a, b, false)),
        _ => None,
    }
}

fn exp_argument(expr: &RecExpr<Math>, id: Id) -> Option<Id> {
    match &expr[id] {
        Math::Fn(crate::ops::Func::Exp, args) => Some(args[0]),
        _ => None,
    }
}

/// The dimension at `id`, if it is a dimension leaf.
pub fn dim_at(expr: &RecExpr<Math>, id: Id) -> Option<&crate::dim::Dim> {
    match &expr[id] {
        Math::Dim(crate::ir::DimNode(d)) => Some(d),
        _ => None,
    }
}

/// The children's pieces of `expr[id]`.
pub fn args<'p>(expr: &RecExpr<Math>, id: Id, pieces: &'p [Piece]) -> Vec<&'p Piece> {
    expr[id].children().iter().map(|c| &pieces[usize::from(*c)]).collect()
}
