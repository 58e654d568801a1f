//! Plain-text notation with Unicode: `Gᵀ·1_B`, `X⁻ᵀ`, `A ⊙ B`.

use super::{args, constant_at, dim_at, number, spelled, Form, Piece, Prec, PLAIN, SCALE};
use crate::dim::Dim;
use crate::ir::Math;
use egg::{Id, RecExpr};

pub struct Text;

fn dim_sub(d: &Dim) -> String {
    let s = d.render("·");
    if s.contains('_') || s.contains('·') {
        format!("({s})")
    } else {
        s
    }
}

/// What a scalar multiplies: a product chain reads unbracketed (`3·Xᵀ·Xᵀ`), other products bracketed.
fn scaled(p: &Piece) -> String {
    match p.op {
        Some(MATMUL) | Some(SCALE) if p.prec == Prec::Product => p.text.clone(),
        _ => p.at(Prec::Neg),
    }
}

const MATMUL: &str = "·";

/// A scalar factor: a product of scalars reads unbracketed (`2·tr(X)·I`), anything looser bracketed.
fn scalar_factor(p: &Piece) -> String {
    if p.prec == Prec::Product && p.op == Some(SCALE) {
        p.text.clone()
    } else {
        p.at(Prec::Power)
    }
}

/// `b^-k` as (b, k) for a positive constant k, so that `a·b^-k` can read `a/b^k`.
pub fn reciprocal(expr: &RecExpr<Math>, id: Id) -> Option<(Id, f64)> {
    match &expr[id] {
        Math::Pow([b, k]) => constant_at(expr, *k).filter(|k| *k < 0.0).map(|k| (*b, -k)),
        _ => None,
    }
}

impl Form for Text {
    fn piece(&self, expr: &RecExpr<Math>, id: Id, pieces: &[Piece]) -> Piece {
        use Prec::*;
        let a = args(expr, id, pieces);
        let call = |name: &str| Piece::new(format!("{name}({})", a[0].text), Atom);
        let infix = |op: &'static str| {
            // ⊘ does not associate: X ⊘ (Y ⊘ Z) keeps its brackets.
            let right = if a[1].prec == Neg && a[1].op.is_some() {
                // `−c·x` is a product behind its sign: bare on the right it would read `(y ⊙ −c)·x`.
                format!("({})", a[1].text)
            } else if op == " ⊘ " {
                a[1].at(Prec::Neg)
            } else {
                a[1].right_of(op)
            };
            let mut piece = Piece::new(format!("{}{op}{right}", a[0].left_of(op)), Product).with_op(op);
            piece.leads_with_scale = a[0].prec == Product
                && (a[0].op == Some(SCALE) && op != SCALE || a[0].op == Some(op) && a[0].leads_with_scale);
            piece
        };
        if let Some(arg) = super::softmax_of(expr, id) {
            return Piece::new(format!("softmax({})", pieces[usize::from(arg)].text), Atom);
        }
        if let Some((x, y, max)) = super::extremum_of(expr, id) {
            let name = if max { "maximum" } else { "minimum" };
            let (x, y) = (&pieces[usize::from(x)].text, &pieces[usize::from(y)].text);
            return Piece::new(format!("{name}({x}, {y})"), Atom);
        }
        if let Some(arg) = super::logsumexp_of(expr, id) {
            return Piece::new(format!("logsumexp({})", pieces[usize::from(arg)].text), Atom);
        }
        match &expr[id] {
            Math::Num(c) if c.0 < 0.0 => Piece::new(format!("−{}", number(-c.0)), Neg),
            Math::Num(c) => Piece::new(number(c.0), Atom),
            // `n·n`, not `n²`: a size is printed as input writes it.
            Math::Dim(d) => Piece::new(d.0.render("·"), super::dim_prec(&d.0)),
            Math::Symbol(s) => Piece::new(s.as_str(), Atom),
            Math::Add(_) => {
                let negated = |p: &Piece| {
                    if p.prec == Neg {
                        p.text.strip_prefix('−').map(str::to_string)
                    } else {
                        None
                    }
                };
                let subtrahend = |k: usize| super::subtracted_product(expr, id, k, pieces).or_else(|| negated(a[k]));
                match (negated(a[0]), subtrahend(1)) {
                    // Subtracting a negative reads as adding (`a + Y/N`, not `a − −Y/N`).
                    (_, Some(rest)) if rest.starts_with('−') && a[1].prec != Sum => {
                        Piece::new(format!("{} + {}", a[0].text, &rest['−'.len_utf8()..]), Sum)
                    }
                    (_, Some(rest)) => Piece::new(format!("{} − {rest}", a[0].text), Sum),
                    // Lead with the positive term: b − a, not −a + b.
                    (Some(rest), None) => Piece::new(format!("{} − {rest}", a[1].at(Product)), Sum),
                    (None, None) => Piece::new(format!("{} + {}", a[0].text, a[1].at(Product)), Sum),
                }
            }
            Math::Mul(_) => infix(MATMUL),
            Math::Had(_) => infix(" ⊙ "),
            Math::HDiv(_) => infix(" ⊘ "),
            Math::Kron(_) => infix(" ⊗ "),
            Math::Scale([s, x]) => match constant_at(expr, *s) {
                _ if reciprocal(expr, *s).is_some() => {
                    let (b, k) = reciprocal(expr, *s).expect("checked");
                    let denominator = match k {
                        1.0 => pieces[usize::from(b)].at(Postfix),
                        k => format!("{}^{}", pieces[usize::from(b)].at(Postfix), number(k)),
                    };
                    let numerator = &pieces[usize::from(*x)];
                    match numerator.text.strip_prefix('−') {
                        Some(rest) if numerator.prec == Neg => {
                            Piece::new(format!("−{rest}/{denominator}"), Neg).with_op(SCALE)
                        }
                        _ => Piece::new(format!("{}/{denominator}", numerator.at(Product)), Product).with_op(SCALE),
                    }
                }
                Some(-1.0) if a[1].prec == Product => Piece::new(format!("−{}", scaled(a[1])), Neg).with_op(SCALE),
                Some(-1.0) => Piece::new(format!("−{}", scaled(a[1])), Neg),
                Some(c) if c < 0.0 => Piece::new(format!("−{}·{}", number(-c), scaled(a[1])), Neg).with_op(SCALE),
                Some(c) => Piece::new(format!("{}·{}", number(c), scaled(a[1])), Product).with_op(SCALE),
                None => Piece::new(format!("{}·{}", scalar_factor(a[0]), scaled(a[1])), Product).with_op(SCALE),
            },
            Math::Transpose(x) => match &expr[*x] {
                Math::Inv(y) => Piece::new(format!("{}⁻ᵀ", pieces[usize::from(*y)].at(Postfix)), Postfix),
                _ => Piece::new(format!("{}ᵀ", a[0].at(Postfix)), Postfix),
            },
            Math::Inv(x) => match &expr[*x] {
                Math::Transpose(y) => Piece::new(format!("{}⁻ᵀ", pieces[usize::from(*y)].at(Postfix)), Postfix),
                _ => Piece::new(format!("{}⁻¹", a[0].at(Postfix)), Postfix),
            },
            Math::Pow(_) => Piece::new(format!("{}^{}", a[0].at(Postfix), a[1].at(Atom)), Power),
            Math::EPow(_) => Piece::new(format!("{}.^{}", a[0].at(Postfix), a[1].at(Atom)), Power),
            Math::Norm(_) => Piece::new(format!("‖{}‖", a[0].text), Atom),
            Math::Trace(_) => call("tr"),
            Math::Det(_) => call("det"),
            Math::LogDet(_) => call("logdet"),
            Math::Sum(_) => call("sum"),
            Math::Diag(_) | Math::DiagVec(_) => call("diag"),
            Math::Fn(f, _) => spelled(f.spec().text, &a, &PLAIN),
            Math::Ones([r, c]) => match (dim_at(expr, *r), dim_at(expr, *c)) {
                (Some(r), Some(c)) if c.is_one() => Piece::new(format!("1_{}", dim_sub(r)), Atom),
                (Some(r), Some(c)) if r.is_one() => Piece::new(format!("1_{}ᵀ", dim_sub(c)), Postfix),
                (Some(r), Some(c)) => {
                    Piece::new(format!("1_{}·1_{}ᵀ", dim_sub(r), dim_sub(c)), Product).with_op(MATMUL)
                }
                _ => Piece::new(format!("ones({}, {})", a[0].text, a[1].text), Atom),
            },
            Math::Zeros([r, c]) => match (dim_at(expr, *r), dim_at(expr, *c)) {
                (Some(r), Some(c)) => Piece::new(format!("0_({} x {})", r.render("·"), c.render("·")), Atom),
                _ => Piece::new("0", Atom),
            },
            Math::Eye(n) => match dim_at(expr, *n) {
                Some(d) => Piece::new(format!("I_{}", dim_sub(d)), Atom),
                None => Piece::new("I", Atom),
            },
            Math::DimValue(_) => a[0].clone(),
            Math::BlockSum(_) => Piece::new(format!("blocksum_({} x {})({})", a[1].text, a[2].text, a[0].text), Atom),
            Math::BlockAdd(_) => Piece::new(format!("blockadd_({} x {})({})", a[1].text, a[2].text, a[0].text), Atom),
            Math::Vec(_) => call("vec"),
            Math::Commute(_) => Piece::new(format!("K_({},{})", a[0].text, a[1].text), Atom),
            Math::Unit([_, i]) => Piece::new(format!("e_({} of {})", unit_index(expr, *i), a[0].text), Atom),
            Math::IsMax(_) => call("ismax"),
            Math::Rows(_) => call("rows"),
            Math::Cols(_) => call("cols"),
        }
    }
}

/// A unit vector's position as mathematics counts it, from 1.
pub fn unit_index(expr: &RecExpr<Math>, i: Id) -> String {
    match super::constant_at(expr, i) {
        Some(k) => super::number(k + 1.0),
        None => "i".into(),
    }
}
