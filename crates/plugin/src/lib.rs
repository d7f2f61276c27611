//! The podnet CNI plugin: ADD, DEL, CHECK, STATUS, GC and VERSION per CNI 1.1, for configs
//! of versions 0.3.0 to 1.1.0, in `bridge` or `ptp` mode, with IPAM in-process
//! (`podnet-ipam`) or delegated through `CNI_PATH`.

mod add;
mod attach;
mod check;
pub mod config;
mod del;
mod delegate;
mod gc;
mod ipam;
pub mod ipam_plugin;
pub mod masq;
pub mod names;
mod wire;

use podnet_cni_spec::{codes, version_reply, CniError, Command, Env};
use serde_json::Value;

use crate::config::Config;

/// podnet's error code: CHECK found the attachment differs from its result.
pub const CHECK_FAILED: u32 = 104;

/// What a plugin invocation prints on stdout, and whether it failed.
#[derive(Debug)]
pub struct Outcome {
    /// The JSON to print (may be empty for DEL/CHECK/GC/STATUS successes).
    pub stdout: String,
    /// True when `stdout` is an error object (exit code 1).
    pub failed: bool,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome {
            stdout,
            failed: false,
        }
    }

    /// An error answer in the version the caller speaks.
    pub fn error(e: &CniError, version: &str) -> Outcome {
        Outcome {
            stdout: e.to_json(version),
            failed: true,
        }
    }
}

/// Runs podnet-cni with the environment `get` and the configuration on `stdin`.
pub fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let raw = config::decode(stdin);
    let version = config::answer_version(raw.as_ref().ok());
    match dispatch(get, raw) {
        Ok(out) => Outcome::ok(out),
        Err(e) => Outcome::error(&e, version.as_str()),
    }
}

fn dispatch(
    get: impl Fn(&str) -> Option<String>,
    raw: Result<Value, CniError>,
) -> Result<String, CniError> {
    let env = Env::from_vars(get)?;
    if env.command == Command::Version {
        let asked = raw
            .as_ref()
            .ok()
            .and_then(|v| v.get("cniVersion"))
            .and_then(Value::as_str);
        return Ok(version_reply(asked).to_string());
    }
    let cfg = Config::from_value(raw?)?;
    require_version(&cfg, env.command)?;
    match env.command {
        Command::Add => add::add(&cfg, &env).map(|r| r.to_value(cfg.version).to_string()),
        Command::Del => del::del(&cfg, &env).map(|()| String::new()),
        Command::Check => check::check(&cfg, &env).map(|()| String::new()),
        Command::Status => gc::status(&cfg, &env).map(|()| String::new()),
        Command::Gc => gc::gc(&cfg, &env).map(|()| String::new()),
        Command::Version => Ok(String::new()),
    }
}

fn require_version(cfg: &Config, command: Command) -> Result<(), CniError> {
    let ok = match command {
        Command::Check => cfg.version.has_check(),
        Command::Status | Command::Gc => cfg.version.has_status_gc(),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(CniError::new(
        codes::INCOMPATIBLE_VERSION,
        format!(
            "{} is not defined for cniVersion {}",
            command.as_str(),
            cfg.version
        ),
        "",
    ))
}
