//! Address arithmetic on a `u128` representation of either family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address as an integer (IPv4 occupies the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of the same family as `like` with integer value `value`.
pub(crate) fn from_u128(value: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Turns IPv4-mapped IPv6 addresses into IPv4 ones.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Whether `ip` is the network address or (IPv4 only) the broadcast
/// address of `subnet`.
pub(crate) fn is_network_or_broadcast(subnet: &IpNet, ip: IpAddr) -> bool {
    ip == subnet.network() || (ip.is_ipv4() && ip == subnet.broadcast())
}

/// The last usable host of `subnet`: broadcast - 1 for IPv4, the last
/// address for IPv6.
pub(crate) fn last_host(subnet: &IpNet) -> IpAddr {
    let last = subnet.broadcast();
    match last {
        IpAddr::V4(_) => from_u128(to_u128(last).saturating_sub(1), last),
        IpAddr::V6(_) => last,
    }
}

/// `network + 1`.
pub(crate) fn first_host(subnet: &IpNet) -> IpAddr {
    let net = subnet.network();
    from_u128(to_u128(net).saturating_add(1), net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|_| panic!("bad net {s}"))
    }

    #[test]
    fn hosts_of_v4_and_v6() {
        let v4 = net("10.1.2.0/24");
        assert_eq!(first_host(&v4).to_string(), "10.1.2.1");
        assert_eq!(last_host(&v4).to_string(), "10.1.2.254");
        let v6 = net("fd00::/120");
        assert_eq!(first_host(&v6).to_string(), "fd00::1");
        assert_eq!(last_host(&v6).to_string(), "fd00::ff");
    }

    #[test]
    fn round_trip_and_canonical() {
        let ip: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(canonical(ip).to_string(), "10.0.0.1");
        let v4: IpAddr = "10.0.0.255".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(from_u128(to_u128(v4), v4), v4);
        assert!(is_network_or_broadcast(&net("10.0.0.0/24"), v4));
    }
}
