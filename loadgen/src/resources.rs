//! Backend CPU and memory while the load runs.
//!
//! * embedded target: the backend's own threads (`rb-*` runtime workers and the
//!   `wal-writer`) are summed from `/proc/self/task/*/stat`, so the generator's CPU is not
//!   counted; RSS is the whole process (one address space) and is marked as such;
//! * a local process (`pid`): `/proc/<pid>/stat` and `statm`;
//! * a remote target: its Prometheus `/metrics` (`process_cpu_seconds_total`,
//!   `process_resident_memory_bytes`, plus Tempo's `tempo_discarded_spans_total` and
//!   `tempo_distributor_spans_received_total` when present; discards are also kept by
//!   their `reason` label, since the sum alone does not say whether a limit or bad data
//!   dropped them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::report::model::{ResourceSample, Resources};

/// Where to read resource use from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Threads of this process whose name starts with one of the prefixes.
    Threads(Vec<&'static str>),
    /// Another local process.
    Pid(u32),
    /// A Prometheus endpoint.
    Metrics(String),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Threads(_) => "embedded",
            Source::Pid(_) => "process",
            Source::Metrics(_) => "metrics",
        }
    }
}

/// Tempo's discard counter.
const DISCARDED: &str = "tempo_discarded_spans_total";

/// One raw reading.
#[derive(Debug, Clone, Default)]
struct Reading {
    cpu_seconds: f64,
    rss_bytes: u64,
    discarded: Option<f64>,
    discarded_by_reason: BTreeMap<String, f64>,
    received: Option<f64>,
}

const TICKS: f64 = 100.0;
const PAGE: u64 = 4096;

fn stat_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

fn statm_rss(statm: &str) -> Option<u64> {
    statm
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|p| p * PAGE)
}

/// CPU seconds of this process's threads whose name starts with a prefix.
pub fn thread_cpu_seconds(prefixes: &[&str]) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let comm = comm.trim();
            if !prefixes.iter().any(|p| comm.starts_with(p)) {
                return None;
            }
            stat_cpu(&std::fs::read_to_string(t.path().join("stat")).ok()?)
        })
        .sum()
}

/// CPU seconds of this whole process.
pub fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu(&s))
        .unwrap_or(0.0)
}

/// Sum of every sample of `metric` (any labels) in Prometheus text.
pub fn metric_sum(text: &str, metric: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum)
}

/// Sums of every sample of `metric` by the value of its label `label` (samples without the
/// label under `""`). Empty when the metric is absent.
pub fn metric_by_label(text: &str, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(inner) => match split_labels(inner) {
                Some(x) => x,
                None => continue,
            },
            None if rest.starts_with(' ') => (BTreeMap::new(), rest),
            None => continue,
        };
        let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let key = labels.get(label).cloned().unwrap_or_default();
        *out.entry(key).or_insert(0.0) += v;
    }
    out
}

/// Parse `a="x",b="y\"z"} 3` (after the opening brace) into the labels and the rest.
fn split_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_owned();
        let quoted = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(name, value);
        rest = &quoted[end + 1..];
    }
}

async fn read(source: &Source, http: &reqwest::Client) -> Option<Reading> {
    match source {
        Source::Threads(prefixes) => Some(Reading {
            cpu_seconds: thread_cpu_seconds(prefixes),
            rss_bytes: std::fs::read_to_string("/proc/self/statm")
                .ok()
                .and_then(|s| statm_rss(&s))
                .unwrap_or(0),
            ..Reading::default()
        }),
        Source::Pid(pid) => Some(Reading {
            cpu_seconds: stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?,
            rss_bytes: statm_rss(&std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?)?,
            ..Reading::default()
        }),
        Source::Metrics(url) => {
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            Some(Reading {
                cpu_seconds: metric_sum(&text, "process_cpu_seconds_total")?,
                rss_bytes: metric_sum(&text, "process_resident_memory_bytes").unwrap_or(0.0) as u64,
                discarded: metric_sum(&text, DISCARDED),
                discarded_by_reason: metric_by_label(&text, DISCARDED, "reason"),
                received: metric_sum(&text, "tempo_distributor_spans_received_total"),
            })
        }
    }
}

/// Samples resources once a second until finished.
pub struct Sampler {
    source: Source,
    started: Instant,
    first: Option<Reading>,
    readings: Arc<Mutex<Vec<(f64, Reading)>>>,
    task: JoinHandle<()>,
    http: reqwest::Client,
}

impl Sampler {
    /// Take a first reading and start sampling.
    pub async fn start(source: Source) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        let first = read(&source, &http).await;
        let started = Instant::now();
        let readings = Arc::new(Mutex::new(Vec::new()));
        let (src, out, client) = (source.clone(), readings.clone(), http.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(r) = read(&src, &client).await {
                    out.lock().push((started.elapsed().as_secs_f64(), r));
                }
            }
        });
        Sampler {
            source,
            started,
            first,
            readings,
            task,
            http,
        }
    }

    /// Stop sampling and summarize; `spans_accepted` over the run gives per-span figures.
    pub async fn finish(self, spans_accepted: u64) -> Option<Resources> {
        self.task.abort();
        let last = read(&self.source, &self.http).await;
        let elapsed = self.started.elapsed().as_secs_f64();
        let first = self.first?;
        let mut readings = self.readings.lock().clone();
        if let Some(l) = last {
            readings.push((elapsed, l));
        }
        let end = readings.last().map(|(_, r)| r.clone())?;
        let mut samples = Vec::with_capacity(readings.len());
        let (mut prev_t, mut prev_cpu) = (0.0, first.cpu_seconds);
        for (t, r) in &readings {
            let dt = (t - prev_t).max(1e-3);
            samples.push(ResourceSample {
                t: t.round() as u32,
                cpu_cores: ((r.cpu_seconds - prev_cpu) / dt).max(0.0),
                rss_bytes: r.rss_bytes,
            });
            (prev_t, prev_cpu) = (*t, r.cpu_seconds);
        }
        let cpu = (end.cpu_seconds - first.cpu_seconds).max(0.0);
        let avg_rss = if samples.is_empty() {
            end.rss_bytes
        } else {
            samples.iter().map(|s| s.rss_bytes).sum::<u64>() / samples.len() as u64
        };
        let peak = samples
            .iter()
            .map(|s| s.rss_bytes)
            .max()
            .unwrap_or(end.rss_bytes);
        let rate = spans_accepted as f64 / elapsed.max(1e-3);
        // Tempo creates a labelled counter at its first increment: absent at the first
        // scrape but present at the last means it started from zero.
        let scraped = matches!(self.source, Source::Metrics(_));
        let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).max(0.0) as u64),
            (None, Some(b)) if scraped => Some(b.max(0.0) as u64),
            _ => None,
        };
        let discarded_by_reason = end
            .discarded_by_reason
            .iter()
            .map(|(k, b)| {
                let a = first.discarded_by_reason.get(k).copied().unwrap_or(0.0);
                (k.clone(), (b - a).max(0.0) as u64)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Some(Resources {
            source: self.source.name().to_owned(),
            samples,
            cpu_seconds: cpu,
            avg_cores: cpu / elapsed.max(1e-3),
            avg_rss_bytes: avg_rss,
            peak_rss_bytes: peak,
            spans_per_core_second: if cpu > 0.0 {
                spans_accepted as f64 / cpu
            } else {
                0.0
            },
            rss_bytes_per_1k_spans_per_s: if rate > 0.0 {
                avg_rss as f64 / (rate / 1000.0)
            } else {
                0.0
            },
            discarded_spans: delta(first.discarded, end.discarded),
            discarded_by_reason,
            received_spans: delta(first.received, end.received),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn metric_sums_over_labels() {
        let text = "# HELP x\ntempo_discarded_spans_total{reason=\"a\"} 3\ntempo_discarded_spans_total{reason=\"b\"} 4.5\ntempo_discarded_spans_total_other 9\nprocess_cpu_seconds_total 1.25\n";
        assert_eq!(metric_sum(text, "tempo_discarded_spans_total"), Some(7.5));
        assert_eq!(metric_sum(text, "process_cpu_seconds_total"), Some(1.25));
        assert_eq!(metric_sum(text, "missing"), None);
    }

    #[test]
    fn metric_splits_by_a_label() {
        let text = "# TYPE tempo_discarded_spans_total counter\n\
            tempo_discarded_spans_total{reason=\"live_traces_exceeded\",tenant=\"a\"} 300000\n\
            tempo_discarded_spans_total{tenant=\"b\",reason=\"live_traces_exceeded\"} 30000\n\
            tempo_discarded_spans_total{reason=\"odd \\\"quoted\\\", value\",tenant=\"a\"} 2\n\
            tempo_discarded_spans_total{tenant=\"a\"} 1 1700000000000\n\
            tempo_discarded_spans_total_other{reason=\"x\"} 9\n";
        let by = metric_by_label(text, DISCARDED, "reason");
        assert_eq!(by.get("live_traces_exceeded"), Some(&330000.0));
        assert_eq!(by.get("odd \"quoted\", value"), Some(&2.0));
        assert_eq!(by.get(""), Some(&1.0), "no reason label: {by:?}");
        assert_eq!(by.len(), 3, "{by:?}");
        assert!(metric_by_label(text, "missing", "reason").is_empty());
        assert!(metric_by_label("x{a=\"unterminated} 1\n", "x", "a").is_empty());
    }

    #[test]
    fn own_process_is_readable() {
        if cfg!(target_os = "linux") {
            assert!(
                std::fs::read_to_string("/proc/self/stat")
                    .ok()
                    .and_then(|s| stat_cpu(&s))
                    .is_some()
            );
        }
    }
}
