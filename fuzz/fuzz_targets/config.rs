//! Network configuration parsing: `Config::parse` and everything that reads
//! the parsed config. Must never panic; a refused config must render as a
//! CNI error object with a numeric `code`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_cni_plugin::config::Config;

fuzz_target!(|data: &[u8]| {
    match Config::parse(data) {
        Ok(conf) => {
            let _ = conf.ipam_type();
            let _ = conf.ipam_config();
            let _ = conf.prev_result();
            let _ = conf.valid_attachments();
        }
        Err(err) => {
            let json = err.to_json("1.1.0");
            let value: serde_json::Value = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("to_json gave invalid JSON ({e}): {json}"));
            let obj = value
                .as_object()
                .unwrap_or_else(|| panic!("to_json gave a non-object: {json}"));
            assert!(
                obj.get("code").is_some_and(|c| c.as_u64().is_some()),
                "to_json has no numeric code: {json}"
            );
            assert_eq!(
                obj.get("code").and_then(|c| c.as_u64()),
                Some(u64::from(err.code))
            );
        }
    }
});
