//! File modes must not depend on the umask. Kept in its own test binary
//! because the umask is process-wide.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{key, v4_sets};
use nix::sys::stat::{umask, Mode};
use podnet_ipam::Store;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn private_modes_even_with_umask_000() {
    let old = umask(Mode::empty());
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let store = Store::open(&data_dir, "net1").unwrap();
    store
        .allocate(&key("a"), &v4_sets("10.0.0.0/24"), &[])
        .unwrap();
    store
        .allocate(&key("b"), &v4_sets("10.0.0.0/24"), &[])
        .unwrap();
    store.release(&key("b")).unwrap();
    umask(old);

    assert_eq!(mode(&data_dir), 0o755);
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&store.dir().join("attachments")), 0o700);
    let mut files = 0;
    for dir in [store.dir().to_path_buf(), store.dir().join("attachments")] {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files += 1;
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
    // lock, last_reserved_ip.0, the IP file of "a" and its record.
    assert_eq!(files, 4);
}

#[test]
fn existing_loose_directory_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net1");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(tmp.path(), "net1").unwrap();
    assert_eq!(mode(store.dir()), 0o700);
}
