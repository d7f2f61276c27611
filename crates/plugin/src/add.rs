//! ADD: reserve addresses, wire the pod, answer with the result; undo everything on failure.

use podnet_cni_spec::{CniError, CniResult, Env};
use podnet_netdev::Netlink;

use crate::attach::{open_pod_ns, requested_ips, requested_mac, Attachment};
use crate::config::Config;
use crate::ipam::{conf_dns, Ipam};
use crate::masq;
use crate::wire::{nl_error, Made, Wiring};

/// Runs ADD.
pub fn add(cfg: &Config, env: &Env) -> Result<CniResult, CniError> {
    let att = Attachment::new(cfg, env)?;
    let pod_ns = open_pod_ns(env)?;
    let mac = requested_mac(cfg, env)?;
    let requested = requested_ips(cfg, env)?;
    let dns = conf_dns(cfg.net.dns.as_ref())?;
    let prev = cfg.prev_result()?;
    let ipam = Ipam::new(cfg, env)?;
    let mut host = Netlink::new().map_err(nl_error)?;
    let mut pod = Netlink::in_ns(&pod_ns).map_err(nl_error)?;
    if pod.link_by_name(att.ifname()).map_err(nl_error)?.is_some() {
        return Err(CniError::msg(
            crate::wire::IF_EXISTS,
            format!("interface {} already exists in the container", att.ifname()),
        ));
    }
    let mut reserved = ipam.add(cfg, &att.key, &requested)?;
    reserved.dns.fill_from(dns);
    let mut made = Made::default();
    let mut wiring = Wiring {
        cfg,
        att: &att,
        host: &mut host,
        pod: &mut pod,
        pod_ns: &pod_ns,
        mac,
    };
    let wired = wiring.run(&reserved, &mut made).and_then(|r| {
        if cfg.net.ip_masq {
            let addrs: Vec<_> = reserved.ips.iter().map(|ip| ip.address).collect();
            masq::add(&cfg.net.name, &addrs)?;
        }
        Ok(r)
    });
    match wired {
        Ok(mine) => Ok(match prev {
            Some(mut p) => {
                p.append(mine);
                p
            }
            None => mine,
        }),
        Err(e) => {
            rollback(cfg, &att, &ipam, &mut host, &made, &reserved);
            Err(e)
        }
    }
}

/// Undoes a failed ADD: the veth (if this ADD made it), masquerading, the reservation.
fn rollback(
    cfg: &Config,
    att: &Attachment,
    ipam: &Ipam,
    host: &mut Netlink,
    made: &Made,
    reserved: &CniResult,
) {
    if made.veth {
        if let Err(e) = host.delete_link_by_name(&att.host_veth) {
            eprintln!("podnet-cni: rollback: {e}");
        }
    }
    if cfg.net.ip_masq {
        let ips: Vec<_> = reserved.ips.iter().map(|ip| ip.address.addr()).collect();
        if let Err(e) = masq::del(&cfg.net.name, &ips) {
            eprintln!("podnet-cni: rollback: {e}");
        }
    }
    if let Err(e) = ipam.del(cfg, &att.key) {
        eprintln!("podnet-cni: rollback: {e}");
    }
}
