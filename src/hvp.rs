//! Hessian-vector products: H·v for a scalar target f, a variable x and a direction v of x's
//! shape, derived as the gradient in x of the scalar ⟨∇ₓf, v⟩. Reverse mode over the gradient
//! formula gives H·v at the cost of a gradient, and the Hessian (n² entries) is never formed;
//! the result has x's shape and is simplified like any gradient (with the script's definitions).
//! It is checked against finite differences of the gradient along v, (∇f(x + tv) − ∇f(x − tv))/2t.

use crate::dim::Shape;
use crate::ir::Math;
use crate::lower::Checked;
use crate::numeric::{self, check_in, relative_error, stencil, Domain, EvalError};
use crate::render::{self, numpy::Numpy, text::Text};
use crate::{Check, Derivation, Error, Layout, Options};
use egg::{RecExpr, Symbol};

/// A checked Hessian-vector product.
#[derive(Debug, Clone)]
pub struct Hvp {
    /// The original target's label and text.
    pub target_label: String,
    pub target_text: String,
    pub target_latex: String,
    pub wrt: String,
    pub dir: String,
    /// The gradient in x of ⟨∇ₓf, v⟩: its formula is H·v (x's shape).
    pub derivation: Derivation,
    /// Against finite differences of the checked gradient along v.
    pub check: Check,
    /// When H·v was 0 on every checked instance, it is shown as the zero of x's shape and
    /// this holds the form as derived (which the rules did not cancel).
    pub derived_zero: Option<String>,
    /// Why H·v is 0, where the rules can say (the target simplifies to a constant in x).
    pub zero_reason: Option<String>,
}

/// H·v, where H is the Hessian of the script's scalar target in `wrt` and v is `dir`.
///
/// ```
/// let checked = matdiff::check_script("x : n; v : n; A : n x n; x'*A*x")?;
/// let h = matdiff::hvp::hvp(&checked, "x", "v", &matdiff::Options::default())?;
/// assert_eq!(h.formula_text(), "(A + Aᵀ)·v");
/// assert!(h.check.passed());
/// # Ok::<(), matdiff::Error>(())
/// ```
pub fn hvp(checked: &Checked, wrt: &str, dir: &str, options: &Options) -> Result<Hvp, Error> {
    let target = &checked.target;
    if !target.shape.is_scalar() {
        return Err(Error::shape(
            format!(
                "a Hessian-vector product needs a scalar target, but this one is {}",
                target.shape
            ),
            target.span,
        ));
    }
    let x_shape = crate::resolve_wrt(checked, wrt)?;
    let v_shape = crate::resolve_wrt(checked, dir).map_err(|e| e.in_argument("--dir", dir))?;
    let whole = crate::Span::new(0, dir.len());
    if dir == wrt {
        return Err(
            Error::name(format!("the direction `{dir}` is the variable itself"), whole)
                .with_note("declare a direction of the variable's shape, e.g. `v : n`")
                .in_argument("--dir", dir),
        );
    }
    if v_shape != x_shape {
        return Err(Error::shape(
            format!("the direction `{dir}` is {v_shape}, but `{wrt}` is {x_shape}"),
            whole,
        )
        .with_note("H·v needs a direction of the variable's shape")
        .in_argument("--dir", dir));
    }
    let denominator = Options {
        layout: Layout::Denominator,
        ..options.clone()
    };
    let unchecked = Options {
        no_check: true,
        ..denominator.clone()
    };
    // A planted fault (tests) goes into H·v only, not into the gradient it is checked against.
    let sound = Options {
        plant_fault: false,
        ..unchecked.clone()
    };
    let gradient = crate::grad_checked(checked, wrt, &sound)?;
    // ⟨∇ₓf, v⟩ = sum(∇ₓf ⊙ v): a scalar whose gradient in x is H·v (H is symmetric).
    let mut inner: RecExpr<Math> = gradient.formula.clone();
    let g = egg::Id::from(inner.as_ref().len() - 1);
    let v = inner.add(Math::Symbol(Symbol::from(dir)));
    let had = inner.add(Math::Had([g, v]));
    inner.add(Math::Sum(had));
    let mut product_script = checked.clone();
    product_script.target.expr = inner;
    product_script.target.shape = Shape::scalar();
    product_script.target.name = None;
    // Its own check (against ⟨∇ₓf, v⟩) is replaced by the directional one below.
    let mut derivation = crate::grad_checked(&product_script, wrt, &unchecked)?;

    let mut all_zero = false;
    let check = if options.no_check {
        Check::Skipped
    } else {
        let gradient_check = crate::grad_checked(
            checked,
            wrt,
            &Options {
                plant_fault: false,
                ..denominator.clone()
            },
        )?
        .check;
        if gradient_check.passed() {
            let (check, zero) = along(checked, &gradient.formula, &derivation.formula, wrt, dir, options);
            all_zero = zero;
            check
        } else {
            gradient_check
        }
    };
    let already_zero = matches!(derivation.formula.as_ref().last(), Some(Math::Zeros(_)));
    let mut derived_zero = None;
    let mut zero_reason = None;
    let label = target.name.clone().unwrap_or_else(|| "f".into());
    if check.passed() && all_zero && !already_zero {
        zero_reason =
            crate::reason::constant_target(&checked.env, &target.expr, Symbol::from(wrt), &label, options.limits);
        // As for full forms: a cancellation the rules do not see (a softmax's shift invariance).
        derived_zero = Some(derivation.formula_text());
        let zero = crate::fullform::zero_matrix(x_shape.rows.clone(), x_shape.cols.clone());
        derivation.formula = zero.clone();
        derivation.named = zero;
        derivation.definitions.clear();
    }
    Ok(Hvp {
        target_label: label,
        target_text: render::render(&target.expr, &Text).text,
        target_latex: render::render(&target.expr, &render::latex::Latex).text,
        wrt: wrt.to_string(),
        dir: dir.to_string(),
        derivation,
        check,
        derived_zero,
        zero_reason,
    })
}

/// The formula against the derivative of the gradient along v, on random instances; and
/// whether the formula was 0 on every one of them.
fn along(
    checked: &Checked,
    gradient: &RecExpr<Math>,
    formula: &RecExpr<Math>,
    wrt: &str,
    dir: &str,
    options: &Options,
) -> (Check, bool) {
    let (x, v) = (Symbol::from(wrt), Symbol::from(dir));
    let domain = Domain {
        env: &checked.env,
        dims: &checked.dims,
        target: &checked.target.expr,
        upstream: None,
    };
    let mut all_zero = true;
    let check = check_in(&domain, &options.check, |inst| {
        let analytic = numeric::eval(formula, inst)?;
        all_zero &= analytic.amax() <= crate::fullform::ZERO;
        let x0 = inst.values.get(&x).cloned().ok_or(EvalError::Missing(wrt.into()))?;
        let v0 = inst.values.get(&v).cloned().ok_or(EvalError::Missing(dir.into()))?;
        let mut probe = inst.clone();
        let numeric_hv = stencil(&mut |t: f64| {
            probe.values.insert(x, &x0 + &v0 * t);
            numeric::eval(gradient, &probe)
        })?;
        Ok(relative_error(&numeric_hv, &analytic))
    });
    (check, all_zero)
}

impl Hvp {
    /// H·v as shown: with the script's definitions as names.
    pub fn formula_text(&self) -> String {
        self.derivation.formula_text()
    }

    pub fn formula_latex(&self) -> String {
        self.derivation.formula_latex()
    }

    pub fn shape(&self) -> &Shape {
        &self.derivation.wrt_shape
    }

    /// One numpy expression with the variable's shape.
    pub fn numpy(&self) -> String {
        let body = render::render(
            &self.derivation.formula,
            &Numpy {
                env: &self.derivation.env,
            },
        );
        render::numpy::finish(&body, &self.wrt, self.shape())
    }

    /// A complete Python function `hvp_x(...)` with shape asserts on its arguments.
    pub fn numpy_function(&self) -> String {
        let args = &self.derivation.variables;
        let body = render::numpy::bind_arguments(args, &self.derivation.env);
        format!(
            "import numpy as np\n\n\ndef hvp_{}({}):\n    \"\"\"H·{} for the Hessian H of {} = {} in {}, without forming H; derived and checked by matdiff.\"\"\"\n{}\n    return {}\n",
            self.wrt,
            args.join(", "),
            self.dir,
            self.target_label,
            self.target_text,
            self.wrt,
            body.join("\n"),
            self.numpy()
        )
    }

    pub fn check_text(&self) -> String {
        let drawn = numeric::how_drawn(&self.derivation.dims);
        match &self.check {
            Check::Passed { instances, max_rel_err, .. } if *instances > 0 => format!(
                "checked against finite differences of ∇{} along {} on {instances} random instances{drawn}{}, max relative error {max_rel_err:.1e}",
                self.target_label,
                self.dir,
                self.check.drawn_note()
            ),
            other => {
                let mut d = self.derivation.clone();
                d.check = other.clone();
                d.check_text()
            }
        }
    }

    /// The `align*` body: the target and H·v.
    pub fn latex(&self) -> String {
        use render::document::Line;
        use render::latex::{name, shape};
        let mut lines: Vec<Line> = self
            .derivation
            .definitions
            .iter()
            .map(|(n, e)| Line {
                lhs: name(n),
                rhs: render::render(e, &render::latex::Latex).text,
                note: None,
            })
            .collect();
        lines.push(Line {
            lhs: name(&self.target_label),
            rhs: self.target_latex.clone(),
            note: None,
        });
        lines.push(Line {
            lhs: format!(
                "\\nabla^2_{{{}}} {}\\, {}",
                name(&self.wrt),
                name(&self.target_label),
                name(&self.dir)
            ),
            rhs: self.formula_latex(),
            note: Some(format!("({})", shape(self.shape()))),
        });
        render::document::align_body(&lines)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": {"name": self.target_label, "text": self.target_text},
            "wrt": self.wrt,
            "dir": self.dir,
            "formula": self.formula_text(),
            "expanded": self.derivation.expanded_text(),
            "definitions": self.derivation.definitions.iter()
                .map(|(n, e)| serde_json::json!({"name": n, "text": render::render(e, &Text).text}))
                .collect::<Vec<_>>(),
            "shape": self.shape().to_string(),
            "numpy": self.numpy(),
            "latex": self.formula_latex(),
            "check": render::json::check(&self.check),
            "derived_zero": self.derived_zero,
            "zero_reason": self.zero_reason,
        })
    }
}

impl std::fmt::Display for Hvp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = format!("{} = {}", self.target_label, self.target_text);
        let second = format!(
            "H·{} = ∂⟨∇{}, {}⟩/∂{} = {}",
            self.dir,
            self.target_label,
            self.dir,
            self.wrt,
            self.formula_text()
        );
        let width = first.chars().count().max(second.chars().count()) + 4;
        let pad = |s: &str| " ".repeat(width - s.chars().count());
        writeln!(f, "{first}{}(scalar)", pad(&first))?;
        writeln!(
            f,
            "{second}{}({}; H = ∂²{}/∂{}², never formed)",
            pad(&second),
            self.shape(),
            self.target_label,
            self.wrt
        )?;
        if let Some(w) = self.derivation.where_text() {
            writeln!(f, "  {w}")?;
        }
        if let Some(derived) = &self.derived_zero {
            writeln!(
                f,
                "{}",
                crate::fullform::zero_note(derived, self.zero_reason.as_deref())
            )?;
        }
        write!(f, "{}", self.check_text())
    }
}
