//! Process CPU time and resident memory, read from `/proc/self` (Linux; zeros elsewhere).

/// One sample of this process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time since start, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// Sample the current process.
pub fn sample() -> ProcessSample {
    // Linux reports CPU time in clock ticks of 100 Hz and memory in 4 KiB pages.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_SIZE: u64 = 4096;
    let mut s = ProcessSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may contain spaces) start past the last ')'.
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state); utime is field 14, stime field 15.
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_seconds = (ticks(11) + ticks(12)) as f64 / TICKS_PER_SECOND;
        }
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        s.rss_bytes = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * PAGE_SIZE;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_has_resident_memory() {
        if cfg!(target_os = "linux") {
            assert!(sample().rss_bytes > 0);
        }
    }
}
