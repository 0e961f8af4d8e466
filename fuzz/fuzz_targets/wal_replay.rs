//! libFuzzer entry point of [`tracebench_fuzz::wal_replay`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::wal_replay(data));
