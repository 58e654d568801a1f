//! Reading the numpy dialect: a tokenizer with Python's indentation (INDENT and DEDENT
//! tokens, brackets and `\` joining lines) and a recursive-descent parser for the subset
//! a forward pass is written in. Every construct outside the subset is still recognised,
//! so that the error can name it and point at it.

use crate::diagnostic::{Error, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Name(String),
    Number { value: f64, integer: bool },
    Str(String),
    Op(&'static str),
    Newline,
    Indent,
    Dedent,
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Longest first, so that `**=` is not read as `**` then `=`.
const OPERATORS: &[&str] = &[
    "**=", "//=", "...", "->", "**", "//", "+=", "-=", "*=", "/=", "@=", "%=", "<=", ">=", "==", "!=", ":=", "(", ")",
    "[", "]", "{", "}", ",", ":", ".", ";", "=", "+", "-", "*", "/", "@", "%", "<", ">", "~", "&", "|", "^",
];

/// The deepest bracket nesting accepted, so that the recursive descent cannot exhaust the stack.
const MAX_DEPTH: usize = 200;

pub fn tokenize(src: &str) -> Result<Vec<Token>, Error> {
    let bytes = src.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut indents: Vec<usize> = vec![0];
    let mut depth: usize = 0;
    let mut i = 0;
    let mut at_line_start = true;
    while i < bytes.len() {
        if at_line_start && depth == 0 {
            // Measure the indentation; blank and comment-only lines do not count.
            let start = i;
            let mut width = 0;
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                width += if bytes[i] == b'\t' { 8 - width % 8 } else { 1 };
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            if matches!(bytes[i], b'\n' | b'\r' | b'#') {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            at_line_start = false;
            let top = *indents.last().expect("the indent stack keeps its 0");
            if width > top {
                indents.push(width);
                out.push(Token {
                    tok: Tok::Indent,
                    span: Span::new(start, i),
                });
            } else {
                while width < *indents.last().expect("the indent stack keeps its 0") {
                    indents.pop();
                    out.push(Token {
                        tok: Tok::Dedent,
                        span: Span::new(i, i),
                    });
                }
                if width != *indents.last().expect("the indent stack keeps its 0") {
                    return Err(Error::syntax(
                        "this line's indentation matches no enclosing block",
                        Span::new(start, i),
                    ));
                }
            }
        }
        let c = src[i..].chars().next().expect("i is on a char boundary");
        match c {
            ' ' | '\t' | '\r' | '\x0c' => i += 1,
            '#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            '\\' if src[i + 1..].starts_with('\n') || src[i + 1..].starts_with("\r\n") => {
                i += if src[i + 1..].starts_with('\n') { 2 } else { 3 };
            }
            '\n' => {
                if depth == 0 && !matches!(out.last().map(|t| &t.tok), Some(Tok::Newline) | None) {
                    out.push(Token {
                        tok: Tok::Newline,
                        span: Span::new(i, i + 1),
                    });
                }
                i += 1;
                if depth == 0 {
                    at_line_start = true;
                }
            }
            c if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                let (tok, len) =
                    number(&src[i..]).ok_or_else(|| Error::syntax("malformed number", Span::new(i, i + 1)))?;
                out.push(Token {
                    tok,
                    span: Span::new(i, i + len),
                });
                i += len;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while let Some(ch) = src[i..].chars().next() {
                    if ch.is_alphanumeric() || ch == '_' {
                        i += ch.len_utf8();
                    } else {
                        break;
                    }
                }
                let word = &src[start..i];
                let is_prefix = matches!(
                    word.to_ascii_lowercase().as_str(),
                    "r" | "b" | "f" | "u" | "rb" | "br" | "fr" | "rf"
                );
                if is_prefix && matches!(bytes.get(i), Some(b'"' | b'\'')) {
                    let (text, len) = string(src, i)?;
                    out.push(Token {
                        tok: Tok::Str(text),
                        span: Span::new(start, i + len),
                    });
                    i += len;
                } else {
                    out.push(Token {
                        tok: Tok::Name(word.to_string()),
                        span: Span::new(start, i),
                    });
                }
            }
            '"' | '\'' => {
                let (text, len) = string(src, i)?;
                out.push(Token {
                    tok: Tok::Str(text),
                    span: Span::new(i, i + len),
                });
                i += len;
            }
            _ => {
                let Some(op) = OPERATORS.iter().find(|op| src[i..].starts_with(**op)) else {
                    if c.is_control() {
                        // A control character has no width of its own: the caret takes in its neighbour.
                        let before = src[..i].chars().next_back().map_or(0, char::len_utf8);
                        return Err(Error::syntax(
                            format!("unexpected control character U+{:04X}", c as u32),
                            Span::new(i - before, i + c.len_utf8()),
                        ));
                    }
                    return Err(Error::syntax(
                        format!("unexpected character `{c}`"),
                        Span::new(i, i + c.len_utf8()),
                    ));
                };
                match *op {
                    "(" | "[" | "{" => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return Err(Error::syntax(
                                format!("brackets nest deeper than {MAX_DEPTH} levels"),
                                Span::new(i, i + 1),
                            ));
                        }
                    }
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                out.push(Token {
                    tok: Tok::Op(op),
                    span: Span::new(i, i + op.len()),
                });
                i += op.len();
            }
        }
    }
    let end = src.len();
    if !matches!(out.last().map(|t| &t.tok), Some(Tok::Newline) | None) {
        out.push(Token {
            tok: Tok::Newline,
            span: Span::new(end, end),
        });
    }
    for _ in 1..indents.len() {
        out.push(Token {
            tok: Tok::Dedent,
            span: Span::new(end, end),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(end, end),
    });
    Ok(out)
}

fn number(s: &str) -> Option<(Tok, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'_') {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut integer = true;
    if i < b.len() && b[i] == b'.' {
        integer = false;
        i += 1;
        digits(&mut i);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            integer = false;
            i = j;
            digits(&mut i);
        }
    }
    let text: String = s[..i].chars().filter(|c| *c != '_').collect();
    let value = text.parse::<f64>().ok()?;
    Some((Tok::Number { value, integer }, i))
}

/// A string literal starting at `start` (at its quote): its text and its length.
fn string(src: &str, start: usize) -> Result<(String, usize), Error> {
    let rest = &src[start..];
    let quote = &rest[..1];
    let triple = rest.starts_with(&quote.repeat(3));
    let delim = if triple { quote.repeat(3) } else { quote.to_string() };
    let body_start = delim.len();
    let mut i = body_start;
    let b = rest.as_bytes();
    // Bytes, not chars: a closing quote is ASCII, so the slice below ends on a char boundary
    // whatever the string holds.
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if !triple && b[i] == b'\n' {
            break;
        }
        if b[i..].starts_with(delim.as_bytes()) {
            return Ok((rest[body_start..i].to_string(), i + delim.len()));
        }
        i += 1;
    }
    Err(Error::syntax(
        "this string is never closed",
        Span::new(start, start + delim.len()),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    FloorDiv,
    Mod,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "**",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
        }
    }
    fn from_symbol(s: &str) -> Option<BinOp> {
        Some(match s {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "@" => BinOp::MatMul,
            "**" => BinOp::Pow,
            "//" => BinOp::FloorDiv,
            "%" => BinOp::Mod,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Index {
    Expr(Expr),
    Slice(Option<Expr>, Option<Expr>, Option<Expr>, Span),
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Name(String),
    Number {
        value: f64,
        integer: bool,
    },
    Str(String),
    NoneLit,
    Bool(bool),
    Ellipsis,
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr, Span)>,
    },
    Attr(Box<Expr>, String, Span),
    Subscript(Box<Expr>, Vec<Index>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Pos(Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// Valid Python outside the dialect, kept so that the error can name it.
    Unsupported(&'static str),
    /// A value matdiff keeps but cannot compute with (a dictionary cache).
    Opaque(&'static str),
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub span: Span,
    pub annotation: Option<Expr>,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub name: String,
    pub name_span: Span,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Stmt {
    Def(FunctionDef),
    Assign {
        targets: Vec<Expr>,
        value: Expr,
        span: Span,
    },
    AugAssign {
        target: Expr,
        op: BinOp,
        value: Expr,
        span: Span,
    },
    Return {
        value: Option<Expr>,
        span: Span,
    },
    Expr(Expr),
    /// `import`, `pass`, `assert`: no effect on the values derived.
    Nothing,
    /// `import numpy as xp`, `from numpy.linalg import norm`: each bound name and the dotted
    /// path of what it names (`["numpy", "linalg", "norm"]`).
    Import(Vec<(String, Vec<String>)>),
    Unsupported {
        what: &'static str,
        span: Span,
    },
}

pub fn parse(src: &str) -> Result<Vec<Stmt>, Error> {
    let tokens = tokenize(src)?;
    let mut p = Parser { tokens, pos: 0 };
    let mut body = Vec::new();
    while !p.at(&Tok::Eof) {
        if p.eat(&Tok::Newline) {
            continue;
        }
        if p.at(&Tok::Indent) {
            return Err(Error::syntax("unexpected indentation", p.span()));
        }
        body.push(p.statement()?);
    }
    Ok(body)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// Python's compound statements and other keywords outside the dialect, with what to call them.
const UNSUPPORTED_KEYWORDS: &[(&str, &str)] = &[
    ("for", "`for` loops"),
    ("while", "`while` loops"),
    ("if", "`if` statements"),
    ("elif", "`elif` branches"),
    ("else", "`else` branches"),
    ("with", "`with` blocks"),
    ("try", "`try` blocks"),
    ("class", "class definitions"),
    ("global", "`global` statements"),
    ("nonlocal", "`nonlocal` statements"),
    ("del", "`del` statements"),
    ("raise", "`raise` statements"),
    ("yield", "generators (`yield`)"),
    ("async", "`async` functions"),
    ("await", "`await` expressions"),
    ("break", "`break`"),
    ("continue", "`continue`"),
    ("match", "`match` statements"),
];

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }
    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }
    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }
    fn at(&self, t: &Tok) -> bool {
        self.peek() == t
    }
    fn at_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn at_name(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Name(w) if w == word)
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.at(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.at_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn advance(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }
    fn describe(&self) -> String {
        match self.peek() {
            Tok::Name(n) => format!("`{n}`"),
            Tok::Number { .. } => "a number".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Op(o) => format!("`{o}`"),
            Tok::Newline => "the end of the line".into(),
            Tok::Indent => "an indented block".into(),
            Tok::Dedent => "the end of the block".into(),
            Tok::Eof => "the end of the file".into(),
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<Span, Error> {
        if self.at_op(op) {
            Ok(self.advance().span)
        } else {
            Err(Error::syntax(
                format!("expected `{op}`, found {}", self.describe()),
                self.span(),
            ))
        }
    }
    fn name(&mut self) -> Result<(String, Span), Error> {
        match self.peek().clone() {
            Tok::Name(n) => {
                let span = self.advance().span;
                Ok((n, span))
            }
            _ => Err(Error::syntax(
                format!("expected a name, found {}", self.describe()),
                self.span(),
            )),
        }
    }
    fn end_of_statement(&mut self) -> Result<(), Error> {
        // `;` ends a statement; another may follow on the same line (`z = x @ w; z = np.tanh(z)`).
        if self.eat_op(";") {
            self.eat(&Tok::Newline);
            return Ok(());
        }
        if self.eat(&Tok::Newline) || self.at(&Tok::Eof) || self.at(&Tok::Dedent) {
            return Ok(());
        }
        Err(Error::syntax(
            format!("expected the end of the statement, found {}", self.describe()),
            self.span(),
        ))
    }

    fn statement(&mut self) -> Result<Stmt, Error> {
        let start = self.span();
        if self.at(&Tok::Indent) {
            return Err(Error::syntax("unexpected indentation", start)
                .with_note("a block is indented only after a line ending in `:`"));
        }
        if let Tok::Name(word) = self.peek().clone() {
            if let Some((_, what)) = UNSUPPORTED_KEYWORDS.iter().find(|(k, _)| *k == word) {
                self.skip_compound();
                return Ok(Stmt::Unsupported { what, span: start });
            }
            match word.as_str() {
                "def" => return self.function_def(),
                "import" | "from" => return Ok(self.import()),
                "pass" | "assert" => {
                    self.skip_line();
                    return Ok(Stmt::Nothing);
                }
                "return" => {
                    self.advance();
                    let value = if self.at(&Tok::Newline) || self.at(&Tok::Eof) || self.at_op(";") {
                        None
                    } else {
                        Some(self.expr_list()?)
                    };
                    let span = start.join(self.prev_span());
                    self.end_of_statement()?;
                    return Ok(Stmt::Return { value, span });
                }
                _ => {}
            }
        }
        if self.at_op("@") {
            self.skip_compound();
            return Ok(Stmt::Unsupported {
                what: "decorators",
                span: start,
            });
        }
        let first = self.expr_list()?;
        if let Tok::Op(op) = self.peek().clone() {
            if let Some(bin) = op.strip_suffix('=').and_then(BinOp::from_symbol) {
                if op.len() >= 2 {
                    self.advance();
                    let value = self.expr_list()?;
                    let span = start.join(self.prev_span());
                    self.end_of_statement()?;
                    return Ok(Stmt::AugAssign {
                        target: first,
                        op: bin,
                        value,
                        span,
                    });
                }
            }
            if op == ":" {
                let span = start.join(self.span());
                self.skip_compound();
                return Ok(Stmt::Unsupported {
                    what: "annotated assignments",
                    span,
                });
            }
        }
        if self.at_op("=") {
            let mut targets = vec![first];
            let mut value;
            loop {
                self.expect_op("=")?;
                value = self.expr_list()?;
                if !self.at_op("=") {
                    break;
                }
                targets.push(value.clone());
            }
            let span = start.join(self.prev_span());
            self.end_of_statement()?;
            return Ok(Stmt::Assign { targets, value, span });
        }
        self.end_of_statement()?;
        Ok(Stmt::Expr(first))
    }

    /// Skips a statement outside the dialect: the rest of its line and its indented block.
    fn skip_compound(&mut self) {
        self.skip_line();
        if self.eat(&Tok::Indent) {
            let mut level = 1;
            while level > 0 && !self.at(&Tok::Eof) {
                match self.advance().tok {
                    Tok::Indent => level += 1,
                    Tok::Dedent => level -= 1,
                    _ => {}
                }
            }
        }
    }

    /// An import, read for the names it binds; one this reader does not follow is skipped.
    fn import(&mut self) -> Stmt {
        let start = self.pos;
        let read = |p: &mut Self| -> Option<Vec<(String, Vec<String>)>> {
            let dotted = |p: &mut Self| -> Option<Vec<String>> {
                let mut path = vec![p.name().ok()?.0];
                while p.eat_op(".") {
                    path.push(p.name().ok()?.0);
                }
                Some(path)
            };
            let from = p.at_name("from");
            p.advance();
            let module = if from {
                let m = dotted(p)?;
                if !p.at_name("import") {
                    return None;
                }
                p.advance();
                Some(m)
            } else {
                None
            };
            let bracketed = p.eat_op("(");
            let mut bindings = Vec::new();
            loop {
                let path = dotted(p)?;
                let alias = if p.at_name("as") {
                    p.advance();
                    Some(p.name().ok()?.0)
                } else {
                    None
                };
                let (name, full) = match &module {
                    // `from numpy import exp as e`: e names numpy.exp.
                    Some(m) => {
                        let full: Vec<String> = m.iter().cloned().chain(path.iter().cloned()).collect();
                        (alias.unwrap_or_else(|| path.join(".")), full)
                    }
                    // `import numpy as np`, `import math`: the module under its name.
                    None => (alias.unwrap_or_else(|| path[0].clone()), path),
                };
                bindings.push((name, full));
                if !p.eat_op(",") {
                    break;
                }
            }
            if bracketed && !p.eat_op(")") {
                return None;
            }
            Some(bindings)
        };
        let bindings = read(self);
        if bindings.is_none() {
            self.pos = start;
        }
        self.skip_line();
        bindings.map_or(Stmt::Nothing, Stmt::Import)
    }

    fn skip_line(&mut self) {
        while !matches!(self.peek(), Tok::Newline | Tok::Eof) {
            self.advance();
        }
        self.eat(&Tok::Newline);
    }

    fn function_def(&mut self) -> Result<Stmt, Error> {
        let start = self.advance().span;
        let (name, name_span) = self.name()?;
        self.expect_op("(")?;
        let mut params = Vec::new();
        while !self.at_op(")") {
            // A bare `*` (keyword-only parameters follow) or `/` (positional-only ones precede)
            // changes how the function is called, not what it computes.
            let marker = (self.at_op("*") || self.at_op("/"))
                && matches!(self.tokens.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Op("," | ")")));
            if marker {
                self.advance();
                if !self.eat_op(",") {
                    break;
                }
                continue;
            }
            if self.at_op("*") || self.at_op("**") || self.at_op("/") {
                return Err(Error::unsupported(
                    "`*args`, `**kwargs` and positional-only markers are not supported in the numpy dialect",
                    self.span(),
                ));
            }
            let (pname, span) = self.name()?;
            let annotation = if self.eat_op(":") { Some(self.expr()?) } else { None };
            let default = if self.eat_op("=") { Some(self.expr()?) } else { None };
            params.push(Param {
                name: pname,
                span,
                annotation,
                default,
            });
            if !self.eat_op(",") {
                break;
            }
        }
        self.expect_op(")")?;
        if self.eat_op("->") {
            self.expr()?;
        }
        self.expect_op(":")?;
        let body = self.suite()?;
        Ok(Stmt::Def(FunctionDef {
            name,
            name_span,
            params,
            body,
            span: start.join(self.prev_span()),
        }))
    }

    fn suite(&mut self) -> Result<Vec<Stmt>, Error> {
        if !self.eat(&Tok::Newline) {
            // `def f(x): return x` on one line.
            let s = self.statement()?;
            return Ok(vec![s]);
        }
        if !self.eat(&Tok::Indent) {
            return Err(Error::syntax("expected an indented block", self.span()));
        }
        let mut body = Vec::new();
        while !self.eat(&Tok::Dedent) {
            if self.at(&Tok::Eof) {
                break;
            }
            if self.eat(&Tok::Newline) {
                continue;
            }
            body.push(self.statement()?);
        }
        Ok(body)
    }

    /// `a, b = ...` and `return out, cache`: a bare tuple.
    fn expr_list(&mut self) -> Result<Expr, Error> {
        let first = self.expr()?;
        if !self.at_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.at_op("=") || self.at(&Tok::Newline) || self.at(&Tok::Eof) || self.at_op(")") {
                break;
            }
            items.push(self.expr()?);
        }
        let span = items[0].span.join(items[items.len() - 1].span);
        Ok(Expr {
            kind: ExprKind::Tuple(items),
            span,
        })
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        let e = self.expr_or_unsupported()?;
        if let ExprKind::Unsupported(what) = e.kind {
            return Err(
                Error::unsupported(format!("{what} are not supported in the numpy dialect"), e.span)
                    .with_note("matdiff derives straight-line numpy code: assignments, numpy calls, and `return`"),
            );
        }
        Ok(e)
    }

    fn expr_or_unsupported(&mut self) -> Result<Expr, Error> {
        if self.at_name("lambda") {
            let span = self.span();
            return Ok(Expr {
                kind: ExprKind::Unsupported("`lambda` expressions"),
                span,
            });
        }
        let e = self.or_expr()?;
        if self.at_name("if") {
            let span = e.span.join(self.span());
            return Ok(Expr {
                kind: ExprKind::Unsupported("conditional expressions (`a if c else b`)"),
                span,
            });
        }
        Ok(e)
    }

    fn or_expr(&mut self) -> Result<Expr, Error> {
        let e = self.not_expr()?;
        if self.at_name("and") || self.at_name("or") {
            let span = e.span.join(self.span());
            return Ok(Expr {
                kind: ExprKind::Unsupported("`and`/`or` operators (use `np.where` on masks)"),
                span,
            });
        }
        Ok(e)
    }

    fn not_expr(&mut self) -> Result<Expr, Error> {
        if self.at_name("not") {
            let span = self.span();
            return Ok(Expr {
                kind: ExprKind::Unsupported("`not` expressions"),
                span,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, Error> {
        let left = self.bit_or()?;
        let op = match self.peek() {
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Op("==") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Name(n) if n == "in" || n == "is" => {
                let span = left.span.join(self.span());
                return Ok(Expr {
                    kind: ExprKind::Unsupported("`in`/`is` tests"),
                    span,
                });
            }
            _ => return Ok(left),
        };
        self.advance();
        let right = self.bit_or()?;
        let span = left.span.join(right.span);
        if matches!(self.peek(), Tok::Op("<" | "<=" | ">" | ">=" | "==" | "!=")) {
            return Ok(Expr {
                kind: ExprKind::Unsupported("chained comparisons"),
                span: span.join(self.span()),
            });
        }
        Ok(Expr {
            kind: ExprKind::Compare(op, Box::new(left), Box::new(right)),
            span,
        })
    }

    fn bit_or(&mut self) -> Result<Expr, Error> {
        let e = self.arith()?;
        if self.at_op("|") || self.at_op("&") || self.at_op("^") || self.at_op("~") {
            let span = e.span.join(self.span());
            return Ok(Expr {
                kind: ExprKind::Unsupported("bitwise operators (`&`, `|`, `^`)"),
                span,
            });
        }
        Ok(e)
    }

    /// `+ -`, left-associative, over terms.
    fn arith(&mut self) -> Result<Expr, Error> {
        self.left_assoc(&["+", "-"], Self::term)
    }

    /// `* / @ // %`, left-associative, over unary expressions.
    fn term(&mut self) -> Result<Expr, Error> {
        self.left_assoc(&["*", "/", "@", "//", "%"], Self::unary)
    }

    /// One precedence level of Python's binary operators: operands from `operand`, joined left to right.
    fn left_assoc(&mut self, ops: &[&str], operand: fn(&mut Self) -> Result<Expr, Error>) -> Result<Expr, Error> {
        let mut left = operand(self)?;
        loop {
            let op = match self.peek() {
                Tok::Op(o) if ops.contains(o) => BinOp::from_symbol(o).expect("a binary operator"),
                _ => return Ok(left),
            };
            self.advance();
            let right = operand(self)?;
            let span = left.span.join(right.span);
            left = Expr {
                kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
                span,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        let start = self.span();
        if self.eat_op("-") {
            let a = self.unary()?;
            let span = start.join(a.span);
            return Ok(Expr {
                kind: ExprKind::Neg(Box::new(a)),
                span,
            });
        }
        if self.eat_op("+") {
            let a = self.unary()?;
            let span = start.join(a.span);
            return Ok(Expr {
                kind: ExprKind::Pos(Box::new(a)),
                span,
            });
        }
        if self.at_op("~") {
            return Ok(Expr {
                kind: ExprKind::Unsupported("bitwise `~` operators"),
                span: start,
            });
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, Error> {
        let base = self.postfix()?;
        if self.eat_op("**") {
            let exponent = self.unary()?;
            let span = base.span.join(exponent.span);
            return Ok(Expr {
                kind: ExprKind::Binary(BinOp::Pow, Box::new(base), Box::new(exponent)),
                span,
            });
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, Error> {
        let mut e = self.atom()?;
        loop {
            if self.eat_op(".") {
                let (name, span) = self.name()?;
                let whole = e.span.join(span);
                e = Expr {
                    kind: ExprKind::Attr(Box::new(e), name, span),
                    span: whole,
                };
            } else if self.at_op("(") {
                self.advance();
                let mut args = Vec::new();
                let mut kwargs = Vec::new();
                while !self.at_op(")") {
                    if self.at_op("*") || self.at_op("**") {
                        return Err(Error::unsupported(
                            "`*args` and `**kwargs` in calls are not supported",
                            self.span(),
                        ));
                    }
                    let is_keyword = matches!(self.peek(), Tok::Name(_))
                        && matches!(self.tokens.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Op("=")));
                    if is_keyword {
                        let (k, kspan) = self.name()?;
                        self.expect_op("=")?;
                        let v = self.expr()?;
                        let span = kspan.join(v.span);
                        kwargs.push((k, v, span));
                    } else {
                        if !kwargs.is_empty() {
                            return Err(Error::syntax(
                                "a positional argument follows a keyword argument",
                                self.span(),
                            ));
                        }
                        let arg = self.expr()?;
                        if self.at_name("for") {
                            // `sum(np.sum(W * W) for W in weights)`
                            return Err(Error::unsupported(
                                "generator expressions are not supported in the numpy dialect",
                                arg.span.join(self.span()),
                            )
                            .with_note("matdiff derives straight-line numpy code: write each term out (`np.sum(W1 * W1) + np.sum(W2 * W2)`)"));
                        }
                        args.push(arg);
                    }
                    if !self.eat_op(",") {
                        break;
                    }
                }
                let close = self.expect_op(")")?;
                let span = e.span.join(close);
                e = Expr {
                    kind: ExprKind::Call {
                        func: Box::new(e),
                        args,
                        kwargs,
                    },
                    span,
                };
            } else if self.at_op("[") {
                self.advance();
                let mut items = Vec::new();
                while !self.at_op("]") {
                    items.push(self.index()?);
                    if !self.eat_op(",") {
                        break;
                    }
                }
                let close = self.expect_op("]")?;
                let span = e.span.join(close);
                e = Expr {
                    kind: ExprKind::Subscript(Box::new(e), items),
                    span,
                };
            } else {
                return Ok(e);
            }
        }
    }

    fn index(&mut self) -> Result<Index, Error> {
        let start = self.span();
        let lower = if self.at_op(":") { None } else { Some(self.expr()?) };
        if !self.at_op(":") {
            return Ok(Index::Expr(lower.expect("an index without `:` has an expression")));
        }
        self.advance();
        let upper = if self.at_op(":") || self.at_op("]") || self.at_op(",") {
            None
        } else {
            Some(self.expr()?)
        };
        let step = if self.eat_op(":") && !self.at_op("]") && !self.at_op(",") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Index::Slice(lower, upper, step, start.join(self.prev_span())))
    }

    fn atom(&mut self) -> Result<Expr, Error> {
        let t = self.advance();
        let span = t.span;
        let kind = match t.tok {
            Tok::Number { value, integer } => ExprKind::Number { value, integer },
            Tok::Str(s) => {
                // Adjacent literals concatenate, as in Python.
                let mut text = s;
                let mut end = span;
                while let Tok::Str(more) = self.peek().clone() {
                    end = self.advance().span;
                    text.push_str(&more);
                }
                return Ok(Expr {
                    kind: ExprKind::Str(text),
                    span: span.join(end),
                });
            }
            Tok::Name(n) => match n.as_str() {
                "None" => ExprKind::NoneLit,
                "True" => ExprKind::Bool(true),
                "False" => ExprKind::Bool(false),
                "lambda" => ExprKind::Unsupported("`lambda` expressions"),
                _ => ExprKind::Name(n),
            },
            Tok::Op("...") => ExprKind::Ellipsis,
            Tok::Op("(") => {
                if self.at_op(")") {
                    let close = self.advance().span;
                    return Ok(Expr {
                        kind: ExprKind::Tuple(vec![]),
                        span: span.join(close),
                    });
                }
                let first = self.expr()?;
                if self.at_name("for") {
                    return Ok(Expr {
                        kind: ExprKind::Unsupported("generator expressions"),
                        span: span.join(self.span()),
                    });
                }
                if self.eat_op(")") {
                    // Parentheses only group; the span widens to show them.
                    return Ok(Expr {
                        kind: first.kind,
                        span: span.join(self.prev_span()),
                    });
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.at_op(")") {
                        break;
                    }
                    items.push(self.expr()?);
                }
                let close = self.expect_op(")")?;
                return Ok(Expr {
                    kind: ExprKind::Tuple(items),
                    span: span.join(close),
                });
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.at_op("]") {
                    items.push(self.expr()?);
                    if self.at_name("for") {
                        return Ok(Expr {
                            kind: ExprKind::Unsupported("list comprehensions"),
                            span: span.join(self.span()),
                        });
                    }
                    if !self.eat_op(",") {
                        break;
                    }
                }
                let close = self.expect_op("]")?;
                return Ok(Expr {
                    kind: ExprKind::List(items),
                    span: span.join(close),
                });
            }
            Tok::Op("{") => {
                // A dictionary (a cache, say): a value of its own, never an array.
                while !self.at_op("}") {
                    self.expr()?;
                    if self.eat_op(":") {
                        self.expr()?;
                    }
                    if !self.eat_op(",") {
                        break;
                    }
                }
                self.expect_op("}")?;
                ExprKind::Opaque("a dictionary")
            }
            _ => {
                self.pos -= 1;
                return Err(Error::syntax(
                    format!("expected an expression, found {}", self.describe()),
                    span,
                ));
            }
        };
        Ok(Expr {
            kind,
            span: span.join(self.prev_span()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_gives_blocks() {
        let src = "import numpy as np\n\ndef f(x: \"N x D\", eps=1e-5):\n    # a comment\n    y = x * 2\n\n    return y, (x,)\n";
        let stmts = parse(src).unwrap();
        assert_eq!(stmts.len(), 2);
        let Stmt::Def(f) = &stmts[1] else {
            panic!("not a def: {stmts:?}")
        };
        assert_eq!(f.params.len(), 2);
        assert_eq!(f.body.len(), 2);
        assert!(matches!(f.body[1], Stmt::Return { .. }));
    }

    #[test]
    fn brackets_and_backslashes_join_lines() {
        let src = "def f(x):\n    y = (x +\n         1)\n    z = y \\\n        * 2\n    return z\n";
        let Stmt::Def(f) = &parse(src).unwrap()[0] else {
            panic!()
        };
        assert_eq!(f.body.len(), 3);
    }

    #[test]
    fn unsupported_statements_are_named() {
        let src = "def f(x):\n    for i in range(3):\n        x = x + 1\n    return x\n";
        let Stmt::Def(f) = &parse(src).unwrap()[0] else {
            panic!()
        };
        assert!(matches!(
            f.body[0],
            Stmt::Unsupported {
                what: "`for` loops",
                ..
            }
        ));
    }

    #[test]
    fn power_binds_tighter_than_minus() {
        let Stmt::Expr(e) = &parse("-x ** 2").unwrap()[0] else {
            panic!()
        };
        assert!(matches!(&e.kind, ExprKind::Neg(inner) if matches!(inner.kind, ExprKind::Binary(BinOp::Pow, _, _))));
    }
}
