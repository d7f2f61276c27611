//! IPAM for the plugin: served in-process from `podnet-ipam`'s store, or delegated.

use std::net::IpAddr;
use std::path::PathBuf;

use podnet_cni_spec::{codes, CniError, CniResult, Dns, Env, IpConfig, Route};
use podnet_ipam::{
    parse_resolv_conf, AttachmentKey, DnsConfig, IpamConfig, IpamError, Record, ResolvedRangeSet,
    Store,
};
use serde_json::Value;

use crate::config::{Config, PODNET_IPAM};
use crate::delegate;

/// Where addresses come from.
#[derive(Debug)]
pub enum Ipam {
    /// `podnet-ipam`, in this process.
    Local {
        /// The store of this network.
        store: Store,
        /// The resolved range sets.
        sets: Vec<ResolvedRangeSet>,
        /// The IPAM section.
        conf: Box<IpamConfig>,
    },
    /// Any other type, run through `CNI_PATH`.
    Delegate {
        /// The plugin binary.
        plugin: PathBuf,
    },
}

/// Maps a store error to the CNI error it answers with.
pub fn ipam_error(e: IpamError) -> CniError {
    CniError::new(e.cni_code(), "ipam", e.to_string())
}

impl Ipam {
    /// Picks the IPAM backend for this configuration.
    pub fn new(cfg: &Config, env: &Env) -> Result<Ipam, CniError> {
        let kind = cfg.ipam_type()?;
        if kind != PODNET_IPAM {
            return Ok(Ipam::Delegate {
                plugin: delegate::find(env, &kind)?,
            });
        }
        let conf = cfg.ipam_config()?;
        let sets = conf
            .range_sets(cfg.net.runtime_config.ip_ranges.as_deref())
            .map_err(ipam_error)?;
        let store = Store::open(conf.data_dir_or_default(), &cfg.net.name).map_err(ipam_error)?;
        Ok(Ipam::Local {
            store,
            sets,
            conf: Box::new(conf),
        })
    }

    /// Reserves addresses for an attachment; the result has ips (no interface yet), routes, dns.
    pub fn add(
        &self,
        cfg: &Config,
        key: &AttachmentKey,
        requested: &[IpAddr],
    ) -> Result<CniResult, CniError> {
        match self {
            Ipam::Delegate { plugin } => {
                let mut conf = cfg.raw.clone();
                if let Some(obj) = conf.as_object_mut() {
                    obj.remove("prevResult");
                }
                delegate::add(plugin, &conf, cfg.version)
            }
            Ipam::Local { store, sets, conf } => allocate_local(store, sets, conf, key, requested),
        }
    }

    /// Releases an attachment's addresses; idempotent.
    pub fn del(&self, cfg: &Config, key: &AttachmentKey) -> Result<(), CniError> {
        match self {
            Ipam::Delegate { plugin } => delegate::exec(plugin, "DEL", &cfg.raw).map(|_| ()),
            Ipam::Local { store, .. } => store.release(key).map(|_| ()).map_err(ipam_error),
        }
    }

    /// Verifies the reservation holds exactly `ips`.
    pub fn check(&self, cfg: &Config, key: &AttachmentKey, ips: &[IpAddr]) -> Result<(), CniError> {
        match self {
            Ipam::Delegate { plugin } => delegate::exec(plugin, "CHECK", &cfg.raw).map(|_| ()),
            Ipam::Local { store, .. } => {
                let record = store.get(key).map_err(ipam_error)?.ok_or_else(|| {
                    CniError::msg(
                        crate::CHECK_FAILED,
                        "no address is reserved for this attachment",
                    )
                })?;
                let mut want = ips.to_vec();
                let mut have = record.ips.clone();
                want.sort();
                have.sort();
                if want != have {
                    return Err(CniError::new(
                        crate::CHECK_FAILED,
                        "reserved addresses differ from the result",
                        format!("reserved {have:?}, result {want:?}"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// STATUS: code 50 when a range set is exhausted.
    pub fn status(&self, cfg: &Config) -> Result<(), CniError> {
        match self {
            Ipam::Delegate { plugin } => delegate::exec(plugin, "STATUS", &cfg.raw).map(|_| ()),
            Ipam::Local { store, sets, .. } => {
                if store.exhausted(sets).map_err(not_available)? {
                    return Err(CniError::msg(
                        codes::NOT_AVAILABLE,
                        "address pool exhausted",
                    ));
                }
                Ok(())
            }
        }
    }

    /// GC: releases every reservation not in `valid`; returns what it released.
    pub fn gc(&self, cfg: &Config, valid: &[AttachmentKey]) -> Result<Vec<Record>, CniError> {
        match self {
            Ipam::Delegate { plugin } => delegate::exec(plugin, "GC", &cfg.raw).map(|_| Vec::new()),
            Ipam::Local { store, .. } => store.gc(valid).map_err(ipam_error),
        }
    }
}

/// Reserves from the local store and builds the IPAM result: ips (no interface yet),
/// routes and dns. Shared by the in-process IPAM and the standalone `podnet-ipam`.
pub fn allocate_local(
    store: &Store,
    sets: &[ResolvedRangeSet],
    conf: &IpamConfig,
    key: &AttachmentKey,
    requested: &[IpAddr],
) -> Result<CniResult, CniError> {
    let allocs = store.allocate(key, sets, requested).map_err(ipam_error)?;
    let ips = allocs
        .into_iter()
        .map(|a| IpConfig {
            address: a.address,
            gateway: a.gateway,
            interface: None,
        })
        .collect();
    let routes = conf
        .routes
        .iter()
        .map(|r| Route::new(r.dst, r.gw))
        .collect();
    Ok(CniResult {
        ips,
        routes,
        dns: local_dns(conf)?,
        ..Default::default()
    })
}

/// Parses static addresses (`10.1.0.5` or `10.1.0.5/24`), dropping repeats.
pub fn parse_ips<S: AsRef<str>>(raw: impl IntoIterator<Item = S>) -> Result<Vec<IpAddr>, CniError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for s in raw {
        let s = s.as_ref();
        let addr = s.split('/').next().unwrap_or_default().trim();
        let ip = addr
            .parse::<IpAddr>()
            .map_err(|_| CniError::new(codes::INVALID_CONFIG, "invalid static IP", s))?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

fn not_available(e: IpamError) -> CniError {
    CniError::new(
        codes::NOT_AVAILABLE,
        "address store unavailable",
        e.to_string(),
    )
}

fn local_dns(conf: &IpamConfig) -> Result<Dns, CniError> {
    let mut dns = conf.dns.clone().map(to_dns).unwrap_or_default();
    if let Some(path) = &conf.resolv_conf {
        dns.fill_from(to_dns(parse_resolv_conf(path).map_err(ipam_error)?));
    }
    Ok(dns)
}

/// Converts the IPAM DNS section to the result's.
pub fn to_dns(d: DnsConfig) -> Dns {
    Dns {
        nameservers: d.nameservers,
        domain: d.domain,
        search: d.search,
        options: d.options,
    }
}

/// Parses the `dns` section of the network configuration.
pub fn conf_dns(v: Option<&Value>) -> Result<Dns, CniError> {
    match v {
        None | Some(Value::Null) => Ok(Dns::default()),
        Some(v) => serde_json::from_value::<DnsConfig>(v.clone())
            .map(to_dns)
            .map_err(|e| {
                CniError::new(codes::INVALID_CONFIG, "invalid dns section", e.to_string())
            }),
    }
}
