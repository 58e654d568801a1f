//! Notes documents (`--emit latex --standalone`, `--emit markdown`): pdflatex compiles the
//! standalone documents, their pages are not blank and hold every section; KaTeX sets every
//! piece of math they print; snapshots pin the documents. scripts/test installs pdflatex,
//! poppler-utils and KaTeX.

mod katex;

use matdiff::render::document::{rule_note, Document};
use matdiff::render::notes;
use matdiff::Options;
use std::path::{Path, PathBuf};
use std::process::Command;

const SEED: &str = "X : B x N; W : N x M; b : M; h = X*W + b";

fn explained(script: &str, wrt: &str) -> Document {
    let checked = matdiff::check_script(script).unwrap();
    let x = matdiff::explain::explain(&checked, wrt, &Options::default()).unwrap();
    assert!(x.all_checked(), "{x}");
    x.notes()
}

fn batchnorm() -> Document {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/batchnorm.py");
    let program = matdiff::numpy_dialect::read(&std::fs::read_to_string(path).unwrap(), None).unwrap();
    let x = matdiff::explain::explain(&program.checked, "gamma", &Options::default()).unwrap();
    assert!(x.all_checked(), "{x}");
    x.notes()
}

fn hessian() -> Document {
    let checked = matdiff::check_script("X : m x n; w : n; y : m; norm(X*w - y)^2").unwrap();
    notes::full_form(&matdiff::fullform::hessian(&checked, "w", &Options::default()).unwrap())
}

fn hessian_vector_product() -> Document {
    let checked = matdiff::check_script("x : n; v : n; logsumexp(x)").unwrap();
    let product = matdiff::hvp::hvp(&checked, "x", "v", &Options::default()).unwrap();
    assert!(product.check.passed(), "{product}");
    notes::hvp(&product)
}

/// The seed, a reduction, a Hessian, a Hessian-vector product and a normalisation layer.
fn documents() -> Vec<(&'static str, Document, &'static [&'static str])> {
    const EXPLAIN: &[&str] = &[
        "The forward expression",
        "The intuitive derivation",
        "The compact chain rule",
        "The full form",
        "The check",
    ];
    vec![
        ("seed", explained(SEED, "b"), EXPLAIN),
        (
            "reduction",
            explained("X : B x N; W : N x M; s = sum(tanh(X*W))", "W"),
            EXPLAIN,
        ),
        (
            "hessian",
            hessian(),
            &["The forward expression", "The full form", "The check"],
        ),
        (
            "hvp",
            hessian_vector_product(),
            &["The forward expression", "The Hessian-vector product", "The check"],
        ),
        ("batchnorm", batchnorm(), EXPLAIN),
    ]
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("matdiff-notes-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The share of dark pixels of a binary PGM (P5, 8-bit) page.
fn ink(pgm: &[u8]) -> f64 {
    // Header: "P5", width, height, maxval, each followed by whitespace, then the pixels.
    let mut fields = 0;
    let mut at = 0;
    while fields < 4 {
        while pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        while !pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields += 1;
    }
    let pixels = &pgm[at + 1..];
    pixels.iter().filter(|p| **p < 200).count() as f64 / pixels.len() as f64
}

#[test]
fn standalone_notes_compile_render_and_hold_every_section() {
    for (name, doc, sections) in documents() {
        let dir = scratch(name);
        std::fs::write(dir.join("notes.tex"), doc.latex(true)).unwrap();
        run(
            &dir,
            "pdflatex",
            &["-interaction=nonstopmode", "-halt-on-error", "notes.tex"],
        );
        run(&dir, "pdftoppm", &["-r", "30", "-gray", "notes.pdf", "page"]);
        let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pgm"))
            .collect();
        pages.sort();
        assert!(!pages.is_empty() && pages.len() <= 2, "{name}: {} pages", pages.len());
        let first = ink(&std::fs::read(&pages[0]).unwrap());
        assert!(first > 0.002, "{name}: the first page is blank ({first})");
        let text = run(&dir, "pdftotext", &["notes.pdf", "-"]);
        for section in sections {
            assert!(text.contains(section), "{name}: no section `{section}` in\n{text}");
        }
        let log = std::fs::read_to_string(dir.join("notes.log")).unwrap();
        assert!(
            !log.contains("Missing character"),
            "{name}: a character pdflatex cannot set"
        );
    }
}

/// Every `$$…$$` block and `$…$` span of a Markdown document.
fn markdown_math(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, block) in md.split("$$").enumerate() {
        if k % 2 == 1 {
            out.push(block.trim().to_string());
        } else {
            let spans: Vec<&str> = block.split('$').collect();
            out.extend(spans.iter().skip(1).step_by(2).map(|s| s.to_string()));
        }
    }
    out
}

#[test]
fn katex_sets_every_piece_of_math_in_the_notes() {
    let mut items = Vec::new();
    let mut push = |name: String, tex: String| items.push(serde_json::json!({"name": name, "tex": tex}));
    let mut docs = documents();
    docs.push(("gradients", gradients(), &[]));
    docs.push(("jacobian", jacobian(), &[]));
    docs.push((
        "logistic",
        explained("X : B x N; w : N; y : B; sum(log(1 + exp(-y .* (X*w))))", "w"),
        &[],
    ));
    for (name, doc, _) in &docs {
        for (k, tex) in doc.math().into_iter().enumerate() {
            push(format!("{name}/math{k}"), tex);
        }
        for (k, tex) in markdown_math(&doc.markdown()).into_iter().enumerate() {
            push(format!("{name}/markdown{k}"), tex);
        }
    }
    for rule in matdiff::rules::backprop_rules() {
        push(format!("rule/{}", rule.source), rule_note(rule.source));
    }
    katex::assert_renders(&items, "notes");
}

fn gradients() -> Document {
    let checked = matdiff::check_script(SEED).unwrap();
    let ds: Vec<matdiff::Derivation> = ["W", "b"]
        .iter()
        .map(|w| matdiff::grad_checked(&checked, w, &Options::default()).unwrap())
        .collect();
    notes::gradients(&ds)
}

fn jacobian() -> Document {
    let checked = matdiff::check_script(SEED).unwrap();
    notes::full_form(&matdiff::fullform::jacobian(&checked, "b", &Options::default()).unwrap())
}

/// The check's error varies with the platform's rounding; the rest is pinned.
fn redacted(text: &str) -> String {
    let mut out = String::new();
    for (k, part) in text.split("max relative error ").enumerate() {
        if k == 0 {
            out.push_str(part);
        } else {
            let rest = part.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            out.push_str("max relative error <= 1e-6");
            out.push_str(rest);
        }
    }
    out
}

#[test]
fn snapshots_of_the_notes() {
    insta::assert_snapshot!("notes_seed_latex", redacted(&explained(SEED, "b").latex(true)));
    insta::assert_snapshot!("notes_seed_markdown", redacted(&explained(SEED, "b").markdown()));
    insta::assert_snapshot!("notes_batchnorm_latex", redacted(&batchnorm().latex(false)));
    insta::assert_snapshot!("notes_hessian_markdown", redacted(&hessian().markdown()));
    insta::assert_snapshot!("notes_hvp_markdown", redacted(&hessian_vector_product().markdown()));
    insta::assert_snapshot!("notes_gradients_markdown", redacted(&gradients().markdown()));
}
