//! The REPL: a session answering lines (tested directly), and the real program in a
//! pseudo-terminal: typing the seed, a tab completion, an error, history recall, Ctrl-C, Ctrl-D.

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
    // Keys are typed only at a prompt: between lines the terminal mode changes and may drop them.
    p.exp_string("matdiff> ").unwrap();

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
    assert!(
        stdout.contains("np.reshape(G.T @ np.ones((B, 1)), np.shape(b))"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "no colour when piped");
    assert_eq!(out.status.code(), Some(0));
}
