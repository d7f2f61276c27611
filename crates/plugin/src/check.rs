//! CHECK: the interface, its addresses and routes, the host side and the reservation.

use podnet_cni_spec::{codes, CniError, CniResult, Env};
use podnet_netdev::{Link, Netlink};

use crate::attach::{open_pod_ns, Attachment};
use crate::config::{Config, Mode};
use crate::ipam::Ipam;
use crate::wire::{gateway_for, nl_error};
use crate::CHECK_FAILED;

fn failed(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(CHECK_FAILED, msg, details)
}

/// Runs CHECK against prevResult.
pub fn check(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let att = Attachment::new(cfg, env)?;
    let prev = cfg
        .prev_result()?
        .ok_or_else(|| CniError::msg(codes::INVALID_CONFIG, "CHECK needs prevResult"))?;
    let pod_ns = open_pod_ns(env)?;
    let ipam = Ipam::new(cfg, env)?;
    let mut pod = Netlink::in_ns(&pod_ns).map_err(nl_error)?;
    let mut host = Netlink::new().map_err(nl_error)?;
    let pl = pod
        .link_by_name(att.ifname())
        .map_err(nl_error)?
        .ok_or_else(|| {
            failed(
                format!("interface {} is missing from the container", att.ifname()),
                "",
            )
        })?;
    let index = check_interface(&prev, &pl, &pod_ns.path().display().to_string())?;
    check_addresses(&prev, index, &pl, &mut pod)?;
    check_routes(&prev, &pl, &mut pod)?;
    check_host(cfg, &att, &mut host)?;
    let ips: Vec<_> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(index))
        .map(|ip| ip.address.addr())
        .collect();
    ipam.check(cfg, &att.key, &ips)
}

fn check_interface(prev: &CniResult, pl: &Link, sandbox: &str) -> Result<usize, CniError> {
    let (index, want) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == pl.name && i.sandbox.as_deref().is_some_and(|s| s == sandbox))
        .ok_or_else(|| {
            failed(
                format!("prevResult lists no interface {} in {sandbox}", pl.name),
                "",
            )
        })?;
    if let Some(mac) = &want.mac {
        if !mac.eq_ignore_ascii_case(&pl.mac_string()) {
            return Err(failed(
                format!("{} has MAC {}", pl.name, pl.mac_string()),
                format!("want {mac}"),
            ));
        }
    }
    Ok(index)
}

fn check_addresses(
    prev: &CniResult,
    index: usize,
    pl: &Link,
    pod: &mut Netlink,
) -> Result<(), CniError> {
    let have: Vec<_> = pod
        .addresses(pl.index)
        .map_err(nl_error)?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    for ip in prev.ips.iter().filter(|ip| ip.interface == Some(index)) {
        if !have.contains(&ip.address) {
            return Err(failed(
                format!("{} lacks address {}", pl.name, ip.address),
                format!("has {have:?}"),
            ));
        }
    }
    Ok(())
}

fn check_routes(prev: &CniResult, pl: &Link, pod: &mut Netlink) -> Result<(), CniError> {
    let have = pod.routes().map_err(nl_error)?;
    for r in &prev.routes {
        let gw = r.gw.or_else(|| gateway_for(prev, r.dst.addr()));
        let found = have
            .iter()
            .any(|h| h.dst == r.dst.trunc() && h.gw == gw && h.oif == Some(pl.index));
        if !found {
            return Err(failed(
                format!("route to {} via {gw:?} is missing", r.dst),
                "",
            ));
        }
    }
    Ok(())
}

fn check_host(cfg: &Config, att: &Attachment, host: &mut Netlink) -> Result<(), CniError> {
    let hv = host
        .link_by_name(&att.host_veth)
        .map_err(nl_error)?
        .ok_or_else(|| failed(format!("host veth {} is missing", att.host_veth), ""))?;
    if cfg.net.mode == Mode::Bridge {
        let br = host.link_by_name(&cfg.net.bridge).map_err(nl_error)?;
        let br_index = br.map(|b| b.index);
        if br_index.is_none() || hv.master != br_index {
            return Err(failed(
                format!("{} is not a port of bridge {}", hv.name, cfg.net.bridge),
                "",
            ));
        }
    }
    Ok(())
}
