#![no_main]
//! Fuzz target: see ../invariants.rs for what is asserted.

use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    // SQS bodies are text; bytes that are not UTF-8 never reach the parser.
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = invariants::check_message(body);
    }
});
