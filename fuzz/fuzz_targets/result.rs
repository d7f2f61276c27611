//! CNI result decoding for every spec version, and the encode/decode round
//! trip: whatever `from_value` accepts, `to_value` must write in a form that
//! `from_value` reads back to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_cni_spec::{CniResult, Version};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for v in Version::ALL {
        let Ok(parsed) = CniResult::from_value(&value, v) else {
            continue;
        };
        let encoded = parsed.to_value(v);
        let again = CniResult::from_value(&encoded, v).unwrap_or_else(|e| {
            panic!("{v}: re-decoding our own encoding failed: {e}\nencoded: {encoded}")
        });
        assert_eq!(
            parsed, again,
            "{v}: round trip changed the result\nencoded: {encoded}"
        );
    }
});
