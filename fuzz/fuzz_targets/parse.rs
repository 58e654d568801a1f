//! The parser and shape checker on arbitrary text: must return Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(script) = std::str::from_utf8(data) {
        if let Err(e) = matdiff::check_script(script) {
            // Rendering the error must not panic either (spans inside the input).
            let _ = e.render("<fuzz>", script, false);
        }
    }
});
