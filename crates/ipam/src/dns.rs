//! Parsing of resolv.conf into a [`DnsConfig`], like host-local.

use std::path::Path;

use crate::config::DnsConfig;
use crate::error::IpamError;

/// Reads `path` as resolv.conf: `nameserver`, `domain`, `search` and
/// `options` lines; comments (`#`, `;`) and other keywords are ignored.
pub fn parse_resolv_conf(path: &Path) -> Result<DnsConfig, IpamError> {
    let text = std::fs::read_to_string(path).map_err(IpamError::io("reading", path))?;
    Ok(parse_resolv_text(&text))
}

/// Parses resolv.conf content.
pub(crate) fn parse_resolv_text(text: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        let values: Vec<String> = fields.map(str::to_owned).collect();
        apply_line(&mut dns, key, values);
    }
    dns
}

/// Applies one `key values...` line; lines without a value are ignored.
fn apply_line(dns: &mut DnsConfig, key: &str, mut values: Vec<String>) {
    if values.is_empty() {
        return;
    }
    match key {
        "nameserver" => dns.nameservers.push(values.swap_remove(0)),
        "domain" => dns.domain = Some(values.swap_remove(0)),
        "search" => dns.search.extend(values),
        "options" => dns.options.extend(values),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_keywords() {
        let text = "# comment\n; other\nnameserver 10.0.0.1\nnameserver ::1 extra\n\
                    domain example.com\nsearch a.example b.example\nsearch c\n\
                    options ndots:5 rotate\nsortlist 1.2.3.4\nnameserver\n";
        let dns = parse_resolv_text(text);
        assert_eq!(dns.nameservers, ["10.0.0.1", "::1"]);
        assert_eq!(dns.domain.as_deref(), Some("example.com"));
        assert_eq!(dns.search, ["a.example", "b.example", "c"]);
        assert_eq!(dns.options, ["ndots:5", "rotate"]);
    }
}
