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
pub mod reason;
pub mod render;
pub mod repl;
pub mod rules;
mod saturation;
pub mod simplify;
pub mod syntax;

pub use diagnostic::{Error, ErrorKind, Span};
pub use numeric::Check;

use dim::Shape;
use egg::{Id, Language, RecExpr, Symbol};
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
    /// each written with the earlier ones; then the named upstreams it uses, likewise.
    pub definitions: Vec<(String, RecExpr<Math>)>,
    /// Which of `definitions` are named upstream gradients (`dh2 = ∂f/∂h2`): those a
    /// gradient through a fan-out would otherwise write out more than once.
    pub shared: Vec<String>,
    /// The target written with the definitions before it, when the script has any.
    pub target_named: Option<RecExpr<Math>>,
    pub env: Env,
    pub dims: BTreeSet<String>,
    /// The script's variables in order of declaration, then of first use.
    pub variables: Vec<String>,
    pub broadcasts: Vec<String>,
    /// Shapes the script leaves out and matdiff inferred, as the script's language writes them.
    pub inferred: Vec<(String, String)>,
    pub check: Check,
    pub simplify: SimplifyReport,
    /// The formula the rules left when it was found identically 0 (it is then shown as 0).
    pub derived_zero: Option<String>,
    /// Why it is 0, where the rules can say (the target simplifies to a constant).
    pub zero_reason: Option<String>,
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
    let mut derivations = grad_all(checked, &[wrt], options)?;
    Ok(derivations.pop().expect("one derivation per variable"))
}

/// As [`grad_checked`] for several variables, derived in one reverse pass: each node's
/// upstream is built once for all of them, and where upstreams are named (a gradient
/// through fan-out, see [`derive::backprop_shared`]) the gradients share the names and
/// each named piece is simplified once. In the order of `wrts`.
///
/// ```
/// let checked = matdiff::check_script("X : B x N; W : N x M; b : M; h = X*W + b")?;
/// let all = matdiff::grad_all(&checked, &["W", "X", "b"], &matdiff::Options::default())?;
/// let formulas: Vec<String> = all.iter().map(|d| d.formula_text()).collect();
/// assert_eq!(formulas, ["Xᵀ·G", "G·Wᵀ", "Gᵀ·1_B"]);
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn grad_all(checked: &Checked, wrts: &[&str], options: &Options) -> Result<Vec<Derivation>, Error> {
    let wrt_shapes: Vec<Shape> = wrts.iter().map(|w| resolve_wrt(checked, w)).collect::<Result<_, _>>()?;
    let wrt_syms: Vec<Symbol> = wrts.iter().map(|w| Symbol::from(*w)).collect();
    let target = &checked.target;

    let mut env = checked.env.clone();
    let upstream = (!target.shape.is_scalar()).then(|| {
        let name = upstream_name(checked);
        env.shapes.insert(name, target.shape.clone());
        (name, target.shape.clone())
    });

    let raw_bodies: Vec<(Symbol, &RecExpr<Math>)> = checked
        .definition_exprs
        .iter()
        .map(|(name, expr, _)| (Symbol::from(name.as_str()), expr))
        .collect();
    // Differentiate the simplest form of the target (the check still uses the target as
    // written), unless it fans out: written as a tree it is then many times its size, its
    // simplest form re-associates sums across the script's definitions (so the upstreams
    // to name no longer sit at the script's values), and the run, zeros' folding and every
    // other pass over the whole target grow with it. So does a small one whose script values
    // fan out in a chain (`derive::chains_fan_out`: a two-layer residual net), whose one
    // whole-gradient e-graph never saturates. Such a target is differentiated as written,
    // each definition a node; its gradient is simplified in pieces.
    let written_names = simplify::naming(&env, &target.expr, &raw_bodies);
    let written_named: Vec<bool> = written_names.iter().map(Option::is_some).collect();
    let fans_out = derive::fans_out(&target.expr) || derive::chains_fan_out(&target.expr, &wrt_syms, &written_named);
    // Zeros fold on the tree first: in an e-graph, `A − A` = 0 = 0·X for every X fills the
    // node limit. (A target that fans out reaches no e-graph whole.)
    let fold = |expr: &RecExpr<Math>| {
        if fans_out {
            expr.clone()
        } else {
            canon::fold_zeros(&env, expr)
        }
    };
    let target_expr = fold(&target.expr);
    let definition_exprs: Vec<(Symbol, RecExpr<Math>)> = raw_bodies.iter().map(|(s, e)| (*s, fold(e))).collect();
    let definition_refs: Vec<(Symbol, &RecExpr<Math>)> = definition_exprs.iter().map(|(s, e)| (*s, e)).collect();
    let (differentiated, definition_of) = if fans_out {
        (target_expr.clone(), written_names)
    } else {
        let (simplest, _, names) =
            simplify::simplest_naming(&env, &target_expr, &definition_refs, options.limits.for_target());
        (simplest, names)
    };
    let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() });
    let seed = match &upstream {
        Some((g, _)) => egraph.add(Math::Symbol(*g)),
        None => egraph.add(Math::Num(ir::Const(1.0))),
    };
    let mut namer = UpstreamNames::new(checked, definition_of, upstream.as_ref().map(|(g, _)| *g));
    // Past SHARE_ABOVE nodes an upstream used twice is always named; in a target that fans
    // out, also every upstream of one of the script's values used twice (`dh3`), as a
    // backward pass written by hand names them, so that each gradient reads over them.
    let shown_by_name: Vec<bool> = namer.definition_of.iter().map(Option::is_some).collect();
    let trace = derive::backprop_shared(
        &mut egraph,
        &differentiated,
        &wrt_syms,
        seed,
        &shown_by_name,
        &mut |node, size| {
            (size > derive::SHARE_ABOVE || (fans_out && size > 1 && namer.is_definition(node)))
                .then(|| namer.name(node))
        },
    )
    .map_err(|missing| {
        Error::unsupported(
            format!("matdiff cannot differentiate through `{}` yet", missing.op),
            target.span,
        )
    })?;
    let mut roots = Vec::with_capacity(wrts.len());
    for ((result, wrt_sym), wrt_shape) in trace.results.iter().zip(&wrt_syms).zip(&wrt_shapes) {
        let mut root = match result {
            Some(id) => *id,
            None => zeros(&mut egraph, wrt_shape),
        };
        if env.symmetric.contains(wrt_sym) {
            // Srinivasan & Panda (2020): on symmetric matrices the gradient is sym(G) = (G + Gᵀ)/2.
            let t = egraph.add(Math::Transpose(root));
            let sum = egraph.add(Math::Add([root, t]));
            let half = egraph.add(Math::Num(ir::Const(0.5)));
            root = egraph.add(Math::Scale([half, sum]));
        }
        if options.layout == Layout::Numerator {
            root = egraph.add(Math::Transpose(root));
        }
        roots.push(root);
    }
    crate::simplify::rebuild(&mut egraph);
    let mut reading = order::ReadingOrder::default();
    reading.read(&target.expr);
    for (name, expr, _) in &checked.definition_exprs {
        reading.alias(Symbol::from(name.as_str()), expr);
    }
    if let Some((g, _)) = &upstream {
        reading.upstream(*g);
    }
    // The e-graph's environment also has the named upstreams' shapes.
    let mut env_with_definitions = egraph.analysis.env.clone();
    for (name, _, shape) in &checked.definition_exprs {
        env_with_definitions
            .shapes
            .insert(Symbol::from(name.as_str()), shape.clone());
    }
    let context = Simplification {
        checked,
        env: &env,
        env_with_definitions: &env_with_definitions,
        reading: &reading,
        definition_bodies: &raw_bodies,
        folded_bodies: &definition_refs,
        target_expr: &target_expr,
        own: target.name.as_deref().map(Symbol::from),
        fans_out,
        limits: options.limits,
    };
    let simplified: Vec<Simplified> = if trace.shared.is_empty() {
        // Each gradient on its own, exactly as when it is asked for alone.
        let last = roots.len().saturating_sub(1);
        let mut egraph = Some(egraph);
        roots
            .iter()
            .enumerate()
            .map(|(k, root)| {
                let graph = if k == last {
                    egraph.take().expect("the e-graph is used once last")
                } else {
                    egraph.clone().expect("the e-graph is kept for the last")
                };
                context.whole(graph, *root)
            })
            .collect()
    } else {
        context.pieces(egraph, &trace.shared, &roots)
    };

    let mut derivations = Vec::with_capacity(wrts.len());
    for (((wrt, wrt_sym), wrt_shape), simplified) in wrts.iter().zip(&wrt_syms).zip(wrt_shapes).zip(simplified) {
        let Simplified {
            mut formula,
            mut named,
            definitions: named_definitions,
            target_named,
            report,
        } = simplified;
        if options.plant_fault {
            formula = negated(&formula);
            named = negated(&named);
        }
        let mut used = definitions_used(&named, &named_definitions);
        if let Some(t) = &target_named {
            used.extend(definitions_used(t, &named_definitions));
        }
        if let Some(own) = context.own {
            used.remove(&own);
        }
        let shared: Vec<String> = trace
            .shared
            .iter()
            .filter(|s| used.contains(&s.name))
            .map(|s| s.name.to_string())
            .collect();
        let definitions: Vec<(String, RecExpr<Math>)> = named_definitions
            .iter()
            .filter(|(s, _)| used.contains(s))
            .map(|(s, e)| (s.to_string(), e.clone()))
            .collect();
        // The script's definitions as written, then the named upstreams as shown: the shown
        // form, evaluated through them, must equal the expanded formula.
        let inlined: Vec<(Symbol, RecExpr<Math>)> = checked
            .definition_exprs
            .iter()
            .map(|(s, e, _)| (Symbol::from(s.as_str()), e.clone()))
            .chain(
                named_definitions
                    .iter()
                    .filter(|(s, _)| trace.shared.iter().any(|p| p.name == *s))
                    .cloned(),
            )
            .collect();
        let check = if options.no_check {
            Check::Skipped
        } else {
            numeric::check_named(
                &Claim {
                    env: &env,
                    dims: &checked.dims,
                    target: &target.expr,
                    wrt: *wrt_sym,
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
            upstream: upstream.clone(),
            formula,
            named,
            definitions,
            shared,
            target_named,
            env: env.clone(),
            dims: checked.dims.clone(),
            variables: checked.variables.clone(),
            broadcasts: checked.broadcasts.clone(),
            inferred: checked.inferred.clone(),
            check,
            simplify: report,
            derived_zero: None,
            zero_reason: None,
        };
        let claim = Claim {
            env: &derivation.env,
            dims: &checked.dims,
            target: &target.expr,
            wrt: *wrt_sym,
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
            let label = derivation.target_label().to_string();
            derivation.zero_reason = reason::constant_target(&env, &target.expr, *wrt_sym, &label, options.limits);
            derivation.formula = zero.clone();
            derivation.named = zero;
            derivation.definitions.clear();
            derivation.shared.clear();
        }
        derivations.push(derivation);
    }
    Ok(derivations)
}

/// Names with their bodies, each body over the names before it.
type Definitions = Vec<(Symbol, RecExpr<Math>)>;

/// What the simplification of a derivative yields.
struct Simplified {
    /// Over the variables only.
    formula: RecExpr<Math>,
    /// With the script's definitions and the named upstreams.
    named: RecExpr<Math>,
    /// Every definition, then every named upstream, each written with the earlier ones.
    definitions: Definitions,
    target_named: Option<RecExpr<Math>>,
    report: SimplifyReport,
}

/// What simplifying a derivative needs to know of its script.
struct Simplification<'a> {
    checked: &'a Checked,
    env: &'a Env,
    /// Also the definitions' shapes and the named upstreams'.
    env_with_definitions: &'a Env,
    reading: &'a order::ReadingOrder,
    /// The definitions' bodies over the variables, as the canonical form reads them.
    definition_bodies: &'a [(Symbol, &'a RecExpr<Math>)],
    /// The same, zeros folded, as the e-graphs hold them.
    folded_bodies: &'a [(Symbol, &'a RecExpr<Math>)],
    /// The target over the variables, zeros folded.
    target_expr: &'a RecExpr<Math>,
    /// The target's own name, if it is a definition.
    own: Option<Symbol>,
    /// Whether the target fans out (see [`derive::fans_out`]): no e-graph then holds it whole.
    fans_out: bool,
    limits: Limits,
}

impl Simplification<'_> {
    fn names(&self) -> Vec<Symbol> {
        self.definition_bodies.iter().map(|(s, _)| *s).collect()
    }

    /// A fresh e-graph holding `first` (added first: class ids break extraction's ties),
    /// every definition as a name for its body, and the target.
    fn definitions_graph(&self, first: Option<&RecExpr<Math>>) -> (MathGraph, Option<Id>, Vec<Id>, Option<Id>) {
        let mut egraph = MathGraph::new(ShapeAnalysis { env: self.env.clone() });
        let first = first.map(|e| egraph.add_expr(e));
        let mut classes = Vec::new();
        for ((sym, body), (_, _, shape)) in self.folded_bodies.iter().zip(&self.checked.definition_exprs) {
            egraph.analysis.env.shapes.insert(*sym, shape.clone());
            let class = egraph.add_expr(body);
            let leaf = egraph.add(Math::Symbol(*sym));
            egraph.union(class, leaf);
            classes.push(class);
        }
        let target_class = (!classes.is_empty()).then(|| egraph.add_expr(self.target_expr));
        (egraph, first, classes, target_class)
    }

    /// The target written with the definitions before it (not with its own name), and each
    /// definition written with the earlier ones.
    fn read_definitions(
        &self,
        extract: &dyn Fn(Id, &[Symbol]) -> RecExpr<Math>,
        classes: &[Id],
        target_class: Option<Id>,
    ) -> (Option<RecExpr<Math>>, Definitions) {
        let names = self.names();
        let target_named = target_class.map(|class| {
            let upto = names.iter().position(|n| Some(*n) == self.own).unwrap_or(names.len());
            extract(class, &names[upto..])
        });
        let definitions = names
            .iter()
            .zip(classes)
            .enumerate()
            .map(|(k, (s, class))| (*s, extract(*class, &names[k..])))
            .collect();
        (target_named, definitions)
    }

    /// The target written with the definitions before it (not with its own name), and each
    /// definition with the earlier ones, as the script writes them: read off the
    /// expressions' sharing (an e-graph with every definition and the target grows with
    /// the script times the rules), each body then simplified on its own.
    fn written(&self) -> (Option<RecExpr<Math>>, Definitions) {
        // Every definition and the target in one expression, each subexpression once.
        let mut all = ir::ExprBuilder::default();
        let mut copy = |expr: &RecExpr<Math>| {
            let mut ids: Vec<Id> = Vec::with_capacity(expr.len());
            for node in expr.iter() {
                ids.push(all.add(node.clone().map_children(|c| ids[usize::from(c)])));
            }
            *ids.last().expect("an expression has a root")
        };
        let roots: Vec<(Symbol, Id)> = self.definition_bodies.iter().map(|(s, e)| (*s, copy(e))).collect();
        let target_root = copy(&self.checked.target.expr);
        let all = all.finish();
        let mut names: std::collections::HashMap<Id, Symbol> = std::collections::HashMap::new();
        let mut definitions = Vec::with_capacity(roots.len());
        let mut target_named = None;
        for (k, (sym, root)) in roots.iter().enumerate() {
            if Some(*sym) == self.own {
                target_named = Some(self.tidied(&over_names(&all, target_root, &names)));
            }
            definitions.push((*sym, self.tidied(&over_names(&all, *root, &names))));
            // The first of two definitions with one body names it.
            names.entry(*root).or_insert(*sym);
            if k + 1 == roots.len() && self.own.is_none() {
                target_named = Some(self.tidied(&over_names(&all, target_root, &names)));
            }
        }
        (target_named, definitions)
    }

    /// One definition's body over the earlier names in its simplest form (`softmax` where
    /// the script writes it out), zeros folded first, in its own small e-graph.
    fn tidied(&self, body: &RecExpr<Math>) -> RecExpr<Math> {
        let folded = canon::fold_zeros(self.env_with_definitions, body);
        let (simplest, _) = simplify::simplest(self.env_with_definitions, &folded, self.limits.for_target());
        self.reading.arrange(&simplest)
    }

    /// The derivative as one piece: its canonical form saturated in one e-graph with the
    /// definitions as names, so the result can be written with the script's own
    /// intermediates, as a backward pass is (`A1ᵀ·(P − Y)`).
    fn whole(&self, egraph: MathGraph, root: Id) -> Simplified {
        let built = simplify::extract(&egraph, root);
        // The derivative as built holds many shortcuts (1·G, Aᵀ·I, (Gᵀ)ᵀ) and cancelling pairs
        // (0.5·2, A − A, A·A⁻¹). Cancelling inside an e-graph that also rearranges never ends, so
        // the canonical form takes them all, once, on the tree; the full run then only rearranges.
        // Too big a canonical form (a long product in every term of a long sum): the tidying
        // rules take the shortcuts instead.
        let gradient = match canon::canonical(self.env_with_definitions, self.reading, self.definition_bodies, &built) {
            Some(canonical) => canonical,
            None => simplify::tidy(egraph, root, self.limits.for_target()),
        };
        let (mut egraph, root, classes, target_class) = self.definitions_graph(Some(&gradient));
        let root = root.expect("the gradient was added first");
        simplify::rebuild(&mut egraph);
        let (egraph, report) = simplify::saturate(egraph, self.limits);
        let extraction = simplify::Extraction::new(&egraph);
        let extract = |class: Id, banned: &[Symbol]| {
            let arranged = self.reading.arrange(&extraction.best_without(class, banned));
            order::softmax_restored(self.env_with_definitions, &arranged)
        };
        let names = self.names();
        let formula = extract(root, &names);
        // Without definitions there is nothing to name: the named form is the formula.
        let named = if names.is_empty() {
            formula.clone()
        } else {
            extract(root, &[])
        };
        let (target_named, definitions) = self.read_definitions(&extract, &classes, target_class);
        Simplified {
            formula,
            named,
            definitions,
            target_named,
            report,
        }
    }

    /// The derivatives in named pieces (see [`derive::backprop_shared`]): each named
    /// upstream and each result simplified on its own, over the names before it, so that no
    /// e-graph holds a whole gradient and the work grows with the pieces' total size. The
    /// definitions are read from one e-graph with the target, as in [`Self::whole`]; each
    /// formula over the variables is the pieces substituted into its result, sharing each once.
    fn pieces(&self, egraph: MathGraph, shared: &[derive::Shared], roots: &[Id]) -> Vec<Simplified> {
        let classes: Vec<Id> = shared.iter().map(|s| s.class).chain(roots.iter().copied()).collect();
        let extraction = simplify::Extraction::new(&egraph);
        let built: Vec<RecExpr<Math>> = classes.iter().map(|c| extraction.best(*c)).collect();
        drop(extraction);
        let canonical = canon::canonical_all(self.env_with_definitions, self.reading, self.definition_bodies, &built)
            .unwrap_or_else(|| {
                let (tidied, _) = simplify::tidied(egraph, self.limits.for_target());
                let extraction = simplify::Extraction::new(&tidied);
                classes.iter().map(|c| extraction.best(*c)).collect()
            });

        let (target_named, mut definitions, mut report) = if self.fans_out {
            let (target_named, definitions) = self.written();
            (target_named, definitions, None)
        } else {
            // With the target's budget: it only settles how the definitions read.
            let (mut egraph, _, classes, target_class) = self.definitions_graph(None);
            simplify::rebuild(&mut egraph);
            let (egraph, report) = simplify::saturate(egraph, self.limits.for_target());
            let extraction = simplify::Extraction::new(&egraph);
            let extract = |class: Id, banned: &[Symbol]| self.reading.arrange(&extraction.best_without(class, banned));
            let (target_named, definitions) = self.read_definitions(&extract, &classes, target_class);
            (target_named, definitions, Some(report))
        };

        let mut named = Vec::with_capacity(canonical.len());
        for piece in &canonical {
            let mut egraph = MathGraph::new(ShapeAnalysis {
                env: self.env_with_definitions.clone(),
            });
            let root = egraph.add_expr(piece);
            // The definitions written with the names the piece uses (and with those names
            // added so), one level deep, each a name for its body: the rules then find a
            // definition's body the canonical form did not, at a cost that grows with the
            // piece, not with the script.
            let mut present: BTreeSet<Symbol> = symbols(piece).collect();
            for (sym, body) in &definitions {
                if symbols(body).all(|s| present.contains(&s)) {
                    let class = egraph.add_expr(body);
                    let leaf = egraph.add(Math::Symbol(*sym));
                    egraph.union(class, leaf);
                    present.insert(*sym);
                }
            }
            simplify::rebuild(&mut egraph);
            let (egraph, piece_report) = simplify::saturate(egraph, self.limits);
            match &mut report {
                Some(report) => report.absorb(&piece_report),
                None => report = Some(piece_report),
            }
            named.push(self.reading.arrange(&simplify::Extraction::new(&egraph).best(root)));
        }
        // A named upstream that simplifies to a bare name (`d1 = dnext_h`: the upstream of an
        // output is the one given) names nothing new: it is written as that name.
        let mut aliases: std::collections::HashMap<Symbol, Symbol> = std::collections::HashMap::new();
        let results = named.split_off(shared.len());
        for (s, piece) in shared.iter().zip(named) {
            let piece = renamed(&piece, &aliases);
            match piece.as_ref() {
                [Math::Symbol(other)] => {
                    aliases.insert(s.name, *other);
                }
                _ => definitions.push((s.name, piece)),
            }
        }
        let results: Vec<RecExpr<Math>> = results.iter().map(|r| renamed(r, &aliases)).collect();
        results
            .into_iter()
            .map(|result| Simplified {
                formula: substituted(&result, &definitions),
                named: result,
                definitions: definitions.clone(),
                target_named: target_named.clone(),
                report: report.clone().expect("every result is a piece"),
            })
            .collect()
    }
}
/// The subexpression of `all` at `root` with every node that `names` names replaced by its name.
fn over_names(all: &RecExpr<Math>, root: Id, names: &std::collections::HashMap<Id, Symbol>) -> RecExpr<Math> {
    let mut out = ir::ExprBuilder::default();
    let mut built: std::collections::HashMap<Id, Id> = std::collections::HashMap::new();
    let mut todo = vec![root];
    while let Some(&id) = todo.last() {
        if built.contains_key(&id) {
            todo.pop();
            continue;
        }
        let node = match names.get(&id) {
            Some(name) => Math::Symbol(*name),
            None => all[id].clone(),
        };
        let missing: Vec<Id> = node
            .children()
            .iter()
            .copied()
            .filter(|c| !built.contains_key(c))
            .collect();
        if missing.is_empty() {
            built.insert(id, out.add(node.map_children(|c| built[&c])));
            todo.pop();
        } else {
            todo.extend(missing);
        }
    }
    out.finish()
}

fn symbols(expr: &RecExpr<Math>) -> impl Iterator<Item = Symbol> + '_ {
    expr.iter().filter_map(|n| match n {
        Math::Symbol(s) => Some(*s),
        _ => None,
    })
}

/// `expr` with each name that `aliases` maps written as the name it maps to.
fn renamed(expr: &RecExpr<Math>, aliases: &std::collections::HashMap<Symbol, Symbol>) -> RecExpr<Math> {
    let nodes: Vec<Math> = expr
        .iter()
        .map(|node| match node {
            Math::Symbol(s) => Math::Symbol(aliases.get(s).copied().unwrap_or(*s)),
            other => other.clone(),
        })
        .collect();
    RecExpr::from(nodes)
}

/// `expr` with every name of `definitions` (each over the earlier ones) replaced by its
/// body, each body written once and shared wherever it is used.
fn substituted(expr: &RecExpr<Math>, definitions: &[(Symbol, RecExpr<Math>)]) -> RecExpr<Math> {
    let mut out = ir::ExprBuilder::default();
    let mut bound: std::collections::HashMap<Symbol, Id> = std::collections::HashMap::new();
    let add = |expr: &RecExpr<Math>, out: &mut ir::ExprBuilder, bound: &std::collections::HashMap<Symbol, Id>| {
        let mut ids: Vec<Id> = Vec::with_capacity(expr.len());
        for node in expr.iter() {
            let id = match node {
                Math::Symbol(s) if bound.contains_key(s) => bound[s],
                _ => out.add(node.clone().map_children(|c| ids[usize::from(c)])),
            };
            ids.push(id);
        }
        *ids.last().expect("an expression has a root")
    };
    for (name, body) in definitions {
        let id = add(body, &mut out, &bound);
        bound.insert(*name, id);
    }
    let root = add(expr, &mut out, &bound);
    let all = out.finish();
    all[root].build_recexpr(|id| all[id].clone())
}

/// Names for upstream gradients: `dh2` for the upstream of the node that is the script's
/// `h2`, else `d1`, `d2`, …; never a name the script uses.
struct UpstreamNames {
    /// The definition each node of the differentiated target equals, if any.
    definition_of: Vec<Option<Symbol>>,
    taken: BTreeSet<String>,
    next: usize,
}

impl UpstreamNames {
    fn new(checked: &Checked, definition_of: Vec<Option<Symbol>>, upstream: Option<Symbol>) -> UpstreamNames {
        let mut taken: BTreeSet<String> = checked.variables.iter().cloned().collect();
        taken.extend(checked.definitions.iter().cloned());
        taken.extend(checked.dims.iter().cloned());
        taken.extend(upstream.map(|g| g.to_string()));
        UpstreamNames {
            definition_of,
            taken,
            next: 1,
        }
    }

    fn is_definition(&self, node: usize) -> bool {
        self.definition_of[node].is_some()
    }

    fn name(&mut self, node: usize) -> Symbol {
        let mut candidate = match &self.definition_of[node] {
            Some(def) => format!("d{def}"),
            None => String::new(),
        };
        while candidate.is_empty() || self.taken.contains(&candidate) {
            candidate = format!("d{}", self.next);
            self.next += 1;
        }
        self.taken.insert(candidate.clone());
        Symbol::from(candidate.as_str())
    }
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
        let numpy = Numpy { env: &self.env };
        let shape = self.formula_shape();
        if self.shared.is_empty() {
            return render::numpy::finish(&render::render(&self.formula, &numpy), &self.wrt, &shape);
        }
        // Through a fan-out the formula over the variables alone, written as a tree, doubles
        // with every layer: the named form instead, each name bound once inside a lambda
        // (one expression, and no name leaks into the caller's scope).
        let mut bound: Vec<String> = self
            .definitions
            .iter()
            .map(|(name, body)| format!("{name} := {}", render::render(body, &numpy).text))
            .collect();
        bound.push(render::render(&self.named, &numpy).text);
        let body = render::Piece::new(format!("(lambda: [{}][-1])()", bound.join(", ")), render::Prec::Atom);
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
        render::document::align_body(&self.latex_lines(&mut BTreeSet::new()))
    }

    /// The `align*` lines: the definitions not yet in `seen`, the target, the derivative.
    fn latex_lines(&self, seen: &mut BTreeSet<String>) -> Vec<render::document::Line> {
        use render::document::Line;
        use render::latex::{name, shape};
        let target = name(self.target_label());
        let loss = name(self.loss_label());
        let wrt = name(&self.wrt);
        let mut lines: Vec<Line> = self
            .definitions
            .iter()
            .filter(|(n, _)| seen.insert(n.clone()))
            .map(|(n, e)| Line {
                lhs: name(n),
                rhs: render::render(e, &render::latex::Latex).text,
                note: None,
            })
            .collect();
        lines.push(Line {
            lhs: target.clone(),
            rhs: self.target_latex(),
            note: Some(format!("({})", shape(&self.target_shape))),
        });
        let mut note = shape(&self.formula_shape());
        if let Some((g, s)) = &self.upstream {
            note.push_str(&format!(
                ",\\ {} = \\frac{{\\partial L}}{{\\partial {target}}} \\in {}",
                name(g.as_str()),
                shape(s)
            ));
        }
        lines.push(Line {
            lhs: format!("\\frac{{\\partial {loss}}}{{\\partial {wrt}}}"),
            rhs: self.formula_latex(),
            note: Some(format!("({note})")),
        });
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
                    Some(derived) => format!("; {}", fullform::zero_note(derived, self.zero_reason.as_deref())),
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

/// Lines `text   (note)` with the notes aligned (see [`padding`]).
fn aligned(lines: &[(String, String)]) -> Vec<String> {
    let pad = padding(lines.iter().map(|(t, _)| t.as_str()), 4);
    lines.iter().map(|(t, n)| format!("{t}{}({n})", pad(t))).collect()
}

/// The spaces after each of `lines` that align what follows them: the notes of the lines that
/// fit a screen line up; a longer line keeps its note `gap` spaces after it, so one long
/// formula does not push every note off the screen.
pub(crate) fn padding<'a>(lines: impl Iterator<Item = &'a str>, gap: usize) -> impl Fn(&str) -> String {
    const SCREEN: usize = 100;
    let width = lines
        .map(|t| t.chars().count())
        .filter(|&l| l <= SCREEN)
        .max()
        .unwrap_or(0)
        + gap;
    move |t: &str| " ".repeat(width.saturating_sub(t.chars().count()).max(gap))
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
    let mut lines: Vec<render::document::Line> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for d in derivations {
        for line in d.latex_lines(&mut seen) {
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    render::document::align_body(&lines)
}
