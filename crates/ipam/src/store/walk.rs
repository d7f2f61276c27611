//! Round-robin iteration over the addresses of a range set.

use std::net::IpAddr;

use crate::addr::{from_u128, is_network_or_broadcast, to_u128};
use crate::resolve::{ResolvedRange, ResolvedRangeSet};

/// Visits every address of a range set exactly once, starting right after
/// `last` (or at the start of the first range), wrapping around.
pub(crate) struct Walk<'a> {
    ranges: &'a [ResolvedRange],
    first: (usize, u128),
    next: Option<(usize, u128)>,
}

impl<'a> Walk<'a> {
    /// Starts after `last` if it lies in the set, else at the beginning.
    pub(crate) fn new(set: &'a ResolvedRangeSet, last: Option<IpAddr>) -> Self {
        let ranges = set.ranges();
        let mut walk = Self {
            ranges,
            first: (0, 0),
            next: None,
        };
        let after_last = last
            .and_then(|ip| set.range_for(ip).map(|(i, _)| (i, to_u128(ip))))
            .and_then(|pos| walk.step(pos));
        let first = after_last.or_else(|| ranges.first().map(|r| (0, r.start_u())));
        if let Some(first) = first {
            walk.first = first;
            walk.next = Some(first);
        }
        walk
    }

    /// The position after `pos`, moving to the next range after an end.
    fn step(&self, (i, value): (usize, u128)) -> Option<(usize, u128)> {
        let range = self.ranges.get(i)?;
        if value < range.end_u() {
            return Some((i, value + 1));
        }
        let j = (i + 1) % self.ranges.len();
        self.ranges.get(j).map(|r| (j, r.start_u()))
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = (&'a ResolvedRange, IpAddr);

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.next?;
        self.next = self.step(pos).filter(|p| *p != self.first);
        let range = self.ranges.get(pos.0)?;
        Some((range, from_u128(pos.1, range.range_start())))
    }
}

/// Why `ip` (inside `range`) may not be handed out, if it may not.
pub(crate) fn unassignable(
    range: &ResolvedRange,
    gateways: &[IpAddr],
    ip: IpAddr,
) -> Option<&'static str> {
    if is_network_or_broadcast(&range.subnet(), ip) {
        Some("network or broadcast address")
    } else if gateways.contains(&ip) {
        Some("gateway address")
    } else {
        None
    }
}

/// The gateways of all ranges of all sets.
pub(crate) fn gateways(sets: &[ResolvedRangeSet]) -> Vec<IpAddr> {
    let all = sets.iter().flat_map(|s| s.ranges());
    all.map(ResolvedRange::gateway).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IpamConfig, Range};

    fn set(ranges: &[(&str, &str, &str)]) -> ResolvedRangeSet {
        let ranges = ranges
            .iter()
            .map(|(net, start, end)| Range {
                subnet: net.parse().unwrap_or_else(|_| panic!("{net}")),
                range_start: start.parse().ok(),
                range_end: end.parse().ok(),
                gateway: None,
            })
            .collect();
        let cfg = IpamConfig {
            ranges: vec![ranges],
            ..IpamConfig::default()
        };
        match cfg.range_sets(None) {
            Ok(mut sets) => sets.remove(0),
            Err(e) => panic!("{e}"),
        }
    }

    fn names<'a>(walk: impl Iterator<Item = (&'a ResolvedRange, IpAddr)>) -> Vec<String> {
        walk.map(|(_, ip)| ip.to_string()).collect()
    }

    #[test]
    fn walks_all_ranges_from_the_start() {
        let s = set(&[
            ("10.0.0.0/24", "10.0.0.5", "10.0.0.6"),
            ("10.0.1.0/24", "10.0.1.9", "10.0.1.9"),
        ]);
        assert_eq!(
            names(Walk::new(&s, None)),
            ["10.0.0.5", "10.0.0.6", "10.0.1.9"]
        );
    }

    #[test]
    fn resumes_after_last_and_wraps() {
        let s = set(&[
            ("10.0.0.0/24", "10.0.0.5", "10.0.0.6"),
            ("10.0.1.0/24", "10.0.1.9", "10.0.1.9"),
        ]);
        let last = "10.0.0.6".parse().ok();
        assert_eq!(
            names(Walk::new(&s, last)),
            ["10.0.1.9", "10.0.0.5", "10.0.0.6"]
        );
        let outside = "192.168.0.1".parse().ok();
        assert_eq!(names(Walk::new(&s, outside)).len(), 3);
    }

    #[test]
    fn single_address_and_huge_v6() {
        let s = set(&[("10.0.0.0/24", "10.0.0.7", "10.0.0.7")]);
        assert_eq!(names(Walk::new(&s, "10.0.0.7".parse().ok())), ["10.0.0.7"]);
        let v6 = set(&[("::/0", "", "")]);
        let last = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().ok();
        assert_eq!(names(Walk::new(&v6, last).take(2)), ["::1", "::2"]);
    }
}
