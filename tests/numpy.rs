//! Every case's `--emit numpy` expression, evaluated by real numpy against finite
//! differences computed in Python (tests/numpy_check.py). Needs a Python with numpy:
//! `MATDIFF_PYTHON`, else `.venv/bin/python`, else `python3` (scripts/test sets one up).

mod common;

use common::{load_cases, options_for};
use matdiff::ir::Math;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

fn python() -> String {
    if let Ok(p) = std::env::var("MATDIFF_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

fn under_inverse(d: &matdiff::Derivation, name: &str) -> bool {
    // Mirrors the contract's domain: variables inside inv/det/logdet get well-conditioned values.
    use egg::Language;
    let nodes = d.target.as_ref();
    let mut inside = vec![false; nodes.len()];
    for i in (0..nodes.len()).rev() {
        let here = inside[i] || matches!(nodes[i], Math::Inv(_) | Math::Det(_) | Math::LogDet(_));
        if here && matches!(&nodes[i], Math::Symbol(s) if s.as_str() == name) {
            return true;
        }
        for c in nodes[i].children() {
            inside[usize::from(*c)] |= here;
        }
    }
    false
}

fn shape_json(shape: &matdiff::dim::Shape, symmetric: bool, invertible: bool) -> serde_json::Value {
    let kind = if shape.is_scalar() {
        "scalar"
    } else if shape.is_column() {
        "vector"
    } else {
        "matrix"
    };
    json!({
        "kind": kind,
        "dims": [shape.rows.render("*"), shape.cols.render("*")],
        "symmetric": symmetric,
        "invertible": invertible,
    })
}

#[test]
fn emitted_numpy_agrees_with_finite_differences_in_numpy() {
    let mut lines = Vec::new();
    for (file, case) in load_cases() {
        let d = matdiff::grad_with(&case.script, &case.wrt, &options_for(&case)).expect("case derives");
        let mut variables = serde_json::Map::new();
        for (sym, shape) in &d.env.shapes {
            if d.upstream.as_ref().is_some_and(|(g, _)| g == sym) {
                continue;
            }
            let name = sym.as_str();
            variables.insert(
                name.to_string(),
                shape_json(shape, d.env.symmetric.contains(sym), under_inverse(&d, name)),
            );
        }
        let target = d.target_numpy();
        let mut function_args = d.variables.clone();
        if let Some((g, _)) = &d.upstream {
            function_args.push(g.to_string());
        }
        let line = json!({
            "name": format!("{file}__{}", case.id),
            "dims": d.dims.iter().collect::<Vec<_>>(),
            "variables": variables,
            "wrt": case.wrt,
            "target": target,
            "gradient": if case.layout.as_deref() == Some("numerator") {
                // The numerator layout is the transpose; compare in the variable's own shape.
                format!("np.reshape(np.transpose({}), np.shape({}))", d.numpy(), case.wrt)
            } else {
                d.numpy()
            },
            "function": (case.layout.as_deref() != Some("numerator")).then(|| d.numpy_function()),
            "function_args": function_args,
            "upstream": d.upstream.as_ref().map(|(g, s)| {
                let mut v = shape_json(s, false, false);
                v["name"] = json!(g.as_str());
                v
            }),
        });
        lines.push(line.to_string());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/numpy_check.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("a Python with numpy: set MATDIFF_PYTHON or run scripts/test");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.join("\n").as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("python ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "numpy disagreed or failed to run:\n{stdout}\n{stderr}\n(needs numpy: set MATDIFF_PYTHON or run scripts/test)"
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", lines.len())),
        "{stdout}"
    );
}
