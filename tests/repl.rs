//! The REPL: a session answering lines (tested directly), and the real program in a
//! pseudo-terminal: typing the seed, a tab completion, an error, history recall, Ctrl-C, Ctrl-D,
//! and lines typed ahead or pasted (with and without bracketed paste) all answered in order.

use matdiff::repl::{Reply, Session};
use rexpect::session::{spawn_command, PtySession};
use std::process::Command;

fn text(reply: Reply) -> String {
    match reply {
        Reply::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn statements_accumulate_and_grad_uses_them() {
    let mut s = Session::new(false);
    assert_eq!(text(s.feed("X : B x N; W : N x M")), "X : B x N\nW : N x M");
    assert_eq!(text(s.feed("b : M")), "b : M");
    let h = text(s.feed("h = X*W + b"));
    assert!(h.starts_with("h = X·W + 1_B·bᵀ   (B x M)"), "{h}");
    assert!(h.contains("b : M broadcast over the B rows"), "{h}");
    let g = text(s.feed(":grad b"));
    assert!(g.contains("∂L/∂b = Gᵀ·1_B"), "{g}");
    assert!(g.contains("checked on 3 random instances"), "{g}");
}

#[test]
fn commands_set_layout_and_emit() {
    let mut s = Session::new(false);
    s.feed("X : B x N; W : N x M; b : M; h = X*W + b");
    assert_eq!(text(s.feed(":layout numerator")), "layout: numerator");
    assert!(text(s.feed(":grad b")).contains("∂L/∂b = 1_Bᵀ·G"));
    s.feed(":layout denominator");
    s.feed(":emit numpy");
    assert_eq!(text(s.feed(":grad W")), "X.T @ G");
    s.feed(":emit latex");
    assert!(text(s.feed(":grad W")).contains("X^\\top G"));
    let shapes = text(s.feed(":shapes"));
    assert!(shapes.contains("W : N x M   (declared)"), "{shapes}");
    assert_eq!(text(s.feed(":reset")), "forgot every statement");
    assert!(matches!(s.feed(":grad W"), Reply::Error(_)));
    assert_eq!(s.feed(":quit"), Reply::Quit);
}

#[test]
fn an_error_points_into_the_line_and_the_session_carries_on() {
    let mut s = Session::new(false);
    s.feed("X : n x m; Y : m x n");
    match s.feed("X + Y") {
        Reply::Error(e) => {
            assert!(e.contains("shape mismatch in `+`: n x m and m x n"), "{e}");
            assert!(e.contains("<repl>:1:1"), "{e}");
            assert!(e.contains("^^^^^"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(text(s.feed("tr(X*Y)")).contains("tr(X·Y)"));
    match s.feed(":gard X") {
        Reply::Error(e) => assert!(e.contains("did you mean `:grad`?"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inferred_names_are_listed() {
    let mut s = Session::new(false);
    s.feed("sum(A*x)");
    let shapes = text(s.feed(":shapes"));
    assert!(shapes.contains("A : m_A x n_A   (inferred)"), "{shapes}");
    assert!(shapes.contains("x : n_A   (inferred)"), "{shapes}");
}

#[test]
fn hessian_vector_products_and_second_order_numpy_in_a_session() {
    let mut s = Session::new(false);
    s.feed("A : n x n symmetric; x : n; v : n");
    s.feed("f = 0.5*x'*A*x + sum(exp(x))");
    let product = text(s.feed(":hvp x v"));
    assert!(product.contains("H·v = ∂⟨∇f, v⟩/∂x = A·v + v ⊙ exp(x)"), "{product}");
    assert!(
        product.contains("checked against finite differences of ∇f along v"),
        "{product}"
    );
    assert!(matches!(s.feed(":hvp x"), Reply::Error(e) if e.contains("a direction of its shape")));
    assert!(matches!(s.feed(":hvp x A"), Reply::Error(_)));
    s.feed(":emit numpy");
    let numpy = text(s.feed(":hvp x v"));
    assert!(numpy.contains("np.exp(") && !numpy.contains('⊙'), "{numpy}");
    let hessian = text(s.feed(":hessian x"));
    assert!(hessian.contains("np.diagflat(") && hessian.contains('A'), "{hessian}");
}

/// rexpect reads the terminal byte by byte as Latin-1; UTF-8 text is matched in that form.
fn bytes(s: &str) -> String {
    s.bytes().map(char::from).collect()
}

/// Types keys without pressing Enter; the pty writer is buffered, so flush each time.
fn type_keys(p: &mut PtySession, keys: &str) {
    p.send(keys).unwrap();
    p.flush().unwrap();
}

fn repl(history: &std::path::Path) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.env("MATDIFF_HISTORY", history)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(10_000)).expect("spawn matdiff in a pty");
    p.exp_string("matdiff> ").expect("prompt");
    p
}

#[test]
fn a_session_in_a_real_terminal() {
    let dir = std::env::temp_dir().join(format!("matdiff-repl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history");
    let _ = std::fs::remove_file(&history);

    let mut p = repl(&history);
    // The seed, typed line by line.
    p.send_line("X : B x N; W : N x M; b : M").unwrap();
    p.exp_string("b : M").unwrap();
    p.send_line("h = X*W + b").unwrap();
    p.exp_string("b : M broadcast over the B rows").unwrap();
    p.send_line(":grad b").unwrap();
    p.exp_string(&bytes("Gᵀ·1_B")).unwrap();
    p.exp_string("checked on 3 random instances").unwrap();

    // Tab completion of a function name: `su` + Tab becomes `sum(`.
    type_keys(&mut p, "z = su");
    type_keys(&mut p, "\t");
    type_keys(&mut p, "X*W)\r");
    p.exp_string(&bytes("z = sum(X·W)")).unwrap();
    p.exp_string("matdiff> ").unwrap();

    // An error prints its caret and the session carries on.
    p.send_line("tr(X))").unwrap();
    p.exp_string("unmatched `)`").unwrap();
    p.exp_string("^").unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line(":grad W").unwrap();
    p.exp_string(&bytes("∂z/∂W")).unwrap();
    p.exp_string("matdiff> ").unwrap();

    // Ctrl-C cancels the line being typed.
    type_keys(&mut p, "this is not matdiff");
    p.exp_string("this is not matdiff").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("matdiff> ").unwrap();

    // History recall: the up arrow brings back the last line.
    type_keys(&mut p, "\x1b[A");
    type_keys(&mut p, "\r");
    p.exp_string(&bytes("∂z/∂W")).unwrap();
    p.exp_string("matdiff> ").unwrap();

    // Ctrl-D quits, and the history is saved.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&history).expect("history saved");
    assert!(saved.contains(":grad b"), "{saved}");

    // The next session recalls the previous one's lines.
    let mut p = repl(&history);
    type_keys(&mut p, "\x1b[A");
    type_keys(&mut p, "\r");
    p.exp_string("nothing to differentiate yet").unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

/// Waits for each of `texts` in turn: each must come after the one before it.
fn expect_in_order(p: &mut PtySession, texts: &[&str]) {
    for t in texts {
        if let Err(e) = p.exp_string(&bytes(t)) {
            panic!("waiting for {t:?}: {e}");
        }
    }
}

/// A fresh session with its own (empty) history file.
fn fresh_repl(name: &str) -> PtySession {
    let dir = std::env::temp_dir().join(format!("matdiff-repl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history");
    let _ = std::fs::remove_file(&history);
    repl(&history)
}

/// The seed and two questions, as the answers to them appear: each line echoed after a
/// prompt, then answered, in the order typed.
const SCRIPT: &[&str] = &[
    "X : B x N; W : N x M; b : M",
    "h = X*W + b",
    ":grad b",
    ":emit numpy",
    ":grad W",
];

fn expect_script_answers(p: &mut PtySession) {
    let answers = [
        "X : B x N\r\nW : N x M\r\nb : M",
        "b : M broadcast over the B rows",
        "Gᵀ·1_B",
        "emit: numpy",
        "X.T @ G",
    ];
    // Each line after its prompt (the caller has seen the first), then its answer.
    for (line, answer) in SCRIPT.iter().zip(answers) {
        expect_in_order(p, &[line, answer, "matdiff> "]);
    }
}

fn quit(mut p: PtySession) {
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

// The tests below type as fast as the pty takes the bytes, on purpose: no key may be
// lost, however early it comes. (They passed 20 runs of 20 in a loop.)

#[test]
fn lines_typed_without_waiting_for_the_prompt_all_run_in_order() {
    let mut p = fresh_repl("typeahead");
    // One write: every line is already waiting when the first is answered.
    type_keys(&mut p, &format!("{}\r", SCRIPT.join("\r")));
    expect_script_answers(&mut p);
    // One write per line, not waiting: later lines come while earlier ones are worked on.
    p.send_line(":emit text").unwrap();
    for line in [":reset", "X : n x n", "tr(X*X)", ":grad X"] {
        type_keys(&mut p, &format!("{line}\r"));
    }
    expect_in_order(
        &mut p,
        &[
            "emit: text",
            "forgot every statement",
            "X : n x n",
            "tr(X·X)",
            "∂f/∂X = 2·Xᵀ",
            "matdiff> ",
        ],
    );
    quit(p);
}

#[test]
fn a_pasted_script_runs_line_by_line() {
    // Without bracketed paste a terminal sends the block as keys, lines ending in CR or LF;
    // with it, the block comes between ESC[200~ and ESC[201~.
    let pastes = [("paste", "", "\n", ""), ("bracketed", "\x1b[200~", "\r", "\x1b[201~")];
    for (name, start, line_end, end) in pastes {
        let mut p = fresh_repl(name);
        type_keys(&mut p, &format!("{start}{}{line_end}{end}", SCRIPT.join(line_end)));
        expect_script_answers(&mut p);
        quit(p);
    }
}

#[test]
fn a_bracketed_paste_may_end_mid_line_and_its_tabs_are_text() {
    let mut p = fresh_repl("bracketed-tab");
    // The last pasted line has no line end: it waits to be finished and entered. Its Tab
    // is not a completion (which would insert a name after `*`).
    type_keys(&mut p, "\x1b[200~x : n\rz = 2*\tsum(x\x1b[201~");
    p.exp_string("x : n\r\n").unwrap();
    type_keys(&mut p, ")\r");
    expect_in_order(&mut p, &["z = 2·sum(x)", "matdiff> "]);
    quit(p);
}

#[test]
fn a_pasted_statement_continues_across_lines() {
    for (name, start, end) in [("cont", "", ""), ("cont-bracketed", "\x1b[200~", "\x1b[201~")] {
        let mut p = fresh_repl(name);
        let block = [
            "X : B x N; W : N x M; b : M",
            "h = X*W + \\",
            "  b",
            "z = sum(h",
            "  * 2)",
            ":grad b",
        ];
        type_keys(&mut p, &format!("{start}{}\r{end}", block.join("\r")));
        expect_in_order(
            &mut p,
            &["b : M", "h = X·W + 1_B·bᵀ", "z = sum(", "∂z/∂b = ", "matdiff> "],
        );
        quit(p);
    }
}

#[test]
fn piped_input_runs_as_a_script() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"X : B x N; W : N x M; b : M\nh = X*W + \\\n  b\n:emit numpy\n:grad b\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("np.reshape(G.sum(axis=0), np.shape(b))"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no colour when piped");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_loaded_numpy_forward_pass_answers_grad_for_one_or_every_parameter() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/affine.py");
    let mut s = Session::new(false);
    let Reply::Text(loaded) = s.feed(&format!(":load {path}")) else {
        panic!("the file loads")
    };
    assert!(loaded.contains("`affine_forward`"), "{loaded}");
    let Reply::Text(b) = s.feed(":grad b") else {
        panic!("b derives")
    };
    assert!(b.contains("∂L/∂b = doutᵀ·1_N"), "{b}");
    let Reply::Text(all) = s.feed(":grad all") else {
        panic!("all derive")
    };
    for line in ["∂L/∂x = dout·wᵀ", "∂L/∂w = xᵀ·dout", "∂L/∂b = doutᵀ·1_N"] {
        assert!(all.contains(line), "{all}");
    }
}
