//! The incremental compiler against the whole compile: after every change its state is the
//! previous state plus its plan, and means what a fresh compile of the same objects means.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet_proxy::state::{Key, SetKind, Value};
use podnet_proxy::{compile, service_ports, Compiler, State};
use serde_json::json;

/// The state with slot maps replaced by each frontend's set of endpoints (slot numbers
/// depend on history).
type Normal = (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<SocketAddr>>,
    BTreeSet<String>,
);

fn normal(s: &State) -> Normal {
    let mut plain = BTreeMap::new();
    let mut slots: BTreeMap<String, BTreeSet<SocketAddr>> = BTreeMap::new();
    for (id, elements) in &s.sets {
        for (k, v) in elements {
            match (k, v) {
                (Key::Slot(fe, _), Value::Backend(b))
                    if matches!(id.kind, SetKind::Endpoints | SetKind::ClusterEndpoints) =>
                {
                    slots
                        .entry(format!("{} {fe}", id.name()))
                        .or_default()
                        .insert(*b);
                }
                _ => {
                    plain
                        .entry(id.name())
                        .or_insert_with(BTreeSet::new)
                        .insert(format!("{k}{v}"));
                }
            }
        }
    }
    (plain, slots, s.chains.keys().cloned().collect())
}

fn whole(svcs: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> State {
    let mut problems = Vec::new();
    let ports = service_ports(
        svcs.iter().map(|s| s.as_ref()),
        slices.iter().map(|s| s.as_ref()),
        &mut problems,
    );
    compile(&ports, &node("node-1"), None).state
}

fn svc(i: usize, extra: serde_json::Value) -> Arc<Service> {
    let mut spec = json!({"clusterIPs": [format!("10.96.1.{}", i + 1)], "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec["ports"][0]["name"] = json!("http");
    Arc::new(service("inc", &format!("s{i}"), spec))
}

fn slc(i: usize, part: &str, eps: &[(&str, &str)]) -> Arc<EndpointSlice> {
    Arc::new(slice(
        "inc",
        &format!("s{i}"),
        part,
        "IPv4",
        json!([{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
        eps.iter().map(|(a, n)| ready(a, n)).collect(),
    ))
}

struct Check {
    c: Compiler,
    prev: State,
}

impl Check {
    fn step(
        &mut self,
        svcs: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> podnet_proxy::Update {
        let up = self.c.update(svcs, slices, &node("node-1"));
        let mut replayed = self.prev.clone();
        up.plan.apply_to(&mut replayed);
        assert_eq!(
            &replayed,
            self.c.state(),
            "previous state + plan = new state"
        );
        assert_eq!(
            normal(self.c.state()),
            normal(&whole(svcs, slices)),
            "same meaning as a whole compile"
        );
        self.prev = self.c.state().clone();
        up
    }
}

#[test]
fn incremental_updates_match_the_whole_compile() {
    let mut svcs: Vec<Arc<Service>> = (0..30).map(|i| svc(i, json!({}))).collect();
    let mut slices: Vec<Arc<EndpointSlice>> = (0..30)
        .map(|i| {
            slc(
                i,
                "a",
                &[
                    ("10.244.0.5", "node-1"),
                    ("10.244.1.5", "node-2"),
                    ("10.244.2.5", "node-3"),
                ],
            )
        })
        .collect();
    let mut k = Check {
        c: Compiler::new(),
        prev: State::default(),
    };
    let up = k.step(&svcs, &slices);
    assert!(up.full);

    // Nothing changed: nothing recompiled, nothing to write.
    let up = k.step(&svcs, &slices);
    assert_eq!((up.recompiled, up.plan.ops()), (0, 0));

    // One endpoint replaced: one Service recompiled, one slot per port rewritten (2 ops each).
    slices[4] = slc(
        4,
        "a",
        &[
            ("10.244.0.5", "node-1"),
            ("10.244.1.9", "node-2"),
            ("10.244.2.5", "node-3"),
        ],
    );
    let up = k.step(&svcs, &slices);
    assert_eq!(up.recompiled, 1);
    assert_eq!(up.plan.ops(), 4, "{:#?}", up.plan);
    // The UDP flows to the endpoint that left are stale.
    assert_eq!(up.stale_udp.len(), 1);
    assert_eq!(up.stale_udp[0].1.to_string(), "10.244.1.5:5353");

    // One endpoint fewer: the frontends move to the 2-endpoint chain and map (created).
    slices[4] = slc(
        4,
        "a",
        &[("10.244.0.5", "node-1"), ("10.244.2.5", "node-3")],
    );
    let up = k.step(&svcs, &slices);
    assert!(
        !up.plan.add_chains.is_empty() && !up.plan.add_maps.is_empty(),
        "{:#?}",
        up.plan
    );
    // Back: the 2-endpoint chain and map are no longer used by anyone.
    slices[4] = slc(
        4,
        "a",
        &[
            ("10.244.0.5", "node-1"),
            ("10.244.1.5", "node-2"),
            ("10.244.2.5", "node-3"),
        ],
    );
    let up = k.step(&svcs, &slices);
    assert!(
        !up.plan.delete_chains.is_empty() && !up.plan.delete_maps.is_empty(),
        "{:#?}",
        up.plan
    );

    // A second slice, a Service becoming NodePort with eTP Local and affinity, one deleted,
    // one added without endpoints.
    slices.push(slc(7, "b", &[("10.244.3.7", "node-4")]));
    svcs[9] = svc(
        9,
        json!({"type": "NodePort", "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
        "ports": [{"port": 80, "nodePort": 30009}, {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30010}]}),
    );
    svcs.remove(12);
    slices.remove(12);
    svcs.push(svc(40, json!({})));
    let up = k.step(&svcs, &slices);
    assert_eq!(up.recompiled, 3, "s7, s9 and s40 (s12 is only taken out)");
    // Everything undone.
    svcs[9] = svc(9, json!({}));
    let up = k.step(&svcs, &slices);
    assert_eq!(up.recompiled, 1);
}

#[test]
fn a_contested_frontend_goes_to_the_first_service_and_back() {
    let svcs = vec![
        svc(1, json!({})),
        svc(2, json!({"clusterIPs": ["10.96.1.2"]})),
    ];
    // s1 and s2 both claim 10.96.1.2.
    let mut svcs2 = svcs.clone();
    svcs2[0] = svc(1, json!({"clusterIPs": ["10.96.1.2"]}));
    let slices = vec![
        slc(1, "a", &[("10.244.0.5", "node-1")]),
        slc(2, "a", &[("10.244.1.5", "node-2")]),
    ];
    let mut k = Check {
        c: Compiler::new(),
        prev: State::default(),
    };
    k.step(&svcs, &slices);
    let up = k.step(&svcs2, &slices);
    assert!(
        up.full,
        "a contested frontend falls back to the whole compile"
    );
    assert!(
        k.c.problems().iter().any(|p| p.service == "inc/s2"),
        "{:?}",
        k.c.problems()
    );
    // s1 lets go: s2 gets its frontend back.
    k.step(&svcs2[1..], &slices);
    assert!(k.c.problems().is_empty(), "{:?}", k.c.problems());
}

#[test]
fn a_change_that_contests_a_frontend_still_writes_the_change() {
    // s1 on 10.96.1.2, s2 on 10.96.1.3; then s2 moves onto s1's ClusterIP: its old frontends
    // must go from the kernel even though the whole compile settles the contest.
    let svcs = vec![svc(1, json!({})), svc(2, json!({}))];
    let slices = vec![
        slc(1, "a", &[("10.244.0.5", "node-1")]),
        slc(2, "a", &[("10.244.1.5", "node-2")]),
    ];
    let mut k = Check {
        c: Compiler::new(),
        prev: State::default(),
    };
    k.step(&svcs, &slices);
    let mut moved = svcs.clone();
    moved[1] = svc(2, json!({"clusterIPs": ["10.96.1.2"]}));
    let up = k.step(&moved, &slices);
    assert!(up.full);
    assert!(k.c.problems().iter().any(|p| p.service == "inc/s2"));
    // And back.
    k.step(&svcs, &slices);
    assert!(k.c.problems().is_empty(), "{:?}", k.c.problems());
}

#[test]
fn objects_replaced_in_place_recompile_only_their_services() {
    let mut svcs = vec![svc(1, json!({})), svc(2, json!({}))];
    let orphan = |ep: &str| {
        Arc::new(slice(
            "inc",
            "s3",
            "a",
            "IPv4",
            json!([{"name": "http", "port": 8080}]),
            vec![ready(ep, "node-2")],
        ))
    };
    let mut slices = vec![
        slc(1, "a", &[("10.244.0.5", "node-1")]),
        slc(2, "a", &[("10.244.1.5", "node-2")]),
        orphan("10.244.3.5"),
    ];
    let mut k = Check {
        c: Compiler::new(),
        prev: State::default(),
    };
    k.step(&svcs, &slices);
    // An endpoint of s2 changes.
    slices[1] = slc(2, "a", &[("10.244.1.6", "node-2")]);
    assert_eq!(k.step(&svcs, &slices).recompiled, 1);
    // s1's slice is relabelled to s2: s1 loses its endpoints, s2 gains them.
    slices[0] = slc(2, "b", &[("10.244.0.5", "node-1")]);
    assert_eq!(k.step(&svcs, &slices).recompiled, 2);
    // A slice of no Service changes: nothing to do.
    slices[2] = orphan("10.244.3.6");
    let up = k.step(&svcs, &slices);
    assert_eq!((up.recompiled, up.plan.ops()), (0, 0));
    // Its Service comes (one more object: the scan) and finds it.
    svcs.push(Arc::new(service(
        "inc",
        "s3",
        json!({"clusterIPs": ["10.96.1.9"], "ports": [{"name": "http", "port": 80}]}),
    )));
    k.step(&svcs, &slices);
    assert!(k
        .c
        .state()
        .sets
        .values()
        .flat_map(|s| s.values())
        .any(|v| v.to_string().contains("10.244.3.6")));
    // A Service object replaced in place (type change).
    svcs[0] = svc(1, json!({"type": "NodePort"}));
    assert_eq!(k.step(&svcs, &slices).recompiled, 1);
}
