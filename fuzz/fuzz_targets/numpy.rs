//! The numpy dialect on arbitrary text: `numpy_dialect::read` (tokenize with indentation,
//! parse, interpret on symbolic arrays), then `backward` with respect to every parameter
//! (derive, simplify, check numerically, write the backward function), every result
//! rendered. Must return Ok or Err, never panic, within libFuzzer's time and memory limits.
//! Runs on a large stack as the CLI does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matdiff::numpy_dialect;

fn run(source: &str) {
    let program = match numpy_dialect::read(source, None) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.render("<fuzz>.py", source, false);
            return;
        }
    };
    match program.backward(&program.variables, &matdiff::Options::default()) {
        Ok(pass) => {
            let _ = pass.text();
            let _ = pass.latex();
            for d in &pass.gradients {
                let _ = program.numpy_expression(d);
                let _ = d.json();
            }
        }
        Err(e) => {
            let _ = e.render("<fuzz>.py", source, false);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let source = source.to_string();
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || run(&source))
            .expect("spawn")
            .join()
            .expect("the numpy dialect panicked");
    }
});
