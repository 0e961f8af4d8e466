//! libFuzzer entry point of [`tracebench_fuzz::search_params`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::search_params(data));
