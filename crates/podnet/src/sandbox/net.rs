//! Namespaces and processes of the sandbox: everything it makes lives in network namespaces
//! named `psb.NAME.*`, and every process it starts runs in one of them, so `down` can find and
//! remove all of it from the namespace list alone, also after a crash.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Runs `ip ARGS…`; an error carries its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Network namespaces whose name starts with `prefix`.
pub fn list_netns(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Processes in namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// Starts `program args…` in namespace `ns` (through `ip netns exec`, which also makes
/// `/etc/netns/NS/resolv.conf` visible as `/etc/resolv.conf`), in its own process group,
/// detached from the caller, output to `log`. Returns its pid (= process group).
pub fn spawn_in(ns: &str, program: &Path, args: &[String], log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} in {ns}", program.display()))?;
    Ok(child.id())
}

/// Stops process group `pid`: SIGTERM, then SIGKILL after `grace`.
pub fn stop_group(pid: u32, grace: Duration) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    let pg = Pid::from_raw(raw);
    let _ = killpg(pg, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Kills every process in namespace `ns`, then deletes it.
pub fn remove_netns(ns: &str) {
    for pid in netns_pids(ns) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = ip(&["netns", "del", ns]);
    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
}

/// Creates namespace `ns` with loopback up.
pub fn add_netns(ns: &str) -> Result<()> {
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])
}
