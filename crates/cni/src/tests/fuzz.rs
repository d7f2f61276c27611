//! Property-style tests: arbitrary input must never panic.

use serde_json::Value;

use crate::{CniArgs, CniResult, Version};

/// xorshift64*: small deterministic pseudo-random generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| {
                if alphabet.is_empty() || self.below(8) == 0 {
                    self.next() as u8
                } else {
                    alphabet[self.below(alphabet.len())]
                }
            })
            .collect()
    }
}

const JSONISH: &[u8] = b"{}[]\",:0123456789.-eE truenlfasd/\\abcdefABCDEF:;=";

const SEED_DOC: &str = r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"aa:bb","mtu":1500,"sandbox":"/x","socketPath":"/s","pciID":"0"}],"ips":[{"version":"4","interface":0,"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1","mtu":1,"advmss":2,"priority":3,"table":4,"scope":5}],"dns":{"nameservers":["1.1.1.1"],"domain":"d","search":["s"],"options":["o"]}}"#;

/// Feeds `bytes` to every parser; returns how many result decodes succeeded.
fn feed(bytes: &[u8]) -> usize {
    let mut decoded = 0;
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        for v in Version::ALL {
            if let Ok(r) = CniResult::from_value(&value, v) {
                let back = CniResult::from_value(&r.to_value(v), v);
                assert_eq!(back.ok(), Some(r));
                decoded += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(bytes);
    if let Ok(args) = CniArgs::parse(&text) {
        let _ = args.ignore_unknown();
        let _ = args.check_known(&crate::K8S_ARGS);
    }
    decoded
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        feed(&rng.bytes(JSONISH, 64));
    }
}

#[test]
fn mutated_results_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let seed = SEED_DOC.as_bytes();
    assert_eq!(feed(seed), Version::ALL.len());
    let mut decoded = 0;
    for _ in 0..20_000 {
        let mut doc = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(doc.len());
            match rng.below(3) {
                0 => doc[at] = JSONISH[rng.below(JSONISH.len())],
                1 => {
                    doc.remove(at);
                }
                _ => doc.insert(at, rng.next() as u8),
            }
        }
        decoded += feed(&doc);
    }
    assert!(decoded > 1_000, "mutations too destructive: {decoded}");
}
