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
