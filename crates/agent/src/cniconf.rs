//! The node's CNI network config, handed to kubelet the way Flannel and Calico do: a
//! `.conflist` naming podnet-cni with this node's pod CIDRs and MTU, rewritten (atomically)
//! only when it changes.

use std::io;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{json, Value};

/// Where and how to write the config.
#[derive(Debug, Clone)]
pub struct CniConfOptions {
    /// The file (e.g. `/etc/cni/net.d/10-podnet.conflist`).
    pub path: PathBuf,
    /// The network name.
    pub network: String,
    /// `bridge` or `ptp`.
    pub mode: String,
    /// The bridge's name (bridge mode).
    pub bridge: String,
    /// IPAM state directory (`None`: podnet-ipam's default).
    pub data_dir: Option<PathBuf>,
}

/// The conflist for pod CIDRs `cidrs` and pod MTU `mtu`.
pub fn render(opts: &CniConfOptions, cidrs: &[IpNet], mtu: u32) -> Value {
    let ranges: Vec<Value> = cidrs
        .iter()
        .map(|c| json!([{ "subnet": c.trunc().to_string() }]))
        .collect();
    let mut routes = Vec::new();
    if cidrs.iter().any(|c| c.addr().is_ipv4()) {
        routes.push(json!({ "dst": "0.0.0.0/0" }));
    }
    if cidrs.iter().any(|c| c.addr().is_ipv6()) {
        routes.push(json!({ "dst": "::/0" }));
    }
    let mut ipam = json!({ "type": "podnet-ipam", "ranges": ranges, "routes": routes });
    if let Some(dir) = &opts.data_dir {
        ipam["dataDir"] = json!(dir);
    }
    let mut plugin = json!({
        "type": "podnet-cni",
        "mode": opts.mode,
        "mtu": mtu,
        "ipam": ipam,
    });
    if opts.mode == "bridge" {
        plugin["bridge"] = json!(opts.bridge);
        plugin["hairpinMode"] = json!(true);
    }
    json!({
        "cniVersion": "1.1.0",
        "name": opts.network,
        "plugins": [plugin],
    })
}

/// Writes `conf` to `path` unless the file already holds it; returns whether it wrote.
pub fn write(path: &Path, conf: &Value) -> io::Result<bool> {
    if let Ok(old) = std::fs::read(path) {
        if serde_json::from_slice::<Value>(&old).ok().as_ref() == Some(conf) {
            return Ok(false);
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut text = serde_json::to_string_pretty(conf).map_err(io::Error::other)?;
    text.push('\n');
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn written_once_then_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CniConfOptions {
            path: dir.path().join("net.d/10-podnet.conflist"),
            network: "podnet".into(),
            mode: "bridge".into(),
            bridge: "podnet0".into(),
            data_dir: Some(dir.path().join("ipam")),
        };
        let cidrs = [
            "10.244.1.0/24".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ];
        let conf = render(&opts, &cidrs, 1450);
        assert_eq!(conf["plugins"][0]["mtu"], 1450);
        assert_eq!(
            conf["plugins"][0]["ipam"]["ranges"][1][0]["subnet"],
            "fd00:1::/64"
        );
        assert_eq!(
            conf["plugins"][0]["ipam"]["routes"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(write(&opts.path, &conf).unwrap());
        assert!(!write(&opts.path, &conf).unwrap());
        let conf2 = render(&opts, &cidrs[..1], 1450);
        assert!(write(&opts.path, &conf2).unwrap());
        let back: Value = serde_json::from_slice(&std::fs::read(&opts.path).unwrap()).unwrap();
        assert_eq!(back, conf2);
    }
}
