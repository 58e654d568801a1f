//! matdiff: symbolic matrix calculus that shows its work and proves it numerically.
//!
//! The pipeline: [`syntax`] parses a script, [`lower`] checks shapes (inferring the
//! undeclared ones) and lowers the target to the [`ir`] with numpy broadcasting made
//! explicit, [`derive`] backpropagates through it with the rule tables in [`rules`],
//! [`simplify`] runs bounded equality saturation and extracts the textbook form,
//! [`numeric`] checks the result against finite differences, and [`render`] prints it.
//!
//! ```
//! let d = matdiff::grad("X : B x N; W : N x M; b : M; X*W + b", "b")?;
//! assert_eq!(d.formula_text(), "Gᵀ·1_B");
//! assert!(d.check.passed());
//! # Ok::<(), matdiff::Error>(())
//! ```

/// Writes a line to stdout, ignoring a closed pipe (`matdiff … | head` must not panic).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Writes a line to stderr, ignoring a closed pipe.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Writes to stderr without a newline, ignoring a closed pipe.
#[macro_export]
macro_rules! err_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod canon;
pub mod derive;
pub mod diagnostic;
pub mod dim;
pub mod explain;
pub mod fullform;
pub mod hvp;
mod infer;
pub mod ir;
pub mod lower;
pub mod numeric;
pub mod numpy_dialect;
pub mod ops;
mod order;
pub mod render;
pub mod repl;
pub mod rules;
mod saturation;
pub mod simplify;
pub mod syntax;

pub use diagnostic::{Error, ErrorKind, Span};
pub use numeric::Check;

use dim::Shape;
use egg::{Id, RecExpr, Symbol};
use ir::{Env, Math, MathGraph, ShapeAnalysis};
use lower::Checked;
use numeric::{CheckOptions, Claim};
use render::{numpy::Numpy, text::Text};
use simplify::{Limits, SimplifyReport};
use std::collections::BTreeSet;
use std::fmt;

/// Which way a derivative of a scalar by a matrix is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The gradient has the variable's shape (`∂L/∂b = Gᵀ·1_B` for `b : M`).
    #[default]
    Denominator,
    /// The transpose: a row for a column vector (`1_Bᵀ·G`).
    Numerator,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Denominator => "denominator",
            Layout::Numerator => "numerator",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub layout: Layout,
    /// Skip the numeric check; the result is then marked unchecked.
    pub no_check: bool,
    pub check: CheckOptions,
    pub limits: Limits,
    /// Negates the derived formula before the check, to exercise the path a wrong
    /// formula takes (tests only; the CLI's hidden `--plant-fault`).
    pub plant_fault: bool,
}

/// A derived formula with everything needed to show and trust it.
#[derive(Debug, Clone)]
pub struct Derivation {
    /// The target's name in the script, if it was a definition.
    pub target_name: Option<String>,
    /// The target with broadcasting explicit.
    pub target: RecExpr<Math>,
    pub target_shape: Shape,
    pub wrt: String,
    pub wrt_shape: Shape,
    pub layout: Layout,
    /// For a non-scalar target, the upstream gradient's name and shape.
    pub upstream: Option<(Symbol, Shape)>,
    /// The derivative, simplified, over the script's variables (and G) only.
    pub formula: RecExpr<Math>,
    /// The same derivative using the script's definitions as names: the form shown.
    pub named: RecExpr<Math>,
    /// The definitions `named` uses (directly or through each other), in script order,
    /// each written with the earlier ones.
    pub definitions: Vec<(String, RecExpr<Math>)>,
    /// The target written with the definitions before it, when the script has any.
    pub target_named: Option<RecExpr<Math>>,
    pub env: Env,
    pub dims: BTreeSet<String>,
    /// The script's variables in order of declaration, then of first use.
    pub variables: Vec<String>,
    pub broadcasts: Vec<String>,
    pub inferred: Vec<(String, Shape)>,
    pub check: Check,
    pub simplify: SimplifyReport,
    /// The formula the rules left when it was found identically 0 (it is then shown as 0).
    pub derived_zero: Option<String>,
}

/// Parses and checks a script: shapes, broadcasting, the target.
///
/// ```
/// let checked = matdiff::check_script("X : B x N; W : N x M; b : M; h = X*W + b")?;
/// assert_eq!(checked.target.shape.to_string(), "B x M");
/// assert_eq!(checked.broadcasts, ["b : M broadcast over the B rows"]);
///
/// let err = matdiff::check_script("X : n x m; tr(X)").unwrap_err();
/// assert!(err.render("<script>", "X : n x m; tr(X)", false).contains("^^^^^"));
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn check_script(script: &str) -> Result<Checked, Error> {
    let statements = syntax::parse(script)?;
    lower::check(&statements)
}

/// Derives ∂f/∂`wrt` for a scalar target f, or the backprop of an upstream G through
/// a non-scalar target (the gradient of ⟨G, target⟩), simplified and checked.
///
/// With the default options (denominator layout, the check on); see [`grad_with`].
///
/// ```
/// let d = matdiff::grad("A : n x n; X : n x n; tr(A*X)", "X")?;
/// assert_eq!(d.formula_text(), "Aᵀ");
/// assert!(d.check.passed());
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn grad(script: &str, wrt: &str) -> Result<Derivation, Error> {
    grad_with(script, wrt, &Options::default())
}

/// As [`grad`], with options: the layout, the check's settings, the e-graph limits.
///
/// ```
/// use matdiff::{grad_with, Layout, Options};
/// let numerator = Options { layout: Layout::Numerator, ..Options::default() };
/// let d = grad_with("X : B x N; W : N x M; b : M; h = X*W + b", "b", &numerator)?;
/// assert_eq!(d.formula_text(), "1_Bᵀ·G");
/// assert_eq!(d.numpy(), "np.reshape(G.sum(axis=0), (1, -1))");
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn grad_with(script: &str, wrt: &str, options: &Options) -> Result<Derivation, Error> {
    let checked = check_script(script)?;
    grad_checked(&checked, wrt, options)
}

/// As [`grad`], on a script already checked (so several variables share the parsing).
///
/// ```
/// let checked = matdiff::check_script("X : B x N; W : N x M; b : M; h = X*W + b")?;
/// for (wrt, expected) in [("W", "Xᵀ·G"), ("X", "G·Wᵀ"), ("b", "Gᵀ·1_B")] {
///     let d = matdiff::grad_checked(&checked, wrt, &matdiff::Options::default())?;
///     assert_eq!(d.formula_text(), expected);
/// }
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn grad_checked(checked: &Checked, wrt: &str, options: &Options) -> Result<Derivation, Error> {
    let wrt_shape = resolve_wrt(checked, wrt)?;
    let wrt_sym = Symbol::from(wrt);
    let target = &checked.target;

    let mut env = checked.env.clone();
    let upstream = (!target.shape.is_scalar()).then(|| {
        let name = upstream_name(checked);
        env.shapes.insert(name, target.shape.clone());
        (name, target.shape.clone())
    });

    // Differentiate the simplest form of the target; the check still uses the target as written.
    // Zeros fold on the tree first: in an e-graph, `A − A` = 0 = 0·X for every X fills the node limit.
    let target_expr = canon::fold_zeros(&env, &target.expr);
    let (simplest_target, _) = simplify::simplest(&env, &target_expr, options.limits.for_target());
    let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() });
    let seed = match &upstream {
        Some((g, _)) => egraph.add(Math::Symbol(*g)),
        None => egraph.add(Math::Num(ir::Const(1.0))),
    };
    let gradient = derive::backprop(&mut egraph, &simplest_target, wrt_sym, seed).map_err(|missing| {
        Error::unsupported(
            format!("matdiff cannot differentiate through `{}` yet", missing.op),
            target.span,
        )
    })?;
    let mut root = match gradient {
        Some(id) => id,
        None => zeros(&mut egraph, &wrt_shape),
    };
    if env.symmetric.contains(&wrt_sym) {
        // Srinivasan & Panda (2020): on symmetric matrices the gradient is sym(G) = (G + Gᵀ)/2.
        let t = egraph.add(Math::Transpose(root));
        let sum = egraph.add(Math::Add([root, t]));
        let half = egraph.add(Math::Num(ir::Const(0.5)));
        root = egraph.add(Math::Scale([half, sum]));
    }
    if options.layout == Layout::Numerator {
        root = egraph.add(Math::Transpose(root));
    }
    // The derivative as built holds many shortcuts (1·G, Aᵀ·I, (Gᵀ)ᵀ) and cancelling pairs
    // (0.5·2, A − A, A·A⁻¹). Cancelling inside an e-graph that also rearranges never ends, so
    // the canonical form takes them all, once, on the tree; the full run then only rearranges.
    crate::simplify::rebuild(&mut egraph);
    let mut reading = order::ReadingOrder::default();
    reading.read(&target.expr);
    for (name, expr, _) in &checked.definition_exprs {
        reading.alias(Symbol::from(name.as_str()), expr);
    }
    if let Some((g, _)) = &upstream {
        reading.upstream(*g);
    }
    let mut env_with_definitions = env.clone();
    let mut definition_bodies = Vec::new();
    for (name, expr, shape) in &checked.definition_exprs {
        let sym = Symbol::from(name.as_str());
        env_with_definitions.shapes.insert(sym, shape.clone());
        definition_bodies.push((sym, expr));
    }
    let built = simplify::extract(&egraph, root);
    // Too big a canonical form (a long product in every term of a long sum): the tidying
    // rules take the shortcuts instead.
    let gradient = match canon::canonical(&env_with_definitions, &reading, &definition_bodies, &built) {
        Some(canonical) => canonical,
        None => simplify::tidy(egraph, root, options.limits.for_target()),
    };
    let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() });
    let root = egraph.add_expr(&gradient);
    // Each definition is a name for its expression, so the result can be written with the
    // script's own intermediates, as a backward pass is (`A1ᵀ·(P − Y)`).
    let mut definition_classes = Vec::new();
    for (name, expr, shape) in &checked.definition_exprs {
        let sym = Symbol::from(name.as_str());
        egraph.analysis.env.shapes.insert(sym, shape.clone());
        let class = egraph.add_expr(&canon::fold_zeros(&egraph.analysis.env, expr));
        let leaf = egraph.add(Math::Symbol(sym));
        egraph.union(class, leaf);
        definition_classes.push((sym, class, expr.clone()));
    }
    let target_class = (!definition_classes.is_empty()).then(|| egraph.add_expr(&target_expr));
    crate::simplify::rebuild(&mut egraph);
    let (egraph, report) = simplify::saturate(egraph, options.limits);
    let extraction = simplify::Extraction::new(&egraph);
    let extract = |class: Id, banned: &[Symbol]| reading.arrange(&extraction.best_without(class, banned));
    let names: Vec<Symbol> = definition_classes.iter().map(|(s, _, _)| *s).collect();
    // The target written with the definitions before it (not with its own name).
    let own = target.name.as_deref().map(Symbol::from);
    let target_named = target_class.map(|class| {
        let upto = names.iter().position(|n| Some(*n) == own).unwrap_or(names.len());
        extract(class, &names[upto..])
    });
    let mut formula = extract(root, &names);
    // Without definitions there is nothing to name: the named form is the formula.
    let mut named = if names.is_empty() {
        formula.clone()
    } else {
        extract(root, &[])
    };
    if options.plant_fault {
        formula = negated(&formula);
        named = negated(&named);
    }
    // The definitions the named formula uses, each written with the earlier ones.
    let named_definitions: Vec<(Symbol, RecExpr<Math>)> = definition_classes
        .iter()
        .enumerate()
        .map(|(k, (s, class, _))| (*s, extract(*class, &names[k..])))
        .collect();
    let mut used = definitions_used(&named, &named_definitions);
    if let Some(t) = &target_named {
        used.extend(definitions_used(t, &named_definitions));
    }
    if let Some(own) = own {
        used.remove(&own);
    }
    let definitions: Vec<(String, RecExpr<Math>)> = named_definitions
        .into_iter()
        .filter(|(s, _)| used.contains(s))
        .map(|(s, e)| (s.to_string(), e))
        .collect();
    let inlined: Vec<(Symbol, RecExpr<Math>)> = definition_classes.iter().map(|(s, _, e)| (*s, e.clone())).collect();

    let check = if options.no_check {
        Check::Skipped
    } else {
        numeric::check_named(
            &Claim {
                env: &env,
                dims: &checked.dims,
                target: &target.expr,
                wrt: wrt_sym,
                upstream: upstream.clone(),
                formula: &formula,
                transposed: options.layout == Layout::Numerator,
            },
            Some(numeric::Named {
                formula: &named,
                definitions: &inlined,
            }),
            &options.check,
        )
    };
    let mut derivation = Derivation {
        target_name: target.name.clone(),
        target: target.expr.clone(),
        target_shape: target.shape.clone(),
        wrt: wrt.to_string(),
        wrt_shape,
        layout: options.layout,
        upstream,
        formula,
        named,
        definitions,
        target_named,
        env,
        dims: checked.dims.clone(),
        variables: checked.variables.clone(),
        broadcasts: checked.broadcasts.clone(),
        inferred: checked.inferred.clone(),
        check,
        simplify: report,
        derived_zero: None,
    };
    let claim = Claim {
        env: &derivation.env,
        dims: &checked.dims,
        target: &target.expr,
        wrt: wrt_sym,
        upstream: derivation.upstream.clone(),
        formula: &derivation.formula,
        transposed: options.layout == Layout::Numerator,
    };
    let already_zero = matches!(
        derivation.formula.as_ref().last(),
        Some(Math::Zeros(_)) | Some(Math::Num(ir::Const(0.0)))
    );
    if derivation.check.passed() && !already_zero && numeric::vanishes(&claim, &options.check) {
        let shape = derivation.formula_shape();
        let zero = fullform::zero_matrix(shape.rows, shape.cols);
        derivation.derived_zero = Some(derivation.formula_text());
        derivation.formula = zero.clone();
        derivation.named = zero;
        derivation.definitions.clear();
    }
    Ok(derivation)
}

/// Plain text set in LaTeX: its special characters escaped (a check line in a document).
pub fn latex_escape_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            _ => out.push(c),
        }
    }
    out
}

/// The definitions a formula refers to, directly or through the definitions it uses.
fn definitions_used(formula: &RecExpr<Math>, definitions: &[(Symbol, RecExpr<Math>)]) -> BTreeSet<Symbol> {
    let names_in = |e: &RecExpr<Math>| -> Vec<Symbol> {
        e.iter()
            .filter_map(|n| match n {
                Math::Symbol(s) if definitions.iter().any(|(d, _)| d == s) => Some(*s),
                _ => None,
            })
            .collect()
    };
    let mut used: BTreeSet<Symbol> = names_in(formula).into_iter().collect();
    // Definitions only refer to earlier ones, so one pass from the last back closes the set.
    for (s, expr) in definitions.iter().rev() {
        if used.contains(s) {
            used.extend(names_in(expr));
        }
    }
    used
}

fn negated(formula: &RecExpr<Math>) -> RecExpr<Math> {
    let mut out = formula.clone();
    let root = Id::from(out.len() - 1);
    let minus_one = out.add(Math::Num(ir::Const(-1.0)));
    out.add(Math::Scale([minus_one, root]));
    out
}

fn zeros(egraph: &mut MathGraph, shape: &Shape) -> Id {
    let r = egraph.add(Math::Dim(ir::DimNode(shape.rows.clone())));
    let c = egraph.add(Math::Dim(ir::DimNode(shape.cols.clone())));
    egraph.add(Math::Zeros([r, c]))
}

pub(crate) fn resolve_wrt(checked: &Checked, wrt: &str) -> Result<Shape, Error> {
    let at_argument = |e: Error| e.in_argument("--wrt", wrt);
    let whole = Span::new(0, wrt.len());
    if let Some(shape) = checked.shape_of(wrt) {
        return Ok(shape.clone());
    }
    if checked.definitions.iter().any(|d| d == wrt) {
        return Err(at_argument(
            Error::name(format!("`{wrt}` is defined in the script, not a variable"), whole)
                .with_note("differentiate with respect to a variable; a definition's gradient is its upstream G"),
        ));
    }
    if checked.dims.contains(wrt) {
        return Err(at_argument(Error::name(
            format!("`{wrt}` is a dimension, not a variable"),
            whole,
        )));
    }
    let mut err = Error::name(format!("`{wrt}` is not a variable of the script"), whole);
    if let Some(near) = diagnostic::closest(wrt, checked.variables.iter().map(String::as_str)) {
        err = err.with_note(format!("did you mean `{near}`?"));
    } else if !checked.variables.is_empty() {
        err = err.with_note(format!("the variables are: {}", checked.variables.join(", ")));
    }
    Err(at_argument(err))
}

fn upstream_name(checked: &Checked) -> Symbol {
    let taken = |n: &str| {
        checked.shape_of(n).is_some() || checked.dims.contains(n) || checked.definitions.iter().any(|d| d == n)
    };
    let mut candidates: Vec<String> = checked.upstream.iter().cloned().collect();
    candidates.push("G".to_string());
    if let Some(t) = &checked.target.name {
        candidates.push(format!("G_{t}"));
    }
    candidates.extend((1..).take(100).map(|i| format!("G{i}")));
    let name = candidates
        .into_iter()
        .find(|c| !taken(c))
        .unwrap_or_else(|| "G_upstream".into());
    Symbol::from(name.as_str())
}

impl Derivation {
    /// The target's name as printed: its definition's name, or `f`.
    pub fn target_label(&self) -> &str {
        self.target_name.as_deref().unwrap_or("f")
    }

    /// The loss whose gradient is shown: the target itself when scalar, else L.
    pub fn loss_label(&self) -> &str {
        if self.upstream.is_some() {
            "L"
        } else {
            self.target_label()
        }
    }

    /// The derivative as shown: with the script's definitions as names.
    pub fn formula_text(&self) -> String {
        render::render(&self.named, &Text).text
    }

    /// The derivative over the variables only (definitions expanded).
    pub fn expanded_text(&self) -> String {
        render::render(&self.formula, &Text).text
    }

    /// `where P = A1·W2 + 1_B·b2ᵀ, A1 = tanh(Z1)`: the definitions the formula names.
    pub fn where_text(&self) -> Option<String> {
        if self.definitions.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .definitions
            .iter()
            .map(|(n, e)| format!("{n} = {}", render::render(e, &Text).text))
            .collect();
        Some(format!("where {}", parts.join(", ")))
    }

    /// The target as shown: broadcasting explicit, earlier definitions by name.
    pub fn target_text(&self) -> String {
        render::render(self.target_named.as_ref().unwrap_or(&self.target), &Text).text
    }

    pub fn formula_shape(&self) -> Shape {
        match self.layout {
            Layout::Denominator => self.wrt_shape.clone(),
            Layout::Numerator => self.wrt_shape.transposed(),
        }
    }

    /// One numpy expression with the variable's shape (see [`render::numpy`]).
    pub fn numpy(&self) -> String {
        let body = render::render(&self.formula, &Numpy { env: &self.env });
        let shape = self.formula_shape();
        render::numpy::finish(&body, &self.wrt, &shape)
    }

    /// A complete Python function computing the gradient, with shape asserts:
    /// `def grad_b(X, W, b, G): ...`. Its arguments are the script's variables (and G).
    pub fn numpy_function(&self) -> String {
        let mut args: Vec<String> = self.variables.clone();
        if let Some((g, _)) = &self.upstream {
            args.push(g.to_string());
        }
        let body = render::numpy::bind_arguments(&args, &self.env);
        let doc = format!(
            "    \"\"\"∂{}/∂{} for {} = {} ({} layout), derived and checked by matdiff.\"\"\"",
            self.loss_label(),
            self.wrt,
            self.target_label(),
            self.target_text(),
            self.layout.name()
        );
        format!(
            "import numpy as np\n\n\ndef grad_{}({}):\n{doc}\n{}\n    return {}\n",
            self.wrt,
            args.join(", "),
            body.join("\n"),
            self.numpy()
        )
    }

    /// The target as a numpy expression (2-D internally, as the gradient's), for
    /// checking the emitted gradient against finite differences outside matdiff.
    pub fn target_numpy(&self) -> String {
        render::render(&self.target, &Numpy { env: &self.env }).text
    }

    pub fn formula_latex(&self) -> String {
        render::render(&self.named, &render::latex::Latex).text
    }

    pub fn target_latex(&self) -> String {
        render::render(
            self.target_named.as_ref().unwrap_or(&self.target),
            &render::latex::Latex,
        )
        .text
    }

    /// The result as LaTeX: the target with broadcasting explicit, and the derivative,
    /// shapes noted, as an `align*` body (two lines ending in `\\`).
    pub fn latex(&self) -> String {
        self.latex_lines(&mut BTreeSet::new()).join(" \\\\\n")
    }

    /// The `align*` lines: the definitions not yet in `seen`, the target, the derivative.
    fn latex_lines(&self, seen: &mut BTreeSet<String>) -> Vec<String> {
        use render::latex::{name, shape};
        let target = name(self.target_label());
        let loss = name(self.loss_label());
        let wrt = name(&self.wrt);
        let mut lines: Vec<String> = self
            .definitions
            .iter()
            .filter(|(n, _)| seen.insert(n.clone()))
            .map(|(n, e)| format!("{} &= {}", name(n), render::render(e, &render::latex::Latex).text))
            .collect();
        lines.push(format!(
            "{target} &= {} && ({})",
            self.target_latex(),
            shape(&self.target_shape)
        ));
        let mut note = shape(&self.formula_shape());
        if let Some((g, s)) = &self.upstream {
            note.push_str(&format!(
                ",\\ {} = \\frac{{\\partial L}}{{\\partial {target}}} \\in {}",
                name(g.as_str()),
                shape(s)
            ));
        }
        lines.push(format!(
            "\\frac{{\\partial {loss}}}{{\\partial {wrt}}} &= {} && ({note})",
            self.formula_latex()
        ));
        lines
    }

    /// A complete LaTeX document showing the derivation (compiles with pdflatex): the notes
    /// document of one gradient, as `--wrt` with several variables gives.
    pub fn latex_document(&self) -> String {
        render::notes::gradients(std::slice::from_ref(self)).latex(true)
    }

    pub fn json(&self) -> serde_json::Value {
        render::json::derivation(self)
    }

    /// The check line: what was checked and how well it agreed.
    pub fn check_text(&self) -> String {
        let drawn = numeric::how_drawn(&self.dims);
        match &self.check {
            Check::Passed { instances: 0, .. } => format!(
                "checked: {} does not depend on {}, so its gradient is exactly zero (no instance needed)",
                self.target_label(),
                self.wrt
            ),
            Check::Passed { instances, max_rel_err, .. } => {
                let zero = match &self.derived_zero {
                    Some(derived) => format!("; {}", fullform::zero_note(derived)),
                    None => String::new(),
                };
                format!(
                    "checked on {instances} random instances{drawn}{}, max relative error {max_rel_err:.1e}{zero}",
                    self.check.drawn_note()
                )
            }
            Check::Failed { instances, max_rel_err, .. } => format!(
                "CHECK FAILED on {instances} random instances{drawn}{}: max relative error {max_rel_err:.1e}; this formula disagrees with finite differences and must not be trusted",
                self.check.drawn_note()
            ),
            Check::NoDomain { tried, .. } => format!(
                "unchecked: no valid instance found in {tried} random draws ({})",
                self.check.no_domain_reason()
            ),
            Check::TooLarge { entries } => numeric::too_large(*entries),
            Check::Skipped => "unchecked (--no-check)".to_string(),
        }
    }
}

impl Derivation {
    /// `f = X·W + 1_B·bᵀ` and its note (shape, broadcasts).
    fn target_line(&self) -> (String, String) {
        let mut note = vec![self.target_shape.to_string()];
        note.extend(self.broadcasts.iter().cloned());
        (
            format!("{} = {}", self.target_label(), self.target_text()),
            note.join("; "),
        )
    }

    /// `∂L/∂b = Gᵀ·1_B` and its note (shape, layout, upstream).
    fn formula_line(&self) -> (String, String) {
        let mut note = vec![self.formula_shape().to_string()];
        if self.layout == Layout::Numerator {
            note.push("numerator layout".into());
        }
        if let Some((g, s)) = &self.upstream {
            note.push(format!("{g} = ∂L/∂{} : {s}", self.target_label()));
        }
        if self.env.symmetric.contains(&Symbol::from(self.wrt.as_str())) {
            note.push(format!("{} symmetric: sym(∇) = (∇ + ∇ᵀ)/2", self.wrt));
        }
        (
            format!("∂{}/∂{} = {}", self.loss_label(), self.wrt, self.formula_text()),
            note.join("; "),
        )
    }
}

/// Lines `text   (note)` with the notes of the lines that fit a screen aligned; a longer
/// line keeps its note four spaces after it, so one long formula does not push every note
/// off the screen.
fn aligned(lines: &[(String, String)]) -> Vec<String> {
    const SCREEN: usize = 100;
    let length = |t: &String| t.chars().count();
    let width = lines
        .iter()
        .map(|(t, _)| length(t))
        .filter(|&l| l <= SCREEN)
        .max()
        .unwrap_or(0)
        + 4;
    lines
        .iter()
        .map(|(t, n)| format!("{t}{}({n})", " ".repeat(width.saturating_sub(length(t)).max(4))))
        .collect()
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", derivations_text(std::slice::from_ref(self)))
    }
}

/// Several gradients of one target: the target once, every gradient, the intermediates
/// they name (once each), and each one's check.
pub fn derivations_text(derivations: &[Derivation]) -> String {
    let Some(first) = derivations.first() else {
        return String::new();
    };
    let mut out = Vec::new();
    if !first.inferred.is_empty() {
        let list: Vec<String> = first.inferred.iter().map(|(n, s)| format!("{n} : {s}")).collect();
        out.push(format!("inferred: {}", list.join("; ")));
    }
    let mut lines = vec![first.target_line()];
    lines.extend(derivations.iter().map(Derivation::formula_line));
    out.extend(aligned(&lines));
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut parts = Vec::new();
    for d in derivations {
        for (n, e) in &d.definitions {
            if seen.insert(n.as_str()) {
                parts.push(format!("{n} = {}", render::render(e, &Text).text));
            }
        }
    }
    if !parts.is_empty() {
        out.push(format!("  where {}", parts.join(", ")));
    }
    if let [only] = derivations {
        out.push(only.check_text());
    } else {
        for d in derivations {
            out.push(format!("∂{}/∂{}: {}", d.loss_label(), d.wrt, d.check_text()));
        }
    }
    out.join("\n")
}

/// Several gradients of one target as one `align*` body: the intermediates, the target, each gradient.
pub fn derivations_latex(derivations: &[Derivation]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for d in derivations {
        for line in d.latex_lines(&mut seen) {
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    lines.join(" \\\\\n")
}
