//! Netlink operations against real namespaces (needs root).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use ipnet::IpNet;
use podnet_netdev::testing::TestNs;
use podnet_netdev::{BridgeSpec, Netlink, RouteSpec, VethSpec, PODNET_ROUTE_PROTO};

fn ip_json(ns: &TestNs, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip")
        .args(["-j", "-n", ns.name()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn veth_into_bridge_with_addresses_and_routes() {
    let host = TestNs::new("nd").unwrap();
    let pod = TestNs::new("nd").unwrap();
    let mut h = Netlink::in_ns(host.ns()).unwrap();
    let mut p = Netlink::in_ns(pod.ns()).unwrap();

    let spec = BridgeSpec {
        name: "br-test",
        mac: [0x02, 0, 0, 0, 0, 0x42],
        mtu: Some(1400),
        promisc: false,
        up: true,
    };
    assert!(h.create_bridge(&spec).unwrap());
    assert!(
        !h.create_bridge(&spec).unwrap(),
        "second create reports existing"
    );
    let br = h.require_link("br-test").unwrap();
    assert_eq!(br.mac, vec![2, 0, 0, 0, 0, 0x42]);
    assert!(br.up);

    let gw: IpNet = "10.9.0.1/24".parse().unwrap();
    let gw6: IpNet = "fd00:9::1/64".parse().unwrap();
    assert!(h.add_address(br.index, &gw).unwrap());
    assert!(!h.add_address(br.index, &gw).unwrap());
    h.add_address(br.index, &gw6).unwrap();

    h.create_veth(&VethSpec {
        name: "vh0",
        peer_name: "eth0",
        peer_ns: pod.ns(),
        mtu: Some(1400),
        peer_mac: Some([0x02, 1, 2, 3, 4, 5]),
        master: Some(br.index),
        up: true,
    })
    .unwrap();
    let vh = h.require_link("vh0").unwrap();
    assert_eq!(vh.master, Some(br.index));
    assert_eq!(vh.mtu, 1400);
    h.set_hairpin(vh.index).unwrap();
    let links = ip_json(&host, &["-d", "link", "show", "vh0"]);
    assert_eq!(links[0]["linkinfo"]["info_slave_data"]["hairpin"], true);

    let eth0 = p.require_link("eth0").unwrap();
    assert!(!eth0.up);
    p.set_up(eth0.index, false).unwrap();
    assert_eq!(eth0.mac_string(), "02:01:02:03:04:05");
    let a4: IpNet = "10.9.0.5/24".parse().unwrap();
    let a6: IpNet = "fd00:9::5/64".parse().unwrap();
    p.add_address(eth0.index, &a4).unwrap();
    p.add_address(eth0.index, &a6).unwrap();
    let default4 = RouteSpec::new(
        "0.0.0.0/0".parse().unwrap(),
        Some(gw.addr()),
        Some(eth0.index),
    );
    let default6 = RouteSpec::new("::/0".parse().unwrap(), Some(gw6.addr()), Some(eth0.index));
    assert!(p.add_route(&default4).unwrap());
    assert!(!p.add_route(&default4).unwrap());
    p.add_route(&default6).unwrap();
    let routes = p.routes().unwrap();
    let ours: Vec<_> = routes
        .iter()
        .filter(|r| r.protocol == PODNET_ROUTE_PROTO)
        .collect();
    assert_eq!(ours.len(), 2, "{routes:?}");

    // IPv6 is usable at once: no tentative flag, and the gateway answers.
    let addrs = ip_json(&pod, &["addr", "show", "eth0"]);
    let infos = addrs[0]["addr_info"].as_array().unwrap();
    let global = infos.iter().filter(|a| a["scope"] == "global");
    assert!(
        global.clone().count() == 2 && global.clone().all(|a| a.get("tentative").is_none()),
        "{infos:?}"
    );
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            pod.name(),
            "ping",
            "-6",
            "-c1",
            "-W2",
            "fd00:9::1",
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    assert!(p.delete_route(&default4).unwrap());
    assert!(!p.delete_route(&default4).unwrap());
    assert!(h.delete_link_by_name("vh0").unwrap());
    assert!(!h.delete_link_by_name("vh0").unwrap());
    assert!(p.link_by_name("eth0").unwrap().is_none());
}
