//! Shared by the benchmarks: the corpus (`tests/cases/*.toml`) and the seed example.
#![allow(dead_code)]

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The seed example of the README: the bias of `X*W + b`.
pub const SEED_SCRIPT: &str = "X : B x N; W : N x M; b : M; h = X*W + b";
pub const SEED_WRT: &str = "b";

/// One derivation to time. Unknown keys of a case file are ignored, so new
/// corpus fields do not break the benchmarks.
#[derive(Debug, Deserialize, Clone)]
pub struct Case {
    pub id: String,
    pub script: String,
    pub wrt: String,
    #[serde(default)]
    pub layout: Option<String>,
}

#[derive(Deserialize)]
struct CaseFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// The cases of one TOML file (`[[case]]` tables with `id`, `script`, `wrt`).
pub fn load_file(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed: CaseFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(parsed.case)
}

/// Every case of every `tests/cases/*.toml`, ids prefixed with the file stem
/// (`core/seed-bias`), in file order.
pub fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        match load_file(&path) {
            Ok(cases) => out.extend(cases.into_iter().map(|mut c| {
                c.id = format!("{stem}/{}", c.id);
                c
            })),
            Err(e) => eprintln!("skipping {e}"),
        }
    }
    out
}

pub fn options(case: &Case, no_check: bool) -> matdiff::Options {
    let mut o = matdiff::Options {
        no_check,
        ..Default::default()
    };
    if case.layout.as_deref() == Some("numerator") {
        o.layout = matdiff::Layout::Numerator;
    }
    o
}

/// The numeric check alone, on a derivation made with `no_check`.
pub fn check(d: &matdiff::Derivation) -> matdiff::Check {
    matdiff::numeric::check(
        &matdiff::numeric::Claim {
            env: &d.env,
            dims: &d.dims,
            target: &d.target,
            wrt: egg::Symbol::from(d.wrt.as_str()),
            upstream: d.upstream.clone(),
            formula: &d.formula,
            transposed: d.layout == matdiff::Layout::Numerator,
        },
        &matdiff::numeric::CheckOptions::default(),
    )
}
