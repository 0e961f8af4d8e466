//! libFuzzer entry point of [`tracebench_fuzz::traceql`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::traceql(data));
