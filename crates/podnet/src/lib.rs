//! Shared pieces of the podnet binaries.

pub mod cni_exec;
pub mod demo;
pub mod interrupt;
pub mod stats;

use std::io::Write;

/// mimalloc for every podnet binary: the proxy's full sync allocates and frees millions of
/// small objects, where it is faster than glibc's allocator and returns memory sooner.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints a plugin's answer and exits with 0 or 1.
pub fn finish(outcome: podnet_cni_plugin::Outcome) -> ! {
    let mut out = std::io::stdout().lock();
    if !outcome.stdout.is_empty() {
        let _ = writeln!(out, "{}", outcome.stdout);
    }
    let _ = out.flush();
    std::process::exit(i32::from(outcome.failed));
}
