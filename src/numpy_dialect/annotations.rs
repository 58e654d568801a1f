//! Shapes of parameters written without an annotation, where the body fixes them.
//!
//! numpy's broadcasting lets one body accept many shapes (`x.dot(w) + b` takes `b` as a
//! scalar, a row, or a full matrix), so a shape is inferred only when it is the one shape the
//! body allows. The candidates are built from the sizes of the annotated parameters (a
//! scalar, one axis, two axes, labels), without size-1 axes (those are a choice the user
//! writes down); each assignment of candidates is read as if it were written, and the
//! readings that succeed decide. Reading is the judge, so inference can never disagree with
//! the interpreter's own shape rules.

use super::interpret::{Interpreter, Reading, Value};
use super::syntax::{Expr, ExprKind, FunctionDef, Index, Param, Stmt};
use crate::diagnostic::Error;
use crate::dim::Dim;
use std::collections::HashMap;

/// More readings than this, and the user is asked to annotate instead (each is a full read).
const MAX_READINGS: usize = 4096;

/// What inference decided: the annotation texts taken, and the reading under them.
pub struct Inferred {
    pub shapes: Vec<(String, String)>,
    pub reading: Reading,
}

/// Reads `f`, inferring the shape of each parameter that has neither an annotation nor a
/// default and is used by the body. A parameter the body never names is passed through.
pub fn read_inferring(
    f: &FunctionDef,
    source: &str,
    functions: &HashMap<String, &FunctionDef>,
    constants: &HashMap<String, Value>,
) -> Result<Inferred, Error> {
    let bare = f
        .params
        .iter()
        .filter(|p| p.annotation.is_none() && p.default.is_none());
    let (unknown, unread): (Vec<&Param>, Vec<&Param>) = bare.partition(|p| mentioned(&f.body, &p.name));
    let passed: HashMap<String, Option<String>> = unread.iter().map(|p| (p.name.clone(), None)).collect();
    let interpreter = || Interpreter::new(functions, constants).assuming(passed.clone());
    if unknown.is_empty() {
        let reading = interpreter().read(f, source)?;
        return Ok(Inferred {
            shapes: Vec::new(),
            reading,
        });
    }
    let sizes = interpreter().declared_sizes(f);
    let candidates = candidates(&sizes);
    let trials = candidates.len().checked_pow(unknown.len() as u32).unwrap_or(usize::MAX);
    if sizes.is_empty() || trials > MAX_READINGS {
        return Err(missing(unknown[0]).with_note(if sizes.is_empty() {
            "no other parameter's annotation names a size to build its shape from".to_string()
        } else {
            format!(
                "{} parameters have no annotation: too many shapes to try; annotate all but one",
                unknown.len()
            )
        }));
    }

    let mut successes: Vec<(Vec<usize>, Reading)> = Vec::new();
    let mut furthest: Option<(Error, Vec<usize>)> = None;
    // Whether every failed reading stopped at the same place for the same reason: then the
    // parameters' shapes are not what stops it.
    let mut one_failure = true;
    let mut choice = vec![0usize; unknown.len()];
    loop {
        let mut assumed = passed.clone();
        assumed.extend(
            unknown
                .iter()
                .zip(&choice)
                .map(|(p, &k)| (p.name.clone(), Some(candidates[k].clone()))),
        );
        match Interpreter::new(functions, constants).assuming(assumed).read(f, source) {
            // Only whether several succeed matters, so the second reading need not be kept.
            Ok(reading) => successes.push((choice.clone(), reading)),
            Err(e) => {
                let reach = |e: &Error| e.span.map_or(0, |s| s.start);
                if let Some((best, _)) = &furthest {
                    one_failure &= best.span == e.span && best.message == e.message;
                }
                if furthest.as_ref().is_none_or(|(best, _)| reach(&e) > reach(best)) {
                    furthest = Some((e, choice.clone()));
                }
            }
        }
        if !next(&mut choice, candidates.len()) {
            break;
        }
    }

    match successes.len() {
        1 => {
            let (choice, reading) = successes.pop().expect("one reading");
            let shapes = unknown
                .iter()
                .zip(choice)
                .map(|(p, k)| (p.name.clone(), candidates[k].clone()))
                .collect();
            Ok(Inferred { shapes, reading })
        }
        0 => {
            let (e, choice) = furthest.expect("every reading failed");
            if one_failure {
                return Err(e);
            }
            let tried: Vec<String> = unknown
                .iter()
                .zip(choice)
                .map(|(p, k)| format!("`{}: \"{}\"`", p.name, candidates[k]))
                .collect();
            Err(e.with_note(format!(
                "{} no annotation, and no shape built from {} makes the body valid; the reading that went furthest ({}) stops here",
                have_no(&unknown),
                size_list(&sizes),
                tried.join(", ")
            )))
        }
        _ => {
            // Name the first parameter the body leaves open, with the shapes it allows.
            let (k, p) = unknown
                .iter()
                .enumerate()
                .find(|(k, _)| successes.iter().any(|(c, _)| c[*k] != successes[0].0[*k]))
                .expect("two readings differ in some parameter");
            let mut allowed: Vec<&str> = Vec::new();
            for (c, _) in &successes {
                let text = candidates[c[k]].as_str();
                if !allowed.contains(&text) {
                    allowed.push(text);
                }
            }
            let shown: Vec<String> = allowed.iter().take(6).map(|t| format!("\"{t}\"")).collect();
            let more = if allowed.len() > 6 {
                format!(" and {} more", allowed.len() - 6)
            } else {
                String::new()
            };
            Err(Error::name(
                format!(
                    "parameter `{}` has no shape annotation, and the body allows several shapes: {}{more}",
                    p.name,
                    shown.join(", ")
                ),
                p.span,
            )
            .with_note(format!(
                "each is valid numpy here: annotate the one meant (shapes tried are built from {})",
                size_list(&sizes)
            )))
        }
    }
}

/// The annotations tried: a scalar, then one axis, two axes and labels over the sizes.
fn candidates(sizes: &[Dim]) -> Vec<String> {
    let mut out = vec!["scalar".to_string()];
    out.extend(sizes.iter().map(Dim::pretty));
    for a in sizes {
        for b in sizes {
            out.push(format!("{} x {}", a.pretty(), b.pretty()));
        }
    }
    for a in sizes {
        for b in sizes.iter().filter(|b| *b != a) {
            out.push(format!("{} labels of {}", a.pretty(), b.pretty()));
        }
    }
    out
}

/// The next assignment of candidates, counting in base `n`; false after the last.
fn next(choice: &mut [usize], n: usize) -> bool {
    for digit in choice.iter_mut() {
        *digit += 1;
        if *digit < n {
            return true;
        }
        *digit = 0;
    }
    false
}

fn missing(p: &Param) -> Error {
    Error::name(format!("parameter `{}` has no shape annotation", p.name), p.span).with_note(format!(
        "annotate it with its shape in matdiff's shape syntax, e.g. `{}: \"N x D\"`, `\"D\"`, `\"scalar\"` or `\"N labels of C\"`",
        p.name
    ))
}

fn have_no(unknown: &[&Param]) -> String {
    let names: Vec<String> = unknown.iter().map(|p| format!("`{}`", p.name)).collect();
    match names.as_slice() {
        [one] => format!("{one} has"),
        _ => format!("{} have", names.join(", ")),
    }
}

fn size_list(sizes: &[Dim]) -> String {
    let names: Vec<String> = sizes.iter().map(Dim::pretty).collect();
    format!("the sizes {}", names.join(", "))
}

/// Whether the statements read `name` anywhere (also inside functions defined there).
fn mentioned(body: &[Stmt], name: &str) -> bool {
    body.iter().any(|st| match st {
        Stmt::Def(f) => mentioned(&f.body, name),
        Stmt::Assign { targets, value, .. } => targets.iter().chain([value]).any(|e| reads(e, name)),
        Stmt::AugAssign { target, value, .. } => reads(target, name) || reads(value, name),
        Stmt::Return { value, .. } => value.as_ref().is_some_and(|e| reads(e, name)),
        Stmt::Expr(e) => reads(e, name),
        Stmt::Nothing | Stmt::Import(_) | Stmt::Unsupported { .. } => false,
    })
}

fn reads(e: &Expr, name: &str) -> bool {
    let any = |es: &[Expr]| es.iter().any(|e| reads(e, name));
    match &e.kind {
        ExprKind::Name(n) => n == name,
        ExprKind::Tuple(es) | ExprKind::List(es) => any(es),
        ExprKind::Call { func, args, kwargs } => {
            reads(func, name) || any(args) || kwargs.iter().any(|(_, e, _)| reads(e, name))
        }
        ExprKind::Attr(e, _, _) | ExprKind::Neg(e) | ExprKind::Pos(e) => reads(e, name),
        ExprKind::Subscript(e, index) => {
            reads(e, name)
                || index.iter().any(|i| match i {
                    Index::Expr(e) => reads(e, name),
                    Index::Slice(a, b, c, _) => [a, b, c].into_iter().flatten().any(|e| reads(e, name)),
                })
        }
        ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => reads(a, name) || reads(b, name),
        ExprKind::Number { .. }
        | ExprKind::Str(_)
        | ExprKind::NoneLit
        | ExprKind::Bool(_)
        | ExprKind::Ellipsis
        | ExprKind::Unsupported(_)
        | ExprKind::Opaque(_) => false,
    }
}
