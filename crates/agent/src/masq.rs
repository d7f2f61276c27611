//! Masquerade of pod traffic leaving the cluster, in podnet's own table `inet podnet-nat`.
//!
//! Traffic from this node's pod CIDRs to anything outside the cluster's pod CIDRs and the
//! service CIDRs is masqueraded (`fully-random`); pod→pod and pod→service are not. The table
//! carries a hash of its content as its comment: a resync whose content is unchanged reads
//! the table and writes nothing; a change replaces the whole table in one transaction.

use ipnet::IpNet;
use sha2::{Digest, Sha256};

/// The table's family and name.
pub const TABLE: (&str, &str) = ("inet", "podnet-nat");

/// What to masquerade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqSpec {
    /// Sources: this node's pod CIDRs.
    pub pod_cidrs: Vec<IpNet>,
    /// Destinations that are not masqueraded: every pod CIDR of the cluster, service CIDRs.
    pub cluster: Vec<IpNet>,
}

fn set(name: &str, ty: &str, nets: &[&IpNet]) -> String {
    let elements = if nets.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = nets.iter().map(|n| n.trunc().to_string()).collect();
        format!(" elements = {{ {} }};", list.join(", "))
    };
    format!("  set {name} {{ type {ty}; flags interval; auto-merge;{elements} }}\n")
}

fn fam(v4: bool, nets: &[IpNet]) -> Vec<&IpNet> {
    nets.iter().filter(|n| n.addr().is_ipv4() == v4).collect()
}

/// The table's body (without the comment).
fn body(spec: &MasqSpec) -> String {
    let mut s = String::new();
    s += &set("pods4", "ipv4_addr", &fam(true, &spec.pod_cidrs));
    s += &set("pods6", "ipv6_addr", &fam(false, &spec.pod_cidrs));
    s += &set("cluster4", "ipv4_addr", &fam(true, &spec.cluster));
    s += &set("cluster6", "ipv6_addr", &fam(false, &spec.cluster));
    s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
    s += "    ip saddr @pods4 ip daddr != @cluster4 masquerade fully-random\n";
    s += "    ip6 saddr @pods6 ip6 daddr != @cluster6 masquerade fully-random\n  }\n";
    s
}

/// The marker put in the table's comment.
fn marker(body: &str) -> String {
    let d = Sha256::digest(body.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("podnet-agent {hex}")
}

/// The whole transaction that makes the table equal `spec`.
pub fn render(spec: &MasqSpec) -> String {
    let (fam, name) = TABLE;
    let body = body(spec);
    let marker = marker(&body);
    format!(
        "table {fam} {name} {{}}\ndelete table {fam} {name}\ntable {fam} {name} {{\n  comment \"{marker}\"\n{body}}}\n"
    )
}

/// Makes the kernel's table equal `spec`; returns whether anything was written, and the
/// marker of what is now in force. With `trusted` equal to that marker (this process applied
/// or verified it since the last full resync) the kernel is not even read.
pub fn reconcile(
    spec: &MasqSpec,
    trusted: Option<&str>,
) -> Result<(bool, String), podnet_nft::NftError> {
    let (fam, name) = TABLE;
    let want = marker(&body(spec));
    if trusted == Some(want.as_str()) {
        return Ok((false, want));
    }
    if let Some(text) = podnet_nft::list_table(fam, name)? {
        if text.contains(&format!("comment \"{want}\"")) {
            return Ok((false, want));
        }
    }
    podnet_nft::apply(&render(spec))?;
    Ok((true, want))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn render_is_deterministic_and_families_split() {
        let spec = MasqSpec {
            pod_cidrs: vec![
                "10.244.1.0/24".parse().unwrap(),
                "fd00:1::/64".parse().unwrap(),
            ],
            cluster: vec![
                "10.244.0.0/16".parse().unwrap(),
                "10.96.0.0/12".parse().unwrap(),
            ],
        };
        let a = render(&spec);
        assert_eq!(a, render(&spec.clone()));
        assert!(a.contains("set pods4 { type ipv4_addr; flags interval; auto-merge; elements = { 10.244.1.0/24 }; }"));
        assert!(a.contains("set cluster6 { type ipv6_addr; flags interval; auto-merge; }"));
        let mut other = spec.clone();
        other.cluster.pop();
        assert_ne!(marker(&body(&spec)), marker(&body(&other)));
    }
}
