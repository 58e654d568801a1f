//! `explain`: the same derivative reached three ways, each step checked numerically.
//! 1. intuitive: a broadcast variable is shared by every row (or column), so its gradient
//!    is the sum of the per-example gradients; a reduced one (summed over an axis) the other
//!    way round: each entry is in one sum, so it gets that sum's upstream, a broadcast;
//! 2. compact: the chain rule with matrices, one line per node of the target, naming the
//!    rule that produced it;
//! 3. full form: the Jacobian, contracted with G.

use crate::fullform::{jacobian, FullForm};
use crate::ir::{Const, DimNode, Math, MathGraph, ShapeAnalysis};
use crate::lower::Checked;
use crate::numeric::{self, check_in, relative_error, stencil, Domain, EvalError, Matrix};
use crate::render::{latex::Latex, render, text::Text};
use crate::{derive, grad_checked, simplify, Check, Derivation, Error, Options};
use egg::{Id, Language, RecExpr, Symbol};

/// One line of the compact derivation: ∂L/∂(node) = upstream, by these rules.
#[derive(Debug, Clone)]
pub struct Step {
    pub node: RecExpr<Math>,
    pub upstream: RecExpr<Math>,
    /// The node and its upstream as shown: with the script's names for its intermediates.
    pub shown_node: RecExpr<Math>,
    pub shown_upstream: RecExpr<Math>,
    pub rules: Vec<&'static str>,
    pub check: Check,
}

/// The per-example reading of a broadcast: which axis is summed, and whether the sum of
/// the per-example gradients agreed with the result numerically.
#[derive(Debug, Clone)]
pub struct Intuitive {
    pub axis: Axis,
    /// The size of the summed axis.
    pub count: String,
    /// ∂L/∂(the broadcast term), whose slices are the per-example gradients.
    pub upstream: String,
    /// The same, as an expression with the script's names.
    pub upstream_expr: RecExpr<Math>,
    pub agrees: bool,
    /// The variable is summed over `axis` (a reduction), not broadcast along it.
    pub reduced: Option<Reduced>,
}

/// A reduction of the variable: the sum as written, with the script's names.
#[derive(Debug, Clone)]
pub struct Reduced {
    pub sum: RecExpr<Math>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Rows,
    Columns,
    Entries,
}

#[derive(Debug, Clone)]
pub struct Explanation {
    pub result: Derivation,
    pub steps: Vec<Step>,
    pub intuitive: Option<Intuitive>,
    pub full: Option<FullForm>,
    /// The full form's matrix as shown: with the script's names for its intermediates.
    pub full_shown: Option<RecExpr<Math>>,
}

/// Explains ∂L/∂`wrt` three ways, checking every step.
///
/// ```
/// let checked = matdiff::check_script("X : B x N; W : N x M; b : M; h = X*W + b")?;
/// let x = matdiff::explain::explain(&checked, "b", &matdiff::Options::default())?;
/// assert!(x.all_checked());
/// assert_eq!(x.steps.len(), 4);
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn explain(checked: &Checked, wrt: &str, options: &Options) -> Result<Explanation, Error> {
    let result = grad_checked(checked, wrt, options)?;
    let target = &checked.target;
    let wrt_sym = Symbol::from(wrt);
    let env = result.env.clone();
    let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() });
    let seed = match &result.upstream {
        Some((g, _)) => egraph.add(Math::Symbol(*g)),
        None => egraph.add(Math::Num(Const(1.0))),
    };
    let trace = derive::backprop_traced(&mut egraph, &target.expr, wrt_sym, seed).map_err(|m| {
        Error::unsupported(
            format!("matdiff cannot differentiate through `{}` yet", m.op),
            target.span,
        )
    })?;
    // The script's intermediates (those before the target) as names, so that each step can
    // be shown as the script writes it; the check uses the expanded forms.
    let own = target.name.as_deref().map(Symbol::from);
    let definitions: Vec<(Symbol, &RecExpr<Math>)> = checked
        .definition_exprs
        .iter()
        .map(|(n, e, _)| (Symbol::from(n.as_str()), e))
        .take_while(|(n, _)| Some(*n) != own)
        .collect();
    add_names(&mut egraph, checked, &definitions);
    let names: Vec<Symbol> = definitions.iter().map(|(n, _)| *n).collect();
    crate::simplify::rebuild(&mut egraph);
    let (egraph, _) = simplify::saturate(egraph, options.limits);
    let extraction = simplify::Extraction::new(&egraph);
    // Each step reads as the result does: sums in the script's order, a minus taken in.
    let mut reading = crate::order::ReadingOrder::default();
    reading.read(&target.expr);
    for (name, expr, _) in &checked.definition_exprs {
        reading.alias(Symbol::from(name.as_str()), expr);
    }
    if let Some((g, _)) = &result.upstream {
        reading.upstream(*g);
    }

    let nodes = target.expr.as_ref();
    let mut steps = Vec::new();
    for i in (0..nodes.len()).rev() {
        let Some(up) = trace.upstream[i].filter(|_| trace.depends[i]) else {
            continue;
        };
        let node = sub(&target.expr, Id::from(i));
        let upstream = reading.arrange(&extraction.best_without(up, &names));
        let shown_upstream = reading.arrange(&extraction.best(up));
        let shown_node = with_names(&node, &definitions);
        let mut rules: Vec<&'static str> = trace.received[i].iter().map(|(_, r)| r.source).collect();
        rules.dedup();
        let check = if options.no_check {
            Check::Skipped
        } else {
            check_step(&result, &target.expr, i, &upstream, options)
        };
        steps.push(Step {
            node,
            upstream,
            shown_node,
            shown_upstream,
            rules,
            check,
        });
    }
    let broadcast = broadcast_of(&target.expr, wrt_sym).map(|(at, axis, count)| (at, axis, count, false));
    let reduction = || reduction_of(&target.expr, wrt_sym).map(|(at, axis, count)| (at, axis, count, true));
    let intuitive = broadcast.or_else(reduction).and_then(|(at, axis, count, reduced)| {
        let agrees = !options.no_check
            && intuitive_agrees(&result, &egraph, trace.upstream[at]?, axis, reduced, &names, options);
        let upstream_expr = reading.arrange(&extraction.best(trace.upstream[at]?));
        let upstream = render(&upstream_expr, &Text);
        let upstream = if upstream.prec >= crate::render::Prec::Atom {
            upstream.text
        } else {
            format!("({})", upstream.text)
        };
        // The whole target is the sum: it is called by its name.
        let whole = (at + 1 == target.expr.as_ref().len())
            .then_some(target.name.as_deref())
            .flatten();
        let reduced = reduced.then(|| Reduced {
            sum: match whole {
                Some(name) => RecExpr::from(vec![Math::Symbol(Symbol::from(name))]),
                None => with_names(&sub(&target.expr, Id::from(at)), &definitions),
            },
        });
        Some(Intuitive {
            axis,
            count,
            upstream,
            upstream_expr,
            agrees,
            reduced,
        })
    });
    let full = if target.shape.is_scalar() {
        None
    } else {
        jacobian(checked, wrt, options).ok()
    };
    // The Jacobian is built over the variables; shown, it names the script's intermediates too.
    let full_shown = full.as_ref().filter(|_| !definitions.is_empty()).map(|f| {
        let mut egraph = MathGraph::new(ShapeAnalysis { env: f.env.clone() });
        let root = egraph.add_expr(&f.matrix);
        add_names(&mut egraph, checked, &definitions);
        crate::simplify::rebuild(&mut egraph);
        let (egraph, _) = simplify::saturate(egraph, options.limits);
        simplify::extract(&egraph, root)
    });
    Ok(Explanation {
        result,
        steps,
        intuitive,
        full,
        full_shown,
    })
}

fn sub(m: &RecExpr<Math>, id: Id) -> RecExpr<Math> {
    m[id].build_recexpr(|c| m[c].clone())
}

/// Makes each of `definitions` a name for its body's class, so that extraction can write it.
fn add_names(egraph: &mut MathGraph, checked: &Checked, definitions: &[(Symbol, &RecExpr<Math>)]) {
    for (name, expr, shape) in &checked.definition_exprs {
        let sym = Symbol::from(name.as_str());
        if definitions.iter().any(|(d, _)| *d == sym) {
            egraph.analysis.env.shapes.insert(sym, shape.clone());
            let class = egraph.add_expr(expr);
            let leaf = egraph.add(Math::Symbol(sym));
            egraph.union(class, leaf);
        }
    }
}

/// `expr` with every subtree that is one of the definitions' bodies replaced by its name.
fn with_names(expr: &RecExpr<Math>, definitions: &[(Symbol, &RecExpr<Math>)]) -> RecExpr<Math> {
    if definitions.is_empty() {
        return expr.clone();
    }
    let mut out = RecExpr::default();
    let mut ids: Vec<Id> = Vec::with_capacity(expr.as_ref().len());
    for (i, node) in expr.as_ref().iter().enumerate() {
        let whole = sub(expr, Id::from(i));
        let new = match definitions.iter().find(|(_, body)| **body == whole) {
            Some((name, _)) => Math::Symbol(*name),
            None => node.clone().map_children(|c| ids[usize::from(c)]),
        };
        ids.push(out.add(new));
    }
    out
}

/// Checks ∂L/∂N = upstream for the node N at `index`: N is replaced by a fresh variable Z
/// set to N's value, and the upstream compared with finite differences in Z.
fn check_step(
    d: &Derivation,
    target: &RecExpr<Math>,
    index: usize,
    upstream: &RecExpr<Math>,
    options: &Options,
) -> Check {
    let z = Symbol::from("⟨node⟩");
    let node = sub(target, Id::from(index));
    let shape = match crate::ir::expr_data(&d.env, &node)
        .last()
        .and_then(|x| x.shape().cloned())
    {
        Some(s) => s,
        None => return Check::Skipped,
    };
    let mut cut: Vec<Math> = target.as_ref().to_vec();
    cut[index] = Math::Symbol(z);
    let cut = RecExpr::from(cut);
    let mut env = d.env.clone();
    env.shapes.insert(z, shape);
    let domain = Domain {
        env: &d.env,
        dims: &d.dims,
        target,
        upstream: d.upstream.as_ref(),
    };
    check_in(&domain, &options.check, |inst| {
        let z0 = numeric::eval(&node, inst)?;
        let analytic = numeric::eval(upstream, inst)?;
        let mut probe = inst.clone();
        let objective = |probe: &numeric::Instance| -> Result<f64, EvalError> {
            let value = numeric::eval(&cut, probe)?;
            Ok(match &d.upstream {
                Some((g, _)) => probe.values[g].component_mul(&value).sum(),
                None => value[(0, 0)],
            })
        };
        let mut fd = Matrix::zeros(z0.nrows(), z0.ncols());
        for r in 0..z0.nrows() {
            for c in 0..z0.ncols() {
                fd[(r, c)] = stencil(&mut |t: f64| {
                    let mut moved = z0.clone();
                    moved[(r, c)] += t;
                    probe.values.insert(z, moved);
                    objective(&probe)
                })?;
            }
        }
        Ok(relative_error(&fd, &analytic))
    })
}

/// Where the variable is broadcast: the broadcast node's index, the summed axis and its size.
fn broadcast_of(expr: &RecExpr<Math>, wrt: Symbol) -> Option<(usize, Axis, String)> {
    let is_wrt = |id: Id| matches!(expr[id], Math::Symbol(s) if s == wrt);
    let ones_col = |id: Id| match &expr[id] {
        Math::Ones([r, c]) => match (&expr[*r], &expr[*c]) {
            (Math::Dim(DimNode(r)), Math::Dim(DimNode(c))) if c.is_one() => Some(r.to_string()),
            _ => None,
        },
        _ => None,
    };
    for (i, node) in expr.as_ref().iter().enumerate() {
        match node {
            Math::Mul([a, b]) => {
                if let Some(n) = ones_col(*a) {
                    let row = matches!(expr[*b], Math::Transpose(x) if is_wrt(x)) || is_wrt(*b);
                    if row {
                        return Some((i, Axis::Rows, n));
                    }
                }
                if let Math::Transpose(o) = expr[*b] {
                    if let (Some(n), true) = (ones_col(o), is_wrt(*a)) {
                        return Some((i, Axis::Columns, n));
                    }
                }
            }
            Math::Scale([s, o]) if is_wrt(*s) && matches!(expr[*o], Math::Ones(_)) => {
                return Some((i, Axis::Entries, "all".into()));
            }
            _ => {}
        }
    }
    None
}

/// Where the variable, used once, is summed over an axis: the sum's node, the axis summed
/// over (`Rows`: numpy's `axis=0`, `xᵀ·1_N` or `1_Nᵀ·x`; `Columns`: `axis=1`, `x·1_D`;
/// `Entries`: all of them) and that axis's size.
fn reduction_of(expr: &RecExpr<Math>, wrt: Symbol) -> Option<(usize, Axis, String)> {
    let is_wrt = |id: Id| matches!(expr[id], Math::Symbol(s) if s == wrt);
    let uses = expr
        .as_ref()
        .iter()
        .flat_map(|n| n.children())
        .filter(|c| is_wrt(**c))
        .count();
    if uses != 1 {
        return None;
    }
    let ones_length = |id: Id| match &expr[id] {
        Math::Ones([r, c]) => match (&expr[*r], &expr[*c]) {
            (Math::Dim(DimNode(r)), Math::Dim(DimNode(c))) if c.is_one() => Some(r.to_string()),
            _ => None,
        },
        _ => None,
    };
    expr.as_ref().iter().enumerate().find_map(|(i, node)| match node {
        Math::Mul([a, b]) => match (&expr[*a], ones_length(*b)) {
            (Math::Transpose(x), Some(n)) if is_wrt(*x) => Some((i, Axis::Rows, n)),
            (_, Some(n)) if is_wrt(*a) => Some((i, Axis::Columns, n)),
            _ => match &expr[*a] {
                Math::Transpose(o) if is_wrt(*b) => ones_length(*o).map(|n| (i, Axis::Rows, n)),
                _ => None,
            },
        },
        Math::Sum(x) if is_wrt(*x) => Some((i, Axis::Entries, "all".into())),
        _ => None,
    })
}

/// The intuitive reading checked: the upstream arriving at the broadcast (or sum), read as
/// the gradient, against the result. A broadcast variable's gradient sums that upstream over
/// the broadcast axis (the per-example gradients); a reduced one's broadcasts it back over
/// the summed axis (each entry gets the upstream of its sum).
fn intuitive_agrees(
    d: &Derivation,
    egraph: &MathGraph,
    up: Id,
    axis: Axis,
    reduced: bool,
    names: &[Symbol],
    options: &Options,
) -> bool {
    let upstream = simplify::extract_without(egraph, up, names);
    let domain = Domain {
        env: &d.env,
        dims: &d.dims,
        target: &d.target,
        upstream: d.upstream.as_ref(),
    };
    check_in(&domain, &options.check, |inst| {
        let u = numeric::eval(&upstream, inst)?;
        let formula = numeric::eval(&d.formula, inst)?;
        let (r, c) = formula.shape();
        let read = if reduced {
            let entry = |i: usize, j: usize| match axis {
                Axis::Rows => u.get(j).copied(),
                Axis::Columns => u.get(i).copied(),
                Axis::Entries => u.get(0).copied(),
            };
            let broadcast: Option<Vec<f64>> = (0..c)
                .flat_map(|j| (0..r).map(move |i| (i, j)))
                .map(|(i, j)| entry(i, j))
                .collect();
            Matrix::from_vec(r, c, broadcast.ok_or(EvalError::Missing("the sum's upstream".into()))?)
        } else {
            let summed = match axis {
                Axis::Rows => {
                    let s = u.row_sum();
                    Matrix::from_iterator(s.len(), 1, s.iter().copied())
                }
                Axis::Columns => {
                    let s = u.column_sum();
                    Matrix::from_iterator(s.len(), 1, s.iter().copied())
                }
                Axis::Entries => Matrix::from_element(1, 1, u.sum()),
            };
            if formula.shape() == summed.shape() {
                summed
            } else {
                summed.transpose()
            }
        };
        Ok(relative_error(&read, &formula))
    })
    .passed()
}

fn mark(check: &Check) -> &'static str {
    match check {
        Check::Passed { .. } => "✓ checked",
        Check::Failed { .. } => "✗ FAILED",
        Check::NoDomain { .. } => "unchecked (no domain)",
        Check::TooLarge { .. } => "unchecked (too large)",
        Check::Skipped => "unchecked",
    }
}

impl Explanation {
    fn loss(&self) -> &str {
        self.result.loss_label()
    }

    /// Every part agreed: the result's check, every step's, the per-example sum's and the
    /// full form's.
    pub fn all_checked(&self) -> bool {
        self.result.check.passed()
            && self.steps.iter().all(|s| s.check.passed())
            && self.intuitive.as_ref().is_none_or(|i| i.agrees)
            && self
                .full
                .as_ref()
                .is_none_or(|f| f.check.passed() && f.contraction.as_ref().is_none_or(|(_, ok)| *ok))
    }

    /// Notes: the forward expression, the three derivations and the check, as a document.
    pub fn notes(&self) -> crate::render::document::Document {
        crate::render::notes::explanation(self)
    }

    /// The notes as a complete LaTeX document (compiles with pdflatex).
    pub fn latex_document(&self) -> String {
        self.notes().latex(true)
    }

    /// The derivation as LaTeX: an `align*` body of the compact steps.
    pub fn latex(&self) -> String {
        let loss = crate::render::latex::name(self.loss());
        let lines: Vec<crate::render::document::Line> = self
            .steps
            .iter()
            .map(|s| crate::render::document::Line {
                lhs: format!(
                    "\\frac{{\\partial {loss}}}{{\\partial \\left({}\\right)}}",
                    render(&s.shown_node, &Latex).text
                ),
                rhs: render(&s.shown_upstream, &Latex).text,
                note: None,
            })
            .collect();
        crate::render::document::align_body(&lines)
    }
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.result;
        let loss = self.loss();
        let wrt = &d.wrt;
        writeln!(
            f,
            "Explaining ∂{loss}/∂{wrt} for {} = {}",
            d.target_label(),
            d.target_text()
        )?;
        if !d.broadcasts.is_empty() {
            writeln!(f, "  broadcasting made explicit: {}", d.broadcasts.join("; "))?;
        }
        if let Some((g, s)) = &d.upstream {
            writeln!(f, "  {g} = ∂L/∂{} : {s} is the upstream gradient", d.target_label())?;
        }
        let mut part = 1;
        if let Some(i @ Intuitive { reduced: Some(r), .. }) = &self.intuitive {
            writeln!(f, "\n{part}. Intuitive: each entry gets the upstream of its sum")?;
            let u = &i.upstream;
            let sum = render(&r.sum, &Text).text;
            let n = &i.count;
            let (what, gets) = match i.axis {
                Axis::Rows => (
                    format!("entry j of {sum} sums column j of {wrt} over its {n} rows: Σ_i {wrt}_ij"),
                    format!("∂{loss}/∂{wrt}_ij = {u}_j: every row of ∂{loss}/∂{wrt} is {u}ᵀ, a broadcast over the {n} rows"),
                ),
                Axis::Columns => (
                    format!("entry i of {sum} sums row i of {wrt} over its {n} columns: Σ_j {wrt}_ij"),
                    format!("∂{loss}/∂{wrt}_ij = {u}_i: every column of ∂{loss}/∂{wrt} is {u}, a broadcast over the {n} columns"),
                ),
                Axis::Entries => (
                    format!("{sum} sums every entry of {wrt}: Σ_ij {wrt}_ij"),
                    format!("∂{loss}/∂{wrt}_ij = {u}: every entry of ∂{loss}/∂{wrt} is the same"),
                ),
            };
            writeln!(f, "   {what};")?;
            writeln!(f, "   each {wrt}_ij is in one sum, with coefficient 1, so {gets}")?;
            let verdict = if i.agrees { "✓ checked" } else { "✗ does not agree" };
            writeln!(f, "   = {}    {verdict}", d.formula_text())?;
            part += 1;
        } else if let Some(i) = &self.intuitive {
            writeln!(f, "\n{part}. Intuitive: sum the per-example gradients")?;
            let u = &i.upstream;
            let (what, own, sum) = match i.axis {
                Axis::Rows => (
                    format!(
                        "each of the {} rows of {} (one per example) gets {wrt}ᵀ added",
                        i.count,
                        d.target_label()
                    ),
                    format!("example i's own gradient is row i of {u}, transposed"),
                    format!("Σ_i {u}_i,:ᵀ, a sum over the batch axis"),
                ),
                Axis::Columns => (
                    format!(
                        "each of the {} columns of {} gets {wrt} added",
                        i.count,
                        d.target_label()
                    ),
                    format!("column j's own gradient is column j of {u}"),
                    format!("Σ_j {u}_:,j, a sum over the columns"),
                ),
                Axis::Entries => (
                    format!("every entry of {} gets {wrt} added", d.target_label()),
                    format!("entry (i, j)'s own gradient is {u}_ij"),
                    format!("Σ_ij {u}_ij, the sum of all entries"),
                ),
            };
            writeln!(f, "   {what};")?;
            writeln!(f, "   {own}; {wrt} is shared, so ∂{loss}/∂{wrt} = {sum}")?;
            let verdict = if i.agrees { "✓ checked" } else { "✗ does not agree" };
            writeln!(f, "   = {}    {verdict}", d.formula_text())?;
            part += 1;
        }
        writeln!(
            f,
            "\n{part}. Compact: the chain rule with matrices, node by node from the output back"
        )?;
        let lines: Vec<(String, &Step)> = self
            .steps
            .iter()
            .map(|s| {
                let node = render(&s.shown_node, &Text);
                let node = if node.prec >= crate::render::Prec::Atom {
                    node.text
                } else {
                    format!("({})", node.text)
                };
                (
                    format!("∂{loss}/∂{node} = {}", render(&s.shown_upstream, &Text).text),
                    s,
                )
            })
            .collect();
        let pad = crate::padding(lines.iter().map(|(l, _)| l.as_str()), 3);
        for (line, step) in &lines {
            let why = if step.rules.is_empty() {
                "the upstream gradient".to_string()
            } else {
                step.rules.join("; ")
            };
            writeln!(f, "   {line}{}{}  [{why}]", pad(line), mark(&step.check))?;
        }
        if let Some(last) = self.steps.last() {
            let simplified = render(&last.shown_upstream, &Text).text;
            if simplified != d.formula_text() {
                writeln!(f, "   simplified: ∂{loss}/∂{wrt} = {}", d.formula_text())?;
            }
        }
        part += 1;
        if let Some(full) = &self.full {
            writeln!(f, "\n{part}. Full form: the real Jacobian, then contracted with G")?;
            writeln!(
                f,
                "   ∂vec({})/∂vec({wrt}) = {}    (vec lists entries row by row, as numpy's ravel)",
                d.target_label(),
                full.matrix_text()
            )?;
            let shape: Vec<String> = full.tensor_shape().iter().map(|x| x.to_string()).collect();
            let mut facts = vec![format!("a tensor of shape ({})", shape.join(", "))];
            if let Some(index) = &full.index_form {
                facts.push(index.clone());
            }
            if let Some(nz) = &full.nonzeros {
                facts.push(format!("{nz} structural nonzeros"));
            }
            writeln!(f, "   {}    {}", facts.join("; "), mark(&full.check))?;
            if let Some((compact, ok)) = &full.contraction {
                let verdict = if *ok { "✓ checked" } else { "✗ does not agree" };
                writeln!(f, "   ∂{loss}/∂{wrt} = reshape(Jᵀ·vec(G)) = {compact}    {verdict}")?;
            }
        }
        let agree = if self.all_checked() {
            "every step checked numerically"
        } else {
            "NOT every step passed its numeric check"
        };
        write!(
            f,
            "\nResult: ∂{loss}/∂{wrt} = {}    ({agree}; {})",
            d.formula_text(),
            d.check_text()
        )
    }
}
