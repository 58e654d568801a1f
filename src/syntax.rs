//! Parsing: the pest grammar in `grammar/matdiff.pest` gives a flat token stream per
//! expression; a Pratt parser sets precedence. The result is an AST with byte spans,
//! so that every later phase can point at the place in the input.

use crate::diagnostic::{Error, Span};
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/matdiff.pest"]
struct Grammar;

/// Deepest bracket nesting accepted; deeper input is rejected before parsing so that
/// the recursive descent can never exhaust the stack.
pub const MAX_NESTING: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Declare {
        name: String,
        name_span: Span,
        shape: ShapeDecl,
        symmetric: bool,
    },
    Define {
        name: String,
        name_span: Span,
        expr: Expr,
    },
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ShapeDecl {
    Scalar,
    Vector(DimLit),
    Matrix(DimLit, DimLit),
}

/// A declared size: the product of its factors (`B`, `3`, `4*H`).
#[derive(Debug, Clone, PartialEq)]
pub struct DimLit {
    pub factors: Vec<DimLitKind>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DimLitKind {
    Name(String),
    Size(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    ElemMul,
    ElemDiv,
    ElemPow,
    Kron,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::ElemMul => ".*",
            BinOp::ElemDiv => "./",
            BinOp::ElemPow => ".^",
            BinOp::Kron => "kron",
            BinOp::Pow => "^",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostfixOp {
    Transpose,
    Inverse,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Number(f64),
    Name(String),
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Postfix(PostfixOp, Box<Expr>),
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::elem_mul, Assoc::Left)
                | Op::infix(Rule::elem_div, Assoc::Left)
                | Op::infix(Rule::kron_op, Assoc::Left))
            .op(Op::prefix(Rule::neg))
            .op(Op::infix(Rule::pow, Assoc::Right) | Op::infix(Rule::elem_pow, Assoc::Right))
            .op(Op::postfix(Rule::transpose) | Op::postfix(Rule::inverse) | Op::postfix(Rule::inverse_transpose))
    })
}

/// Parses a whole script into statements.
pub fn parse(source: &str) -> Result<Vec<Statement>, Error> {
    check_nesting(source)?;
    let mut pairs = Grammar::parse(Rule::program, source).map_err(|e| explain(source, e))?;
    let program = pairs.next().expect("program rule always yields one pair");
    program
        .into_inner()
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(statement)
        .collect()
}

/// The characters of the script outside comments, with their byte offsets.
fn code_chars(source: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_comment = false;
    source.char_indices().filter(move |&(_, c)| {
        match c {
            '#' => in_comment = true,
            '\n' => in_comment = false,
            _ => {}
        }
        !in_comment
    })
}

fn check_nesting(source: &str) -> Result<(), Error> {
    let mut depth = 0usize;
    for (i, c) in code_chars(source) {
        match c {
            '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Error::syntax(
                        format!("brackets nest deeper than {MAX_NESTING} levels"),
                        Span::new(i, i + 1),
                    ));
                }
            }
            ')' => depth = depth.saturating_sub(1),
            '\n' => depth = 0,
            _ => {}
        }
    }
    Ok(())
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn statement(pair: Pair<Rule>) -> Result<Statement, Error> {
    match pair.as_rule() {
        Rule::declaration => {
            let mut inner = pair.into_inner();
            let name = inner.next().expect("declaration has a name");
            let shape_pair = inner.next().expect("declaration has a shape");
            let symmetric = inner.next().is_some();
            Ok(Statement::Declare {
                name: name.as_str().to_string(),
                name_span: span_of(&name),
                shape: shape_decl(shape_pair)?,
                symmetric,
            })
        }
        Rule::definition => {
            let mut inner = pair.into_inner();
            let name = inner.next().expect("definition has a name");
            let body = inner.next().expect("definition has a body");
            Ok(Statement::Define {
                name: name.as_str().to_string(),
                name_span: span_of(&name),
                expr: expr(body.into_inner())?,
            })
        }
        Rule::expr => Ok(Statement::Expr(expr(pair.into_inner())?)),
        other => unreachable!("statement rule {other:?}"),
    }
}

fn shape_decl(pair: Pair<Rule>) -> Result<ShapeDecl, Error> {
    let dims: Vec<Pair<Rule>> = pair.into_inner().collect();
    match dims.as_slice() {
        [only] if only.as_rule() == Rule::scalar_kw => Ok(ShapeDecl::Scalar),
        [n] => Ok(ShapeDecl::Vector(dim_lit(n)?)),
        [m, n] => Ok(ShapeDecl::Matrix(dim_lit(m)?, dim_lit(n)?)),
        _ => unreachable!("shape has one or two dims"),
    }
}

fn dim_lit(pair: &Pair<Rule>) -> Result<DimLit, Error> {
    let span = span_of(pair);
    let factors = pair
        .clone()
        .into_inner()
        .map(|factor| match factor.as_rule() {
            Rule::ident => Ok(DimLitKind::Name(factor.as_str().to_string())),
            Rule::integer => match factor.as_str().parse::<u64>() {
                Ok(0) => Err(Error::syntax("a dimension must be at least 1", span_of(&factor))),
                Ok(n) => Ok(DimLitKind::Size(n)),
                Err(_) => Err(Error::syntax("dimension is too large", span_of(&factor))),
            },
            other => unreachable!("dim factor {other:?}"),
        })
        .collect::<Result<_, _>>()?;
    Ok(DimLit { factors, span })
}

fn expr(pairs: Pairs<Rule>) -> Result<Expr, Error> {
    pratt()
        .map_primary(primary)
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let span = span_of(&op).join(rhs.span);
            Ok(Expr {
                kind: ExprKind::Neg(Box::new(rhs)),
                span,
            })
        })
        .map_postfix(|lhs, op| {
            let lhs = lhs?;
            let span = lhs.span.join(span_of(&op));
            let op = match op.as_rule() {
                Rule::transpose => PostfixOp::Transpose,
                Rule::inverse => PostfixOp::Inverse,
                Rule::inverse_transpose => {
                    // X⁻ᵀ is (X⁻¹)ᵀ.
                    let inverse = Expr {
                        kind: ExprKind::Postfix(PostfixOp::Inverse, Box::new(lhs)),
                        span,
                    };
                    return Ok(Expr {
                        kind: ExprKind::Postfix(PostfixOp::Transpose, Box::new(inverse)),
                        span,
                    });
                }
                other => unreachable!("postfix {other:?}"),
            };
            Ok(Expr {
                kind: ExprKind::Postfix(op, Box::new(lhs)),
                span,
            })
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let span = lhs.span.join(rhs.span);
            let op = match op.as_rule() {
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                Rule::elem_mul => BinOp::ElemMul,
                Rule::elem_div => BinOp::ElemDiv,
                Rule::elem_pow => BinOp::ElemPow,
                Rule::kron_op => BinOp::Kron,
                Rule::pow => BinOp::Pow,
                other => unreachable!("infix {other:?}"),
            };
            Ok(Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            })
        })
        .parse(pairs)
}

fn primary(pair: Pair<Rule>) -> Result<Expr, Error> {
    let span = span_of(&pair);
    let kind = match pair.as_rule() {
        Rule::number => {
            let value: f64 = pair
                .as_str()
                .parse()
                .map_err(|_| Error::syntax("malformed number", span))?;
            if !value.is_finite() {
                return Err(Error::syntax("number is too large", span));
            }
            ExprKind::Number(value)
        }
        Rule::ident => ExprKind::Name(pair.as_str().to_string()),
        Rule::expr => return expr(pair.into_inner()),
        Rule::call => {
            let mut inner = pair.into_inner();
            let name = inner.next().expect("call has a name");
            let args = inner.map(|arg| expr(arg.into_inner())).collect::<Result<Vec<_>, _>>()?;
            ExprKind::Call {
                name: canonical_function(name.as_str()).to_string(),
                name_span: span_of(&name),
                args,
            }
        }
        Rule::ones_lit | Rule::zeros_lit | Rule::eye_lit | Rule::commute_lit | Rule::unit_lit => {
            let name = match pair.as_rule() {
                Rule::ones_lit => "ones",
                Rule::eye_lit => "eye",
                Rule::commute_lit => "commute",
                Rule::unit_lit => "unit",
                _ => "zeros",
            };
            let mut args: Vec<Expr> = pair.into_inner().map(|d| dim_expr(&d)).collect();
            if name == "unit" {
                // `e_(i of m)` is `unit(m, i)`: the size first, as `ones(m)`.
                args.reverse();
            }
            ExprKind::Call {
                name: name.to_string(),
                name_span: span,
                args,
            }
        }
        Rule::blocksum_lit | Rule::blockadd_lit => {
            let name = if pair.as_rule() == Rule::blocksum_lit {
                "blocksum"
            } else {
                "blockadd"
            };
            let mut inner: Vec<Pair<Rule>> = pair.into_inner().collect();
            let operand = inner.pop().expect("a block sum has an operand");
            let mut args = vec![expr(operand.into_inner())?];
            args.extend(inner.iter().map(dim_expr));
            ExprKind::Call {
                name: name.to_string(),
                name_span: span,
                args,
            }
        }
        Rule::norm_bars | Rule::abs_bars => {
            let name = if pair.as_rule() == Rule::norm_bars {
                "norm"
            } else {
                "abs"
            };
            let inner = pair.into_inner().next().expect("bars hold an expression");
            ExprKind::Call {
                name: name.to_string(),
                name_span: span,
                args: vec![expr(inner.into_inner())?],
            }
        }
        other => unreachable!("primary {other:?}"),
    };
    Ok(Expr { kind, span })
}

/// A size written in notation (`B` in `1_B`, `4·H` in `I_(4·H)`) as the expression a call's
/// argument is: a name, a number, or their product.
fn dim_expr(pair: &Pair<Rule>) -> Expr {
    let factor = |p: Pair<Rule>| {
        let span = span_of(&p);
        let kind = match p.as_str().parse::<f64>() {
            Ok(n) => ExprKind::Number(n),
            Err(_) => ExprKind::Name(p.as_str().to_string()),
        };
        Expr { kind, span }
    };
    let mut factors = pair.clone().into_inner().map(factor);
    let first = factors.next().expect("a size has a factor");
    factors.fold(first, |product, next| Expr {
        span: Span::new(product.span.start, next.span.end),
        kind: ExprKind::Binary(BinOp::Mul, Box::new(product), Box::new(next)),
    })
}

/// Turns a pest error into one a person can act on: an unclosed bracket or a stray
/// character is named as such; otherwise pest's expectation is phrased in words.
fn explain(source: &str, err: pest::error::Error<Rule>) -> Error {
    if let Some(e) = bracket_error(source) {
        return e;
    }
    let at = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    if let Some(c) = source[at.min(source.len())..].chars().next() {
        let known = c.is_alphanumeric() || c.is_whitespace() || "+-*/^.'()[],;:=#_\\−·⊙⊘⊗×ᵀ⁻¹σ‖|".contains(c);
        if !known {
            return Error::syntax(format!("unexpected character `{c}`"), Span::new(at, at + c.len_utf8()))
                .with_note("operators are + - * / .* ./ .^ ^ ' and functions such as tr(...)");
        }
    }
    from_pest(err)
}

fn bracket_error(source: &str) -> Option<Error> {
    let mut open: Vec<usize> = Vec::new();
    for (i, c) in code_chars(source) {
        match c {
            '(' => open.push(i),
            ')' if open.pop().is_none() => {
                return Some(Error::syntax("unmatched `)`", Span::new(i, i + 1)).with_label("no `(` opens this"));
            }
            _ => {}
        }
    }
    open.first()
        .map(|&i| Error::syntax("unclosed `(`", Span::new(i, i + 1)).with_label("this `(` is never closed"))
}

/// Other tools' names for matdiff's functions, accepted as they are.
const SYNONYMS: &[(&str, &str)] = &[
    ("trace", "tr"),
    ("Tr", "tr"),
    ("Trace", "tr"),
    ("inverse", "inv"),
    ("σ", "sigmoid"),
    ("Inverse", "inv"),
    ("determinant", "det"),
    ("Determinant", "det"),
    ("transpose", "transpose"),
];

/// Synonyms of elementwise functions are the operator table's aliases.
fn canonical_function(name: &str) -> &str {
    let synonym = SYNONYMS.iter().find(|(s, _)| *s == name).map(|(_, c)| *c);
    synonym.or_else(|| crate::ops::alias_of(name)).unwrap_or(name)
}

fn from_pest(err: pest::error::Error<Rule>) -> Error {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match err.location {
        InputLocation::Pos(p) => Span::new(p, p),
        InputLocation::Span((s, e)) => Span::new(s, e),
    };
    let message = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut wanted: Vec<&str> = positives.iter().filter_map(|r| describe(*r)).collect();
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                "unexpected input".to_string()
            } else {
                format!("expected {}", join_alternatives(&wanted))
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    Error::syntax(message, span)
}

fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::expr | Rule::number | Rule::ident | Rule::call | Rule::neg => "an expression",
        Rule::add
        | Rule::sub
        | Rule::mul
        | Rule::div
        | Rule::elem_mul
        | Rule::elem_div
        | Rule::elem_pow
        | Rule::kron_op
        | Rule::pow => "an operator",
        Rule::transpose | Rule::inverse | Rule::inverse_transpose => "an operator",
        Rule::shape | Rule::dim | Rule::scalar_kw | Rule::integer => "a shape (`scalar`, `n` or `m x n`)",
        Rule::symmetric => "`symmetric`",
        Rule::EOI => "end of input",
        Rule::statement | Rule::declaration | Rule::definition => "a statement",
        _ => return None,
    })
}

fn join_alternatives(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {}", rest.join(", "), last),
    }
}
