//! Capability text from anywhere: parse never panics, and what parses prints back the same.
#![no_main]
use kura_core::Capability;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cap) = Capability::parse(text) {
        assert_eq!(Capability::parse(&cap.to_text()), Ok(cap));
    }
});
