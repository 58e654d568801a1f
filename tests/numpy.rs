//! Every case's `--emit numpy` expression, evaluated by real numpy against finite
//! differences computed in Python (tests/numpy_check.py). Needs a Python with numpy:
//! `MATDIFF_PYTHON`, else `.venv/bin/python`, else `python3` (scripts/test sets one up).

mod common;

use common::{load_cases, options_for, shape_json};
use matdiff::ir::Math;
use serde_json::json;

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
    common::run_python_check(script, &lines, "numpy");
}
