//! Errors a user can cause, with the place in the input they point at, rendered as
//! compiler-style diagnostics (line, column, the line itself and a caret).

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor};
use std::fmt;

/// A byte range in the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    pub fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text does not follow the grammar.
    Syntax,
    /// A name, function or argument that does not exist or does not fit.
    Name,
    /// Shapes that do not fit the operator.
    Shape,
    /// Valid input that matdiff cannot differentiate (yet).
    Unsupported,
    /// Input that could not be read.
    Input,
}

/// Where the error's span points: the script, or a command-line argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Script,
    Argument { name: String, text: String },
}

/// A user-facing error; boxed so that `Result`s stay small.
#[derive(Debug, Clone)]
pub struct Error {
    detail: Box<Detail>,
}

#[derive(Debug, Clone)]
pub struct Detail {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Option<Span>,
    pub label: Option<String>,
    pub notes: Vec<String>,
    pub origin: Origin,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>, span: Option<Span>) -> Self {
        Error {
            detail: Box::new(Detail {
                kind,
                message: message.into(),
                span,
                label: None,
                notes: Vec::new(),
                origin: Origin::Script,
            }),
        }
    }
    pub fn syntax(message: impl Into<String>, span: Span) -> Self {
        Error::new(ErrorKind::Syntax, message, Some(span))
    }
    pub fn name(message: impl Into<String>, span: Span) -> Self {
        Error::new(ErrorKind::Name, message, Some(span))
    }
    pub fn shape(message: impl Into<String>, span: Span) -> Self {
        Error::new(ErrorKind::Shape, message, Some(span))
    }
    pub fn unsupported(message: impl Into<String>, span: Span) -> Self {
        Error::new(ErrorKind::Unsupported, message, Some(span))
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.detail.label = Some(label.into());
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.detail.notes.push(note.into());
        self
    }
    /// Moves the error's span back by `offset` bytes (for an error in the last part of a text).
    pub fn relative_to(mut self, offset: usize) -> Self {
        if let Some(span) = self.detail.span {
            self.detail.span = Some(Span::new(
                span.start.saturating_sub(offset),
                span.end.saturating_sub(offset),
            ));
        }
        self
    }
    /// Points the error at a command-line argument instead of the script.
    pub fn in_argument(mut self, name: &str, text: &str) -> Self {
        self.detail.origin = Origin::Argument {
            name: name.to_string(),
            text: text.to_string(),
        };
        self
    }

    /// Renders the error against the script it came from. `script_name` names the
    /// script in the header (a file path, or `<script>` for inline text).
    pub fn render(&self, script_name: &str, script: &str, color: bool) -> String {
        let (name, text) = match &self.origin {
            Origin::Script => (script_name.to_string(), script.to_string()),
            Origin::Argument { name, text } => (name.clone(), text.clone()),
        };
        let file = SimpleFile::new(name, text.clone());
        let mut diagnostic = Diagnostic::error().with_message(&self.message);
        if let Some(span) = self.span {
            let span = clamp(span, &text);
            let label = Label::primary((), span.start..span.end);
            let label = match &self.label {
                Some(l) => label.with_message(l),
                None => label,
            };
            diagnostic = diagnostic.with_labels(vec![label]);
        }
        diagnostic = diagnostic.with_notes(self.notes.clone());
        let mut buffer = if color {
            termcolor::Buffer::ansi()
        } else {
            termcolor::Buffer::no_color()
        };
        let config = term::Config::default();
        if term::emit_to_write_style(&mut buffer, &config, &file, &diagnostic).is_err() {
            return format!("error: {}\n", self.message);
        }
        String::from_utf8_lossy(buffer.as_slice()).into_owned()
    }
}

/// Keeps a span inside the text and on character boundaries, so rendering never panics.
fn clamp(span: Span, text: &str) -> Span {
    let fix = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = fix(span.start);
    let end = fix(span.end.max(span.start));
    Span::new(start, end)
}

impl std::ops::Deref for Error {
    type Target = Detail;
    fn deref(&self) -> &Detail {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Error {}

/// Suggests the closest of `candidates` to `word`: differing in case only, or (for
/// words of two or more letters) by at most a third of the word's length, at least 1.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = if len < 2 { 0 } else { (len / 3).max(1) };
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit and a change of case as none
/// (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let same = |x: char, y: char| x == y || x.eq_ignore_ascii_case(&y);
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(!same(a[i - 1], b[j - 1]));
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1]) {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
