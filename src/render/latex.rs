//! LaTeX notation for notes: `G^\top \mathbf{1}_{B}`, `X^{-\top}`, `\operatorname{tr}(A)`.
//! Every string is accepted by KaTeX (checked in CI) and by LaTeX with amsmath.

use super::{args, constant_at, dim_at, number, spelled, CallStyle, Form, Piece, Prec, SCALE};
use crate::dim::Dim;
use crate::ir::Math;
use egg::{Id, RecExpr};

pub struct Latex;

const CALL: CallStyle = CallStyle {
    operator: |op| format!("\\operatorname{{{op}}}"),
    open: "\\left(",
    close: "\\right)",
};

const MATMUL: &str = "";

/// Names set as their Greek letter (`gamma` → γ), as a numpy script's parameters are meant.
const GREEK: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi",
    "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi",
    "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega",
];

/// A name as LaTeX: `W1` → `W_{1}`, `m_X` → `m_{X}`, `gamma` → `\\gamma`; safe to set in math mode.
pub fn name(raw: &str) -> String {
    let (base, sub) = match raw.find('_') {
        Some(i) => (&raw[..i], Some(raw[i + 1..].to_string())),
        None => {
            let digits = raw.trim_end_matches(|c: char| c.is_ascii_digit());
            if digits.len() < raw.len() && !digits.is_empty() {
                (digits, Some(raw[digits.len()..].to_string()))
            } else {
                (raw, None)
            }
        }
    };
    let base = if GREEK.contains(&base) {
        format!("\\{base}")
    } else if base.chars().count() > 1 {
        format!("\\mathit{{{base}}}")
    } else {
        base.to_string()
    };
    match sub {
        Some(s) if !s.is_empty() => format!("{base}_{{{}}}", s.replace('_', "\\_")),
        _ => base,
    }
}

pub fn dim(d: &Dim) -> String {
    let mut parts: Vec<String> = Vec::new();
    if d.coeff() != 1 || d.factors().is_empty() {
        parts.push(d.coeff().to_string());
    }
    // A repeated factor is a power: `B M^{2}`, as the text form's `B·M²`.
    let factors = d.factors();
    let mut k = 0;
    while k < factors.len() {
        let power = factors[k..].iter().take_while(|f| **f == factors[k]).count();
        parts.push(match power {
            1 => name(factors[k]),
            p => format!("{}^{{{p}}}", name(factors[k])),
        });
        k += power;
    }
    parts.join(" ")
}

fn scaled(p: &Piece) -> String {
    match p.op {
        Some(MATMUL) | Some(SCALE) if p.prec == Prec::Product => p.text.clone(),
        _ => p.at(Prec::Neg),
    }
}

/// A superscript base: bracketed unless it is an atom.
fn base(p: &Piece) -> String {
    if p.prec >= Prec::Atom {
        p.text.clone()
    } else {
        format!("\\left({}\\right)", p.text)
    }
}

impl Form for Latex {
    fn piece(&self, expr: &RecExpr<Math>, id: Id, pieces: &[Piece]) -> Piece {
        use Prec::*;
        let a = args(expr, id, pieces);
        let op_call = |op: &str| Piece::new(format!("\\operatorname{{{op}}}\\left({}\\right)", a[0].text), Atom);
        let call = |f: &str| Piece::new(format!("{f}\\left({}\\right)", a[0].text), Atom);
        let paren = |p: &Piece, min: Prec| {
            if p.prec < min {
                format!("\\left({}\\right)", p.text)
            } else {
                p.text.clone()
            }
        };
        let infix = |op: &'static str| {
            let left = match a[0].prec {
                Product if a[0].op == Some(op) || a[0].op == Some(SCALE) => a[0].text.clone(),
                _ => paren(a[0], Neg),
            };
            // ⊘ does not associate: X ⊘ (Y ⊘ Z) keeps its brackets.
            let right = match a[1].prec {
                Product if a[1].op == Some(op) && op != "\\oslash" => a[1].text.clone(),
                _ => paren(a[1], Neg),
            };
            let sep = if op.is_empty() {
                " ".to_string()
            } else {
                format!(" {op} ")
            };
            Piece::new(format!("{left}{sep}{right}"), Product).with_op(op)
        };
        if let Some(arg) = super::softmax_of(expr, id) {
            let argument = &pieces[usize::from(arg)].text;
            return Piece::new(format!("\\operatorname{{softmax}}\\left({argument}\\right)"), Atom);
        }
        if let Some((x, y, max)) = super::extremum_of(expr, id) {
            let name = if max { "maximum" } else { "minimum" };
            let (x, y) = (&pieces[usize::from(x)].text, &pieces[usize::from(y)].text);
            return Piece::new(format!("\\operatorname{{{name}}}\\left({x}, {y}\\right)"), Atom);
        }
        if let Some(arg) = super::logsumexp_of(expr, id) {
            let argument = &pieces[usize::from(arg)].text;
            return Piece::new(format!("\\operatorname{{logsumexp}}\\left({argument}\\right)"), Atom);
        }
        match &expr[id] {
            Math::Num(c) if c.0 < 0.0 => Piece::new(format!("-{}", number(-c.0)), Neg),
            Math::Num(c) => Piece::new(number(c.0), Atom),
            Math::Dim(d) => Piece::new(dim(&d.0), super::dim_prec(&d.0)),
            Math::Symbol(s) => Piece::new(name(s.as_str()), Atom),
            Math::Add(_) => {
                let negated = |p: &Piece| {
                    if p.prec == Neg {
                        p.text.strip_prefix('-').map(str::to_string)
                    } else {
                        None
                    }
                };
                let subtrahend = |k: usize| super::subtracted_product(expr, id, k, pieces).or_else(|| negated(a[k]));
                match (negated(a[0]), subtrahend(1)) {
                    (_, Some(rest)) => Piece::new(format!("{} - {rest}", a[0].text), Sum),
                    (Some(rest), None) => Piece::new(format!("{} - {rest}", paren(a[1], Product)), Sum),
                    (None, None) => Piece::new(format!("{} + {}", a[0].text, paren(a[1], Product)), Sum),
                }
            }
            Math::Mul(_) => infix(MATMUL),
            Math::Had(_) => infix("\\odot"),
            Math::HDiv(_) => infix("\\oslash"),
            Math::Kron(_) => infix("\\otimes"),
            Math::Scale([s, x]) => match constant_at(expr, *s) {
                _ if super::text::reciprocal(expr, *s).is_some() => {
                    let (b, k) = super::text::reciprocal(expr, *s).expect("checked");
                    let denominator = match k {
                        1.0 => pieces[usize::from(b)].text.clone(),
                        k => format!("{}^{{{}}}", base(&pieces[usize::from(b)]), number(k)),
                    };
                    let numerator = &pieces[usize::from(*x)];
                    match numerator.text.strip_prefix('-') {
                        Some(rest) if numerator.prec == Neg => {
                            Piece::new(format!("-\\frac{{{rest}}}{{{denominator}}}"), Neg)
                        }
                        _ => Piece::new(format!("\\frac{{{}}}{{{denominator}}}", numerator.text), Atom),
                    }
                }
                Some(-1.0) => Piece::new(format!("-{}", scaled(a[1])), Neg),
                Some(c) if c < 0.0 => Piece::new(format!("-{} {}", number(-c), scaled(a[1])), Neg),
                Some(c) => Piece::new(format!("{} {}", number(c), scaled(a[1])), Product).with_op(SCALE),
                None => {
                    let factor = if a[0].prec == Product && a[0].op == Some(SCALE) {
                        a[0].text.clone()
                    } else {
                        paren(a[0], Power)
                    };
                    Piece::new(format!("{factor} {}", scaled(a[1])), Product).with_op(SCALE)
                }
            },
            Math::Transpose(x) => match &expr[*x] {
                Math::Inv(y) => Piece::new(format!("{}^{{-\\top}}", base(&pieces[usize::from(*y)])), Postfix),
                _ => Piece::new(format!("{}^\\top", base(a[0])), Postfix),
            },
            Math::Inv(x) => match &expr[*x] {
                Math::Transpose(y) => Piece::new(format!("{}^{{-\\top}}", base(&pieces[usize::from(*y)])), Postfix),
                _ => Piece::new(format!("{}^{{-1}}", base(a[0])), Postfix),
            },
            Math::Pow(_) => Piece::new(format!("{}^{{{}}}", base(a[0]), a[1].text), Power),
            Math::EPow(_) => Piece::new(format!("{}^{{\\circ {}}}", base(a[0]), a[1].text), Power),
            Math::Norm(_) => Piece::new(format!("\\left\\lVert {} \\right\\rVert", a[0].text), Atom),
            Math::Trace(_) => op_call("tr"),
            Math::Det(_) => call("\\det"),
            Math::LogDet(_) => call("\\log\\det"),
            Math::Sum(_) => op_call("sum"),
            Math::Diag(_) | Math::DiagVec(_) => op_call("diag"),
            Math::Fn(f, _) => spelled(f.spec().latex, &a, &CALL),
            Math::Ones([r, c]) => match (dim_at(expr, *r), dim_at(expr, *c)) {
                (Some(r), Some(c)) if c.is_one() => Piece::new(format!("\\mathbf{{1}}_{{{}}}", dim(r)), Atom),
                (Some(r), Some(c)) if r.is_one() => Piece::new(format!("\\mathbf{{1}}_{{{}}}^\\top", dim(c)), Postfix),
                (Some(r), Some(c)) => Piece::new(
                    format!("\\mathbf{{1}}_{{{}}} \\mathbf{{1}}_{{{}}}^\\top", dim(r), dim(c)),
                    Product,
                )
                .with_op(MATMUL),
                _ => Piece::new("\\mathbf{1}", Atom),
            },
            Math::Zeros([r, c]) => match (dim_at(expr, *r), dim_at(expr, *c)) {
                (Some(r), Some(c)) => Piece::new(format!("0_{{{} \\times {}}}", dim(r), dim(c)), Atom),
                _ => Piece::new("0", Atom),
            },
            Math::Eye(n) => match dim_at(expr, *n) {
                Some(d) => Piece::new(format!("I_{{{}}}", dim(d)), Atom),
                None => Piece::new("I", Atom),
            },
            Math::DimValue(_) => a[0].clone(),
            Math::BlockSum(_) => Piece::new(
                format!(
                    "\\operatorname{{blocksum}}_{{{} \\times {}}}\\left({}\\right)",
                    a[1].text, a[2].text, a[0].text
                ),
                Atom,
            ),
            Math::BlockAdd(_) => Piece::new(
                format!(
                    "\\operatorname{{blockadd}}_{{{} \\times {}}}\\left({}\\right)",
                    a[1].text, a[2].text, a[0].text
                ),
                Atom,
            ),
            Math::Vec(_) => op_call("vec"),
            Math::Commute(_) => Piece::new(format!("K_{{{}, {}}}", a[0].text, a[1].text), Atom),
            Math::Unit([_, i]) => Piece::new(format!("e_{{{}}}", super::text::unit_index(expr, *i)), Atom),
            Math::IsMax(_) => op_call("ismax"),
            Math::Rows(_) => op_call("rows"),
            Math::Cols(_) => op_call("cols"),
        }
    }
}

/// A shape in LaTeX: `B \times M`, `M` for a column, `1 \times M`, `\text{scalar}`.
pub fn shape(s: &crate::dim::Shape) -> String {
    if s.is_scalar() {
        "\\text{scalar}".to_string()
    } else if s.is_column() {
        dim(&s.rows)
    } else {
        format!("{} \\times {}", dim(&s.rows), dim(&s.cols))
    }
}
