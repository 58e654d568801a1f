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

/// The standalone document compiled by pdflatex in a scratch directory, with no line of it
/// wider than the page by more than 5pt (`Overfull \hbox` in the log).
fn compiled(name: &str, doc: &Document) -> PathBuf {
    compiled_tex(name, &doc.latex(true))
}

/// A LaTeX file compiled by pdflatex as [`compiled`] does, with the same width check.
fn compiled_tex(name: &str, tex: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::write(dir.join("notes.tex"), tex).unwrap();
    run(
        &dir,
        "pdflatex",
        &["-interaction=nonstopmode", "-halt-on-error", "notes.tex"],
    );
    let log = std::fs::read_to_string(dir.join("notes.log")).unwrap();
    let over: Vec<f64> = overfull(&log).into_iter().filter(|w| *w > 5.0).collect();
    assert!(over.is_empty(), "{name}: lines too wide by {over:?}pt");
    dir
}

#[test]
fn standalone_notes_compile_render_and_hold_every_section() {
    for (name, doc, sections) in documents() {
        let dir = compiled(name, &doc);
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
    docs.extend(wide().into_iter().map(|(name, doc)| (name, doc, &[] as &[&str])));
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

/// Documents whose equations run far past the page unless broken: batch normalisation's `dx`
/// (numpy dialect; its chain rule's steps reach 1000pt) and a Hessian whose full form is a sum
/// of long products (750pt).
fn wide() -> Vec<(&'static str, Document)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/batchnorm.py");
    let program = matdiff::numpy_dialect::read(&std::fs::read_to_string(path).unwrap(), None).unwrap();
    let x = matdiff::explain::explain(&program.checked, "x", &Options::default()).unwrap();
    assert!(x.all_checked(), "{x}");
    vec![("batchnorm-dx", x.notes()), ("long-hessian", long_hessian())]
}

fn long_hessian() -> Document {
    let checked =
        matdiff::check_script("x : n; A : n x n; b : n; c : n; log(1 + exp(x'*A*x + b'*x)) + sum(tanh(A*x - c))")
            .unwrap();
    notes::full_form(&matdiff::fullform::hessian(&checked, "x", &Options::default()).unwrap())
}

/// The widths of the `Overfull \hbox (…pt too wide)` warnings of a pdflatex log.
fn overfull(log: &str) -> Vec<f64> {
    log.split("Overfull \\hbox (")
        .skip(1)
        .filter_map(|rest| rest.split("pt too wide").next()?.parse().ok())
        .collect()
}

#[test]
fn wide_equations_are_broken_to_fit_the_page() {
    for (name, doc) in wide() {
        compiled(name, &doc);
    }
}

/// A broken formula read back: the lines joined, the markup of the breaks (`\right.`,
/// `\left.`, a leading `{}`) dropped, a fraction taken apart to break its numerator
/// (`\frac{1}{N} \left(n\right)`) put back, and spaces ignored.
fn rejoined(lines: &[String]) -> String {
    let joined: String = lines
        .iter()
        .map(|l| l.replace("\\right.", "").replace("\\left.", "").replace("{}", ""))
        .collect();
    let mut s: String = joined.chars().filter(|c| !c.is_whitespace()).collect();
    while let Some(at) = s.find("\\frac{1}{") {
        let den_start = at + "\\frac{1}{".len();
        let den_end = den_start + matching(&s[den_start - 1..], '{', '}') - 2;
        let rest = &s[den_end + 1..];
        assert!(
            rest.starts_with("\\left("),
            "a fraction \\frac{{1}}{{…}} only where a numerator was broken: {s}"
        );
        let inner_end = matching_left(rest);
        let numerator = &rest["\\left(".len()..inner_end];
        s = format!(
            "{}\\frac{{{numerator}}}{{{}}}{}",
            &s[..at],
            &s[den_start..den_end],
            &rest[inner_end + "\\right)".len()..]
        );
    }
    s
}

/// The length of the bracketed group at the start of `s`, `open` to its matching `close`.
fn matching(s: &str, open: char, close: char) -> usize {
    let mut depth = 0;
    for (k, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return k + 1;
            }
        }
    }
    panic!("unbalanced {s}")
}

/// Where the `\right)` matching the `\left(` at the start of `s` begins.
fn matching_left(s: &str) -> usize {
    let mut depth = 0;
    let mut k = 0;
    while k < s.len() {
        if s[k..].starts_with("\\left") {
            depth += 1;
        } else if s[k..].starts_with("\\right") {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
        k += 1;
    }
    panic!("unbalanced {s}")
}

/// The numerator of a fraction as the breaks leave it: `(n)` and `\left(n\right)` lose the
/// brackets that a broken numerator gets anyway.
fn unbracketed_numerators(s: &str) -> String {
    let mut s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut from = 0;
    while let Some(found) = s[from..].find("\\frac{") {
        let at = from + found + "\\frac{".len();
        let end = at + matching(&s[at - 1..], '{', '}') - 2;
        let numerator = &s[at..end];
        let bare = if numerator.starts_with('(') && matching(numerator, '(', ')') == numerator.len() {
            Some(numerator[1..numerator.len() - 1].to_string())
        } else if numerator.starts_with("\\left(") && matching_left(numerator) + "\\right)".len() == numerator.len() {
            Some(numerator["\\left(".len()..numerator.len() - "\\right)".len()].to_string())
        } else {
            None
        };
        if let Some(b) = bare {
            s = format!("{}{b}{}", &s[..at], &s[end..]);
        }
        from = at;
    }
    s
}

#[test]
fn a_broken_equation_is_the_same_equation() {
    let mut broken = 0;
    for (name, doc) in wide() {
        for section in &doc.sections {
            for block in &section.blocks {
                let matdiff::render::document::Block::Equations(lines) = block else {
                    continue;
                };
                for line in lines {
                    let parts = matdiff::render::latex::break_lines(&line.rhs, 300.0, 290.0);
                    for part in &parts {
                        let opened = part.matches("\\left").count();
                        assert_eq!(
                            opened,
                            part.matches("\\right").count(),
                            "{name}: unbalanced line {part}"
                        );
                    }
                    if parts.len() > 1 {
                        broken += 1;
                    }
                    let expected = if parts.iter().any(|p| p.contains("\\frac{1}{")) {
                        unbracketed_numerators(&line.rhs)
                    } else {
                        line.rhs.chars().filter(|c| !c.is_whitespace()).collect()
                    };
                    let got = if parts.iter().any(|p| p.contains("\\frac{1}{")) {
                        unbracketed_numerators(&rejoined(&parts))
                    } else {
                        rejoined(&parts)
                    };
                    assert_eq!(got, expected, "{name}: broken as {parts:#?}");
                }
            }
        }
    }
    assert!(broken > 10, "only {broken} equations were broken");
}

#[test]
fn snapshots_of_a_broken_equation() {
    insta::assert_snapshot!("notes_long_hessian_latex", redacted(&long_hessian().latex(false)));
    insta::assert_snapshot!("notes_long_hessian_markdown", redacted(&long_hessian().markdown()));
}

/// The `align*` fragments (`grad --emit latex`, `explain`'s steps without `--standalone`)
/// break as the documents do: pasted into a page of the notes' geometry, no line overflows.
#[test]
fn latex_fragments_are_broken_to_fit_the_page() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/numpy/batchnorm.py");
    let program = matdiff::numpy_dialect::read(&std::fs::read_to_string(path).unwrap(), None).unwrap();
    let pass = program.backward(&program.variables, &Options::default()).unwrap();
    let explanation = matdiff::explain::explain(&program.checked, "x", &Options::default()).unwrap();
    let gradients = matdiff::derivations_latex(&pass.gradients);
    for (name, body) in [("grad-fragment", gradients), ("explain-fragment", explanation.latex())] {
        assert!(
            body.contains("&\\quad"),
            "{name}: nothing was wide enough to break:\n{body}"
        );
        let tex = format!(
            "\\documentclass[10pt]{{article}}\n\\usepackage[a4paper,margin=1.8cm]{{geometry}}\n\\usepackage{{amsmath,amssymb}}\n\\begin{{document}}\n\\begin{{align*}}\n{body}\n\\end{{align*}}\n\\end{{document}}\n"
        );
        compiled_tex(name, &tex);
    }
}
