use crate::{codes, CniArgs, K8S_ARGS};

#[test]
fn parses_pairs_in_order() {
    let a = CniArgs::parse("K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;X=a=b").unwrap();
    let pairs: Vec<_> = a.pairs().collect();
    assert_eq!(
        pairs,
        [
            ("K8S_POD_NAMESPACE", "default"),
            ("K8S_POD_NAME", "web-0"),
            ("X", "a=b")
        ]
    );
    assert_eq!(a.get("K8S_POD_NAME"), Some("web-0"));
    assert_eq!(a.get("k8s_pod_name"), None);
    assert_eq!(a.get("missing"), None);
}

#[test]
fn empty_and_edge_inputs() {
    assert!(CniArgs::parse("").unwrap().is_empty());
    assert!(CniArgs::parse(";;").unwrap().is_empty());
    assert_eq!(CniArgs::parse("A=;").unwrap().get("A"), Some(""));
    assert_eq!(CniArgs::parse("A=1;A=2").unwrap().get("A"), Some("2"));
}

#[test]
fn malformed_pairs_are_code_4() {
    for s in ["FOO", "A=1;BAR", "=x", "A=1;=2"] {
        let err = CniArgs::parse(s).unwrap_err();
        assert_eq!(err.code, codes::INVALID_ENV, "{s:?}");
    }
}

#[test]
fn ignore_unknown_values() {
    for (s, want) in [
        ("IgnoreUnknown=1", true),
        ("IgnoreUnknown=true", true),
        ("IgnoreUnknown=TRUE", true),
        ("IgnoreUnknown=True", true),
        ("IgnoreUnknown=0", false),
        ("IgnoreUnknown=false", false),
        ("IgnoreUnknown=yes", false),
        ("", false),
    ] {
        assert_eq!(CniArgs::parse(s).unwrap().ignore_unknown(), want, "{s:?}");
    }
}

#[test]
fn check_known_keys() {
    let k8s = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=u";
    assert!(CniArgs::parse(k8s).unwrap().check_known(&K8S_ARGS).is_ok());
    let with_ignore = format!("IgnoreUnknown=0;{k8s}");
    assert!(CniArgs::parse(&with_ignore)
        .unwrap()
        .check_known(&K8S_ARGS)
        .is_ok());

    let unknown = CniArgs::parse("K8S_POD_NAME=p;FOO=bar").unwrap();
    let err = unknown.check_known(&K8S_ARGS).unwrap_err();
    assert_eq!(err.code, codes::UNSUPPORTED_FIELD);
    assert!(err.msg.contains("FOO"));

    let ignored = CniArgs::parse("FOO=bar;IgnoreUnknown=1").unwrap();
    assert!(ignored.check_known(&K8S_ARGS).is_ok());
    assert!(ignored.check_known(&[]).is_ok());
}
