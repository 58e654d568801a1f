//! Notes: a derivation as a short document of prose and aligned equations, written as LaTeX
//! (a standalone document or a fragment to paste) or as Markdown with `$$…$$` blocks.
//!
//! Both notations write one [`Document`], so they cannot drift apart. The equations are
//! LaTeX from the `latex` form; prose is generated from the derivation's own facts.

use super::latex::{self, Latex};
use super::render;
use crate::ir::Math;
use egg::RecExpr;

/// A run of prose: words, or inline math (LaTeX).
#[derive(Debug, Clone)]
pub enum Inline {
    Text(String),
    Math(String),
}

/// One aligned equation, `lhs &= rhs`, with an optional annotation on the right (LaTeX math).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub lhs: String,
    pub rhs: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Block {
    Prose(Vec<Inline>),
    Equations(Vec<Line>),
}

#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub title: Vec<Inline>,
    pub sections: Vec<Section>,
}

/// Words of prose.
pub fn text(s: impl Into<String>) -> Inline {
    Inline::Text(s.into())
}

/// Inline math.
pub fn math(s: impl Into<String>) -> Inline {
    Inline::Math(s.into())
}

/// An expression as LaTeX.
pub fn tex(e: &RecExpr<Math>) -> String {
    render(e, &Latex).text
}

/// `\frac{\partial L}{\partial b}`, the denominator bracketed unless it is a name.
pub fn partial(loss: &str, of: &str) -> String {
    format!("\\frac{{\\partial {loss}}}{{\\partial {of}}}")
}

/// The text-form prose of a message (a check line, a broadcast), with its Unicode symbols and
/// the script's `names` as inline math, so that pdflatex, KaTeX and MathJax all set it.
pub fn prose(s: &str, names: &[&str]) -> Vec<Inline> {
    let mut out: Vec<Inline> = Vec::new();
    let mut words: Vec<&str> = Vec::new();
    let flush = |words: &mut Vec<&str>, out: &mut Vec<Inline>| {
        if !words.is_empty() {
            out.push(text(format!("{} ", words.join(" "))));
            words.clear();
        }
    };
    for word in s.split_whitespace() {
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
        if !bare.is_empty() && names.contains(&bare) {
            flush(&mut words, &mut out);
            let at = word.find(bare).unwrap_or(0);
            if at > 0 {
                out.push(text(&word[..at]));
            }
            out.push(math(super::latex::name(bare)));
            out.push(text(format!("{} ", &word[at + bare.len()..])));
        } else if word.is_ascii() {
            words.push(word);
        } else {
            flush(&mut words, &mut out);
            let (core, tail) = match word.strip_suffix([',', ';', ')', '.']) {
                Some(core) => (core, &word[core.len()..]),
                None => (word, ""),
            };
            let (head, core) = match core.strip_prefix('(') {
                Some(rest) => ("(", rest),
                None => ("", core),
            };
            if !head.is_empty() {
                out.push(text(head));
            }
            out.push(math(math_of_text(core)));
            out.push(text(format!("{tail} ")));
        }
    }
    flush(&mut words, &mut out);
    if let Some(Inline::Text(last)) = out.last_mut() {
        *last = last.trim_end().to_string();
    }
    out
}

/// Operator names a rule's identity writes in roman, besides the operator table's functions.
const OPERATORS: &[&str] = &[
    "tr",
    "det",
    "vec",
    "diag",
    "sum",
    "sym",
    "softmax",
    "softplus",
    "logsumexp",
    "logdet",
    "max",
    "min",
    "rows",
    "cols",
    "ismax",
    "blocksum",
    "blockadd",
    "reshape",
];

fn is_operator(word: &str) -> bool {
    OPERATORS.contains(&word) || crate::ops::Func::called(word).is_some()
}

/// A formula written in the text notation (a rule's identity: `d(Xᵀ) = (dX)ᵀ`) as LaTeX math.
/// Words that are neither operators nor a differential (`dX`, `ds`) are set as text.
pub fn math_of_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut last_was_word = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let start = i;
            // `leaky_relu` is one name; `‖X‖_F` keeps its subscript.
            while i < chars.len()
                && (chars[i].is_ascii_alphabetic()
                    || (chars[i] == '_' && chars.get(i + 1).is_some_and(char::is_ascii_alphabetic)))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.contains('_') {
                out.push_str(&format!("\\operatorname{{{}}}", word.replace('_', "\\_")));
                last_was_word = false;
            } else if is_operator(&word) {
                out.push_str(&format!("\\operatorname{{{word}}}"));
                last_was_word = false;
            } else if is_prose(&word) {
                out.push_str(&format!("\\text{{{word}}}"));
                last_was_word = true;
            } else {
                out.push_str(&word);
                last_was_word = false;
            }
            continue;
        }
        if superscript(c).is_some() {
            let mut run = String::new();
            while i < chars.len() {
                match superscript(chars[i]) {
                    Some(s) => run.push_str(s),
                    None => break,
                }
                i += 1;
            }
            out.push_str(&format!("^{{{run}}}"));
            last_was_word = false;
            continue;
        }
        let piece = match c {
            ' ' if last_was_word || next_word(&chars[i + 1..]).is_some_and(|w| is_prose(&w)) => "\\ ",
            ' ' => " ",
            ',' => ",\\ ",
            '∂' => "\\partial ",
            '∇' => "\\nabla ",
            '∘' => "\\circ ",
            '⊙' => "\\odot ",
            '⊗' => "\\otimes ",
            '⊘' => "\\oslash ",
            '·' => "\\cdot ",
            '‖' => "\\|",
            '−' => "-",
            '′' => "'",
            '≥' => "\\geq ",
            '≤' => "\\leq ",
            '≠' => "\\neq ",
            '→' => "\\to ",
            '×' => "\\times ",
            '∈' => "\\in ",
            '√' => "\\surd ",
            'Σ' => "\\Sigma ",
            'σ' => "\\sigma ",
            'δ' => "\\delta ",
            'λ' => "\\lambda ",
            'ε' => "\\varepsilon ",
            '⟨' => "\\langle ",
            '⟩' => "\\rangle ",
            '<' => "<",
            '>' => ">",
            '{' => "\\{",
            '}' => "\\}",
            '%' => "\\%",
            '&' => "\\&",
            '#' => "\\#",
            '$' => "\\$",
            '\\' => "\\backslash ",
            '~' => "\\sim ",
            '^' => "\\hat{}",
            '§' => "\\S ",
            c if c.is_ascii() => {
                out.push(c);
                i += 1;
                last_was_word = false;
                continue;
            }
            // Anything else would be rejected by pdflatex or KaTeX's strict mode.
            _ => "",
        };
        last_was_word = last_was_word && c == ' ';
        out.push_str(piece);
        i += 1;
    }
    out.trim_end_matches("\\ ").trim().to_string()
}

/// A word of prose inside a formula (`for`, `entrywise`), not an operator or a differential (`dX`, `ds`).
fn is_prose(word: &str) -> bool {
    let differential = word.len() == 2 && word.starts_with('d');
    word.len() >= 2 && word.chars().all(|c| c.is_ascii_lowercase()) && !differential && !is_operator(word)
}

fn next_word(chars: &[char]) -> Option<String> {
    let word: String = chars.iter().take_while(|c| c.is_ascii_alphabetic()).collect();
    (!word.is_empty()).then_some(word)
}

fn superscript(c: char) -> Option<&'static str> {
    Some(match c {
        'ᵀ' => "\\top",
        '⁻' => "-",
        '¹' => "1",
        '²' => "2",
        '³' => "3",
        'ᵏ' => "k",
        'ⁿ' => "n",
        _ => return None,
    })
}

/// A rule's source as a right-hand annotation: its identity as math, its reference as text
/// (`d(X^{\top}) = (dX)^{\top} \quad \text{[Cookbook eq. 44]}`).
pub fn rule_note(source: &str) -> String {
    let (reference, identity) = match source.find("Cookbook") {
        Some(at) => {
            let rest = &source[at..];
            let end = rest.find(": ").unwrap_or(rest.len());
            let reference = &rest[..end];
            let identity = format!("{}{}", &source[..at], rest.get(end + 2..).unwrap_or(""));
            (Some(reference), identity)
        }
        None => (None, source.to_string()),
    };
    let identity = math_of_text(identity.trim().trim_end_matches([',', ' ']));
    match reference {
        Some(r) => {
            let r = r.trim_end_matches([',', ' ']).replace('§', "sec. ");
            let r = text_in_math(&r);
            if identity.is_empty() {
                format!("\\text{{[{r}]}}")
            } else {
                format!("{identity} \\quad \\text{{[{r}]}}")
            }
        }
        None => identity,
    }
}

/// Plain ASCII text made safe inside `\text{}`.
fn text_in_math(s: &str) -> String {
    crate::latex_escape_text(&s.chars().filter(char::is_ascii).collect::<String>())
}

impl Document {
    /// LaTeX: a complete document for pdflatex, or the same body to paste into one
    /// (`\subsection*` headings, prose and `align*` blocks; needs amsmath and amssymb).
    pub fn latex(&self, standalone: bool) -> String {
        let inline = |runs: &[Inline]| -> String {
            runs.iter()
                .map(|r| match r {
                    Inline::Text(t) => crate::latex_escape_text(t),
                    Inline::Math(m) => format!("${m}$"),
                })
                .collect()
        };
        let mut body = String::new();
        if standalone {
            body.push_str(&format!("{{\\Large\\bfseries {}\\par}}\n", inline(&self.title)));
        } else {
            body.push_str(&format!("\\paragraph{{{}}}\n", inline(&self.title)));
        }
        for section in &self.sections {
            body.push_str(&format!(
                "\n\\subsection*{{{}}}\n",
                crate::latex_escape_text(&section.title)
            ));
            for block in &section.blocks {
                match block {
                    Block::Prose(runs) => body.push_str(&format!("{}\n", inline(runs))),
                    Block::Equations(lines) => body.push_str(&format!(
                        "\\begin{{align*}}\n{}\n\\end{{align*}}\n",
                        aligned(lines, true)
                    )),
                }
            }
        }
        if standalone {
            format!(
                "\\documentclass[10pt]{{article}}\n\\usepackage[a4paper,margin=1.8cm]{{geometry}}\n\\usepackage{{amsmath,amssymb}}\n\\setlength{{\\parindent}}{{0pt}}\n\\setlength{{\\parskip}}{{0.5em}}\n\\pagestyle{{empty}}\n\\begin{{document}}\n{body}\\end{{document}}\n"
            )
        } else {
            body
        }
    }

    /// Markdown for Jupyter, Obsidian and GitHub: `###` headings, prose with `$…$`, and each
    /// group of equations one `$$\begin{aligned}…\end{aligned}$$` block.
    pub fn markdown(&self) -> String {
        let inline = |runs: &[Inline]| -> String {
            runs.iter()
                .map(|r| match r {
                    Inline::Text(t) => markdown_escape(t),
                    Inline::Math(m) => format!("${m}$"),
                })
                .collect()
        };
        let mut out = format!("## {}\n", inline(&self.title));
        for section in &self.sections {
            out.push_str(&format!("\n### {}\n", markdown_escape(&section.title)));
            for block in &section.blocks {
                match block {
                    Block::Prose(runs) => out.push_str(&format!("\n{}\n", inline(runs))),
                    Block::Equations(lines) => out.push_str(&format!(
                        "\n$$\n\\begin{{aligned}}\n{}\n\\end{{aligned}}\n$$\n",
                        aligned(lines, false)
                    )),
                }
            }
        }
        out
    }

    /// Every piece of math the document sets, as display math: each equation block as an
    /// `aligned` environment and each inline formula (for checking them all with KaTeX).
    pub fn math(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut runs: Vec<&Inline> = self.title.iter().collect();
        for section in &self.sections {
            for block in &section.blocks {
                match block {
                    Block::Prose(r) => runs.extend(r.iter()),
                    Block::Equations(lines) => out.push(format!(
                        "\\begin{{aligned}}\n{}\n\\end{{aligned}}",
                        aligned(lines, false)
                    )),
                }
            }
        }
        out.extend(runs.into_iter().filter_map(|r| match r {
            Inline::Math(m) => Some(m.clone()),
            Inline::Text(_) => None,
        }));
        out
    }
}

/// The text width of the standalone document (A4, 1.8cm margins: 493pt), less a margin for
/// the error of [`latex::width`]'s estimate.
const TEXT_WIDTH: f64 = 490.0;
/// `=` with its spaces, which starts the right-hand column.
const RELATION: f64 = 13.4;
/// The `\quad` a continuation line is indented by.
const INDENT: f64 = 10.0;
/// The least room between the equations and their notes' column (amsmath's `\minalignsep`).
const GAP: f64 = 10.0;

/// One row of an aligned block: an equation's first line (with its left-hand side) or a
/// continuation, and the note of the equation on its last row.
struct Row {
    lhs: Option<String>,
    rhs: String,
    note: Option<String>,
}

/// A block of equations as rows that fit the text width: each right-hand side wider than its
/// column broken into lines ([`latex::break_lines`]). The notes stay a column of their own
/// when that leaves the equations half the width; otherwise they become tags (`true`), which
/// amsmath sets at the margin or, where the row is full, on a line of their own.
fn rows(lines: &[Line]) -> (Vec<Row>, bool) {
    let widest = |w: &dyn Fn(&Line) -> Option<f64>| lines.iter().filter_map(w).fold(0.0, f64::max);
    let lhs = widest(&|l| Some(latex::width(&l.lhs)));
    let notes = widest(&|l| l.note.as_deref().map(latex::width));
    let any_note = lines.iter().any(|l| l.note.is_some());
    let beside = TEXT_WIDTH - lhs - RELATION - if any_note { notes + GAP } else { 0.0 };
    let fits = lines.iter().all(|l| latex::width(&l.rhs) <= beside);
    let tags = !fits && any_note && beside < TEXT_WIDTH / 2.0;
    let budget = if tags { TEXT_WIDTH - lhs - RELATION } else { beside };
    let mut out = Vec::new();
    for l in lines {
        let parts = if fits {
            vec![l.rhs.clone()]
        } else {
            latex::break_lines(&l.rhs, budget, budget - INDENT)
        };
        let last = parts.len() - 1;
        for (k, rhs) in parts.into_iter().enumerate() {
            out.push(Row {
                lhs: (k == 0).then(|| l.lhs.clone()),
                rhs,
                note: if k == last { l.note.clone() } else { None },
            });
        }
    }
    (out, tags)
}

/// The body of an `align*` environment for a fragment (`grad`'s and `explain`'s LaTeX without
/// `--standalone`): wide equations broken as the documents break them.
pub fn align_body(lines: &[Line]) -> String {
    aligned(lines, true)
}

/// The body of an `align*` or `aligned` environment: continuation lines indented by a quad,
/// or under the `=` when they continue a chain of equalities; notes after `&&` or as tags.
fn aligned(lines: &[Line], tags: bool) -> String {
    let (rows, tagged) = rows(lines);
    rows.iter()
        .map(|r| {
            let equation = match &r.lhs {
                Some(lhs) => format!("{lhs} &= {}", r.rhs),
                None if r.rhs.starts_with('=') => format!("&{}", r.rhs),
                None => format!("&\\quad {}", r.rhs),
            };
            match &r.note {
                Some(n) if tags && tagged => format!("{equation} \\tag*{{${n}$}}"),
                Some(n) => format!("{equation} && {n}"),
                None => equation,
            }
        })
        .collect::<Vec<_>>()
        .join(" \\\\\n")
}

fn markdown_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '|' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
