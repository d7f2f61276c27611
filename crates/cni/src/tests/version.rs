use serde_json::json;

use crate::{codes, parse_version_field, version_reply, Version};

#[test]
fn parse_and_display_round_trip() {
    for v in Version::ALL {
        assert_eq!(v.as_str().parse::<Version>().unwrap(), v);
        assert_eq!(v.to_string(), v.as_str());
    }
    assert_eq!(Version::V1_1_0.to_string(), "1.1.0");
}

#[test]
fn unsupported_versions_are_code_1() {
    for s in ["0.1.0", "0.2.0", "", "1.1", "2.0.0", "1.1.0 ", "v1.0.0"] {
        let err = s.parse::<Version>().unwrap_err();
        assert_eq!(err.code, codes::INCOMPATIBLE_VERSION, "{s:?}");
    }
}

#[test]
fn ordering_and_features() {
    assert!(Version::ALL.windows(2).all(|w| w[0] < w[1]));
    assert!(!Version::V0_3_1.has_check());
    assert!(Version::V0_4_0.has_check());
    assert!(Version::V1_1_0.has_check());
    assert!(!Version::V1_0_0.has_status_gc());
    assert!(Version::V1_1_0.has_status_gc());
}

#[test]
fn version_reply_echoes_supported_config_version() {
    let all = json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    let r = version_reply(Some("0.4.0"));
    assert_eq!(r, json!({"cniVersion": "0.4.0", "supportedVersions": all}));
    assert_eq!(version_reply(Some("0.2.0"))["cniVersion"], "1.1.0");
    assert_eq!(version_reply(None)["cniVersion"], "1.1.0");
}

#[test]
fn version_field_of_config() {
    let ok = parse_version_field(&json!({"cniVersion": "1.0.0", "name": "n"}));
    assert_eq!(ok.unwrap(), Version::V1_0_0);
    let missing = parse_version_field(&json!({"name": "n"})).unwrap_err();
    assert_eq!(missing.code, codes::INCOMPATIBLE_VERSION);
    assert!(missing.details.contains("0.1.0"));
    let old = parse_version_field(&json!({"cniVersion": "0.2.0"})).unwrap_err();
    assert_eq!(old.code, codes::INCOMPATIBLE_VERSION);
    let num = parse_version_field(&json!({"cniVersion": 1})).unwrap_err();
    assert_eq!(num.code, codes::DECODE);
    let arr = parse_version_field(&json!(["1.0.0"])).unwrap_err();
    assert_eq!(arr.code, codes::DECODE);
}
