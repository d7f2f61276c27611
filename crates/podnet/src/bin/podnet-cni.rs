//! `podnet-cni`: the CNI plugin binary. Answers on stdout with exactly one JSON object
//! (or nothing, for a successful DEL/CHECK/STATUS/GC); logs go to stderr only.

use std::io::Read;

fn main() {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        eprintln!("podnet-cni: cannot read stdin: {e}");
    }
    let outcome = podnet_cni_plugin::run(|k| std::env::var(k).ok(), &stdin);
    podnet::finish(outcome);
}
