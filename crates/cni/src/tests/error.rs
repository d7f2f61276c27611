use serde_json::{json, Value};

use crate::{codes, CniError};

#[test]
fn codes_match_spec() {
    assert_eq!(codes::INCOMPATIBLE_VERSION, 1);
    assert_eq!(codes::UNSUPPORTED_FIELD, 2);
    assert_eq!(codes::UNKNOWN_CONTAINER, 3);
    assert_eq!(codes::INVALID_ENV, 4);
    assert_eq!(codes::IO_FAILURE, 5);
    assert_eq!(codes::DECODE, 6);
    assert_eq!(codes::INVALID_CONFIG, 7);
    assert_eq!(codes::TRY_AGAIN, 11);
    assert_eq!(codes::NOT_AVAILABLE, 50);
    assert_eq!(codes::NOT_AVAILABLE_EXISTING, 51);
    assert_eq!(codes::POOL_EXHAUSTED, 100);
    assert_eq!(codes::INTERNAL, 199);
}

#[test]
fn json_with_details() {
    let e = CniError::new(codes::TRY_AGAIN, "busy \"now\"", "lock held\nretry");
    let text = e.to_json("1.1.0");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"cniVersion": "1.1.0", "code": 11, "msg": "busy \"now\"", "details": "lock held\nretry"})
    );
    assert!(text.starts_with("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":"));
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn json_omits_empty_details() {
    let e = CniError::new(codes::POOL_EXHAUSTED, "no addresses", "");
    let v: Value = serde_json::from_str(&e.to_json("0.4.0")).unwrap();
    assert_eq!(
        v,
        json!({"cniVersion": "0.4.0", "code": 100, "msg": "no addresses"})
    );
}

#[test]
fn display_and_error_trait() {
    let e = CniError::new(7, "bad config", "subnet too small");
    assert_eq!(e.to_string(), "bad config; subnet too small");
    assert_eq!(CniError::msg(7, "bad config").to_string(), "bad config");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.source().is_none());
}

#[test]
fn json_errors_become_decode() {
    let err: CniError = serde_json::from_str::<Value>("{").unwrap_err().into();
    assert_eq!(err.code, codes::DECODE);
}
