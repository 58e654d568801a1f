//! In-process timings as JSON lines, for `bench/compare_sympy.py` and `bench/scaling.py`:
//! process start-up is not measured.
//!
//! ```sh
//! cargo bench --bench timings                       # the seed and the corpus
//! cargo bench --bench timings -- bench/cases.toml   # [[case]] tables: id, script, wrt
//! cargo bench --bench timings -- cases.json --check # a JSON list of {id, script, wrt}
//! ```
//!
//! Options: `--check` also times the numeric check alone and the end-to-end `grad`;
//! `--budget-ms N` (default 300) repeats each measurement until N ms have been spent,
//! between `--min-reps` (default 3) and `--max-reps` (default 200) runs;
//! `--no-formula` leaves the formula text out of the output.
//!
//! One line per case: `derive_*` is `grad` with `no_check` (parse, shapes, derive,
//! simplify, extract), `parse_*` is `check_script` alone, `first_s` the first (cold)
//! `grad` call; `nodes` is the formula's node count (`formula.as_ref().len()`),
//! `text_len` the length in characters of `formula_text()`.

mod common;

use common::Case;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

struct Settings {
    check: bool,
    budget: Duration,
    min_reps: usize,
    max_reps: usize,
    formula: bool,
}

/// Runs `f` until the budget is spent (within the rep bounds); the durations in seconds.
fn repeat<T>(s: &Settings, mut f: impl FnMut() -> T) -> Vec<f64> {
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < s.max_reps && (times.len() < s.min_reps || start.elapsed() < s.budget) {
        let t = Instant::now();
        std::hint::black_box(f());
        times.push(t.elapsed().as_secs_f64());
    }
    times
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

fn time_case(case: &Case, s: &Settings) -> Value {
    let opts = common::options(case, true);
    let t = Instant::now();
    let first = matdiff::grad_with(&case.script, &case.wrt, &opts);
    let first_s = t.elapsed().as_secs_f64();
    let d = match first {
        Ok(d) => d,
        Err(e) => return json!({ "id": case.id, "ok": false, "error": e.to_string(), "first_s": first_s }),
    };
    let mut derive = repeat(s, || matdiff::grad_with(&case.script, &case.wrt, &opts));
    let mut parse = repeat(s, || matdiff::check_script(&case.script));
    let text = d.formula_text();
    let mut out = json!({
        "id": case.id,
        "wrt": case.wrt,
        "ok": true,
        "reps": derive.len(),
        "first_s": first_s,
        "derive_median_s": median(&mut derive),
        "derive_min_s": derive[0],
        "derive_max_s": derive[derive.len() - 1],
        "parse_median_s": median(&mut parse),
        "nodes": d.formula.as_ref().len(),
        "text_len": text.chars().count(),
        "iterations": d.simplify.iterations,
        "egraph_nodes": d.simplify.nodes,
        "egraph_classes": d.simplify.classes,
        "limit_hit": d.simplify.limit_hit,
    });
    if s.formula {
        out["formula"] = json!(text);
    }
    if s.check {
        let verdict = common::check(&d);
        let mut check = repeat(s, || common::check(&d));
        let full = common::options(case, false);
        let mut e2e = repeat(s, || matdiff::grad_with(&case.script, &case.wrt, &full));
        out["check"] = json!(format!("{verdict:?}"));
        out["check_passed"] = json!(verdict.passed());
        out["check_median_s"] = json!(median(&mut check));
        out["check_max_s"] = json!(check[check.len() - 1]);
        out["end_to_end_median_s"] = json!(median(&mut e2e));
    }
    out
}

#[derive(serde::Deserialize)]
struct JsonCase {
    id: String,
    script: String,
    wrt: String,
    #[serde(default)]
    layout: Option<String>,
}

fn load(path: &Path) -> Vec<Case> {
    if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cases: Vec<JsonCase> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cases
            .into_iter()
            .map(|c| Case {
                id: c.id,
                script: c.script,
                wrt: c.wrt,
                layout: c.layout,
            })
            .collect()
    } else {
        common::load_file(path).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn main() {
    // As the CLI does: deep expressions recurse through the checker, so run on a large stack.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run)
        .expect("spawn the timing thread");
    worker.join().expect("the timing thread panicked");
}

fn run() {
    let mut s = Settings {
        check: false,
        budget: Duration::from_millis(300),
        min_reps: 3,
        max_reps: 200,
        formula: true,
    };
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, flag: &str| -> u64 {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} takes a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--check" => s.check = true,
            "--no-formula" => s.formula = false,
            "--budget-ms" => s.budget = Duration::from_millis(number(args.next(), "--budget-ms")),
            "--min-reps" => s.min_reps = number(args.next(), "--min-reps") as usize,
            "--max-reps" => s.max_reps = number(args.next(), "--max-reps") as usize,
            flag if flag.starts_with("--") => panic!("unknown option {flag}"),
            file => files.push(file.to_string()),
        }
    }
    let cases: Vec<Case> = if files.is_empty() {
        let mut all = vec![Case {
            id: "seed".into(),
            script: common::SEED_SCRIPT.into(),
            wrt: common::SEED_WRT.into(),
            layout: None,
        }];
        all.extend(common::corpus());
        all
    } else {
        files.iter().flat_map(|f| load(Path::new(f))).collect()
    };
    let stdout = std::io::stdout();
    for case in &cases {
        let line = time_case(case, &s);
        let mut lock = stdout.lock();
        writeln!(lock, "{line}").unwrap();
        lock.flush().unwrap();
    }
}
