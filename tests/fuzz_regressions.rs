//! Inputs kept from fuzzing (fuzz/, FUZZING.md) and from the property and bounds tests, run
//! on stable through what the fuzz targets run: `check_script`, then `grad` with respect to
//! the first variable, the result rendered. Each must end with a result or an error within
//! its time budget, never a panic.
//!
//! `tests/fuzz_inputs/*.md` must pass. `tests/fuzz_inputs/bug-*.md` reproduce open bugs
//! (listed in FUZZING.md): such inputs may abort the process (an allocation of terabytes
//! does), so they run only in the ignored test below; when a bug is fixed, rename its file
//! without the `bug-` prefix so that CI keeps it fixed.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(30);

/// Past 1 GiB of live memory allocations fail, which aborts the test binary with "memory
/// allocation of N bytes failed", instead of a runaway input (the large literal dimensions
/// of the open bug inputs) taking the machine's memory before the OOM killer stops it.
mod cap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const CAP_BYTES: usize = 1 << 30;
    static LIVE: AtomicUsize = AtomicUsize::new(0);

    pub struct Capped;

    unsafe impl GlobalAlloc for Capped {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size() > CAP_BYTES {
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
                return std::ptr::null_mut();
            }
            let p = unsafe { System.alloc(layout) };
            if p.is_null() {
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: cap::Capped = cap::Capped;

fn inputs(bugs: bool) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_inputs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fuzz_inputs exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("bug-") == bugs
        })
        .collect();
    files.sort();
    files
}

/// The pipeline target's body, as in fuzz/fuzz_targets/pipeline.rs.
fn pipeline(script: &str) -> String {
    let checked = match matdiff::check_script(script) {
        Ok(c) => c,
        Err(e) => return e.render("<fuzz>", script, false),
    };
    let Some(wrt) = checked.variables.first() else {
        return "no variable".into();
    };
    match matdiff::grad_with(script, wrt, &matdiff::Options::default()) {
        Ok(d) => {
            let _ = d.numpy();
            let _ = d.json();
            d.to_string()
        }
        Err(e) => e.render("<fuzz>", script, false),
    }
}

/// Runs one input on a large stack (as the CLI does) with a time budget.
fn run(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).expect("read the input");
    // Fuzz inputs are bytes; the targets only pass on valid UTF-8.
    let Ok(script) = String::from_utf8(bytes) else {
        return Ok("not UTF-8".into());
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| pipeline(&script));
            let _ = tx.send(outcome.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into())
            }));
        })
        .expect("spawn");
    match rx.recv_timeout(BUDGET) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(panic)) => Err(format!("panicked: {panic}")),
        // The thread is left running; the test binary exits when the tests are done.
        Err(_) => Err(format!("still running after {BUDGET:?}")),
    }
}

fn run_all(files: &[PathBuf]) {
    let mut failures = vec![];
    for path in files {
        let start = std::time::Instant::now();
        let result = run(path);
        let name = path.file_name().unwrap().to_string_lossy();
        match &result {
            Ok(out) => eprintln!(
                "{name}: ok in {:.2?}: {}",
                start.elapsed(),
                out.lines().next().unwrap_or("")
            ),
            Err(e) => {
                eprintln!("{name}: FAILED in {:.2?}: {e}", start.elapsed());
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kept_fuzz_inputs_end_with_a_result_or_an_error() {
    // A budget per input; the literal-dimension inputs used to abort or hang (fixed in 89a66d4).
    let files = inputs(false);
    assert!(!files.is_empty(), "no inputs in tests/fuzz_inputs");
    run_all(&files);
}

#[test]
fn open_bug_inputs_end_with_a_result_or_an_error() {
    run_all(&inputs(true));
}
