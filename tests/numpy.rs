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

fn backward_function(file: &str) -> String {
    let path = format!("{}/tests/cases/numpy/{file}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(path).expect("case file reads");
    let program = matdiff::numpy_dialect::read(&source, None).expect("the case reads");
    let pass = program
        .backward(&program.variables, &matdiff::Options::default())
        .expect("every gradient derives");
    pass.python
}

/// The backward functions read as a numpy backward pass is written: sums and means over an
/// axis, broadcasting instead of products with ones, 1-D parameters and statistics staying
/// 1-D (the numbers are checked by `numpy_dialect`'s run under numpy).
#[test]
fn backward_functions_use_numpy_broadcasting_and_reductions() {
    let batchnorm = backward_function("batchnorm.py");
    for line in [
        "    mu = x.mean(axis=0)\n",
        "    xc = x - mu\n",
        "    var = (xc ** 2.0).mean(axis=0)\n",
        "    xhat = xc / np.sqrt(var + eps)\n",
        "    dx = (dout - ((dout.sum(axis=0) + xhat * (dout * xhat).sum(axis=0)) / N)) * (gamma / np.sqrt(var + eps))\n",
        "    dgamma = (dout * xhat).sum(axis=0)\n",
        "    dbeta = dout.sum(axis=0)\n",
        "    assert np.shape(gamma) == (D,), \"gamma must have shape (D,)\"\n",
    ] {
        assert!(batchnorm.contains(line), "{line}in\n{batchnorm}");
    }
    let layernorm = backward_function("layernorm.py");
    for line in [
        "    mu = x.mean(axis=1, keepdims=True)\n",
        "    xc = x - mu\n",
        "    xhat = xc / std\n",
        "    dgamma = (dout * xhat).sum(axis=0)\n",
    ] {
        assert!(layernorm.contains(line), "{line}in\n{layernorm}");
    }
    let affine = backward_function("affine.py");
    assert!(
        affine
            .ends_with("    dx = dout @ w.T\n    dw = x.T @ dout\n    db = dout.sum(axis=0)\n    return dx, dw, db\n"),
        "{affine}"
    );
    let net = backward_function("two_layer_net.py");
    assert!(net.contains("    hidden = np.maximum(X @ W1 + b1, 0)\n"), "{net}");
    assert!(
        net.contains("    probs = exp_scores / exp_scores.sum(axis=1, keepdims=True)\n"),
        "{net}"
    );
    let softmax = backward_function("softmax_loss.py");
    assert!(
        softmax.contains("    shifted_logits = x - x.max(axis=1, keepdims=True)\n"),
        "{softmax}"
    );
    // No product with a ones matrix, and no reshape, anywhere in the corpus's backward passes.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/numpy");
    for entry in std::fs::read_dir(dir).expect("the corpus folder") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().expect("a file").to_string_lossy().into_owned();
        let python = backward_function(&name);
        // `np.tile`, `np.ravel` and `np.diagflat` stay where a gradient is itself a tiled row,
        // a column read as 1-D or a diagonal matrix (axis_tuple, stack_vectors, einsum_pairs).
        for unidiomatic in ["np.ones", "np.reshape"] {
            assert!(!python.contains(unidiomatic), "{name}: {unidiomatic} in\n{python}");
        }
    }
}

/// The matdiff language's vectors may come 1-D or as columns; its numpy uses the same idioms.
#[test]
fn the_languages_numpy_uses_broadcasting_and_reductions() {
    let numpy = |script: &str, wrt: &str| matdiff::grad(script, wrt).expect("derives").numpy();
    assert_eq!(
        numpy("X : B x N; W : N x M; b : M; h = X*W + b", "b"),
        "np.reshape(G.sum(axis=0), np.shape(b))"
    );
    assert_eq!(
        numpy("X : m x n; Y = X - X*ones(n,n)/n; sum(Y .* Y .* Y)", "X"),
        "3.0 * ((X - X.mean(axis=1, keepdims=True)) ** 2.0 - ((X - X.mean(axis=1, keepdims=True)) ** 2.0).mean(axis=1, keepdims=True))"
    );
    assert_eq!(
        numpy("X : m x n; s : scalar; sum(exp(X + s))", "s"),
        "float(np.sum(np.exp(X + s)))"
    );
}
