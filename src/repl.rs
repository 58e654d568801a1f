//! The interactive session. `Session` holds the statements typed so far and answers
//! each line (a statement or a `:command`) with text; `run` puts a line editor around it
//! (rustyline: history, completion, multi-line input), or reads piped input as a script.

use crate::diagnostic::Error;
use crate::lower::{is_function, Checked, FUNCTIONS};
use crate::{check_script, grad_checked, Layout, Options};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, ConditionalEventHandler, Context, Event, EventContext, EventHandler, Helper, KeyCode, KeyEvent, Modifiers,
    RepeatCount,
};
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The REPL's commands, with their argument hints, for `:help` and completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (":grad", "VAR", "the gradient (or backprop of G) of the current target"),
    (":jacobian", "VAR", "the full-form Jacobian of the current target"),
    (":hessian", "VAR", "the Hessian of the current scalar target"),
    (
        ":hvp",
        "VAR DIR",
        "the Hessian-vector product H·DIR (DIR a variable of VAR's shape)",
    ),
    (":explain", "VAR", "the derivation step by step"),
    (":layout", "[numerator|denominator]", "show or set the layout"),
    (":emit", "text|latex|numpy", "set the output form"),
    (":shapes", "", "every name with its declared or inferred shape"),
    (
        ":load",
        "FILE",
        "load a script, or a numpy forward pass from a .py file",
    ),
    (":reset", "", "forget every statement"),
    (":help", "", "this list"),
    (":quit", "", "leave (Ctrl-D works too)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Text,
    Latex,
    Numpy,
}

/// What one line produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Output for stdout.
    Text(String),
    /// An error, already rendered (with colour when asked).
    Error(String),
    Nothing,
    Quit,
}

/// One REPL session, usable without a terminal:
///
/// ```
/// use matdiff::repl::{Reply, Session};
/// let mut s = Session::new(false);
/// s.feed("X : B x N; W : N x M; b : M");
/// s.feed("h = X*W + b");
/// let Reply::Text(out) = s.feed(":grad b") else { panic!() };
/// assert!(out.contains("∂L/∂b = Gᵀ·1_B"));
/// ```
pub struct Session {
    statements: Vec<String>,
    pub layout: Layout,
    pub emit: Emit,
    pub color: bool,
    checked: Option<Checked>,
    /// Whether an expression or definition has been typed (declarations alone have no target).
    has_target: bool,
    /// A numpy forward pass loaded with `:load`: its file, source and reading.
    loaded: Option<(String, String, crate::numpy_dialect::Program)>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new(false)
    }
}

impl Session {
    pub fn new(color: bool) -> Self {
        Session {
            statements: Vec::new(),
            layout: Layout::Denominator,
            emit: Emit::Text,
            color,
            checked: None,
            has_target: false,
            loaded: None,
        }
    }

    fn script(&self, extra: Option<&str>) -> String {
        let mut all: Vec<&str> = self.statements.iter().map(String::as_str).collect();
        all.extend(extra);
        all.join("\n")
    }

    /// Names declared or inferred so far, for completion.
    pub fn names(&self) -> Vec<String> {
        match &self.checked {
            Some(c) => c.variables.iter().chain(c.definitions.iter()).cloned().collect(),
            None => Vec::new(),
        }
    }

    fn render_error(&self, e: &Error, script: &str) -> Reply {
        Reply::Error(e.render("<repl>", script, self.color))
    }

    /// Renders an error found in `script`, whose last line is `line`: against that line
    /// when the error is in it, else against the whole session.
    fn render_in_line(&self, e: Error, script: &str, line: &str) -> Reply {
        let offset = script.len() - line.len();
        match e.span {
            Some(span) if span.start >= offset && e.origin == crate::diagnostic::Origin::Script => {
                self.render_error(&e.relative_to(offset), line)
            }
            _ => self.render_error(&e, script),
        }
    }

    /// Answers one line of input.
    pub fn feed(&mut self, line: &str) -> Reply {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Reply::Nothing;
        }
        if let Some(command) = trimmed.strip_prefix(':') {
            return self.command(command);
        }
        self.statement(trimmed)
    }

    fn statement(&mut self, line: &str) -> Reply {
        let statements = match crate::syntax::parse(line) {
            Ok(s) => s,
            Err(e) => return self.render_error(&e, line),
        };
        let script = self.script(Some(line));
        match check_script(&script) {
            Ok(checked) => {
                self.statements.push(line.to_string());
                let reply = describe(&statements, &checked);
                self.checked = Some(checked);
                self.has_target = true;
                Reply::Text(reply)
            }
            // A script of declarations alone has no target yet; keep them.
            Err(_)
                if statements
                    .iter()
                    .all(|s| matches!(s, crate::syntax::Statement::Declare { .. })) =>
            {
                let probe = format!("{script}\n0");
                match check_script(&probe) {
                    Ok(checked) => {
                        self.statements.push(line.to_string());
                        let names: Vec<String> = statements
                            .iter()
                            .filter_map(|s| match s {
                                crate::syntax::Statement::Declare { name, .. } => {
                                    checked.shape_of(name).map(|shape| format!("{name} : {shape}"))
                                }
                                _ => None,
                            })
                            .collect();
                        if !self.has_target {
                            self.checked = Some(checked);
                        }
                        Reply::Text(names.join("\n"))
                    }
                    Err(e) => self.render_in_line(e, &script, line),
                }
            }
            Err(e) => self.render_in_line(e, &script, line),
        }
    }

    fn command(&mut self, command: &str) -> Reply {
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg = words.next();
        match (name, arg) {
            ("quit" | "q" | "exit", _) => Reply::Quit,
            ("help" | "h" | "?", _) => Reply::Text(help()),
            ("reset", _) => {
                self.statements.clear();
                self.checked = None;
                self.has_target = false;
                self.loaded = None;
                Reply::Text("forgot every statement".into())
            }
            ("load", Some(_)) => self.load(command["load".len()..].trim()),
            ("load", None) => Reply::Error("error: `:load` needs a file, e.g. `:load layer.py`\n".into()),
            ("shapes", _) => Reply::Text(self.shapes()),
            ("layout", None) => Reply::Text(format!("layout: {}", self.layout.name())),
            ("layout", Some("numerator")) => {
                self.layout = Layout::Numerator;
                Reply::Text("layout: numerator".into())
            }
            ("layout", Some("denominator")) => {
                self.layout = Layout::Denominator;
                Reply::Text("layout: denominator".into())
            }
            ("emit", Some(form)) => match form {
                "text" => self.set_emit(Emit::Text),
                "latex" => self.set_emit(Emit::Latex),
                "numpy" => self.set_emit(Emit::Numpy),
                other => Reply::Error(format!(
                    "error: unknown output form `{other}`; use text, latex or numpy\n"
                )),
            },
            ("grad", Some(var)) => self.grad(var),
            ("hvp", Some(var)) => match words.next() {
                Some(dir) => self.hvp(var, dir),
                None => Reply::Error(format!(
                    "error: `:hvp` needs a variable and a direction of its shape, e.g. `:hvp {var} V`\n"
                )),
            },
            ("hvp", None) => Reply::Error("error: `:hvp` needs a variable and a direction, e.g. `:hvp x v`\n".into()),
            ("jacobian" | "hessian" | "explain", Some(var)) => self.full(name, var),
            ("grad" | "jacobian" | "hessian" | "explain", None) => {
                Reply::Error(format!("error: `:{name}` needs a variable, e.g. `:{name} X`\n"))
            }
            _ => {
                let known: Vec<&str> = COMMANDS.iter().map(|(c, _, _)| &c[1..]).collect();
                let hint = crate::diagnostic::closest(name, known.iter().copied())
                    .map(|c| format!("; did you mean `:{c}`?"))
                    .unwrap_or_default();
                Reply::Error(format!(
                    "error: unknown command `:{command}`{hint} (`:help` lists them)\n"
                ))
            }
        }
    }

    fn set_emit(&mut self, emit: Emit) -> Reply {
        self.emit = emit;
        Reply::Text(format!("emit: {emit:?}").to_lowercase())
    }

    fn shapes(&self) -> String {
        let Some(c) = &self.checked else {
            return "no statements yet".into();
        };
        let mut lines = Vec::new();
        for v in &c.variables {
            let how = if c.inferred.iter().any(|(n, _)| n == v) {
                "inferred"
            } else {
                "declared"
            };
            if let Some(s) = c.shape_of(v) {
                let sym = if c.env.symmetric.contains(&egg::Symbol::from(v.as_str())) {
                    " symmetric"
                } else {
                    ""
                };
                lines.push(format!("{v} : {s}{sym}   ({how})"));
            }
        }
        lines.join("\n")
    }

    /// The checked script the commands act on, and the session's options.
    fn target(&self) -> Result<(&Checked, Options), Reply> {
        let checked =
            self.checked.as_ref().filter(|_| self.has_target).ok_or_else(|| {
                Reply::Error("error: nothing to differentiate yet; type an expression first\n".into())
            })?;
        let options = Options {
            layout: self.layout,
            ..Options::default()
        };
        Ok((checked, options))
    }

    /// `:jacobian`, `:hessian` and `:explain`: shown when every check passed, else as an error.
    fn full(&mut self, command: &str, var: &str) -> Reply {
        let script = self.script(None);
        let (checked, options) = match self.target() {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let latex = self.emit == Emit::Latex;
        let shown = match command {
            "explain" => crate::explain::explain(checked, var, &options).map(|x| {
                let text = if latex {
                    format!("\\begin{{align*}}\n{}\n\\end{{align*}}", x.latex())
                } else {
                    x.to_string()
                };
                (text, x.all_checked())
            }),
            kind => {
                let form = if kind == "jacobian" {
                    crate::fullform::jacobian(checked, var, &options)
                } else {
                    crate::fullform::hessian(checked, var, &options)
                };
                form.map(|f| {
                    let ok = f.check.passed() && f.contraction.as_ref().is_none_or(|(_, ok)| *ok);
                    let text = match self.emit {
                        Emit::Latex => f.matrix_latex(),
                        Emit::Numpy => f.numpy(),
                        Emit::Text => f.to_string(),
                    };
                    (text, ok)
                })
            }
        };
        match shown {
            Ok((text, true)) => Reply::Text(text),
            Ok((text, false)) => Reply::Error(format!("{text}\n")),
            Err(e) => self.render_error(&e, &script),
        }
    }

    /// `:hvp VAR DIR`: H·DIR without forming H, shown when its check passed, else as an error.
    fn hvp(&mut self, var: &str, dir: &str) -> Reply {
        let script = self.script(None);
        let (checked, options) = match self.target() {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        match crate::hvp::hvp(checked, var, dir, &options) {
            Ok(product) => {
                let text = match self.emit {
                    Emit::Latex => product.latex(),
                    Emit::Numpy => product.numpy(),
                    Emit::Text => product.to_string(),
                };
                if product.check.passed() {
                    Reply::Text(text)
                } else {
                    Reply::Error(format!("{text}\n"))
                }
            }
            Err(e) => self.render_error(&e, &script),
        }
    }

    /// `:load FILE`: a `.py` file is read as a numpy forward pass (its last function), any
    /// other file as a script; either replaces the session's statements.
    pub fn load(&mut self, path: &str) -> Reply {
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => return Reply::Error(format!("error: cannot read `{path}`: {e}\n")),
        };
        if crate::numpy_dialect::is_numpy_file(path) {
            return match crate::numpy_dialect::read(&source, None) {
                Ok(program) => {
                    let summary = format!(
                        "loaded `{}` from {path}: gradients with respect to {} (`:grad all` for every one)",
                        program.function,
                        program.variables.join(", ")
                    );
                    self.statements.clear();
                    self.checked = Some(program.checked.clone());
                    self.has_target = true;
                    self.loaded = Some((path.to_string(), source, program));
                    Reply::Text(summary)
                }
                Err(e) => Reply::Error(e.render(path, &source, self.color)),
            };
        }
        match check_script(&source) {
            Ok(checked) => {
                self.statements = vec![source];
                self.loaded = None;
                self.checked = Some(checked);
                self.has_target = true;
                Reply::Text(format!("loaded {path}"))
            }
            Err(e) => Reply::Error(e.render(path, &source, self.color)),
        }
    }

    fn grad(&mut self, var: &str) -> Reply {
        let script = self.script(None);
        let (checked, options) = match self.target() {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        if let Some((path, source, program)) = &self.loaded {
            // A numpy forward pass: one gradient, a list, or `all`, shown as one backward pass.
            let wrt = program.resolve_wrt(var);
            let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
            let derived = crate::grad_all(checked, &wrt, &options);
            return match derived {
                Ok(ds) => {
                    let shown = match self.emit {
                        Emit::Text => crate::derivations_text(&ds),
                        Emit::Latex => format!("\\begin{{align*}}\n{}\n\\end{{align*}}", crate::derivations_latex(&ds)),
                        Emit::Numpy => program.python_function(&ds),
                    };
                    if ds.iter().all(|d| d.check.passed()) {
                        Reply::Text(shown)
                    } else {
                        Reply::Error(format!("{shown}\n"))
                    }
                }
                Err(e) => Reply::Error(e.render(path, source, self.color)),
            };
        }
        match grad_checked(checked, var, &options) {
            Ok(d) if d.check.passed() => Reply::Text(match self.emit {
                Emit::Text => d.to_string(),
                Emit::Latex => format!("\\begin{{align*}}\n{}\n\\end{{align*}}", d.latex()),
                Emit::Numpy => d.numpy(),
            }),
            Ok(d) => Reply::Error(format!("{d}\n")),
            Err(e) => self.render_error(&e, &script),
        }
    }
}

/// What a successful line declared or computed: shapes, and the explicit broadcast form.
fn describe(statements: &[crate::syntax::Statement], checked: &Checked) -> String {
    use crate::syntax::Statement;
    let mut out = Vec::new();
    for s in statements {
        match s {
            Statement::Declare { name, .. } => {
                if let Some(shape) = checked.shape_of(name) {
                    out.push(format!("{name} : {shape}"));
                }
            }
            Statement::Define { .. } | Statement::Expr(_) => {
                let t = &checked.target;
                let text = crate::render::render(&t.expr, &crate::render::text::Text).text;
                let label = t.name.as_deref().map(|n| format!("{n} = ")).unwrap_or_default();
                let mut line = format!("{label}{text}   ({})", t.shape);
                if !checked.broadcasts.is_empty() {
                    line.push_str(&format!("; {}", checked.broadcasts.join("; ")));
                }
                out.push(line);
            }
        }
    }
    out.join("\n")
}

pub fn help() -> String {
    let mut lines = vec![
        "Type declarations (`X : B x N`), definitions (`h = X*W + b`) and expressions; they accumulate.".to_string(),
        "The last expression or definition is the target of the commands:".to_string(),
    ];
    for (c, arg, what) in COMMANDS {
        lines.push(format!("  {:<28} {what}", format!("{c} {arg}")));
    }
    lines.push("A line ending in `\\` or with an open bracket continues on the next line.".into());
    lines.join("\n")
}

/// Line-editor support: completion of commands, functions and names; multi-line input.
struct ReplHelper {
    names: Rc<RefCell<Vec<String>>>,
}

impl Helper for ReplHelper {}
impl Highlighter for ReplHelper {}
impl Hinter for ReplHelper {
    type Hint = String;
}

impl Completer for ReplHelper {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8));
        let word = &before[start..];
        let mut candidates: Vec<String> = if word.starts_with(':') {
            COMMANDS.iter().map(|(c, _, _)| c.to_string()).collect()
        } else {
            let mut all: Vec<String> = FUNCTIONS.iter().map(|(f, _, _)| f.to_string()).collect();
            all.extend(self.names.borrow().iter().cloned());
            all
        };
        candidates.retain(|c| c.starts_with(word));
        candidates.sort();
        candidates.dedup();
        let pairs = candidates
            .into_iter()
            .map(|c| {
                let replacement = if is_function(&c) { format!("{c}(") } else { c.clone() };
                Pair {
                    display: c,
                    replacement,
                }
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if needs_more(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

/// Whether the input continues on the next line: a trailing `\` or an open bracket.
pub fn needs_more(input: &str) -> bool {
    if input.trim_end().ends_with('\\') {
        return true;
    }
    let mut depth = 0i64;
    for line in input.lines() {
        for c in line.split('#').next().unwrap_or("").chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
        }
    }
    depth > 0
}

fn join_continued(input: &str) -> String {
    input.replace("\\\n", " ").replace('\n', " ")
}

/// Runs a bracketed paste as if its keys were typed, so that each pasted line is echoed
/// after its prompt and answered in turn, and a continued statement continues as typed.
/// rustyline's own handling reads the whole paste and inserts it into one line, which
/// then ran as one statement. Bound to the paste's start and end markers, and to Tab:
/// a Tab inside a paste is text (indentation), not a request to complete.
#[derive(Clone, Default)]
struct PasteAsTyped {
    /// Whether the keys being read are between the paste's markers. Shared by the three
    /// bindings; rustyline wants handlers to be `Send + Sync`.
    inside: Arc<AtomicBool>,
}

impl ConditionalEventHandler for PasteAsTyped {
    fn handle(&self, evt: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        match evt.get(0) {
            Some(KeyEvent(KeyCode::BracketedPasteStart, _)) => {
                self.inside.store(true, Ordering::Relaxed);
                Some(Cmd::Noop)
            }
            Some(KeyEvent(KeyCode::BracketedPasteEnd, _)) => {
                self.inside.store(false, Ordering::Relaxed);
                Some(Cmd::Noop)
            }
            Some(KeyEvent(KeyCode::Tab, _)) if self.inside.load(Ordering::Relaxed) => {
                // Not `SelfInsert`: a bound command is replayed, and a replayed
                // `SelfInsert` inserts the last inserted text instead of its own.
                Some(Cmd::Insert(1, "\t".into()))
            }
            _ => None,
        }
    }
}

fn history_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("MATDIFF_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".matdiff_history"))
}

/// Runs the REPL on the terminal, or reads standard input as a script when it is piped.
pub fn run(file: Option<&str>) -> i32 {
    let color_ok = std::env::var_os("NO_COLOR").is_none();
    if !std::io::stdin().is_terminal() {
        let mut session = Session::new(false);
        let mut status = 0;
        if let Some(path) = file {
            match session.load(path) {
                Reply::Text(t) => out!("{t}"),
                Reply::Error(e) => {
                    err_raw!("{e}");
                    return 2;
                }
                _ => {}
            }
        }
        let mut pending = String::new();
        let mut answer = |session: &mut Session, input: &str| match session.feed(input) {
            Reply::Text(t) => {
                out!("{t}");
                true
            }
            Reply::Error(e) => {
                err_raw!("{e}");
                status = 2;
                true
            }
            Reply::Nothing => true,
            Reply::Quit => false,
        };
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            // A command never continues a statement: an unfinished one is answered first.
            if line.trim_start().starts_with(':') && !pending.is_empty() {
                let unfinished = join_continued(&std::mem::take(&mut pending));
                if !answer(&mut session, &unfinished) {
                    break;
                }
            }
            pending.push_str(&line);
            pending.push('\n');
            if needs_more(&pending) && !line.trim_start().starts_with(':') {
                continue;
            }
            let input = join_continued(&std::mem::take(&mut pending));
            if !answer(&mut session, &input) {
                return status;
            }
        }
        if !pending.is_empty() {
            let unfinished = join_continued(&pending);
            answer(&mut session, &unfinished);
        }
        return status;
    }
    let mut session = Session::new(color_ok && std::io::stdout().is_terminal());
    if let Some(path) = file {
        match session.load(path) {
            Reply::Text(t) => out!("{t}"),
            Reply::Error(e) => err_raw!("{e}"),
            _ => {}
        }
    }
    let names = Rc::new(RefCell::new(Vec::new()));
    // One editor for the whole session: rustyline reads the terminal in blocks, and only the
    // editor carries what it read past a line's end (keys typed ahead, the rest of a paste)
    // on to the next line; that needs its `buffer-redux` feature, without which they were lost.
    let mut editor = match rustyline::Editor::<ReplHelper, rustyline::history::FileHistory>::new() {
        Ok(e) => e,
        Err(e) => {
            err!("error: cannot start the line editor: {e}");
            return 2;
        }
    };
    editor.set_helper(Some(ReplHelper { names: names.clone() }));
    let paste = PasteAsTyped::default();
    for key in [KeyCode::BracketedPasteStart, KeyCode::BracketedPasteEnd, KeyCode::Tab] {
        editor.bind_sequence(
            KeyEvent(key, Modifiers::NONE),
            EventHandler::Conditional(Box::new(paste.clone())),
        );
    }
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    out!(
        "matdiff {} — `:help` for commands, Ctrl-D to quit",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match editor.readline("matdiff> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                match session.feed(&join_continued(&line)) {
                    Reply::Text(t) => out!("{t}"),
                    Reply::Error(e) => err_raw!("{e}"),
                    Reply::Nothing => {}
                    Reply::Quit => break,
                }
                *names.borrow_mut() = session.names();
            }
            // rustyline carries read-ahead keys over only from an entered line: keys that came
            // in one block with a Ctrl-C are dropped, as a terminal drops input on an interrupt.
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                err!("error: {e}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    0
}
