//! Version-specific JSON -> model.
//!
//! Unknown keys are ignored, as are keys the given version does not define
//! (so the 1.1.0 additions are dropped when decoding older versions) and the
//! 0.x `ips[].version` field. `null` counts as absent; empty strings and zero
//! MTU/advmss/priority count as unset, like Go's zero values.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::has_v11_fields;
use crate::error::{codes, CniError};
use crate::result::{CniResult, Dns, Interface, IpConfig, Route};
use crate::version::Version;

type Obj = Map<String, Value>;

/// Decodes a result object given in version `v`'s format.
pub(crate) fn decode(value: &Value, v: Version) -> Result<CniResult, CniError> {
    let o = as_obj(value, "result")?;
    Ok(CniResult {
        interfaces: list(o, "interfaces", "result", |x, at| interface(x, at, v))?,
        ips: list(o, "ips", "result", ip_config)?,
        routes: list(o, "routes", "result", |x, at| route(x, at, v))?,
        dns: match present(o, "dns") {
            None => Dns::default(),
            Some(d) => dns(d, "result.dns")?,
        },
    })
}

fn interface(value: &Value, at: &str, v: Version) -> Result<Interface, CniError> {
    let o = as_obj(value, at)?;
    let v11 = has_v11_fields(v);
    Ok(Interface {
        name: req_str(o, "name", at)?,
        mac: opt_str(o, "mac", at)?,
        mtu: if v11 {
            opt_nonzero(o, "mtu", at)?
        } else {
            None
        },
        sandbox: opt_str(o, "sandbox", at)?,
        socket_path: if v11 {
            opt_str(o, "socketPath", at)?
        } else {
            None
        },
        pci_id: if v11 { opt_str(o, "pciID", at)? } else { None },
    })
}

fn ip_config(value: &Value, at: &str) -> Result<IpConfig, CniError> {
    let o = as_obj(value, at)?;
    let interface = opt_u64(o, "interface", at)?
        .map(|i| usize::try_from(i).map_err(|_| bad(at, "interface", "index out of range")))
        .transpose()?;
    Ok(IpConfig {
        address: net(&req_str(o, "address", at)?, at, "address")?,
        gateway: opt_ip(o, "gateway", at)?,
        interface,
    })
}

fn route(value: &Value, at: &str, v: Version) -> Result<Route, CniError> {
    let o = as_obj(value, at)?;
    let mut rt = Route::new(
        net(&req_str(o, "dst", at)?, at, "dst")?,
        opt_ip(o, "gw", at)?,
    );
    if has_v11_fields(v) {
        rt.mtu = opt_nonzero(o, "mtu", at)?;
        rt.advmss = opt_nonzero(o, "advmss", at)?;
        rt.priority = opt_nonzero(o, "priority", at)?;
        rt.table = opt_u32(o, "table", at)?;
        rt.scope = opt_u64(o, "scope", at)?
            .map(|s| u8::try_from(s).map_err(|_| bad(at, "scope", "must be 0..=255")))
            .transpose()?;
    }
    Ok(rt)
}

fn dns(value: &Value, at: &str) -> Result<Dns, CniError> {
    let o = as_obj(value, at)?;
    let strings = |key: &str| list(o, key, at, as_string);
    Ok(Dns {
        nameservers: strings("nameservers")?,
        domain: opt_str(o, "domain", at)?,
        search: strings("search")?,
        options: strings("options")?,
    })
}

fn bad(at: &str, key: &str, why: &str) -> CniError {
    CniError::new(
        codes::DECODE,
        "failed to decode CNI result",
        format!("{at}.{key}: {why}"),
    )
}

fn bad_value(at: &str, why: &str) -> CniError {
    CniError::new(
        codes::DECODE,
        "failed to decode CNI result",
        format!("{at}: {why}"),
    )
}

/// The value under `key`, treating `null` as absent.
fn present<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn as_obj<'a>(value: &'a Value, at: &str) -> Result<&'a Obj, CniError> {
    value
        .as_object()
        .ok_or_else(|| bad_value(at, "expected an object"))
}

fn as_string(value: &Value, at: &str) -> Result<String, CniError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad_value(at, "expected a string"))
}

/// A list under `key` (absent means empty), each item decoded by `f`.
fn list<T>(
    o: &Obj,
    key: &str,
    at: &str,
    f: impl Fn(&Value, &str) -> Result<T, CniError>,
) -> Result<Vec<T>, CniError> {
    let Some(value) = present(o, key) else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| bad(at, key, "expected an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| f(item, &format!("{at}.{key}[{i}]")))
        .collect()
}

fn req_str(o: &Obj, key: &str, at: &str) -> Result<String, CniError> {
    match present(o, key) {
        None => Err(bad(at, key, "missing")),
        Some(v) => v
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(at, key, "expected a string")),
    }
}

/// An optional string; empty counts as unset.
fn opt_str(o: &Obj, key: &str, at: &str) -> Result<Option<String>, CniError> {
    match present(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_owned()).filter(|s| !s.is_empty()))
            .ok_or_else(|| bad(at, key, "expected a string")),
    }
}

fn opt_u64(o: &Obj, key: &str, at: &str) -> Result<Option<u64>, CniError> {
    match present(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(at, key, "expected a non-negative integer")),
    }
}

fn opt_u32(o: &Obj, key: &str, at: &str) -> Result<Option<u32>, CniError> {
    opt_u64(o, key, at)?
        .map(|n| u32::try_from(n).map_err(|_| bad(at, key, "number too large")))
        .transpose()
}

/// An optional number where zero means unset (Go `int` with `omitempty`).
fn opt_nonzero(o: &Obj, key: &str, at: &str) -> Result<Option<u32>, CniError> {
    Ok(opt_u32(o, key, at)?.filter(|n| *n != 0))
}

/// An optional IP address; an empty string counts as unset.
fn opt_ip(o: &Obj, key: &str, at: &str) -> Result<Option<IpAddr>, CniError> {
    opt_str(o, key, at)?
        .map(|s| {
            s.parse()
                .map_err(|_| bad(at, key, &format!("invalid IP address {s:?}")))
        })
        .transpose()
}

fn net(s: &str, at: &str, key: &str) -> Result<IpNet, CniError> {
    s.parse()
        .map_err(|_| bad(at, key, &format!("invalid CIDR {s:?}")))
}
