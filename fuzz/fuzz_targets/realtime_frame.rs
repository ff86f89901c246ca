//! Parsing of real-time client frames (docs/protocol.md, "Frames"): any text, including deep
//! nesting, huge numbers and odd strings.
//!
//! Properties: nothing panics; a frame accepted is a JSON object (so junk never passes as a
//! request).
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveroom_server::check_realtime_frame;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if check_realtime_frame(text) {
        let value: Value = serde_json::from_str(text).expect("an accepted frame is JSON");
        assert!(value.is_object(), "an accepted frame is an object: {text}");
    }
});
