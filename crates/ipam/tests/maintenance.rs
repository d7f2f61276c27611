#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use common::{alloc_one, ip, key, store, v4_sets};
use podnet_ipam::{AttachmentKey, IpamError, Record};

#[test]
fn release_is_idempotent() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    alloc_one(&store, &s, "a");
    let rec = store.release(&key("a")).unwrap().unwrap();
    assert_eq!(rec.container_id, "a");
    assert_eq!(rec.ips, [ip("10.0.0.2")]);
    assert!(!store.dir().join("10.0.0.2").exists());
    assert!(store.release(&key("a")).unwrap().is_none());
    assert!(store.release(&key("never")).unwrap().is_none());
    assert!(store.get(&key("a")).unwrap().is_none());
}

#[test]
fn ip_files_use_host_local_format() {
    let (_tmp, store) = store();
    alloc_one(&store, &v4_sets("10.0.0.0/24"), "abc");
    let text = fs::read_to_string(store.dir().join("10.0.0.2")).unwrap();
    assert_eq!(text, "abc\r\neth0");
    let last = fs::read_to_string(store.dir().join("last_reserved_ip.0")).unwrap();
    assert_eq!(last, "10.0.0.2");
    let rec = store
        .dir()
        .join("attachments")
        .join(key("abc").record_file_name());
    let rec: Record = serde_json::from_str(&fs::read_to_string(rec).unwrap()).unwrap();
    assert_eq!(rec.ips, [ip("10.0.0.2")]);
}

#[test]
fn get_detects_tampered_and_missing_ip_files() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    alloc_one(&store, &s, "a");
    alloc_one(&store, &s, "b");
    assert_eq!(store.get(&key("a")).unwrap().unwrap().ips, [ip("10.0.0.2")]);

    fs::write(store.dir().join("10.0.0.2"), "someone\r\neth0").unwrap();
    let e = store.get(&key("a")).unwrap_err();
    assert!(matches!(e, IpamError::NotReserved { .. }), "{e}");

    fs::remove_file(store.dir().join("10.0.0.3")).unwrap();
    assert!(matches!(
        store.get(&key("b")),
        Err(IpamError::NotReserved { .. })
    ));

    // Release does not remove a file that names someone else.
    let rec = store.release(&key("a")).unwrap().unwrap();
    assert!(rec.ips.is_empty());
    assert!(store.dir().join("10.0.0.2").exists());
}

#[test]
fn corrupt_record_is_released_by_scan() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    alloc_one(&store, &s, "a");
    let path = store
        .dir()
        .join("attachments")
        .join(key("a").record_file_name());
    fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        store.get(&key("a")),
        Err(IpamError::CorruptRecord { .. })
    ));
    let rec = store.release(&key("a")).unwrap().unwrap();
    assert_eq!(rec.ips, [ip("10.0.0.2")]);
    assert!(!path.exists());
    assert!(!store.dir().join("10.0.0.2").exists());
}

#[test]
fn gc_releases_only_invalid_attachments_and_orphans() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    for id in ["keep", "drop1", "drop2"] {
        alloc_one(&store, &s, id);
    }
    // Orphan IP files: new format, legacy host-local format, and a legacy
    // file owned by a valid container.
    fs::write(store.dir().join("10.0.0.100"), "ghost\r\neth1").unwrap();
    fs::write(store.dir().join("10.0.0.101"), "oldghost").unwrap();
    fs::write(store.dir().join("10.0.0.102"), "keep").unwrap();
    fs::write(store.dir().join("10.0.0.103"), "ghost\r\neth1").unwrap();
    fs::write(store.dir().join("attachments/.tmp.stale"), "x").unwrap();

    let mut released = store.gc(&[key("keep")]).unwrap();
    released.sort_by(|a, b| a.container_id.cmp(&b.container_id));
    let summary: Vec<(String, String, Vec<String>)> = released
        .iter()
        .map(|r| {
            let ips = r.ips.iter().map(ToString::to_string).collect();
            (r.container_id.clone(), r.ifname.clone(), ips)
        })
        .collect();
    let mut ghost_ips = summary[2].2.clone();
    ghost_ips.sort();
    assert_eq!(
        summary[0],
        ("drop1".into(), "eth0".into(), vec!["10.0.0.3".into()])
    );
    assert_eq!(
        summary[1],
        ("drop2".into(), "eth0".into(), vec!["10.0.0.4".into()])
    );
    assert_eq!((&summary[2].0[..], &summary[2].1[..]), ("ghost", "eth1"));
    assert_eq!(ghost_ips, ["10.0.0.100", "10.0.0.103"]);
    assert_eq!(
        summary[3],
        ("oldghost".into(), String::new(), vec!["10.0.0.101".into()])
    );
    assert_eq!(released.len(), 4);

    assert!(store.get(&key("keep")).unwrap().is_some());
    assert!(store.dir().join("10.0.0.102").exists());
    assert!(!store.dir().join("attachments/.tmp.stale").exists());
    let left: Vec<String> = fs::read_dir(store.dir().join("attachments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [key("keep").record_file_name()]);
    assert!(store.gc(&[key("keep")]).unwrap().is_empty());
}

#[test]
fn crash_before_ip_files_is_recoverable() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    // A record whose IP files were never created (killed after the record).
    let ghost = AttachmentKey::new("crashed", "eth0");
    let rec = Record {
        container_id: "crashed".into(),
        ifname: "eth0".into(),
        ips: vec![ip("10.0.0.2")],
    };
    let path = store
        .dir()
        .join("attachments")
        .join(ghost.record_file_name());
    fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    // The address is not reserved, so someone else can take it ...
    assert_eq!(alloc_one(&store, &s, "other"), "10.0.0.2");
    // ... and releasing the crashed attachment must not free it.
    let released = store.release(&ghost).unwrap().unwrap();
    assert!(released.ips.is_empty());
    assert!(!path.exists());
    assert!(store.get(&key("other")).unwrap().is_some());

    // Same through gc.
    fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    let released = store.gc(&[key("other")]).unwrap();
    assert_eq!(released.len(), 1);
    assert!(released[0].ips.is_empty());
    assert!(!path.exists());
    assert!(store.get(&key("other")).unwrap().is_some());
}

#[test]
fn crash_after_some_ip_files_is_recoverable() {
    let (_tmp, store) = store();
    // Record lists two IPs; only one file got created before the crash.
    let k = AttachmentKey::new("half", "eth0");
    let rec = Record {
        container_id: "half".into(),
        ifname: "eth0".into(),
        ips: vec![ip("10.0.0.5"), ip("fd00::5")],
    };
    let path = store.dir().join("attachments").join(k.record_file_name());
    fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    fs::write(store.dir().join("10.0.0.5"), "half\r\neth0").unwrap();
    assert!(matches!(store.get(&k), Err(IpamError::NotReserved { .. })));
    let released = store.release(&k).unwrap().unwrap();
    assert_eq!(released.ips, [ip("10.0.0.5")]);
    assert!(!store.dir().join("10.0.0.5").exists());
    assert!(!path.exists());
}

#[test]
fn ip_files_without_record_are_collected() {
    let (_tmp, store) = store();
    fs::write(store.dir().join("10.0.0.9"), "lost\r\neth0").unwrap();
    // DEL is O(1) and does not scan, so it finds nothing ...
    assert!(store.release(&key("lost")).unwrap().is_none());
    // ... but gc does.
    let released = store.gc(&[]).unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].ips, [ip("10.0.0.9")]);
    assert!(!store.dir().join("10.0.0.9").exists());
}

#[test]
fn release_frees_ip_files_torn_by_a_kill() {
    let (_dir, store) = store();
    let sets = v4_sets("10.1.0.0/24");
    let a = store.allocate(&key("a"), &sets, &[]).unwrap();
    let path = store.dir().join(a[0].address.addr().to_string());
    // A kill between O_EXCL create and write leaves an empty (or partial) file.
    std::fs::write(&path, b"").unwrap();
    let freed = store.release(&key("a")).unwrap().unwrap();
    assert_eq!(freed.ips, vec![a[0].address.addr()]);
    assert!(!path.exists());
    // Someone else's content is never taken for a torn write.
    let b = store.allocate(&key("b"), &sets, &[]).unwrap();
    let path_b = store.dir().join(b[0].address.addr().to_string());
    std::fs::write(&path_b, b"other\r\neth0").unwrap();
    assert!(store.release(&key("b")).unwrap().unwrap().ips.is_empty());
    assert!(path_b.exists());
}
