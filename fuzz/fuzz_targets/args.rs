//! `CNI_ARGS` parsing (`K=V;K2=V2`). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_cni_spec::{CniArgs, K8S_ARGS};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(args) = CniArgs::parse(&s) {
        let _ = args.is_empty();
        let _ = args.ignore_unknown();
        let _ = args.check_known(&K8S_ARGS);
        for (k, _) in args.pairs() {
            assert!(
                args.get(k).is_some(),
                "key {k:?} listed by pairs() but not found by get()"
            );
        }
    }
});
