use std::collections::HashMap;
use std::path::PathBuf;

use crate::{codes, validate_container_id, validate_ifname, CniError, Command, Env};

fn env_of(vars: &[(&str, &str)]) -> Result<Env, CniError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Env::from_vars(|k| map.get(k).cloned())
}

const FULL: [(&str, &str); 6] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "abc123"),
    ("CNI_NETNS", "/var/run/netns/x"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_ARGS", "K8S_POD_NAME=p;IgnoreUnknown=1"),
    ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
];

fn with(cmd: &str, drop: &[&str]) -> Vec<(&'static str, String)> {
    FULL.iter()
        .filter(|(k, _)| !drop.contains(k))
        .map(|(k, v)| {
            (
                *k,
                if *k == "CNI_COMMAND" {
                    cmd.to_string()
                } else {
                    v.to_string()
                },
            )
        })
        .collect()
}

fn run(vars: &[(&'static str, String)]) -> Result<Env, CniError> {
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env_of(&refs)
}

#[test]
fn commands_parse() {
    for (s, c) in [
        ("ADD", Command::Add),
        ("DEL", Command::Del),
        ("CHECK", Command::Check),
        ("STATUS", Command::Status),
        ("GC", Command::Gc),
        ("VERSION", Command::Version),
    ] {
        assert_eq!(s.parse::<Command>().unwrap(), c);
        assert_eq!(c.to_string(), s);
    }
    for bad in ["add", "", "DELETE", " ADD"] {
        assert_eq!(bad.parse::<Command>().unwrap_err().code, codes::INVALID_ENV);
    }
}

#[test]
fn full_add_env() {
    let env = env_of(&FULL).unwrap();
    assert_eq!(env.command, Command::Add);
    assert_eq!(env.container_id.as_deref(), Some("abc123"));
    assert_eq!(env.netns, Some(PathBuf::from("/var/run/netns/x")));
    assert_eq!(env.ifname.as_deref(), Some("eth0"));
    assert_eq!(env.args.get("K8S_POD_NAME"), Some("p"));
    assert_eq!(
        env.path,
        [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    );
}

#[test]
fn missing_command() {
    let err = env_of(&[]).unwrap_err();
    assert_eq!(err.code, codes::INVALID_ENV);
    assert!(err.msg.contains("CNI_COMMAND"));
    assert_eq!(
        env_of(&[("CNI_COMMAND", "")]).unwrap_err().code,
        codes::INVALID_ENV
    );
    let bad = env_of(&[("CNI_COMMAND", "FROB")]).unwrap_err();
    assert!(bad.msg.contains("FROB"));
}

#[test]
fn add_and_check_require_all_three() {
    for cmd in ["ADD", "CHECK"] {
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let err = run(&with(cmd, &[var])).unwrap_err();
            assert_eq!(err.code, codes::INVALID_ENV, "{cmd} without {var}");
            assert!(err.msg.contains(var), "{}", err.msg);
        }
    }
    let err = run(&with("ADD", &["CNI_CONTAINERID", "CNI_IFNAME"])).unwrap_err();
    assert!(err.msg.contains("CNI_CONTAINERID") && err.msg.contains("CNI_IFNAME"));
}

#[test]
fn del_allows_missing_or_empty_netns() {
    let env = run(&with("DEL", &["CNI_NETNS"])).unwrap();
    assert_eq!(env.netns, None);
    let mut vars = with("DEL", &[]);
    for (k, v) in vars.iter_mut() {
        if *k == "CNI_NETNS" {
            v.clear();
        }
    }
    assert_eq!(run(&vars).unwrap().netns, None);
    for var in ["CNI_CONTAINERID", "CNI_IFNAME"] {
        let err = run(&with("DEL", &[var])).unwrap_err();
        assert!(err.msg.contains(var));
    }
}

#[test]
fn optional_args_and_path() {
    let env = run(&with("ADD", &["CNI_ARGS", "CNI_PATH"])).unwrap();
    assert!(env.args.is_empty());
    assert!(env.path.is_empty());
}

#[test]
fn invalid_values_are_code_4() {
    let cases = [
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_IFNAME", "a/b"),
        ("CNI_ARGS", "NOEQUALS"),
    ];
    for (var, value) in cases {
        let vars: Vec<(&'static str, String)> = with("ADD", &[var])
            .into_iter()
            .chain([(var, value.to_string())])
            .collect();
        let err = run(&vars).unwrap_err();
        assert_eq!(err.code, codes::INVALID_ENV, "{var}={value}");
    }
}

#[test]
fn status_gc_version_need_nothing_else() {
    for cmd in ["STATUS", "GC", "VERSION"] {
        let env = env_of(&[("CNI_COMMAND", cmd)]).unwrap();
        assert_eq!(env.container_id, None);
        assert!(env.path.is_empty());
        // Stray attachment variables are ignored, even malformed ones.
        let env = env_of(&[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "!!"),
            ("CNI_ARGS", "junk"),
            ("CNI_PATH", "/opt/cni/bin"),
        ])
        .unwrap();
        assert_eq!(env.container_id, None);
        assert!(env.args.is_empty());
        assert_eq!(env.path, [PathBuf::from("/opt/cni/bin")]);
    }
}

#[test]
fn container_id_charset() {
    for ok in ["a", "0", "abc-DEF_1.2", "9f86d081884c7d65", "A.b-c_d"] {
        assert!(validate_container_id(ok).is_ok(), "{ok:?}");
    }
    for bad in [
        "", "-a", "_a", ".a", "a b", "a/b", "a:b", "ä", "aé", "a\n", "a+b",
    ] {
        let err = validate_container_id(bad).unwrap_err();
        assert_eq!(err.code, codes::INVALID_ENV, "{bad:?}");
    }
}

#[test]
fn ifname_rules() {
    for ok in [
        "eth0",
        "a",
        "net1",
        "x.y",
        "...",
        "123456789012345",
        "veth-ab_c",
    ] {
        assert!(validate_ifname(ok).is_ok(), "{ok:?}");
    }
    let bad = [
        "",
        ".",
        "..",
        "a/b",
        "a:b",
        "a b",
        "a\tb",
        "eth0\n",
        "1234567890123456",
        "ééééééééé",
    ];
    for name in bad {
        let err = validate_ifname(name).unwrap_err();
        assert_eq!(err.code, codes::INVALID_ENV, "{name:?}");
    }
    assert_eq!("123456789012345".len(), 15);
}
