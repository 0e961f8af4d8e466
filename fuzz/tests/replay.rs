//! Replays every committed corpus (`fuzz/corpus/<target>/`) through its target under a
//! plain `cargo test`, then runs a short deterministic mutation pass over each corpus
//! (bit flips, byte changes, truncation, duplication, splicing two inputs), so CI checks
//! every finding stays fixed and pokes around it without the fuzzing toolchain.
//!
//! `FUZZ_REPLAY_MUTATIONS` sets the mutated inputs per target (default 300; 0 skips);
//! `FUZZ_REPLAY_SEED` (a number) picks another sequence of mutations (default fixed, so a
//! failure reproduces; a failing input is also saved under the temp dir).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use tracebench_fuzz::{TARGETS, Target};

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus/{name} is empty");
    files
}

/// Run one input, turning a panic into a failure that names the input.
fn run(target: Target, name: &str, what: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| target(data))).is_err() {
        let path = std::env::temp_dir().join(format!("fuzz-replay-{name}"));
        let _ = std::fs::write(&path, data);
        panic!(
            "target {name} failed on {what} (input saved to {})",
            path.display()
        );
    }
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'\n'];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => v.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let (a, n) = (rng.below(len), 1 + rng.below(16));
                let chunk: Vec<u8> = v[a..(a + n).min(len)].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                v.drain(a..b);
            }
            5 => {
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let at = rng.below(len + 1);
                v.insert(at, rng.next() as u8);
            }
        }
    }
    v
}

fn replay(name: &str) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap();
    let files = corpus(name);
    for (file, data) in &files {
        run(target, name, &format!("corpus/{name}/{file}"), data);
    }
    let rounds: usize = std::env::var("FUZZ_REPLAY_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("FUZZ_REPLAY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng((seed ^ name.len() as u64) | 1);
    for round in 0..rounds {
        let a = &files[rng.below(files.len())].1;
        let b = &files[rng.below(files.len())].1;
        let m = mutate(&mut rng, a, b);
        run(target, name, &format!("mutation {round}"), &m);
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_replay_test() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "no replay test for {name}");
            }
        }
    };
}

replay_tests!(
    wire_split,
    otlp_json,
    otlp_gzip,
    traceql,
    logfmt_tags,
    search_params,
    config,
    scenario,
    wal_replay,
    rb1_block,
    rb2_block,
    block_meta,
);
