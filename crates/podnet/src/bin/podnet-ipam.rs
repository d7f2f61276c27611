//! `podnet-ipam`: the IPAM plugin binary, for other CNI plugins (host-local semantics).

use std::io::Read;

fn main() {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        eprintln!("podnet-ipam: cannot read stdin: {e}");
    }
    let outcome = podnet_cni_plugin::ipam_plugin::run(|k| std::env::var(k).ok(), &stdin);
    podnet::finish(outcome);
}
