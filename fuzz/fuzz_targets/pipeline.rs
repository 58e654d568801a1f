//! The whole pipeline on arbitrary text, with respect to the first variable: parse, shape
//! check, derive, simplify, check numerically, render. Must return Ok or Err, never panic,
//! within libFuzzer's time and memory limits. Runs on a large stack as the CLI does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn run(script: &str) {
    let checked = match matdiff::check_script(script) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.render("<fuzz>", script, false);
            return;
        }
    };
    let Some(wrt) = checked.variables.first() else { return };
    match matdiff::grad_with(script, wrt, &matdiff::Options::default()) {
        Ok(d) => {
            let _ = d.to_string();
            let _ = d.numpy();
            let _ = d.json();
        }
        Err(e) => {
            let _ = e.render("<fuzz>", script, false);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(script) = std::str::from_utf8(data) {
        let script = script.to_string();
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || run(&script))
            .expect("spawn")
            .join()
            .expect("the pipeline panicked");
    }
});
