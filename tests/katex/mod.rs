//! KaTeX (node, installed by scripts/test) sets LaTeX strings as display math.

use std::process::Command;

/// Renders every `{name, tex}` item with KaTeX in strict mode; panics listing the failures.
pub fn assert_renders(items: &[serde_json::Value], label: &str) {
    let module = std::env::var("MATDIFF_KATEX")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.cache/katex/node_modules/katex").to_string());
    let dir = std::env::temp_dir().join(format!("matdiff-katex-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latex.json");
    std::fs::write(&file, serde_json::to_string(items).unwrap()).unwrap();
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/katex_check.js"))
        .arg(&file)
        .env("MATDIFF_KATEX", module)
        .output()
        .expect("node runs (scripts/test installs KaTeX)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "KaTeX rejected some LaTeX:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", items.len())),
        "{stdout}"
    );
}
