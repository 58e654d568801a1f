//! The numpy dialect through its contract: every forward pass in `tests/cases/numpy/` is
//! derived (every gradient, snapshotted with its backward function), and the emitted numpy
//! (one expression per gradient, and `--function`) is run under real numpy against finite
//! differences of the file's own function (tests/numpy_dialect_check.py). Every file in
//! `tests/cases/numpy_errors/` is refused with a located message, snapshotted.

mod common;

use common::python;

use matdiff::{numpy_dialect, Options};
use std::path::Path;
use std::process::Command;

fn derived(path: &Path) -> String {
    let source = std::fs::read_to_string(path).expect("case file reads");
    let program = numpy_dialect::read(&source, None).expect("the case reads");
    let pass = program
        .backward(&program.variables, &Options::default())
        .expect("every gradient derives");
    assert!(pass.all_checked(), "{}", pass.text());
    format!("{}\n\n{}", pass.text(), pass.python)
}

#[test]
fn every_layer_derives_and_checks() {
    insta::glob!("cases/numpy/*.py", |path| {
        insta::assert_snapshot!(derived(path));
    });
}

#[test]
fn every_unsupported_or_malformed_file_is_refused_with_its_place() {
    insta::glob!("cases/numpy_errors/*.py", |path| {
        let source = std::fs::read_to_string(path).expect("case file reads");
        let name = format!("{}", path.file_name().expect("a file").to_string_lossy());
        let error = match numpy_dialect::read(&source, None) {
            Ok(program) => program
                .backward(&program.variables, &Options::default())
                .expect_err("an error case fails"),
            Err(e) => e,
        };
        let rendered = error.render(&name, &source, false);
        assert!(rendered.contains('^'), "no caret: {rendered}");
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn emitted_numpy_agrees_with_finite_differences_of_the_files_own_function() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/numpy");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the corpus folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/numpy_dialect_check.py");
    let out = Command::new(python())
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_matdiff"))
        .args(&files)
        .output()
        .expect("python runs (scripts/test sets up .venv with numpy)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        files.len(),
        "{report}"
    );
}

#[test]
fn a_py_file_selects_the_dialect_and_all_gradients_come_in_parameter_order() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/affine.py");
    let out = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(["grad", "-f", path, "--wrt", "all", "--emit", "numpy"])
        .output()
        .expect("matdiff runs");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = stdout.lines().map(|l| l.split(" = ").next().unwrap_or("")).collect();
    assert_eq!(names, ["dx", "dw", "db"], "{stdout}");
}

#[test]
fn an_inline_script_is_numpy_with_the_flag() {
    let script = "def f(x: \"N x D\", b: \"D\"):\n    return np.sum(x * b)\n";
    let out = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(["grad", "--numpy", script, "--wrt", "b"])
        .output()
        .expect("matdiff runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("∂f/∂b = xᵀ·1_N"), "{stdout}");
}
