//! GC and STATUS.

use podnet_cni_spec::{CniError, Env};
use podnet_ipam::AttachmentKey;
use podnet_netdev::Netlink;

use crate::config::Config;
use crate::ipam::Ipam;
use crate::wire::nl_error;
use crate::{masq, names};

/// Runs GC: releases every reservation and host-side leftover of this network that
/// `cni.dev/valid-attachments` does not list.
pub fn gc(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let valid: Vec<AttachmentKey> = cfg
        .valid_attachments()
        .into_iter()
        .map(|a| AttachmentKey::new(a.container_id, a.ifname))
        .collect();
    let ipam = Ipam::new(cfg, env)?;
    let released = ipam.gc(cfg, &valid)?;
    let mut host = Netlink::new().map_err(nl_error)?;
    for link in host.links().map_err(nl_error)? {
        let Some((net, cid, ifname)) = link.alias.as_deref().and_then(names::parse_alias) else {
            continue;
        };
        let keep = net != cfg.net.name
            || valid
                .iter()
                .any(|k| k.container_id == cid && k.ifname == ifname);
        if !keep && link.name.starts_with(names::HOST_VETH_PREFIX) {
            host.delete_link_by_name(&link.name).map_err(nl_error)?;
        }
    }
    if cfg.net.ip_masq {
        let ips: Vec<_> = released
            .iter()
            .flat_map(|r| r.ips.iter().copied())
            .collect();
        if !ips.is_empty() {
            masq::del(&cfg.net.name, &ips)?;
        }
    }
    Ok(())
}

/// Runs STATUS: ready unless the address pool is exhausted or the store is unusable (code 50).
pub fn status(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let ipam = Ipam::new(cfg, env).map_err(|e| {
        if e.code == podnet_cni_spec::codes::IO_FAILURE {
            CniError::new(
                podnet_cni_spec::codes::NOT_AVAILABLE,
                "address store unavailable",
                e.details,
            )
        } else {
            e
        }
    })?;
    ipam.status(cfg)
}
