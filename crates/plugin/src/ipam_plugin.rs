//! The standalone `podnet-ipam` plugin, for other CNI plugins: the same store as in-process.
//!
//! It reads the calling plugin's whole configuration, so only the fields it needs are parsed
//! and the rest (the caller's own) is ignored; the `ipam` section itself is strict.

use std::net::IpAddr;

use podnet_cni_spec::{
    codes, parse_version_field, version_reply, CniError, CniResult, Command, Env,
};
use podnet_ipam::{AttachmentKey, IpamConfig, RangeSet, Store};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{answer_version, decode, Attachment};
use crate::ipam::{allocate_local, ipam_error, parse_ips};
use crate::Outcome;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    name: String,
    ipam: IpamConfig,
    #[serde(default)]
    runtime_config: Runtime,
    #[serde(default)]
    prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid: Option<Vec<Attachment>>,
    #[serde(default, rename = "cni.dev/attachments")]
    valid_old: Option<Vec<Attachment>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Runtime {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    ip_ranges: Option<Vec<RangeSet>>,
}

/// Runs the IPAM plugin.
pub fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let raw = decode(stdin);
    let version = answer_version(raw.as_ref().ok());
    match dispatch(get, raw) {
        Ok(out) => Outcome {
            stdout: out,
            failed: false,
        },
        Err(e) => Outcome::error(&e, version.as_str()),
    }
}

fn dispatch(
    get: impl Fn(&str) -> Option<String>,
    raw: Result<Value, CniError>,
) -> Result<String, CniError> {
    let env = Env::from_vars(get)?;
    let raw = raw?;
    if env.command == Command::Version {
        return Ok(version_reply(raw.get("cniVersion").and_then(Value::as_str)).to_string());
    }
    let version = parse_version_field(&raw)?;
    let conf: Conf = serde_json::from_value(raw).map_err(|e| {
        CniError::new(
            codes::INVALID_CONFIG,
            "invalid network configuration",
            e.to_string(),
        )
    })?;
    let store = Store::open(conf.ipam.data_dir_or_default(), &conf.name).map_err(ipam_error)?;
    let sets = conf
        .ipam
        .range_sets(conf.runtime_config.ip_ranges.as_deref())
        .map_err(ipam_error)?;
    let key = || -> Result<AttachmentKey, CniError> {
        let cid = env.container_id.clone().unwrap_or_default();
        Ok(AttachmentKey::new(
            cid,
            env.ifname.clone().unwrap_or_default(),
        ))
    };
    match env.command {
        Command::Add => {
            let requested = static_ips(&conf, &env)?;
            let result = allocate_local(&store, &sets, &conf.ipam, &key()?, &requested)?;
            Ok(result.to_value(version).to_string())
        }
        Command::Del => store
            .release(&key()?)
            .map(|_| String::new())
            .map_err(ipam_error),
        Command::Check => {
            let rec = store.get(&key()?).map_err(ipam_error)?;
            let want: Vec<IpAddr> = match &conf.prev_result {
                Some(v) => CniResult::from_value(v, version)?
                    .ips
                    .iter()
                    .map(|i| i.address.addr())
                    .collect(),
                None => Vec::new(),
            };
            match rec {
                Some(r) if want.iter().all(|ip| r.ips.contains(ip)) => Ok(String::new()),
                _ => Err(CniError::msg(
                    crate::CHECK_FAILED,
                    "reservation missing or different",
                )),
            }
        }
        Command::Status => match store.exhausted(&sets) {
            Ok(false) => Ok(String::new()),
            Ok(true) => Err(CniError::msg(
                codes::NOT_AVAILABLE,
                "address pool exhausted",
            )),
            Err(e) => Err(CniError::new(
                codes::NOT_AVAILABLE,
                "address store unavailable",
                e.to_string(),
            )),
        },
        Command::Gc => {
            let valid: Vec<AttachmentKey> = conf
                .valid
                .iter()
                .chain(conf.valid_old.iter())
                .flatten()
                .map(|a| AttachmentKey::new(a.container_id.clone(), a.ifname.clone()))
                .collect();
            store.gc(&valid).map(|_| String::new()).map_err(ipam_error)
        }
        Command::Version => Ok(String::new()),
    }
}

fn static_ips(conf: &Conf, env: &Env) -> Result<Vec<IpAddr>, CniError> {
    let mut raw = conf.runtime_config.ips.clone();
    if let Some(ip) = env.args.get("IP") {
        raw.extend(ip.split(',').map(str::to_string));
    }
    parse_ips(raw)
}
