//! Names podnet derives, so that DEL and GC find what ADD made without a lookup.

use sha2::{Digest, Sha256};

/// Prefix of every host-side veth podnet creates.
pub const HOST_VETH_PREFIX: &str = "pn";

/// Prefix of the alias podnet writes on its host-side veths: `podnet/<network>/<cid>/<ifname>`.
pub const ALIAS_PREFIX: &str = "podnet/";

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// The host-side veth name of an attachment: `pn` + 13 hex digits (15 bytes, the kernel's limit).
pub fn host_veth(network: &str, container_id: &str, ifname: &str) -> String {
    let d = digest(&[network, container_id, ifname]);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("{HOST_VETH_PREFIX}{}", &hex[..13])
}

/// The alias written on the host-side veth: ties it to its network and attachment for GC.
pub fn alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{ALIAS_PREFIX}{network}/{container_id}/{ifname}")
}

/// Splits an alias back into (network, container id, ifname).
pub fn parse_alias(alias: &str) -> Option<(&str, &str, &str)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    // The ifname may not hold '/', the container id may not either: split from the right.
    let (rest, ifname) = rest.rsplit_once('/')?;
    let (network, cid) = rest.rsplit_once('/')?;
    Some((network, cid, ifname))
}

/// A stable, locally administered unicast MAC for a bridge, set when it is created so that
/// it never changes as ports come and go.
pub fn bridge_mac(bridge: &str) -> [u8; 6] {
    let d = digest(&["bridge", bridge]);
    [0x02 | (d[0] & 0xfc), d[1], d[2], d[3], d[4], d[5]]
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() || out[0] & 1 == 1 {
        return None; // too long, or multicast
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_fits_and_is_stable() {
        let a = host_veth("net", "abc", "eth0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, host_veth("net", "abc", "eth0"));
        assert_ne!(a, host_veth("net", "abc", "eth1"));
        assert_ne!(a, host_veth("net2", "abc", "eth0"));
    }

    #[test]
    fn alias_round_trips() {
        let a = alias("my/net", "c-1.x", "eth0");
        assert_eq!(parse_alias(&a), Some(("my/net", "c-1.x", "eth0")));
        assert_eq!(parse_alias("other"), None);
    }

    #[test]
    fn macs() {
        let m = bridge_mac("podnet0");
        assert_eq!(m[0] & 3, 2, "locally administered unicast");
        assert_eq!(
            parse_mac("02:00:00:aa:bb:cc"),
            Some([2, 0, 0, 0xaa, 0xbb, 0xcc])
        );
        assert_eq!(parse_mac("01:00:00:aa:bb:cc"), None);
        assert_eq!(parse_mac("02:00:00:aa:bb"), None);
        assert_eq!(parse_mac("02:00:00:aa:bb:cc:dd"), None);
        assert_eq!(parse_mac("zz:00:00:aa:bb:cc"), None);
    }
}
