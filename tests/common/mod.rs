//! Shared by the tests that walk tests/cases.
#![allow(dead_code)]

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize, Clone)]
pub struct Case {
    pub id: String,
    pub source: String,
    pub script: String,
    pub wrt: String,
    pub expect: Option<String>,
    pub layout: Option<String>,
}

#[derive(Deserialize)]
struct CaseFile {
    case: Vec<Case>,
}

/// Every case of every `tests/cases/*.toml`, with its file's stem.
pub fn load_cases() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable case file");
        let parsed: CaseFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let mut seen = std::collections::HashSet::new();
        for case in parsed.case {
            assert!(
                seen.insert(case.id.clone()),
                "{}: duplicate id {}",
                path.display(),
                case.id
            );
            out.push((stem.clone(), case));
        }
    }
    assert!(!out.is_empty(), "no cases found");
    out
}

pub fn options_for(case: &Case) -> matdiff::Options {
    let mut o = matdiff::Options::default();
    if case.layout.as_deref() == Some("numerator") {
        o.layout = matdiff::Layout::Numerator;
    }
    o
}

/// The derivation's text with the measured error replaced, so snapshots hold the
/// formulas and not floating-point noise (the error is asserted separately).
pub fn snapshot_text(d: &matdiff::Derivation) -> String {
    let text = d.to_string();
    match text.rfind("max relative error") {
        Some(i) => format!("{}max relative error <= 1e-6", &text[..i]),
        None => text,
    }
}

/// The Python that runs the numpy checks: `MATDIFF_PYTHON`, else `.venv/bin/python`, else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("MATDIFF_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

/// A variable's shape as tests/numpy_check.py draws it.
pub fn shape_json(shape: &matdiff::dim::Shape, symmetric: bool, invertible: bool) -> serde_json::Value {
    let kind = if shape.is_scalar() {
        "scalar"
    } else if shape.is_column() {
        "vector"
    } else {
        "matrix"
    };
    serde_json::json!({
        "kind": kind,
        "dims": [shape.rows.render("*"), shape.cols.render("*")],
        "symmetric": symmetric,
        "invertible": invertible,
    })
}

/// Runs a Python checker over JSON lines; panics with its output unless every line passed.
pub fn run_python_check(script: &str, lines: &[String], summary: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
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
        stdout.contains(&format!("{summary}: {} passed, 0 failed", lines.len())),
        "{stdout}"
    );
}

/// The script with the derivation's upstream declared and `read_back__ = TEXT` appended: the
/// printed `text` read back in its own script, as a user pasting it would.
pub fn read_back_script(script: &str, d: &matdiff::Derivation, text: &str) -> String {
    let mut out = script.to_string();
    if let Some((g, shape)) = &d.upstream {
        let decl = if shape.is_scalar() {
            "scalar".to_string()
        } else if shape.is_column() {
            shape.rows.render("*")
        } else {
            format!("{} x {}", shape.rows.render("*"), shape.cols.render("*"))
        };
        out.push_str(&format!("\n{g} : {decl}"));
    }
    out.push_str(&format!("\nread_back__ = {text}"));
    out
}
