//! DEL: idempotent; succeeds when the namespace, the interface or the reservation is gone.

use std::net::IpAddr;

use podnet_cni_spec::{CniError, Env};
use podnet_netdev::Netlink;

use crate::attach::Attachment;
use crate::config::Config;
use crate::ipam::Ipam;
use crate::masq;
use crate::wire::nl_error;

/// Runs DEL. Every step is tried; the first error is returned after all ran.
pub fn del(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let att = Attachment::new(cfg, env)?;
    let ipam = Ipam::new(cfg, env)?;
    let mut errors: Vec<CniError> = Vec::new();
    // Deleting the host end removes the pod end, its addresses and the host route with it.
    match Netlink::new().and_then(|mut nl| nl.delete_link_by_name(&att.host_veth)) {
        Ok(_) => {}
        Err(e) => errors.push(nl_error(e)),
    }
    if cfg.net.ip_masq {
        let ips = addresses(cfg, &ipam, &att);
        if let Err(e) = masq::del(&cfg.net.name, &ips) {
            errors.push(e);
        }
    }
    if let Err(e) = ipam.del(cfg, &att.key) {
        errors.push(e);
    }
    match errors.len() {
        0 => Ok(()),
        _ => {
            let mut first = errors.remove(0);
            for e in errors {
                first.details = format!("{}; also: {}", first.details, e.msg);
            }
            Err(first)
        }
    }
}

/// The attachment's addresses: from the store, else from prevResult.
fn addresses(cfg: &Config, ipam: &Ipam, att: &Attachment) -> Vec<IpAddr> {
    if let Ipam::Local { store, .. } = ipam {
        if let Ok(Some(rec)) = store.get(&att.key) {
            return rec.ips;
        }
    }
    cfg.prev_result()
        .ok()
        .flatten()
        .map(|r| r.ips.iter().map(|ip| ip.address.addr()).collect())
        .unwrap_or_default()
}
