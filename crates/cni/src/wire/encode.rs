//! Model -> version-specific JSON.

use serde_json::{Map, Value};

use super::has_v11_fields;
use crate::result::{CniResult, Dns, Interface, IpConfig, Route};
use crate::version::Version;

type Obj = Map<String, Value>;

/// Encodes `r` as version `v`'s result object.
pub(crate) fn encode(r: &CniResult, v: Version) -> Value {
    let mut o = Obj::new();
    o.insert("cniVersion".into(), v.as_str().into());
    put_list(&mut o, "interfaces", &r.interfaces, |i| interface(i, v));
    put_list(&mut o, "ips", &r.ips, |ip| ip_config(ip, v));
    put_list(&mut o, "routes", &r.routes, |rt| route(rt, v));
    if v.has_ip_version_field() || !r.dns.is_empty() {
        o.insert("dns".into(), dns(&r.dns));
    }
    Value::Object(o)
}

fn interface(i: &Interface, v: Version) -> Value {
    let mut o = Obj::new();
    o.insert("name".into(), i.name.as_str().into());
    put_str(&mut o, "mac", i.mac.as_deref());
    if has_v11_fields(v) {
        put_nonzero(&mut o, "mtu", i.mtu);
    }
    put_str(&mut o, "sandbox", i.sandbox.as_deref());
    if has_v11_fields(v) {
        put_str(&mut o, "socketPath", i.socket_path.as_deref());
        put_str(&mut o, "pciID", i.pci_id.as_deref());
    }
    Value::Object(o)
}

fn ip_config(ip: &IpConfig, v: Version) -> Value {
    let mut o = Obj::new();
    if v.has_ip_version_field() {
        let family = if ip.address.addr().is_ipv4() {
            "4"
        } else {
            "6"
        };
        o.insert("version".into(), family.into());
    }
    if let Some(idx) = ip.interface {
        o.insert("interface".into(), idx.into());
    }
    o.insert("address".into(), ip.address.to_string().into());
    if let Some(gw) = ip.gateway {
        o.insert("gateway".into(), gw.to_string().into());
    }
    Value::Object(o)
}

fn route(rt: &Route, v: Version) -> Value {
    let mut o = Obj::new();
    o.insert("dst".into(), rt.dst.to_string().into());
    if let Some(gw) = rt.gw {
        o.insert("gw".into(), gw.to_string().into());
    }
    if has_v11_fields(v) {
        put_nonzero(&mut o, "mtu", rt.mtu);
        put_nonzero(&mut o, "advmss", rt.advmss);
        put_nonzero(&mut o, "priority", rt.priority);
        put_num(&mut o, "table", rt.table);
        put_num(&mut o, "scope", rt.scope.map(u32::from));
    }
    Value::Object(o)
}

fn dns(d: &Dns) -> Value {
    let mut o = Obj::new();
    put_list(&mut o, "nameservers", &d.nameservers, |s| s.as_str().into());
    put_str(&mut o, "domain", d.domain.as_deref());
    put_list(&mut o, "search", &d.search, |s| s.as_str().into());
    put_list(&mut o, "options", &d.options, |s| s.as_str().into());
    Value::Object(o)
}

/// Inserts a list unless it is empty (Go `omitempty` on slices).
fn put_list<T>(o: &mut Obj, key: &str, items: &[T], f: impl Fn(&T) -> Value) {
    if !items.is_empty() {
        o.insert(key.into(), Value::Array(items.iter().map(f).collect()));
    }
}

/// Inserts a string unless unset or empty (Go `omitempty` on strings).
fn put_str(o: &mut Obj, key: &str, s: Option<&str>) {
    if let Some(s) = s.filter(|s| !s.is_empty()) {
        o.insert(key.into(), s.into());
    }
}

/// Inserts a number unless unset or zero (Go `omitempty` on ints).
fn put_nonzero(o: &mut Obj, key: &str, n: Option<u32>) {
    put_num(o, key, n.filter(|n| *n != 0));
}

/// Inserts a number unless unset (Go `omitempty` on `*int`).
fn put_num(o: &mut Obj, key: &str, n: Option<u32>) {
    if let Some(n) = n {
        o.insert(key.into(), n.into());
    }
}
