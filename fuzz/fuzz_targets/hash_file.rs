#![no_main]
//! Fuzz target: see ../invariants.rs for what is asserted.

use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let _ = invariants::check_hash_file(data);
});
