//! What every attachment command needs: the validated attachment and the namespaces.

use std::net::IpAddr;

use podnet_cni_spec::{codes, CniError, Env, K8S_ARGS};
use podnet_ipam::AttachmentKey;
use podnet_netdev::NetNs;

use crate::config::Config;
use crate::names;

/// CNI_ARGS keys podnet understands.
pub const KNOWN_ARGS: [&str; 6] = [
    K8S_ARGS[0],
    K8S_ARGS[1],
    K8S_ARGS[2],
    K8S_ARGS[3],
    "IP",
    "MAC",
];

/// One attachment: a container's interface on this network.
#[derive(Debug)]
pub struct Attachment {
    /// Container id and interface name.
    pub key: AttachmentKey,
    /// Name of the host-side veth.
    pub host_veth: String,
    /// Alias written on the host-side veth.
    pub alias: String,
}

impl Attachment {
    /// Builds the attachment from the environment (already validated by the spec crate).
    pub fn new(cfg: &Config, env: &Env) -> Result<Attachment, CniError> {
        let cid = env
            .container_id
            .clone()
            .ok_or_else(|| missing("CNI_CONTAINERID"))?;
        let ifname = env.ifname.clone().ok_or_else(|| missing("CNI_IFNAME"))?;
        env.args.check_known(&KNOWN_ARGS)?;
        Ok(Attachment {
            host_veth: names::host_veth(&cfg.net.name, &cid, &ifname),
            alias: names::alias(&cfg.net.name, &cid, &ifname),
            key: AttachmentKey::new(cid, ifname),
        })
    }

    /// The pod interface name.
    pub fn ifname(&self) -> &str {
        &self.key.ifname
    }
}

fn missing(var: &str) -> CniError {
    CniError::msg(codes::INVALID_ENV, format!("{var} is required"))
}

/// Opens the pod's namespace: code 3 when it does not exist, 4 when it is the plugin's own.
pub fn open_pod_ns(env: &Env) -> Result<NetNs, CniError> {
    let path = env.netns.as_deref().ok_or_else(|| missing("CNI_NETNS"))?;
    let ns = NetNs::open(path).map_err(|e| {
        CniError::new(
            codes::UNKNOWN_CONTAINER,
            format!("network namespace {} not found", path.display()),
            e.to_string(),
        )
    })?;
    let own = NetNs::current().map_err(|e| {
        CniError::new(
            codes::IO_FAILURE,
            "cannot open own namespace",
            e.to_string(),
        )
    })?;
    let same = ns.same_as(&own).map_err(|e| {
        CniError::new(
            codes::INVALID_ENV,
            format!("{} is not a network namespace", path.display()),
            e.to_string(),
        )
    })?;
    if same {
        return Err(CniError::new(
            codes::INVALID_ENV,
            "CNI_NETNS is the plugin's own network namespace",
            path.display().to_string(),
        ));
    }
    Ok(ns)
}

/// Static addresses asked for through runtimeConfig `ips`, `args.cni.ips` or CNI_ARGS `IP`.
pub fn requested_ips(cfg: &Config, env: &Env) -> Result<Vec<IpAddr>, CniError> {
    let mut raw: Vec<String> = cfg.net.runtime_config.ips.clone();
    if let Some(c) = cfg.net.args.as_ref().and_then(|a| a.cni.as_ref()) {
        raw.extend(c.ips.iter().cloned());
    }
    if let Some(ip) = env.args.get("IP") {
        raw.extend(ip.split(',').map(str::to_string));
    }
    crate::ipam::parse_ips(raw)
}

/// The pod interface MAC asked for through runtimeConfig `mac`, `args.cni.mac` or CNI_ARGS `MAC`.
pub fn requested_mac(cfg: &Config, env: &Env) -> Result<Option<[u8; 6]>, CniError> {
    let from_args = cfg
        .net
        .args
        .as_ref()
        .and_then(|a| a.cni.as_ref())
        .and_then(|c| c.mac.clone());
    let mac = cfg
        .net
        .runtime_config
        .mac
        .clone()
        .or(from_args)
        .or_else(|| env.args.get("MAC").map(str::to_string));
    match mac {
        None => Ok(None),
        Some(m) => names::parse_mac(&m).map(Some).ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                "invalid MAC (want a unicast aa:bb:cc:dd:ee:ff)",
                m,
            )
        }),
    }
}
