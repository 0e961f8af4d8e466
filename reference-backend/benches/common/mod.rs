//! Helpers shared by the benchmarks: span and request builders, a backend child process,
//! `/proc` CPU accounting and Prometheus text parsing.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use reference_backend::ListenAddrs;
use tempo_api::trace_id::TraceId;

/// Small deterministic PRNG (splitmix64): reproducible inputs without a `rand` dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn trace_id(&mut self) -> TraceId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        id[0] |= 1; // never all zero
        id
    }
}

/// splitmix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random-looking, unique trace id derived from a number.
pub fn trace_id_of(n: u64) -> TraceId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(n ^ 0x5eed).to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    id[0] |= 1;
    id
}

fn kv_str(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn kv_int(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

const ROUTES: [&str; 6] = [
    "/api/v1/orders/{id}",
    "/api/v1/users/{id}",
    "/api/v1/cart/{id}",
    "/api/v1/payments/{id}",
    "/api/v1/catalog/{id}",
    "/api/v1/shipping/{id}",
];
const METHODS: [&str; 3] = ["GET", "GET", "POST"];

/// A typical server span (about 400 bytes encoded): HTTP semantic-convention attributes
/// and one event. `index` 0 is the root; others are its children.
pub fn typical_span(id: TraceId, index: u32, rng: &mut Rng, base_ns: u64) -> Span {
    let route = ROUTES[rng.below(ROUTES.len() as u64) as usize];
    let method = METHODS[rng.below(METHODS.len() as u64) as usize];
    let object = 10_000 + rng.below(90_000);
    let start = base_ns + index as u64 * 1_000_000 + rng.below(500_000);
    let duration = 200_000 + rng.below(20_000_000);
    let mut span_id = rng.next_u64().to_be_bytes();
    span_id[0] |= 1;
    Span {
        trace_id: id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: if index == 0 {
            Vec::new()
        } else {
            rng.next_u64().to_be_bytes().to_vec()
        },
        name: format!("{method} {route}"),
        kind: if index == 0 {
            SpanKind::Server as i32
        } else {
            SpanKind::Client as i32
        },
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes: vec![
            kv_str("http.request.method", method),
            kv_str("url.path", route.replace("{id}", &object.to_string())),
            kv_str("url.scheme", "https"),
            kv_int(
                "http.response.status_code",
                if rng.below(50) == 0 { 500 } else { 200 },
            ),
            kv_str("server.address", "orders.prod.svc.cluster.local"),
            kv_str(
                "network.peer.address",
                format!("10.42.{}.{}", rng.below(256), rng.below(256)),
            ),
            kv_str(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) okhttp/4.12.0",
            ),
        ],
        events: vec![Event {
            time_unix_nano: start + duration / 2,
            name: "message".into(),
            attributes: vec![
                kv_str("message.type", "RECEIVED"),
                kv_int("message.id", rng.below(1000) as i64),
            ],
            dropped_attributes_count: 0,
        }],
        status: Some(Status {
            message: String::new(),
            code: StatusCode::Ok as i32,
        }),
        ..Default::default()
    }
}

/// The go-example shape: a single span with one event.
pub fn go_example_span(id: TraceId, rng: &mut Rng, base_ns: u64) -> Span {
    let start = base_ns + rng.below(1_000_000_000);
    let mut span_id = rng.next_u64().to_be_bytes();
    span_id[0] |= 1;
    Span {
        trace_id: id.to_vec(),
        span_id: span_id.to_vec(),
        name: "foo".into(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000 + rng.below(50_000_000),
        attributes: vec![
            kv_str("http.request.method", "GET"),
            kv_str("url.path", format!("/hello/{}", rng.below(100_000))),
            kv_int("http.response.status_code", 200),
        ],
        events: vec![Event {
            time_unix_nano: start + 500_000,
            name: "sleep".into(),
            attributes: vec![kv_int("iteration", rng.below(100) as i64)],
            dropped_attributes_count: 0,
        }],
        ..Default::default()
    }
}

fn wrap(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv_str("service.name", service),
                    kv_str("service.version", "1.4.2"),
                    kv_str("host.name", "bench-host-1"),
                    kv_str("telemetry.sdk.language", "go"),
                    kv_str("telemetry.sdk.name", "opentelemetry"),
                    kv_str("telemetry.sdk.version", "1.28.0"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp".into(),
                    version: "0.53.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One request: `spans_per_trace` typical spans for each of `ids`, one resource, one scope.
pub fn typical_request(
    ids: &[TraceId],
    spans_per_trace: u32,
    rng: &mut Rng,
) -> ExportTraceServiceRequest {
    let base = now_ns();
    let mut spans = Vec::with_capacity(ids.len() * spans_per_trace as usize);
    for id in ids {
        for i in 0..spans_per_trace {
            spans.push(typical_span(*id, i, rng, base));
        }
    }
    wrap("orders", spans)
}

/// One request of go-example traces (one span each), one per id.
pub fn go_example_request(ids: &[TraceId], rng: &mut Rng) -> ExportTraceServiceRequest {
    let base = now_ns();
    wrap(
        "go-example",
        ids.iter()
            .map(|id| go_example_span(*id, rng, base))
            .collect(),
    )
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// True when run by `cargo bench` (which passes `--bench`); `cargo test --benches` does not.
pub fn running_as_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Path of the release binary built alongside this bench, or `REFERENCE_BACKEND_BIN`
/// (to measure another build).
pub fn backend_binary() -> PathBuf {
    std::env::var_os("REFERENCE_BACKEND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_reference-backend")))
}

/// True when `taskset` is on the PATH.
pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pin every thread of this process to `cpus` (a taskset list such as `1`).
pub fn pin_self(cpus: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The backend as a child process; killed when dropped.
pub struct BackendProcess {
    pub child: Child,
    pub addrs: ListenAddrs,
    pub log: PathBuf,
}

impl BackendProcess {
    /// Write `yaml` to `dir/config.yaml` and start the release binary on it, pinned to
    /// `pin` (a taskset CPU list) when given. `env` is added to the child's environment.
    /// Waits until `/ready` answers 200.
    pub fn start(dir: &Path, yaml: &str, pin: Option<&str>, env: &[(&str, &str)]) -> Self {
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let report = dir.join("listen.json");
        let log = dir.join("backend.log");
        let bin = backend_binary();
        let mut cmd = match pin {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.arg("--config")
            .arg(&config)
            .arg("--listen-report")
            .arg(&report)
            .arg("--log-level")
            .arg("warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("log file"))
            .stderr(File::create(dir.join("backend.stderr")).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn backend");
        let mut me = BackendProcess {
            child,
            addrs: ListenAddrs {
                http: "127.0.0.1:0".parse().expect("addr"),
                otlp_grpc: "127.0.0.1:0".parse().expect("addr"),
                otlp_http: "127.0.0.1:0".parse().expect("addr"),
            },
            log: dir.join("backend.stderr"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read(&report)
                && let Ok(a) = serde_json::from_slice::<ListenAddrs>(&text)
            {
                me.addrs = a;
                break;
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("backend exited with {status}: {}", me.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "backend did not start: {}",
                me.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        loop {
            let ok = http
                .get(format!("http://{}/ready", me.addrs.http))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "backend not ready: {}",
                me.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// `(name, utime + stime in seconds)` from a `/proc/.../stat` file.
fn stat_cpu(path: &Path) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_owned();
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((name, (utime + stime) as f64 / clock_ticks()))
}

/// User + system CPU seconds of a whole process (every thread, live or exited).
pub fn process_cpu(pid: u32) -> f64 {
    stat_cpu(Path::new(&format!("/proc/{pid}/stat"))).map_or(0.0, |(_, s)| s)
}

/// CPU seconds of each live thread: `(tid, name, seconds)`.
pub fn thread_cpu(pid: u32) -> Vec<(u32, String, f64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((name, s)) = stat_cpu(&e.path().join("stat")) {
            out.push((tid, name, s));
        }
    }
    out
}

/// The value of the first sample named `name` (exactly, before any labels) in Prometheus
/// or OpenMetrics text; summed over label sets.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let bare = key.split('{').next()?;
            (bare == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Percentile (0–100) of sorted durations, in milliseconds.
pub fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// A backend config for a bench: every listener on 127.0.0.1 port 0, blocks and WAL under
/// `dir`, rate limits out of the way; `live_store` is the body of the `live_store:` section.
pub fn backend_yaml(dir: &Path, live_store: &str, wal_max_bytes: &str) -> String {
    format!(
        "server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:0
        http:
          endpoint: 127.0.0.1:0
live_store:
  {live_store}
storage:
  trace:
    backend: local
    local:
      path: {}
    wal:
      path: {}
      max_bytes: {wal_max_bytes}
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 1GB
      burst_size_bytes: 1GB
",
        yaml_path(&dir.join("blocks")),
        yaml_path(&dir.join("wal")),
    )
}

/// A YAML string literal for a path.
pub fn yaml_path(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).expect("path to json")
}

/// Busy CPU seconds per CPU from `/proc/stat` (`cpuN` lines; everything but idle and
/// iowait), to see what else ran on the machine during a measurement.
pub fn cpu_busy() -> Vec<f64> {
    let ticks = clock_ticks();
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle) as f64 / ticks
        })
        .collect()
}

/// Wait (up to `max`) until the machine is quiet: less than `threshold` of a core busy
/// over one second. Returns the busy cores seen last. No wait outside `cargo bench`.
pub fn wait_for_quiet(threshold: f64, max: Duration) -> f64 {
    if !running_as_bench() {
        return 0.0;
    }
    let deadline = Instant::now() + max;
    loop {
        let a: f64 = cpu_busy().iter().sum();
        std::thread::sleep(Duration::from_secs(1));
        let busy = cpu_busy().iter().sum::<f64>() - a;
        if busy < threshold || Instant::now() >= deadline {
            return busy;
        }
        eprintln!("waiting for a quiet machine ({busy:.2} cores busy)");
    }
}
