//! The command-line contract: output on stdout, errors on stderr with a caret, exit
//! status 0 (shown and checked), 2 (bad input), 3 (a formula that failed its check).

use std::process::{Command, Output};

fn matdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("matdiff runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SEED_LOSS: &str = "X : B x N; W : N x M; b : M; Y : B x M; norm(X*W + b - Y)^2";
const SEED: &str = "X : B x N; W : N x M; b : M; h = X*W + b";

#[test]
fn the_seed_prints_the_explicit_broadcast_the_formula_and_the_check() {
    let out = matdiff(&["grad", SEED, "--wrt", "b"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("h = X·W + 1_B·bᵀ"), "{stdout}");
    assert!(stdout.contains("b : M broadcast over the B rows"), "{stdout}");
    assert!(stdout.contains("∂L/∂b = Gᵀ·1_B"), "{stdout}");
    assert!(stdout.contains("G = ∂L/∂h : B x M"), "{stdout}");
    assert!(
        stdout.contains("checked on 3 random instances (B, M, N drawn independently)"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn numerator_layout_gives_the_row_form() {
    let out = matdiff(&["grad", SEED, "--wrt", "b", "--layout", "numerator"]);
    assert!(text(&out.stdout).contains("∂L/∂b = 1_Bᵀ·G"));
}

#[test]
fn numpy_emit_is_one_expression() {
    let out = matdiff(&["grad", SEED, "--wrt", "b", "--emit", "numpy"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).trim(), "np.reshape(G.sum(axis=0), np.shape(b))");
}

#[test]
fn json_emit_carries_formula_shape_layout_and_check() {
    let out = matdiff(&["grad", SEED, "--wrt", "W", "--emit", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["formula"], "Xᵀ·G");
    assert_eq!(v["shape"], "N x M");
    assert_eq!(v["layout"], "denominator");
    assert_eq!(v["check"]["status"], "passed");
    assert_eq!(v["check"]["instances"], 3);
    assert!(v["check"]["max_rel_err"].as_f64().unwrap() < 1e-6);
}

#[test]
fn no_check_says_unchecked() {
    let out = matdiff(&["grad", SEED, "--wrt", "b", "--no-check"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("unchecked"));
}

#[test]
fn a_formula_that_fails_its_check_goes_to_stderr_with_exit_3() {
    let out = matdiff(&["grad", SEED, "--wrt", "W", "--plant-fault"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "a failing formula must not reach stdout");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("CHECK FAILED"), "{stderr}");
}

#[test]
fn a_failing_numpy_emit_prints_nothing_on_stdout() {
    let out = matdiff(&["grad", SEED, "--wrt", "W", "--plant-fault", "--emit", "numpy"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
}

#[test]
fn scripts_come_from_files_and_stdin() {
    let dir = std::env::temp_dir().join(format!("matdiff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("seed.md");
    std::fs::write(&file, "# the seed\nX : B x N\nW : N x M\nb : M\nh = X*W + b\n").unwrap();
    let out = matdiff(&["grad", "-f", file.to_str().unwrap(), "--wrt", "b"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Gᵀ·1_B"));

    let bad = dir.join("latin1.md");
    std::fs::write(&bad, b"X : n x n; tr(X) \xff").unwrap();
    let out = matdiff(&["grad", "-f", bad.to_str().unwrap(), "--wrt", "X"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not valid UTF-8"));

    let out = matdiff(&["grad", "-f", dir.join("missing.md").to_str().unwrap(), "--wrt", "X"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read"));
    assert!(out.stdout.is_empty());
}

/// Every bad input: its message with line, column and caret, exit 2, nothing on stdout.
#[test]
fn error_catalogue() {
    let cases: &[(&str, &str, &str)] = &[
        ("unclosed-paren", "X : n x n; tr(X", "X"),
        ("unmatched-paren", "X : n x n; tr(X))", "X"),
        ("dangling-operator", "X : n x n; tr(X) +", "X"),
        ("stray-character", "X : n x n; tr(X) $ 2", "X"),
        ("unicode-stray", "X : n x n; tr(X) → 2", "X"),
        ("unknown-function", "X : n x n; sum(signoid(X))", "X"),
        ("wrong-arity", "X : n x n; tr(X, X)", "X"),
        ("unknown-wrt", "X : n x n; Y : n x n; tr(X*Y)", "Z"),
        ("misspelled-wrt", "Xin : n x n; tr(Xin)", "Xn"),
        ("wrt-is-a-definition", SEED, "h"),
        ("wrt-is-a-dimension", SEED, "B"),
        ("shape-mismatch-add", "X : n x m; Y : m x k; X + Y", "X"),
        ("shape-mismatch-mul", "X : n x m; Y : k x m; X * Y", "X"),
        ("shape-mismatch-hadamard", "X : n x m; Y : m x n; X .* Y", "X"),
        ("non-square-trace", "X : n x m; tr(X)", "X"),
        ("non-square-inverse", "X : n x m; sum(inv(X))", "X"),
        ("non-square-det", "X : n x m; det(X)", "X"),
        ("non-square-logdet", "X : n x m; logdet(X)", "X"),
        ("conflicting-declarations", "X : n x n; X : n x m; tr(X)", "X"),
        ("divide-by-matrix", "X : n x n; Y : n x n; sum(X / Y)", "X"),
        ("empty-input", "", "X"),
        ("only-declarations", "X : n x n", "X"),
        (
            "multi-line-location",
            "X : n x n\nY : n x n\ntr(X * Y') + det(Y * X",
            "X",
        ),
        ("symmetric-not-square", "S : n x m symmetric; sum(S)", "S"),
        ("exponent-not-a-number", "X : n x n; s : scalar; tr(X)^s", "X"),
        ("self-referential-definition", "x : n; y = y + x; sum(y)", "x"),
    ];
    let mut all = String::new();
    for (name, script, wrt) in cases {
        let out = matdiff(&["grad", script, "--wrt", wrt]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{name}: stdout must be empty");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(stderr.contains('^'), "{name}: no caret\n{stderr}");
        all.push_str(&format!("=== {name}: matdiff grad {script:?} --wrt {wrt}\n{stderr}\n"));
    }
    insta::assert_snapshot!("error_catalogue", all);
}

#[test]
fn every_emit_a_command_accepts_produces_that_form() {
    for (command, emits) in [
        ("grad", &["text", "json", "numpy", "latex", "markdown"][..]),
        ("explain", &["text", "latex", "markdown"][..]),
        ("jacobian", &["text", "json", "latex", "markdown"][..]),
    ] {
        let mut outputs = Vec::new();
        for emit in emits {
            let out = matdiff(&[command, SEED, "--wrt", "b", "--emit", emit]);
            assert_eq!(out.status.code(), Some(0), "{command} --emit {emit}");
            let stdout = text(&out.stdout);
            match *emit {
                "json" => assert!(stdout.trim_start().starts_with('{'), "{command}: {stdout}"),
                "latex" => assert!(stdout.contains("\\frac{\\partial"), "{command}: {stdout}"),
                "markdown" => assert!(stdout.contains("$$\n\\begin{aligned}"), "{command}: {stdout}"),
                "numpy" => assert!(stdout.contains("np."), "{command}: {stdout}"),
                _ => {}
            }
            assert!(
                !outputs.contains(&stdout),
                "{command} --emit {emit} repeats another form"
            );
            outputs.push(stdout);
        }
    }
}

#[test]
fn options_that_do_not_apply_are_refused() {
    for args in [
        &["explain", SEED, "--wrt", "b", "--emit", "numpy"][..],
        &["explain", SEED, "--wrt", "b", "--function"][..],
        &["explain", SEED, "--wrt", "b", "--steps"][..],
        // `jacobian --emit numpy` is now produced (tests/second_order.rs); `--function` needs it.
        &["jacobian", SEED, "--wrt", "b", "--function"][..],
        &[
            "hessian",
            "x : n; y : m; z : n; sum(x) * sum(y) * sum(z)",
            "--wrt",
            "x,y,z",
        ][..],
        &["hvp", "x : n; u : m; sum(exp(x))", "--wrt", "x", "--dir", "u"][..],
        &["hessian", SEED, "--wrt", "b", "--layout", "numerator"][..],
        &["grad", SEED, "--wrt", "b", "--steps", "--emit", "json"][..],
    ] {
        let out = matdiff(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("error"), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn explain_writes_notes_as_latex_and_markdown() {
    let out = matdiff(&["explain", SEED, "--wrt", "b", "--emit", "latex", "--standalone"]);
    let doc = text(&out.stdout);
    assert!(doc.starts_with("\\documentclass"), "{doc}");
    for section in [
        "The intuitive derivation",
        "The compact chain rule",
        "The full form",
        "The check",
    ] {
        assert!(doc.contains(section), "{section}: {doc}");
    }
    assert!(
        doc.contains("[Cookbook eq. 44]") && doc.contains("\\delta_{jk}"),
        "{doc}"
    );
    let fragment = text(&matdiff(&["explain", SEED, "--wrt", "b", "--emit", "latex"]).stdout);
    assert!(fragment.contains("\\begin{align*}") && !fragment.contains("\\documentclass"));
    let md = text(&matdiff(&["explain", SEED, "--wrt", "b", "--emit", "markdown"]).stdout);
    assert!(md.contains("### The compact chain rule") && md.contains("$$"), "{md}");
    let numpy = matdiff(&[
        "explain",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/batchnorm.py"),
        "--wrt",
        "gamma",
        "--emit",
        "markdown",
    ]);
    assert_eq!(numpy.status.code(), Some(0));
    assert!(
        text(&numpy.stdout).contains("\\mathit{xhat}"),
        "{}",
        text(&numpy.stdout)
    );
}

#[test]
fn second_order_commands_emit_every_form() {
    let script = "X : m x n; w : n; y : m; v : n; norm(X*w - y)^2";
    let numpy = text(&matdiff(&["hessian", script, "--wrt", "w", "--emit", "numpy"]).stdout);
    assert_eq!(numpy.trim(), "2.0 * (X.T @ X)");
    let json = text(&matdiff(&["jacobian", SEED, "--wrt", "b", "--emit", "json"]).stdout);
    assert!(
        json.contains("\"numpy\":\"np.kron(np.ones((B, 1)), np.eye(M))\""),
        "{json}"
    );
    let function = text(&matdiff(&["jacobian", SEED, "--wrt", "b", "--emit", "numpy", "--function"]).stdout);
    assert!(function.contains("def jacobian_b(X, W, b):"), "{function}");
    let mixed = matdiff(&["hessian", SEED_LOSS, "--wrt", "W,b"]);
    assert_eq!(mixed.status.code(), Some(0), "{}", text(&mixed.stderr));
    assert!(
        text(&mixed.stdout).contains("∂vec(∇_W f)/∂vec(b) = 2·((Xᵀ·1_B) ⊗ I_M)"),
        "{}",
        text(&mixed.stdout)
    );
    let hvp = text(&matdiff(&["hvp", script, "--wrt", "w", "--dir", "v"]).stdout);
    assert!(hvp.contains("H·v = ∂⟨∇f, v⟩/∂w = 2·Xᵀ·X·v"), "{hvp}");
    assert!(
        hvp.contains("checked against finite differences of ∇f along v"),
        "{hvp}"
    );
    for emit in ["json", "latex", "numpy", "markdown"] {
        let out = matdiff(&["hvp", script, "--wrt", "w", "--dir", "v", "--emit", emit]);
        assert_eq!(out.status.code(), Some(0), "{emit}: {}", text(&out.stderr));
    }
    let hvp_of = |more: &[&str]| {
        let mut args = vec!["hvp", script, "--wrt", "w", "--dir", "v"];
        args.extend_from_slice(more);
        text(&matdiff(&args).stdout)
    };
    let notes = hvp_of(&["--emit", "latex", "--standalone"]);
    assert!(
        notes.contains("\\documentclass") && notes.contains("never formed"),
        "{notes}"
    );
    let function = hvp_of(&["--emit", "numpy", "--function"]);
    assert!(function.contains("def hvp_w(X, w, y, v):"), "{function}");
    let fault = matdiff(&["hvp", script, "--wrt", "w", "--dir", "v", "--plant-fault"]);
    assert_eq!(fault.status.code(), Some(3));
}

#[test]
fn the_whole_hessian_is_every_block() {
    let script = "x : n; y : m; A : n x m; sum(exp(x)) + x'*A*y";
    let out = matdiff(&["hessian", script, "--wrt", "all", "--emit", "numpy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let numpy = text(&out.stdout);
    assert!(numpy.starts_with("np.block([[np.diagflat("), "{numpy}");
    let blocks = text(&matdiff(&["hessian", script, "--wrt", "all"]).stdout);
    assert!(
        blocks.contains("∂vec(∇_x f)/∂vec(y) = A") && blocks.contains("∂vec(∇_y f)/∂vec(x) = Aᵀ"),
        "{blocks}"
    );
    let refused = matdiff(&["hessian", script, "--wrt", "all", "--emit", "latex"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--wrt x,y"), "{}", text(&refused.stderr));
}
