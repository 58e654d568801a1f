//! Every LaTeX string matdiff prints for the corpus is rendered by KaTeX (node), and the
//! seed's standalone document is compiled by pdflatex. scripts/test installs both.

mod common;
mod katex;

use common::{load_cases, options_for};
use std::process::Command;

#[test]
fn katex_renders_every_latex_string() {
    let mut items = Vec::new();
    for (file, case) in load_cases() {
        let d = matdiff::grad_with(&case.script, &case.wrt, &options_for(&case)).expect("case derives");
        let name = format!("{file}__{}", case.id);
        items.push(serde_json::json!({"name": format!("{name}/formula"), "tex": d.formula_latex()}));
        items.push(serde_json::json!({"name": format!("{name}/target"), "tex": d.target_latex()}));
        items.push(serde_json::json!({
            "name": format!("{name}/align"),
            "tex": format!("\\begin{{aligned}}\n{}\n\\end{{aligned}}", d.latex().replace(" && ", " \\quad ")),
        }));
    }
    for (name, script, wrt) in [
        ("seed", "X : B x N; W : N x M; b : M; h = X*W + b", "b"),
        (
            "logistic",
            "X : B x N; w : N; y : B; sum(log(1 + exp(-y .* (X*w))))",
            "w",
        ),
    ] {
        let checked = matdiff::check_script(script).unwrap();
        let x = matdiff::explain::explain(&checked, wrt, &matdiff::Options::default()).unwrap();
        items.push(serde_json::json!({
            "name": format!("explain/{name}"),
            "tex": format!("\\begin{{aligned}}\n{}\n\\end{{aligned}}", x.latex()),
        }));
        let j = matdiff::fullform::jacobian(&checked, wrt, &matdiff::Options::default()).unwrap();
        items.push(serde_json::json!({"name": format!("jacobian/{name}"), "tex": j.matrix_latex()}));
    }
    for (name, script, wrt) in [
        ("least-squares", "X : m x n; w : n; y : m; norm(X*w - y)^2", "w"),
        ("trace-XtAX", "X : n x m; A : n x n; tr(X'*A*X)", "X"),
    ] {
        let checked = matdiff::check_script(script).unwrap();
        let h = matdiff::fullform::hessian(&checked, wrt, &matdiff::Options::default()).unwrap();
        items.push(serde_json::json!({"name": format!("hessian/{name}"), "tex": h.matrix_latex()}));
    }
    katex::assert_renders(&items, "corpus");
}

#[test]
fn the_seed_standalone_document_compiles_with_pdflatex() {
    let d = matdiff::grad_with(
        "X : B x N; W : N x M; b : M; h = X*W + b",
        "b",
        &matdiff::Options::default(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("matdiff-tex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("seed.tex"), d.latex_document()).unwrap();
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "seed.tex"])
        .current_dir(&dir)
        .output()
        .expect("pdflatex runs (scripts/test installs texlive-latex-base)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let pdf = std::fs::metadata(dir.join("seed.pdf")).expect("a PDF was written");
    assert!(pdf.len() > 1000);

    // The derivation steps as a document compile too.
    let checked = matdiff::check_script("X : B x N; W : N x M; b : M; h = X*W + b").unwrap();
    let x = matdiff::explain::explain(&checked, "b", &matdiff::Options::default()).unwrap();
    std::fs::write(dir.join("steps.tex"), x.latex_document()).unwrap();
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "steps.tex"])
        .current_dir(&dir)
        .output()
        .expect("pdflatex runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
