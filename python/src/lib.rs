//! `matdiff._matdiff`: the library's derivations for Python. Each function runs one command
//! of the CLI and returns its result as a JSON string; the pure-Python package (`matdiff`)
//! wraps it in objects that print as the CLI does and render as LaTeX in Jupyter. JSON keeps
//! this layer thin: the library already describes a derivation as JSON.

use matdiff::diagnostic::Origin;
use matdiff::explain::Explanation;
use matdiff::fullform::{FullForm, FullKind};
use matdiff::render::latex::{name as latex_name, shape as latex_shape, Latex};
use matdiff::render::{json, render};
use matdiff::{Check, Derivation, Layout, Options};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use serde_json::{json, Value};

pyo3::create_exception!(
    matdiff,
    Error,
    PyValueError,
    "Bad input: the message is the CLI's, with the line, column and a caret under the place."
);

/// The CLI runs the pipeline on a stack this large, so deep or long input does not overflow
/// (the checker and the renderers recurse over the expression).
const STACK: usize = 256 << 20;

/// Runs `work` on its own thread with the CLI's stack, the interpreter free meanwhile (a
/// derivation can take seconds). Bad input becomes `matdiff.Error` with the located message;
/// a panic, which would be a bug, becomes a RuntimeError instead of taking Python down.
fn run<F>(py: Python<'_>, source_name: &str, source: &str, work: F) -> PyResult<String>
where
    F: FnOnce() -> Result<Value, matdiff::Error> + Send,
{
    let outcome = py.detach(|| {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new().stack_size(STACK).spawn_scoped(scope, work);
            worker.map(|handle| handle.join())
        })
    });
    match outcome {
        Ok(Ok(Ok(value))) => Ok(value.to_string()),
        Ok(Ok(Err(e))) => {
            // In Python the argument is a keyword (`wrt`), not the CLI's option (`--wrt`).
            let e = match &e.origin {
                Origin::Argument { name, text } => e.clone().in_argument(name.trim_start_matches('-'), text),
                Origin::Script => e,
            };
            let located = e.render(source_name, source, false);
            Err(Error::new_err(located.trim_end().to_string()))
        }
        Ok(Err(_)) => Err(PyRuntimeError::new_err(
            "matdiff stopped unexpectedly (a bug: please report the input)",
        )),
        Err(e) => Err(PyRuntimeError::new_err(format!(
            "matdiff could not start a thread: {e}"
        ))),
    }
}

fn options(layout: &str, check: bool, seed: Option<u64>) -> PyResult<Options> {
    let layout = match layout {
        "denominator" => Layout::Denominator,
        "numerator" => Layout::Numerator,
        other => {
            return Err(Error::new_err(format!(
                "layout must be \"denominator\" or \"numerator\", not {other:?}"
            )))
        }
    };
    let mut options = Options {
        layout,
        no_check: !check,
        ..Options::default()
    };
    if let Some(seed) = seed {
        options.check.seed = seed;
    }
    Ok(options)
}

/// A check's verdict with its sentence (`checked on 3 random instances …`).
fn check(verdict: &Check, text: String) -> Value {
    let mut value = json::check(verdict);
    value["text"] = text.into();
    value
}

/// What Jupyter shows: the lines of an `align*` body, then the checks in words.
fn display_latex(lines: &[String], checks: &[String]) -> String {
    let mut rows: Vec<String> = lines.iter().filter(|l| !l.is_empty()).cloned().collect();
    rows.extend(
        checks
            .iter()
            .map(|check| format!("&\\text{{{}}}", matdiff::latex_escape_text(check))),
    );
    format!("$$\\begin{{aligned}}\n{}\n\\end{{aligned}}$$", rows.join(" \\\\\n"))
}

/// The JSON form of a derivation, with what the Python side also needs: the CLI's text, the
/// LaTeX, and the shape of every array its numpy expression reads (to bind dimensions).
fn derivation(d: &Derivation) -> Value {
    let mut value = d.json();
    let arrays: serde_json::Map<String, Value> = d
        .variables
        .iter()
        .cloned()
        .chain(d.upstream.as_ref().map(|(g, _)| g.to_string()))
        .filter_map(|name| {
            let (_, shape) = d.env.shapes.iter().find(|(symbol, _)| symbol.as_str() == name)?;
            let axes: Vec<&matdiff::dim::Dim> = if shape.is_scalar() {
                vec![]
            } else if shape.is_column() {
                vec![&shape.rows]
            } else {
                vec![&shape.rows, &shape.cols]
            };
            let axes: Vec<Value> = axes
                .into_iter()
                .map(|dim| json!({"coeff": dim.coeff(), "factors": dim.factors()}))
                .collect();
            Some((name, Value::Array(axes)))
        })
        .collect();
    value["arrays"] = Value::Object(arrays);
    value["dims"] = json!(d.dims);
    value["text"] = d.to_string().into();
    value["latex"] = d.formula_latex().into();
    value["check"] = check(&d.check, d.check_text());
    value["display_latex"] = display_latex(&[d.latex()], &[d.check_text()]).into();
    value
}

/// `matdiff.grad`: the gradient, or the backprop of G through a non-scalar target.
#[pyfunction]
#[pyo3(signature = (script, wrt, layout = "denominator", check = true, seed = None))]
fn grad(py: Python<'_>, script: &str, wrt: &str, layout: &str, check: bool, seed: Option<u64>) -> PyResult<String> {
    let options = options(layout, check, seed)?;
    run(py, "<script>", script, || {
        matdiff::grad_with(script, wrt, &options).map(|d| derivation(&d))
    })
}

fn full_form(form: &FullForm) -> Value {
    let label = latex_name(&form.target_label);
    let wrt = latex_name(&form.wrt);
    let differentiated = match form.kind {
        FullKind::Jacobian => label.clone(),
        FullKind::Hessian => format!("\\nabla {label}"),
    };
    let lines = [
        format!(
            "{label} &= {} && ({})",
            render(&form.target, &Latex).text,
            latex_shape(&form.target_shape)
        ),
        format!(
            "\\frac{{\\partial \\operatorname{{vec}}({differentiated})}}{{\\partial \\operatorname{{vec}}({wrt})}} &= {}",
            form.matrix_latex()
        ),
    ];
    json!({
        "text": form.to_string(),
        "formula": form.matrix_text(),
        "latex": form.matrix_latex(),
        "check": check(&form.check, form.check_text()),
        "display_latex": display_latex(&lines, &[form.check_text()]),
    })
}

/// `matdiff.jacobian` and `matdiff.hessian`: the full form, as `matdiff jacobian|hessian`.
#[pyfunction]
#[pyo3(signature = (script, wrt, kind, check = true, seed = None))]
fn full(py: Python<'_>, script: &str, wrt: &str, kind: &str, check: bool, seed: Option<u64>) -> PyResult<String> {
    let options = options("denominator", check, seed)?;
    let hessian = kind == "hessian";
    run(py, "<script>", script, || {
        let checked = matdiff::check_script(script)?;
        let form = if hessian {
            matdiff::fullform::hessian(&checked, wrt, &options)?
        } else {
            matdiff::fullform::jacobian(&checked, wrt, &options)?
        };
        Ok(full_form(&form))
    })
}

fn explanation(x: &Explanation) -> Value {
    json!({
        "text": x.to_string(),
        "latex": x.latex(),
        "all_checked": x.all_checked(),
        "result": derivation(&x.result),
        "display_latex": display_latex(&[x.latex(), x.result.latex()], &[x.result.check_text()]),
    })
}

/// `matdiff.explain`: the derivative three ways, every step checked.
#[pyfunction]
#[pyo3(signature = (script, wrt, layout = "denominator", check = true, seed = None))]
fn explain(py: Python<'_>, script: &str, wrt: &str, layout: &str, check: bool, seed: Option<u64>) -> PyResult<String> {
    let options = options(layout, check, seed)?;
    run(py, "<script>", script, || {
        let checked = matdiff::check_script(script)?;
        matdiff::explain::explain(&checked, wrt, &options).map(|x| explanation(&x))
    })
}

/// `matdiff.backward`: every gradient of a Python forward function (the numpy dialect),
/// and the numpy backward function computing them.
#[pyfunction]
#[pyo3(signature = (source, source_name, function = None, wrt = None, check = true, seed = None))]
fn backward(
    py: Python<'_>,
    source: &str,
    source_name: &str,
    function: Option<&str>,
    wrt: Option<Vec<String>>,
    check: bool,
    seed: Option<u64>,
) -> PyResult<String> {
    let options = options("denominator", check, seed)?;
    run(py, source_name, source, || {
        let pass = matdiff::numpy_dialect::backward(source, function, wrt.as_deref(), &options)?;
        let checks: Vec<String> = pass
            .gradients
            .iter()
            .map(|d| format!("∂{}/∂{}: {}", d.loss_label(), d.wrt, d.check_text()))
            .collect();
        Ok(json!({
            "text": pass.text(),
            "latex": pass.latex(),
            "display_latex": display_latex(&[pass.latex()], &checks),
            "all_checked": pass.all_checked(),
            "function": pass.function,
            "backward_name": pass.backward_name,
            "upstreams": pass.upstreams,
            "params": pass.params,
            "wrt": pass.wrt,
            "gradients": pass.gradients.iter().map(derivation).collect::<Vec<_>>(),
            "python": pass.python,
        }))
    })
}

#[pymodule]
fn _matdiff(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add_function(wrap_pyfunction!(grad, m)?)?;
    m.add_function(wrap_pyfunction!(full, m)?)?;
    m.add_function(wrap_pyfunction!(explain, m)?)?;
    m.add_function(wrap_pyfunction!(backward, m)?)?;
    Ok(())
}
