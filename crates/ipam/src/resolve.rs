//! Validation of the configuration into resolved, allocatable range sets.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{canonical, first_host, last_host, to_u128};
use crate::config::{IpamConfig, Range, RangeSet};
use crate::error::IpamError;

/// A validated [`Range`] with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRange {
    subnet: IpNet,
    range_start: IpAddr,
    range_end: IpAddr,
    gateway: IpAddr,
}

impl ResolvedRange {
    /// The subnet, with host bits cleared.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }
    /// The first address handed out (inclusive).
    pub fn range_start(&self) -> IpAddr {
        self.range_start
    }
    /// The last address handed out (inclusive).
    pub fn range_end(&self) -> IpAddr {
        self.range_end
    }
    /// The gateway (never handed out).
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// Whether `ip` lies between the range's start and end.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.range_start.is_ipv4()
            && (self.start_u()..=self.end_u()).contains(&to_u128(ip))
    }

    pub(crate) fn start_u(&self) -> u128 {
        to_u128(self.range_start)
    }
    pub(crate) fn end_u(&self) -> u128 {
        to_u128(self.range_end)
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.range_start.is_ipv4() == other.range_start.is_ipv4()
            && self.start_u() <= other.end_u()
            && other.start_u() <= self.end_u()
    }
}

impl fmt::Display for ResolvedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// A validated, non-empty [`RangeSet`] of a single IP family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRangeSet {
    ranges: Vec<ResolvedRange>,
}

impl ResolvedRangeSet {
    /// The ranges, in configuration order (never empty).
    pub fn ranges(&self) -> &[ResolvedRange] {
        &self.ranges
    }

    /// Whether the set holds IPv4 ranges.
    pub fn is_ipv4(&self) -> bool {
        self.ranges.iter().all(|r| r.range_start.is_ipv4())
    }

    /// The index and range containing `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<(usize, &ResolvedRange)> {
        self.ranges.iter().enumerate().find(|(_, r)| r.contains(ip))
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for ResolvedRangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{r}")?;
        }
        Ok(())
    }
}

impl IpamConfig {
    /// Validates the configuration and resolves its range sets.
    ///
    /// `runtime_ranges` (the `ipRanges` capability), when given and
    /// non-empty, replaces the configured ranges.
    pub fn range_sets(
        &self,
        runtime_ranges: Option<&[RangeSet]>,
    ) -> Result<Vec<ResolvedRangeSet>, IpamError> {
        let raw = self.raw_range_sets(runtime_ranges)?;
        let sets = raw
            .iter()
            .enumerate()
            .map(|(i, set)| {
                resolve_set(set).map_err(|e| IpamError::config(format!("range set {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_sets_disjoint(&sets)?;
        Ok(sets)
    }

    fn raw_range_sets(&self, runtime: Option<&[RangeSet]>) -> Result<Vec<RangeSet>, IpamError> {
        if self.has_shorthand() && !self.ranges.is_empty() {
            return Err(IpamError::config(
                "subnet/rangeStart/rangeEnd/gateway cannot be combined with ranges",
            ));
        }
        if let Some(runtime) = runtime.filter(|r| !r.is_empty()) {
            return Ok(runtime.to_vec());
        }
        if self.has_shorthand() {
            return Ok(vec![vec![self.shorthand_range()?]]);
        }
        if self.ranges.is_empty() {
            return Err(IpamError::config("no IP ranges specified"));
        }
        Ok(self.ranges.clone())
    }

    fn shorthand_range(&self) -> Result<Range, IpamError> {
        let subnet = self
            .subnet
            .ok_or_else(|| IpamError::config("rangeStart/rangeEnd/gateway given without subnet"))?;
        Ok(Range {
            subnet,
            range_start: self.range_start,
            range_end: self.range_end,
            gateway: self.gateway,
        })
    }
}

fn check_sets_disjoint(sets: &[ResolvedRangeSet]) -> Result<(), IpamError> {
    for (i, a) in sets.iter().enumerate() {
        for (j, b) in sets.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(IpamError::config(format!(
                    "range set {i} overlaps with range set {j}"
                )));
            }
        }
    }
    Ok(())
}

fn resolve_set(set: &[Range]) -> Result<ResolvedRangeSet, String> {
    let ranges = set
        .iter()
        .map(resolve_range)
        .collect::<Result<Vec<_>, _>>()?;
    let first = ranges.first().ok_or("empty range set")?;
    if ranges
        .iter()
        .any(|r| r.range_start.is_ipv4() != first.range_start.is_ipv4())
    {
        return Err("mixed address families".into());
    }
    for (i, a) in ranges.iter().enumerate() {
        if let Some(b) = ranges.iter().skip(i + 1).find(|b| a.overlaps(b)) {
            return Err(format!("ranges {a} and {b} overlap"));
        }
    }
    Ok(ResolvedRangeSet { ranges })
}

fn resolve_range(range: &Range) -> Result<ResolvedRange, String> {
    let subnet = range.subnet.trunc();
    if subnet.max_prefix_len() - subnet.prefix_len() < 2 {
        return Err(format!("network {subnet} too small to allocate from"));
    }
    let gateway = inside(&subnet, range.gateway, "gateway")?.unwrap_or_else(|| first_host(&subnet));
    let start =
        inside(&subnet, range.range_start, "rangeStart")?.unwrap_or_else(|| first_host(&subnet));
    let end = inside(&subnet, range.range_end, "rangeEnd")?.unwrap_or_else(|| last_host(&subnet));
    if to_u128(start) > to_u128(end) {
        return Err(format!("rangeStart {start} is after rangeEnd {end}"));
    }
    Ok(ResolvedRange {
        subnet,
        range_start: start,
        range_end: end,
        gateway,
    })
}

/// Canonicalizes an optional address and checks it lies in `subnet`.
fn inside(subnet: &IpNet, ip: Option<IpAddr>, what: &str) -> Result<Option<IpAddr>, String> {
    let Some(ip) = ip.map(canonical) else {
        return Ok(None);
    };
    if subnet.contains(&ip) {
        Ok(Some(ip))
    } else {
        Err(format!("{what} {ip} not in network {subnet}"))
    }
}
