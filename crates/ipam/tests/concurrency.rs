#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;

use common::v4_sets;
use podnet_ipam::{AttachmentKey, Store};

const THREADS: usize = 16;
const PER_THREAD: usize = 8;

#[test]
fn concurrent_allocations_never_collide() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = Arc::new(tmp.path().to_path_buf());
    let sets = Arc::new(v4_sets("10.20.0.0/24"));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (data_dir, sets, barrier) = (data_dir.clone(), sets.clone(), barrier.clone());
            thread::spawn(move || {
                // Each thread opens its own store: separate lock descriptions.
                let store = Store::open(&data_dir, "net1").unwrap();
                barrier.wait();
                (0..PER_THREAD)
                    .map(|i| {
                        let key = AttachmentKey::new(format!("c{t}-{i}"), "eth0");
                        store.allocate(&key, &sets, &[]).unwrap()[0].address.addr()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), THREADS * PER_THREAD);
    assert_eq!(distinct.len(), all.len());

    let store = Store::open(&data_dir, "net1").unwrap();
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let key = AttachmentKey::new(format!("c{t}-{i}"), "eth0");
            assert!(store.get(&key).unwrap().is_some());
        }
    }
}

#[test]
fn concurrent_allocate_and_release_keep_store_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = Arc::new(v4_sets("10.30.0.0/28"));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (dir, sets) = (tmp.path().to_path_buf(), sets.clone());
            thread::spawn(move || {
                let store = Store::open(&dir, "net1").unwrap();
                for i in 0..20 {
                    let key = AttachmentKey::new(format!("c{t}-{i}"), "eth0");
                    store.allocate(&key, &sets, &[]).unwrap();
                    assert!(store.get(&key).unwrap().is_some());
                    store.release(&key).unwrap().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = Store::open(tmp.path(), "net1").unwrap();
    assert!(store.gc(&[]).unwrap().is_empty());
}
