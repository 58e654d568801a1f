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

/// What a token of a formula is to line breaking.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// `\left(`, `(`, `[`: opens a bracket.
    Open,
    /// `\right)^\top`, `)`: closes one (with the scripts it carries).
    Close,
    /// `+`, `-`.
    Sum,
    /// `\odot`, `\oslash`, `\otimes`, `\cdot`, `\times`.
    Product,
    /// `=`, `\in`, `\leq`.
    Relation,
    /// Whitespace in the source: a matrix product where it stands between two factors.
    Space,
    /// A factor, or something that binds to the next token (`\sum`, `\partial`, a number).
    Term,
}

/// One unit of a formula that a line break never splits: a command with its arguments and
/// scripts, a group, a bracket, an operator, one character.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    role: Role,
}

impl Token {
    fn new(text: &str, role: Role) -> Token {
        Token {
            text: text.to_string(),
            role,
        }
    }
}

const BINARY: &[&str] = &["\\odot", "\\oslash", "\\otimes", "\\cdot", "\\times", "\\circ"];
const RELATIONS: &[&str] = &["\\in", "\\leq", "\\geq", "\\neq", "\\to", "\\sim", "\\approx"];

/// The end of the group opening at `at` (a `{`), just past its `}`.
fn group_end(s: &[u8], at: usize) -> usize {
    let mut depth = 0;
    let mut i = at;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// The end of the control sequence starting at `at` (a `\`).
fn command_end(s: &[u8], at: usize) -> usize {
    let mut i = at + 1;
    while i < s.len() && s[i].is_ascii_alphabetic() {
        i += 1;
    }
    if i == at + 1 && i < s.len() {
        i += 1;
    }
    i
}

/// Past the one script (`^…` or `_…`) at `at`.
fn script_end(s: &[u8], at: usize) -> usize {
    match s.get(at + 1) {
        Some(b'{') => group_end(s, at + 1),
        Some(b'\\') => command_end(s, at + 1),
        Some(_) => at + 2,
        None => at + 1,
    }
}

/// Past the `^…`/`_…` scripts following `at`.
fn scripts_end(s: &[u8], mut at: usize) -> usize {
    while at < s.len() && (s[at] == b'^' || s[at] == b'_') {
        at = script_end(s, at);
    }
    at
}

fn tokens(tex: &str) -> Vec<Token> {
    let s = tex.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let start = i;
        let role = match s[i] {
            c if c.is_ascii_whitespace() => {
                while i < s.len() && s[i].is_ascii_whitespace() {
                    i += 1;
                }
                out.push(Token::new(&tex[start..i], Role::Space));
                continue;
            }
            b'\\' => {
                i = command_end(s, i);
                let name = &tex[start..i];
                match name {
                    "\\left" | "\\right" => {
                        i = if s.get(i) == Some(&b'\\') {
                            command_end(s, i)
                        } else {
                            i + 1
                        }
                        .min(s.len());
                        if name == "\\left" {
                            Role::Open
                        } else {
                            Role::Close
                        }
                    }
                    _ if BINARY.contains(&name) => Role::Product,
                    _ if RELATIONS.contains(&name) => Role::Relation,
                    _ => {
                        while s.get(i) == Some(&b'{') {
                            i = group_end(s, i);
                        }
                        Role::Term
                    }
                }
            }
            b'{' => {
                i = group_end(s, i);
                Role::Term
            }
            c => {
                i += 1;
                match c {
                    b'(' | b'[' => Role::Open,
                    b')' | b']' => Role::Close,
                    b'+' | b'-' => Role::Sum,
                    b'=' | b'<' | b'>' => Role::Relation,
                    b'0'..=b'9' | b'.' => {
                        while i < s.len() && (s[i].is_ascii_digit() || s[i] == b'.') {
                            i += 1;
                        }
                        Role::Term
                    }
                    _ => Role::Term,
                }
            }
        };
        if matches!(role, Role::Term | Role::Close) {
            i = scripts_end(s, i);
        }
        out.push(Token::new(&tex[start..i], role));
    }
    out
}

/// The contents of the groups `{…}` directly after a command, in order.
fn arguments(tex: &str) -> Vec<&str> {
    let s = tex.as_bytes();
    let mut i = command_end(s, 0);
    let mut out = Vec::new();
    while s.get(i) == Some(&b'{') {
        let end = group_end(s, i);
        out.push(&tex[i + 1..end.saturating_sub(1).max(i + 1)]);
        i = end;
    }
    out
}

/// Letters of a text-like argument (`\text{…}`, `\operatorname{…}`), escapes counted once.
fn letters(arg: &str) -> f64 {
    arg.chars().filter(|c| *c != '\\' && *c != '{' && *c != '}').count() as f64
}

/// The set width of a formula in points, in display style at 10pt, estimated from its visible
/// glyphs (a letter about 5pt, a capital 7pt, an operator with its spacing 12pt, scripts at
/// 70%, a fraction as wide as its wider part), within a few percent of what pdflatex sets.
pub fn width(tex: &str) -> f64 {
    // Measured against pdflatex on the notes' equations, the glyph estimate runs about 4% short.
    width_at(tex, 1.0) * 1.04
}

fn width_at(tex: &str, size: f64) -> f64 {
    let script = (size * 0.7).max(0.5);
    let spaced = |glyph: f64, space: f64| if size < 0.9 { glyph } else { glyph + space };
    // Brackets grow around a fraction (taken to be anywhere in the formula: it errs wide).
    let tall = tex.contains("\\frac");
    tokens(tex)
        .iter()
        .map(|t| {
            let text = t.text.as_str();
            // The scripts a token carries: sub- and superscript overlap, so the wider counts.
            let body_end = if text.starts_with('{') {
                group_end(text.as_bytes(), 0)
            } else if text.starts_with('\\') {
                let mut i = command_end(text.as_bytes(), 0);
                if matches!(&text[..i], "\\left" | "\\right") {
                    i = if text.as_bytes().get(i) == Some(&b'\\') {
                        command_end(text.as_bytes(), i)
                    } else {
                        i + 1
                    }
                    .min(text.len());
                }
                while text.as_bytes().get(i) == Some(&b'{') {
                    i = group_end(text.as_bytes(), i);
                }
                i
            } else {
                text.find(['^', '_']).unwrap_or(text.len())
            };
            let (body, scripts) = text.split_at(body_end);
            let mut script_width: f64 = 0.0;
            let sb = scripts.as_bytes();
            let mut i = 0;
            while i < sb.len() {
                let end = script_end(sb, i).max(i + 1);
                let inner = scripts[i + 1..end].trim_start_matches('{').trim_end_matches('}');
                script_width = script_width.max(width_at(inner, script) + 0.5);
                i = end;
            }
            let glyphs = match t.role {
                Role::Space => 0.0,
                Role::Sum => spaced(7.8, 4.4),
                Role::Product => match body {
                    "\\circ" => spaced(5.0, 4.4),
                    "\\cdot" => spaced(2.8, 4.4),
                    _ => spaced(7.8, 4.4),
                },
                Role::Relation => spaced(7.8, 5.6),
                Role::Open | Role::Close => {
                    if body.ends_with('.') {
                        1.2
                    } else if tall {
                        6.0 * size
                    } else {
                        4.6 * size
                    }
                }
                Role::Term => term_width(body, size),
            };
            if body == "\\sum" {
                // Display limits sit under and over the sign.
                glyphs.max(script_width)
            } else {
                glyphs + script_width
            }
        })
        .sum()
}

fn term_width(body: &str, size: f64) -> f64 {
    let inner = |arg: &str, at: f64| width_at(arg, at);
    let glyph = |c: char| -> f64 {
        if c.is_ascii_uppercase() {
            8.0
        } else if c == ',' || c == ';' {
            4.5
        } else if c == '.' || c == '\'' || c == '|' || c == '!' {
            2.8
        } else {
            5.0
        }
    };
    let w = if let Some(group) = body.strip_prefix('{') {
        return inner(group.strip_suffix('}').unwrap_or(group), size);
    } else if body.starts_with('\\') {
        let name = &body[..command_end(body.as_bytes(), 0)];
        let args = arguments(body);
        match name {
            "\\frac" => {
                // Display style sets its parts in text style, a fraction inside them smaller.
                let at = if size >= 1.0 { 0.999 } else { (size * 0.7).max(0.5) };
                let parts = args.iter().map(|a| inner(a, at)).fold(0.0, f64::max);
                return parts + 2.4 * size;
            }
            "\\sqrt" => return 8.3 * size + args.first().map_or(0.0, |a| inner(a, size)),
            "\\operatorname" | "\\mathrm" => 4.8 * args.first().map_or(0.0, |a| letters(a)) + 1.7,
            "\\mathit" => 4.9 * args.first().map_or(0.0, |a| letters(a)),
            "\\text" | "\\textrm" => 4.4 * args.first().map_or(0.0, |a| letters(a)),
            "\\mathbf" => 5.8 * args.first().map_or(0.0, |a| letters(a)),
            "\\hat" | "\\overline" | "\\tilde" | "\\vec" => args.first().map_or(5.0, |a| inner(a, size).max(5.0)),
            "\\quad" => 10.0,
            "\\qquad" => 20.0,
            "\\ " | "\\;" => 3.3,
            "\\," => 1.7,
            "\\!" => -1.7,
            "\\sum" => 14.4,
            "\\log" | "\\ln" | "\\det" | "\\exp" | "\\sin" | "\\cos" | "\\tan" | "\\tanh" | "\\sinh" | "\\cosh"
            | "\\max" | "\\min" | "\\arg" | "\\lim" => 4.8 * (name.len() - 1) as f64 + 1.7,
            "\\top" => 9.0,
            "\\checkmark" | "\\surd" | "\\nabla" | "\\%" | "\\#" | "\\infty" => 8.3,
            _ if name[1..].starts_with(|c: char| c.is_ascii_uppercase()) => 7.5,
            _ => 5.8,
        }
    } else {
        body.chars().map(glyph).sum()
    };
    w * size
}

/// Where a formula may be broken, best first: at a relation, at a sum's `+`/`−`, at a
/// Hadamard, Kronecker or scalar product, between the factors of a matrix product.
const LEVELS: [Role; 4] = [Role::Relation, Role::Sum, Role::Product, Role::Space];

fn tokens_width(ts: &[Token]) -> f64 {
    ts.iter().map(|t| width(&t.text)).sum()
}

fn trimmed(mut ts: &[Token]) -> &[Token] {
    while ts.first().is_some_and(|t| t.role == Role::Space) {
        ts = &ts[1..];
    }
    while ts.last().is_some_and(|t| t.role == Role::Space) {
        ts = &ts[..ts.len() - 1];
    }
    ts
}

/// The bracket depth before each token.
fn depths(ts: &[Token]) -> Vec<i32> {
    let mut depth = 0;
    ts.iter()
        .map(|t| {
            let before = depth;
            match t.role {
                Role::Open => depth += 1,
                Role::Close => depth -= 1,
                _ => {}
            }
            before.min(depth)
        })
        .collect()
}

/// The cuts at `level` outside every bracket: the token each new line starts with (the
/// operator; for a matrix product the space between two factors).
fn cuts(ts: &[Token], level: Role) -> Vec<usize> {
    let depth = depths(ts);
    let solid = |t: &Token| t.role != Role::Space;
    (1..ts.len())
        .filter(|&k| depth[k] == 0 && ts[k].role == level)
        .filter(|&k| {
            let before = ts[..k].iter().rev().find(|t| solid(t));
            let after = ts[k + 1..].iter().find(|t| solid(t));
            match level {
                // A sign after an operator or an opening bracket is unary.
                Role::Sum | Role::Product | Role::Relation => {
                    before.is_some_and(|b| matches!(b.role, Role::Term | Role::Close))
                }
                // Between two factors; not after a sign, a number or an operator that takes
                // what follows (`\sum_{i}`, `\partial`, `\operatorname{diag}`).
                _ => {
                    let binds = |t: &Token| {
                        t.text.starts_with("\\sum")
                            || t.text.starts_with("\\partial")
                            || t.text.starts_with("\\operatorname")
                            || t.text.starts_with("\\log")
                            || t.text.starts_with("\\det")
                            || t.text.starts_with(|c: char| c.is_ascii_digit())
                    };
                    before.is_some_and(|b| matches!(b.role, Role::Term | Role::Close) && !binds(b))
                        && after.is_some_and(|a| matches!(a.role, Role::Term | Role::Open))
                }
            }
        })
        .collect()
}

/// A formula laid out on lines of at most `first` points (the first) and `rest` points (the
/// others), each line a run of tokens. A line that cannot be made narrow enough stays wide.
fn layout(ts: &[Token], first: f64, rest: f64) -> Vec<Vec<Token>> {
    let ts = trimmed(ts);
    if tokens_width(ts) <= first {
        return vec![ts.to_vec()];
    }
    for level in LEVELS {
        let at = cuts(ts, level);
        if at.is_empty() {
            continue;
        }
        let mut bounds = vec![0];
        bounds.extend(&at);
        bounds.push(ts.len());
        let mut lines: Vec<Vec<Token>> = Vec::new();
        let mut line: Vec<Token> = Vec::new();
        for pair in bounds.windows(2) {
            let segment = trimmed(&ts[pair[0]..pair[1]]);
            let budget = if lines.is_empty() { first } else { rest };
            let mut joined = line.clone();
            if !joined.is_empty() {
                joined.push(Token::new(" ", Role::Space));
            }
            joined.extend_from_slice(segment);
            let left = budget - tokens_width(&line);
            if line.is_empty() || tokens_width(&joined) <= budget {
                line = joined;
            } else if tokens_width(segment) > rest && left >= budget / 3.0 {
                // It needs breaking wherever it starts: it starts here, after a short head
                // (`-\frac{1}{N}`) that would otherwise stand alone.
                let mut parts = layout(&joined[line.len()..], left, rest);
                line.extend(parts.remove(0));
                lines.push(std::mem::take(&mut line));
                line = parts.pop().unwrap_or_default();
                lines.extend(parts);
            } else {
                lines.push(std::mem::take(&mut line));
                line = segment.to_vec();
            }
            let budget = if lines.is_empty() { first } else { rest };
            if tokens_width(&line) > budget {
                // Too wide alone: broken at the next levels (or inside its brackets).
                let mut parts = layout(&line, budget, rest);
                line = parts.pop().unwrap_or_default();
                lines.extend(parts);
            }
        }
        lines.push(line);
        return lines;
    }
    inside_brackets(ts, first, rest).unwrap_or_else(|| vec![ts.to_vec()])
}

/// Whether the whole formula is one bracket, `(…)` or `\left(…\right)`, without scripts.
fn enclosed(ts: &[Token]) -> bool {
    let depth = depths(ts);
    ts.len() >= 2
        && ts[0].role == Role::Open
        && ts[ts.len() - 1].role == Role::Close
        && matches!(ts[ts.len() - 1].text.as_str(), ")" | "\\right)")
        && depth[1..ts.len() - 1].iter().all(|d| *d > 0)
}

/// A formula with no break outside brackets, broken inside its widest bracket (or the
/// numerator of its widest fraction, written `\frac{1}{d} \left(n\right)`).
fn inside_brackets(ts: &[Token], first: f64, rest: f64) -> Option<Vec<Vec<Token>>> {
    let depth = depths(ts);
    let mut widest: Option<(usize, usize, f64)> = None;
    for open in (0..ts.len()).filter(|&k| ts[k].role == Role::Open && depth[k] == 0) {
        let close = (open + 1..ts.len()).find(|&k| ts[k].role == Role::Close && depth[k] == 0)?;
        let w = tokens_width(&ts[open + 1..close]);
        if widest.is_none_or(|(_, _, best)| w > best) {
            widest = Some((open, close, w));
        }
    }
    let fraction = (0..ts.len())
        .filter(|&k| depth[k] == 0 && ts[k].text.starts_with("\\frac{"))
        .map(|k| (k, width(&ts[k].text)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match (widest, fraction) {
        (_, Some((k, w))) if widest.is_none_or(|(_, _, b)| w > b) => {
            let text = &ts[k].text;
            let args = arguments(text);
            let (numerator, denominator) = (args.first()?, args.get(1)?);
            // Only a bare fraction (no scripts), whose denominator is a scalar as every
            // `\frac` of the `latex` form is: n/d = (1/d)·n.
            let bare = text.len() == "\\frac".len() + numerator.len() + denominator.len() + 4;
            if !bare || width(numerator) <= width(denominator) {
                return None;
            }
            let mut rewritten = ts[..k].to_vec();
            rewritten.push(Token::new(&format!("\\frac{{1}}{{{denominator}}}"), Role::Term));
            rewritten.push(Token::new(" ", Role::Space));
            let mut inner = tokens(numerator);
            if enclosed(&inner) {
                inner = inner[1..inner.len() - 1].to_vec();
            }
            rewritten.push(Token::new("\\left(", Role::Open));
            rewritten.extend(inner);
            rewritten.push(Token::new("\\right)", Role::Close));
            rewritten.extend_from_slice(&ts[k + 1..]);
            Some(layout(&rewritten, first, rest))
        }
        (Some((open, close, _)), _) => {
            let head = &ts[..=open];
            let tail = &ts[close..];
            let mut lines = layout(&ts[open + 1..close], first - tokens_width(head), rest);
            let mut opening = head.to_vec();
            opening.append(&mut lines[0]);
            lines[0] = opening;
            lines.last_mut()?.extend_from_slice(tail);
            Some(lines)
        }
        _ => None,
    }
}

/// A formula broken into lines of at most `first` points (the first line) and `rest` points
/// (the others), at the best places [`LEVELS`] offers; one line when it fits. Each line is
/// valid on its own: a `\left` closed on a later line is closed here with `\right.` and
/// reopened there with `\left.`, and a line that starts with a binary operator starts with
/// `{}` so that the operator keeps its spacing.
pub fn break_lines(tex: &str, first: f64, rest: f64) -> Vec<String> {
    let lines = layout(&tokens(tex), first, rest);
    let count = lines.len();
    lines
        .into_iter()
        .enumerate()
        .map(|(k, line)| {
            let mut unopened = 0;
            let mut unclosed = 0;
            for t in &line {
                let sized = t.text.starts_with("\\left") || t.text.starts_with("\\right");
                match t.role {
                    Role::Open if sized => unclosed += 1,
                    Role::Close if sized && unclosed > 0 => unclosed -= 1,
                    Role::Close if sized => unopened += 1,
                    _ => {}
                }
            }
            let body: String = line.iter().map(|t| t.text.as_str()).collect();
            let lead = match line.first().map(|t| t.role) {
                Some(Role::Sum | Role::Product) if k > 0 => "{} ",
                _ => "",
            };
            let reopen = "\\left. ".repeat(unopened);
            let close = " \\right.".repeat(unclosed);
            debug_assert!(k + 1 < count || unclosed == 0, "every bracket closes on the last line");
            format!("{reopen}{lead}{body}{close}")
        })
        .collect()
}
