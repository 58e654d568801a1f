//! The numpy dialect: a forward pass written in Python with numpy, as a CS231n assignment
//! writes it, read as a differentiation target.
//!
//! [`syntax`] tokenizes and parses the Python subset (indentation and all), [`interpret`]
//! runs the chosen function on symbolic arrays with numpy's semantics (broadcasting,
//! reductions, reassignment), building the IR through [`arrays`]. The result is a
//! [`Checked`] script like any other, so the whole pipeline (derive, simplify, check,
//! render) serves both languages. [`backward`] derives every gradient a backward pass
//! returns and writes it as a numpy function.

pub mod annotations;
pub mod arrays;
pub mod interpret;
pub mod syntax;

use crate::diagnostic::{Error, ErrorKind, Span};
use crate::dim::Shape;
use crate::ir::{Env, Math};
use crate::lower::{extract_rooted, Checked, Target, MAX_TARGET_NODES};
use crate::render::numpy::bind_arguments_ranked;
use crate::render::numpy::layout::{lay_out, Layout, Names};
use crate::{grad_all, Derivation, Options};
use arrays::ir_shape;
use egg::{Id, RecExpr, Symbol};
use interpret::{ParamInfo, ParamKind, Value};
use std::collections::{BTreeSet, HashMap};
use syntax::{ExprKind, FunctionDef, Stmt};

/// A forward function read as a differentiation target.
#[derive(Debug, Clone)]
pub struct Program {
    pub checked: Checked,
    /// The forward function's name.
    pub function: String,
    pub params: Vec<ParamInfo>,
    /// The upstream gradients the backward pass takes (`dout`, or `dnext_h`, `dnext_c`),
    /// with their shapes; none for a scalar loss.
    pub upstreams: Vec<(String, Shape)>,
    /// The upstreams of 1-D outputs, which numpy passes as 1-D arrays.
    pub flat_upstreams: BTreeSet<String>,
    /// The parameters a gradient can be taken with respect to, in order.
    pub variables: Vec<String>,
}

/// Whether a file's name selects the numpy dialect.
pub fn is_numpy_file(path: &str) -> bool {
    path.ends_with(".py")
}

/// Reads `source` (a Python file) and its forward function `function` (else the last
/// function in the file).
///
/// ```
/// let src = "import numpy as np\ndef affine(x: \"N x D\", w: \"D x M\", b: \"M\"):\n    out = x.dot(w) + b\n    return out, (x, w, b)\n";
/// let p = matdiff::numpy_dialect::read(src, None)?;
/// assert_eq!(p.variables, ["x", "w", "b"]);
/// assert_eq!(p.upstreams[0].0, "dout");
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn read(source: &str, function: Option<&str>) -> Result<Program, Error> {
    let statements = syntax::parse(source)?;
    let mut functions: HashMap<String, &FunctionDef> = HashMap::new();
    let mut order: Vec<&FunctionDef> = Vec::new();
    let mut constants: HashMap<String, Value> = HashMap::new();
    for st in &statements {
        match st {
            Stmt::Def(f) => {
                functions.insert(f.name.clone(), f);
                order.push(f);
            }
            // Module-level numeric constants (`EPS = 1e-5`) are readable in functions.
            Stmt::Assign { targets, value, .. } => {
                if let (Some(v), [t]) = (interpret::constant_of(value), targets.as_slice()) {
                    if let ExprKind::Name(n) = &t.kind {
                        constants.insert(
                            n.clone(),
                            Value::Number {
                                value: v,
                                integer: false,
                            },
                        );
                    }
                }
            }
            // Anything else at module level (a `__main__` block, prints) is not the forward pass.
            _ => {}
        }
    }
    let f = match function {
        Some(name) => *functions.get(name).ok_or_else(|| {
            let mut e = Error::new(ErrorKind::Name, format!("the file has no function `{name}`"), None);
            if let Some(near) = crate::diagnostic::closest(name, functions.keys().map(String::as_str)) {
                e = e.with_note(format!("did you mean `{near}`?"));
            }
            e.in_argument("--fn", name)
        })?,
        None => *order.last().ok_or_else(|| {
            Error::syntax("the file defines no function", Span::new(0, 0)).with_note(
                "write the forward pass as a function: `def layer_forward(x: \"N x D\", ...): ... return out, cache`",
            )
        })?,
    };
    let inferred = annotations::read_inferring(f, source, &functions, &constants)?;
    let mut program = assemble(f, inferred.reading)?;
    program.checked.inferred = inferred.shapes;
    Ok(program)
}

/// The read function as a checked script: variables, upstreams, definitions, target.
fn assemble(f: &FunctionDef, mut reading: interpret::Reading) -> Result<Program, Error> {
    let mut env = Env::default();
    let mut variables = Vec::new();
    let mut symbols = Vec::new();
    let mut taken: BTreeSet<String> = reading.dims.iter().cloned().collect();
    for p in &reading.params {
        taken.insert(p.name.clone());
        match &p.kind {
            ParamKind::Variable(shape) => {
                env.shapes.insert(Symbol::from(p.name.as_str()), ir_shape(shape));
                variables.push(p.name.clone());
                symbols.push(p.name.clone());
            }
            ParamKind::Constant { text, .. } if interpret::kept_by_name(text) => {
                env.shapes.insert(Symbol::from(p.name.as_str()), Shape::scalar());
                symbols.push(p.name.clone());
            }
            ParamKind::Labels { n, c, onehot } => {
                env.shapes.insert(*onehot, Shape::new(n.clone(), c.clone()));
                env.onehot.insert(*onehot);
                symbols.push(onehot.to_string());
                taken.insert(onehot.to_string());
            }
            _ => {}
        }
    }
    taken.extend(reading.definitions.iter().map(|(n, _, _)| n.clone()));
    let fresh = |taken: &mut BTreeSet<String>, base: String| -> String {
        let name = std::iter::once(base.clone())
            .chain((2..).map(|k| format!("{base}_{k}")))
            .find(|c| !taken.contains(c))
            .expect("a numbered name is free");
        taken.insert(name.clone());
        name
    };

    let outputs = std::mem::take(&mut reading.outputs);
    let mut upstreams = Vec::new();
    let mut flat_upstreams = BTreeSet::new();
    let (root, target_name, shape) = if let [(out, name, _)] = outputs.as_slice() {
        let shape = ir_shape(&out.shape);
        if !shape.is_scalar() {
            upstreams.push((fresh(&mut taken, "dout".into()), shape.clone()));
            if out.shape.len() == 1 {
                flat_upstreams.insert(upstreams[0].0.clone());
            }
        }
        let defined = name
            .as_ref()
            .filter(|n| reading.definitions.iter().any(|(d, id, _)| d == *n && *id == out.id))
            .cloned();
        (out.id, defined, shape)
    } else {
        // Several outputs, each with its own upstream: the target is Σ ⟨d_k, out_k⟩.
        let mut total: Option<Id> = None;
        for (k, (out, name, _)) in outputs.iter().enumerate() {
            let base = match name {
                Some(n) => format!("d{n}"),
                None => format!("dout{}", k + 1),
            };
            let up = fresh(&mut taken, base);
            let shape = ir_shape(&out.shape);
            let sym = reading.arrays.add(Math::Symbol(Symbol::from(up.as_str())));
            let term = if shape.is_scalar() {
                reading.arrays.add(Math::Scale([sym, out.id]))
            } else {
                let product = reading.arrays.add(Math::Had([sym, out.id]));
                reading.arrays.add(Math::Sum(product))
            };
            total = Some(match total {
                Some(t) => reading.arrays.add(Math::Add([t, term])),
                None => term,
            });
            if out.shape.len() == 1 {
                flat_upstreams.insert(up.clone());
            }
            upstreams.push((up, shape));
        }
        (total.expect("at least one output"), None, Shape::scalar())
    };
    for (name, shape) in &upstreams {
        if outputs.len() > 1 {
            env.shapes.insert(Symbol::from(name.as_str()), shape.clone());
            symbols.push(name.clone());
        }
    }

    let builder = reading.arrays.builder.expr();
    let expr = extract_rooted(builder, root);
    if expr.as_ref().len() > MAX_TARGET_NODES {
        return Err(Error::unsupported(
            format!(
                "the forward pass has {} distinct parts, more than the {MAX_TARGET_NODES} matdiff differentiates",
                expr.as_ref().len()
            ),
            reading.return_span,
        ));
    }
    let definition_exprs: Vec<(String, RecExpr<Math>, Shape)> = reading
        .definitions
        .iter()
        .map(|(n, id, s)| (n.clone(), extract_rooted(builder, *id), s.clone()))
        .collect();
    // The labels' one-hot matrices the target uses, named as the formulas name them.
    let mut broadcasts: Vec<String> = Vec::new();
    for p in &reading.params {
        if let ParamKind::Labels { n, c, onehot } = &p.kind {
            if expr.iter().any(|node| matches!(node, Math::Symbol(s) if s == onehot)) {
                broadcasts.push(format!(
                    "{onehot} = onehot({}) : {} x {}",
                    p.name,
                    n.pretty(),
                    c.pretty()
                ));
            }
        }
    }
    for p in &reading.params {
        if let ParamKind::Constant { text, .. } = &p.kind {
            let used = expr
                .iter()
                .any(|node| matches!(node, Math::Symbol(s) if s.as_str() == p.name));
            if used && interpret::kept_by_name(text) {
                broadcasts.push(format!("{} = {text}, a constant", p.name));
            }
        }
    }
    for b in &reading.arrays.broadcasts {
        if !broadcasts.contains(b) {
            broadcasts.push(b.clone());
        }
    }
    let checked = Checked {
        env,
        variables: symbols,
        inferred: Vec::new(),
        dims: reading.dims.clone(),
        definitions: reading.definitions.iter().map(|(n, _, _)| n.clone()).collect(),
        definition_exprs,
        target: Target {
            name: target_name,
            expr,
            shape,
            span: reading.return_span,
        },
        broadcasts,
        upstream: (outputs.len() == 1)
            .then(|| upstreams.first().map(|(n, _)| n.clone()))
            .flatten(),
    };
    Ok(Program {
        checked,
        function: f.name.clone(),
        params: reading.params,
        upstreams,
        flat_upstreams,
        variables,
    })
}

impl Program {
    /// `--wrt`: `all`, one name, or a comma-separated list.
    pub fn resolve_wrt(&self, wrt: &str) -> Vec<String> {
        resolve_wrt_list(wrt, &self.variables)
    }

    /// The one-hot matrices of the labels a formula uses, as numpy builds them from the labels.
    fn labels_used(&self, formula: &RecExpr<Math>) -> Vec<(Symbol, String)> {
        self.params
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Labels { c, onehot, .. } => {
                    Some((*onehot, format!("np.eye({})[{}]", c.render("*"), p.name)))
                }
                _ => None,
            })
            .filter(|(s, _)| formula.iter().any(|n| matches!(n, Math::Symbol(x) if x == s)))
            .collect()
    }

    /// The number of axes of each array parameter as the function takes it (0 a scalar, 1 a
    /// 1-D vector, 2 a matrix); `None` for labels and constants.
    fn rank(&self, name: &str) -> Option<usize> {
        if self.flat_upstreams.contains(name) {
            return Some(1);
        }
        self.params.iter().find(|p| p.name == name).and_then(|p| match &p.kind {
            ParamKind::Variable(shape) => Some(shape.len()),
            _ => None,
        })
    }

    /// The parameters and upstreams as numpy has them: a 1-D parameter broadcasts onto rows as it is.
    fn names(&self) -> Names {
        let mut names = Names::new();
        for v in self.variables.iter().chain(&self.flat_upstreams) {
            // A (1,) or (1, 1) parameter is bound as a float (`bind_arguments_ranked`).
            let scalar = self
                .checked
                .env
                .shapes
                .get(&Symbol::from(v.as_str()))
                .is_some_and(|s| s.is_scalar());
            let layout = match self.rank(v) {
                Some(0) => Layout::Scalar,
                _ if scalar => Layout::Scalar,
                Some(1) => Layout::Flat,
                _ => Layout::Full,
            };
            names.insert(Symbol::from(v.as_str()), (v.clone(), layout));
        }
        names
    }

    /// The constants kept by name (`eps=1e-5`), written as `spell` gives them: by name in the
    /// backward function, whose signature has their defaults; as the default's text in one
    /// expression, which binds only the parameters, dimensions and upstreams.
    fn with_constants(&self, mut names: Names, spell: impl Fn(&str, &str) -> String) -> Names {
        for p in &self.params {
            if let ParamKind::Constant { text, .. } = &p.kind {
                if interpret::kept_by_name(text) {
                    names.insert(Symbol::from(p.name.as_str()), (spell(&p.name, text), Layout::Scalar));
                }
            }
        }
        names
    }

    /// The gradient `formula` written with `names`, with exactly its parameter's shape.
    fn gradient_value(&self, d: &Derivation, formula: &RecExpr<Math>, env: &Env, names: &Names) -> String {
        let laid = lay_out(formula, env, names);
        let shape = d.formula_shape();
        if shape.is_scalar() {
            // A parameter of shape (1,) or (1, 1) is a scalar to the algebra, not to numpy.
            match self.rank(&d.wrt) {
                Some(1) => format!("np.ravel({})", laid.piece.text),
                Some(2) => format!("np.atleast_2d({})", laid.piece.text),
                _ => laid.float(),
            }
        } else if shape.is_column() && self.rank(&d.wrt) == Some(1) {
            laid.flat()
        } else {
            laid.materialised().text
        }
    }

    /// One numpy expression for a gradient, over the parameters, dimensions and upstreams.
    pub fn numpy_expression(&self, d: &Derivation) -> String {
        let names = self.with_constants(self.names(), |_, text| format!("({text})"));
        let body = self.gradient_value(d, &d.formula, &d.env, &names);
        let labels = self.labels_used(&d.formula);
        if labels.is_empty() {
            return body;
        }
        // The one-hot matrices by the names the formula gives them, which no other name can capture.
        let names: Vec<String> = labels.iter().map(|(s, _)| s.to_string()).collect();
        let values: Vec<String> = labels.iter().map(|(_, v)| v.clone()).collect();
        format!("(lambda {}: {body})({})", names.join(", "), values.join(", "))
    }
}

/// `all`, one name, or a comma-separated list, against the variables.
pub fn resolve_wrt_list(wrt: &str, variables: &[String]) -> Vec<String> {
    if wrt.trim() == "all" {
        return variables.to_vec();
    }
    wrt.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every gradient a backward pass returns, derived from one reading of the forward pass.
#[derive(Debug, Clone)]
pub struct BackwardPass {
    pub function: String,
    pub backward_name: String,
    pub upstreams: Vec<String>,
    /// The forward function's parameters, in order (the backward pass takes the upstreams, then these).
    pub params: Vec<String>,
    pub wrt: Vec<String>,
    pub gradients: Vec<Derivation>,
    /// `def NAME_backward(...)`: a complete Python function (numpy imported as `np`).
    pub python: String,
}

/// Derives the backward pass of a forward function: every gradient in `wrt` (all the
/// annotated parameters when `None`), each checked, and the numpy function computing them.
///
/// ```
/// let src = "def affine(x: \"N x D\", w: \"D x M\", b: \"M\"):\n    out = x @ w + b\n    return out, (x, w, b)\n";
/// let bw = matdiff::numpy_dialect::backward(src, None, None, &matdiff::Options::default())?;
/// assert_eq!(bw.gradients[2].formula_text(), "doutᵀ·1_N");
/// assert!(bw.python.contains("def affine_backward(dout, x, w, b):"));
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn backward(
    source: &str,
    function: Option<&str>,
    wrt: Option<&[String]>,
    options: &Options,
) -> Result<BackwardPass, Error> {
    let program = read(source, function)?;
    let wrt: Vec<String> = match wrt {
        Some(w) => w.to_vec(),
        None => program.variables.clone(),
    };
    program.backward(&wrt, options)
}

impl Program {
    pub fn backward(&self, wrt: &[String], options: &Options) -> Result<BackwardPass, Error> {
        let wrt_names: Vec<&str> = wrt.iter().map(String::as_str).collect();
        let gradients = grad_all(&self.checked, &wrt_names, options)?;
        let python = self.python_function(&gradients);
        Ok(BackwardPass {
            function: self.function.clone(),
            backward_name: backward_name(&self.function),
            upstreams: self.upstreams.iter().map(|(n, _)| n.clone()).collect(),
            params: self.params.iter().map(|p| p.name.clone()).collect(),
            wrt: wrt.to_vec(),
            gradients,
            python,
        })
    }

    /// `def NAME_backward(upstreams, params)`: the Python source computing `gradients`.
    pub fn python_function(&self, gradients: &[Derivation]) -> String {
        let mut signature: Vec<String> = self.upstreams.iter().map(|(n, _)| n.clone()).collect();
        for p in &self.params {
            signature.push(match &p.kind {
                ParamKind::Constant { local: true, .. } => continue,
                ParamKind::Constant { text, .. } => format!("{}={text}", p.name),
                ParamKind::Other { default: Some(d) } => format!("{}={d}", p.name),
                _ => p.name.clone(),
            });
        }
        let mut env = self.checked.env.clone();
        for (n, s) in &self.upstreams {
            env.shapes.insert(Symbol::from(n.as_str()), s.clone());
        }
        let mut bound: Vec<String> = self.upstreams.iter().map(|(n, _)| n.clone()).collect();
        bound.extend(self.variables.iter().cloned());
        let mut body = bind_arguments_ranked(&bound, &env, |n| self.rank(n));
        // The forward function's own constants (`eps = 1e-12`), as it assigns them.
        for p in &self.params {
            if let ParamKind::Constant { text, local: true, .. } = &p.kind {
                body.push(format!("    {} = {text}", p.name));
            }
        }
        // A count that only labels have (`t: "N labels of V"` with no other array over N)
        // is their length.
        for p in &self.params {
            if let ParamKind::Labels { n, .. } = &p.kind {
                if let (None, [f]) = (n.as_size(), n.factors().as_slice()) {
                    let assigned = format!("    {f} = ");
                    if !body.iter().any(|line| line.starts_with(&assigned)) {
                        body.push(format!("    {f} = len({})", p.name));
                    }
                }
            }
        }
        let mut formulas: Vec<RecExpr<Math>> = gradients.iter().map(|d| d.named.clone()).collect();
        // The intermediates the gradients name, directly or through each other, once each,
        // in the forward pass's order; the target itself when a gradient is written with it
        // (`1 − h.^2` for `h = tanh(·)`).
        let mut written: Vec<(String, RecExpr<Math>)> = Vec::new();
        for name in &self.checked.definitions {
            let own = self.checked.target.name.as_deref() == Some(name.as_str());
            let body = match gradients.first() {
                Some(d) if own => Some(d.target_named.clone().unwrap_or_else(|| d.target.clone())),
                _ => gradients
                    .iter()
                    .flat_map(|d| d.definitions.iter())
                    .find(|(n, _)| n == name)
                    .map(|(_, e)| e.clone()),
            };
            written.extend(body.map(|e| (name.clone(), e)));
        }
        // The named upstream gradients (`dxc`), after the definitions they are written with.
        for d in gradients {
            for (name, e) in d.definitions.iter().filter(|(n, _)| d.shared.contains(n)) {
                if !written.iter().any(|(n, _)| n == name) {
                    written.push((name.clone(), e.clone()));
                }
            }
        }
        let mut used: BTreeSet<Symbol> = formulas.iter().flat_map(symbols_in).collect();
        for (name, e) in written.iter().rev() {
            if used.contains(&Symbol::from(name.as_str())) {
                used.extend(symbols_in(e));
            }
        }
        let shared: Vec<(String, RecExpr<Math>)> = written
            .into_iter()
            .filter(|(n, _)| used.contains(&Symbol::from(n.as_str())))
            .collect();
        formulas.extend(shared.iter().map(|(_, e)| e.clone()));
        for (n, _, s) in &self.checked.definition_exprs {
            env.shapes.insert(Symbol::from(n.as_str()), s.clone());
        }
        let mut labels: Vec<(Symbol, String)> = Vec::new();
        for f in &formulas {
            for l in self.labels_used(f) {
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
        for (s, v) in &labels {
            body.push(format!("    {s} = {v}"));
        }
        // Each intermediate keeps its layout (`mu = x.mean(axis=0)` is 1-D), which its uses read.
        let mut names = self.with_constants(self.names(), |name, _| name.to_string());
        for (n, e) in &shared {
            // A named upstream (`dpt`) is no script value: its shape, which its uses' layout
            // reads, is its body's.
            let mut graph = crate::ir::MathGraph::new(crate::ir::ShapeAnalysis { env: env.clone() });
            let class = graph.add_expr(e);
            if let Some(shape) = graph[class].data.shape().cloned() {
                env.shapes.entry(Symbol::from(n.as_str())).or_insert(shape);
            }
            let laid = lay_out(e, &env, &names).for_definition();
            body.push(format!("    {n} = {}", laid.piece.text));
            names.insert(Symbol::from(n.as_str()), (n.clone(), laid.layout));
        }
        let mut results = Vec::new();
        let taken: BTreeSet<&str> = signature.iter().map(String::as_str).collect();
        for d in gradients {
            let mut name = format!("d{}", d.wrt);
            if taken.contains(name.as_str()) || shared.iter().any(|(n, _)| *n == name) {
                name = format!("grad_{}", d.wrt);
            }
            let value = self.gradient_value(d, &d.named, &env, &names);
            body.push(format!("    {name} = {value}"));
            results.push(name);
        }
        let doc = format!(
            "    \"\"\"The backward pass of `{}`: {}, derived and checked by matdiff.\"\"\"",
            self.function,
            gradients
                .iter()
                .map(|d| format!("∂{}/∂{}", d.loss_label(), d.wrt))
                .collect::<Vec<_>>()
                .join(", ")
        );
        format!(
            "import numpy as np\n\n\ndef {}({}):\n{doc}\n{}\n    return {}\n",
            backward_name(&self.function),
            signature.join(", "),
            body.join("\n"),
            results.join(", ")
        )
    }
}

fn symbols_in(e: &RecExpr<Math>) -> Vec<Symbol> {
    e.iter()
        .filter_map(|n| match n {
            Math::Symbol(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// `affine_forward` → `affine_backward`; any other name gets `_backward` appended.
fn backward_name(function: &str) -> String {
    match function.strip_suffix("_forward") {
        Some(stem) => format!("{stem}_backward"),
        None => format!("{function}_backward"),
    }
}

impl BackwardPass {
    pub fn all_checked(&self) -> bool {
        self.gradients
            .iter()
            .all(|d| d.check.passed() || matches!(d.check, crate::Check::Skipped))
    }

    /// The target once, then every gradient, the intermediates they name, and each check.
    pub fn text(&self) -> String {
        crate::derivations_text(&self.gradients)
    }

    pub fn latex(&self) -> String {
        crate::derivations_latex(&self.gradients)
    }
}
