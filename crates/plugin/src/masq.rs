//! `ipMasq`: masquerade a pod's traffic to destinations outside its subnets.
//!
//! One nftables table per network (`inet podnet-masq-<hash>`), holding fixed rules over sets;
//! ADD and DEL only add or remove set elements, each in one atomic `nft -f` transaction.

use std::net::IpAddr;

use ipnet::IpNet;
use podnet_cni_spec::CniError;
use sha2::{Digest, Sha256};

/// podnet's own error code for a failed nftables transaction.
pub const NFT_FAILED: u32 = 105;

/// The table name of a network.
pub fn table(network: &str) -> String {
    let d = Sha256::digest(network.as_bytes());
    let hex: String = d.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("podnet-masq-{hex}")
}

fn skeleton(t: &str) -> String {
    format!(
        "table inet {t} {{
  set pods4 {{ type ipv4_addr; }}
  set pods6 {{ type ipv6_addr; }}
  set nets4 {{ type ipv4_addr; flags interval; }}
  set nets6 {{ type ipv6_addr; flags interval; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
}}
flush chain inet {t} postrouting
add rule inet {t} postrouting ip saddr @pods4 ip daddr != @nets4 ip daddr != 224.0.0.0/4 masquerade
add rule inet {t} postrouting ip6 saddr @pods6 ip6 daddr != @nets6 ip6 daddr != ff00::/8 masquerade
"
    )
}

fn elements(t: &str, verb: &str, addrs: &[IpNet], with_nets: bool) -> String {
    let mut s = String::new();
    for a in addrs {
        let (pods, nets) = match a.addr() {
            IpAddr::V4(_) => ("pods4", "nets4"),
            IpAddr::V6(_) => ("pods6", "nets6"),
        };
        s += &format!("{verb} element inet {t} {pods} {{ {} }}\n", a.addr());
        if with_nets {
            s += &format!("add element inet {t} {nets} {{ {} }}\n", a.trunc());
        }
    }
    s
}

/// Masquerades the pod addresses `addrs` (with their subnets).
pub fn add(network: &str, addrs: &[IpNet]) -> Result<(), CniError> {
    let t = table(network);
    run(&(skeleton(&t) + &elements(&t, "add", addrs, true)))
}

/// Stops masquerading `addrs`; succeeds when they (or the table) are already gone.
pub fn del(network: &str, addrs: &[IpAddr]) -> Result<(), CniError> {
    let t = table(network);
    let nets: Vec<IpNet> = addrs.iter().map(|a| IpNet::from(*a)).collect();
    // Adding first makes the delete succeed when the element is absent (nft 1.0.6 has no
    // `destroy`); the whole script is one transaction.
    let script =
        skeleton(&t) + &elements(&t, "add", &nets, false) + &elements(&t, "delete", &nets, false);
    run(&script)
}

fn run(script: &str) -> Result<(), CniError> {
    podnet_nft::apply(script)
        .map_err(|e| CniError::new(NFT_FAILED, "nft transaction failed", e.to_string()))
}
