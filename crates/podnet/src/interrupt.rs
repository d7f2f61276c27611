//! Ctrl-C for the benchmark binaries: signals become a stop flag checked between steps, so an
//! interrupted run still unwinds through its namespace guards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};

/// Blocks SIGINT/SIGTERM/SIGHUP in this thread (and so in the threads and processes it starts
/// later: a running step finishes instead of dying half-way) and sets the returned flag when
/// one arrives; `who` names the binary in the message.
pub fn watch_signals(who: &'static str) -> Result<Arc<AtomicBool>> {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    set.thread_block().context("blocking signals")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || loop {
        match set.wait() {
            Ok(sig) => {
                eprintln!("{who}: {sig}, stopping after the current step");
                flag.store(true, Ordering::SeqCst);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    });
    Ok(stop)
}

/// An error once the flag is set.
pub fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
