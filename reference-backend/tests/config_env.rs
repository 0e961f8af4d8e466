//! `--config.expand-env` (Tempo's `-config.expand-env=true`): one config file with
//! `${VAR}` / `${VAR:-default}` serves two running backends with their own data dirs;
//! `check-config` expands the same way and names the line and column of a bad form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{request, trace_id};
use reference_backend::ListenAddrs;
use tempo_api::TempoClient;

const SHARED_CONFIG: &str = "\
# One file for every instance: each sets DATA_DIR, and HTTP_PORT if it wants a fixed port.
# A literal dollar-brace is written $${ (this comment is expanded too, as in Tempo).
server:
  http_listen_address: 127.0.0.1
  http_listen_port: ${HTTP_PORT:-0}
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:0
        http:
          endpoint: 127.0.0.1:0
live_store:
  flush_check_period: 100ms
storage:
  trace:
    backend: local
    local:
      path: ${DATA_DIR}/blocks
    wal:
      path: ${DATA_DIR}/wal
";

struct Running {
    child: Child,
    addrs: ListenAddrs,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reference-backend"))
}

/// Start the binary with Tempo's flag spellings and `DATA_DIR=data_dir`; wait until ready.
async fn spawn(config: &Path, data_dir: &Path, run: &str) -> Running {
    std::fs::create_dir_all(data_dir).unwrap();
    let report = data_dir.join("listen.json");
    let log = data_dir.join(format!("{run}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = binary()
        .arg(format!("-config.file={}", config.display()))
        .arg("-config.expand-env=true")
        .arg("--listen-report")
        .arg(&report)
        .env("DATA_DIR", data_dir)
        .env_remove("HTTP_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let mut r = Running {
        child,
        addrs: ListenAddrs {
            http: "127.0.0.1:0".parse().unwrap(),
            otlp_grpc: "127.0.0.1:0".parse().unwrap(),
            otlp_http: "127.0.0.1:0".parse().unwrap(),
        },
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    r.addrs = loop {
        if let Ok(text) = std::fs::read(&report) {
            break serde_json::from_slice(&text).unwrap();
        }
        if let Some(status) = r.child.try_wait().unwrap() {
            panic!("{run} exited with {status}:\n{}", r.log());
        }
        assert!(
            Instant::now() < deadline,
            "{run}: no listen report\n{}",
            r.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let c = client(&r);
    while !matches!(c.ready().await, Ok(true)) {
        assert!(Instant::now() < deadline, "{run}: not ready\n{}", r.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r
}

fn client(r: &Running) -> TempoClient {
    TempoClient::new(&format!("http://{}", r.addrs.http))
        .unwrap()
        .with_timeout(Duration::from_secs(10))
}

/// POST one trace (two spans) to a running binary.
async fn push(r: &Running, n: u64) -> u16 {
    use prost::Message;
    reqwest::Client::new()
        .post(format!("http://{}/v1/traces", r.addrs.otlp_http))
        .header("content-type", "application/x-protobuf")
        .body(request("svc", n, 1, 2).encode_to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_config_file_serves_two_backends_with_their_own_data_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shared.yaml");
    std::fs::write(&config, SHARED_CONFIG).unwrap();
    let (d1, d2) = (dir.path().join("one"), dir.path().join("two"));
    let one = spawn(&config, &d1, "one").await;
    let two = spawn(&config, &d2, "two").await;
    assert_eq!(push(&one, 1).await, 200);
    assert_eq!(push(&two, 2).await, 200);
    for r in [&one, &two] {
        let s = reqwest::get(format!("http://{}/flush", r.addrs.http))
            .await
            .unwrap()
            .status();
        assert_eq!(s.as_u16(), 204, "{}", r.log());
    }
    let (c1, c2) = (client(&one), client(&two));
    assert!(c1.trace_v1(&trace_id(1)).await.unwrap().is_some());
    assert!(c1.trace_v1(&trace_id(2)).await.unwrap().is_none());
    assert!(c2.trace_v1(&trace_id(2)).await.unwrap().is_some());
    assert!(c2.trace_v1(&trace_id(1)).await.unwrap().is_none());
    for d in [&d1, &d2] {
        assert!(d.join("wal").is_dir(), "{}", d.display());
        assert!(d.join("blocks/single-tenant").is_dir(), "{}", d.display());
    }
    // The config each serves is the expanded one.
    let text = reqwest::get(format!("http://{}/status/config", two.addrs.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&d2.join("wal").display().to_string()),
        "{text}"
    );
    assert!(!text.contains("${"), "{text}");
    // Not expanded without the flag: the same file is refused, naming the key.
    let out = binary()
        .args(["--config"])
        .arg(&config)
        .env("DATA_DIR", &d1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http_listen_port"), "{err}");
}

fn check_config(config: &Path, flag: Option<&str>, envs: &[(&str, &str)]) -> Output {
    let mut cmd = binary();
    cmd.arg("check-config");
    if let Some(f) = flag {
        cmd.arg(f);
    }
    cmd.arg(config)
        .env_remove("HTTP_PORT")
        .env_remove("DATA_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn check_config_expands_like_the_server_and_names_bad_forms() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shared.yaml");
    std::fs::write(&config, SHARED_CONFIG).unwrap();
    let ok = |o: &Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let fail = |o: &Output| {
        assert!(
            !o.status.success(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let out = ok(&check_config(
        &config,
        Some("--config.expand-env"),
        &[("DATA_DIR", "/srv/a")],
    ));
    assert!(out.contains("ok for release 3"), "{out}");
    ok(&check_config(
        &config,
        Some("-config.expand-env=true"),
        &[("HTTP_PORT", "3201")],
    ));
    // Unexpanded, `${HTTP_PORT:-0}` is not a port number.
    let err = fail(&check_config(&config, None, &[]));
    assert!(err.contains("http_listen_port"), "{err}");
    let err = fail(&check_config(
        &config,
        Some("--config.expand-env=false"),
        &[],
    ));
    assert!(err.contains("http_listen_port"), "{err}");
    // A value that is not a port is named like any bad value.
    let err = fail(&check_config(
        &config,
        Some("--config.expand-env"),
        &[("HTTP_PORT", "x")],
    ));
    assert!(err.contains("http_listen_port"), "{err}");
    // A form Tempo's expander knows but this one does not is refused, with where it is.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        SHARED_CONFIG.replace("${DATA_DIR}/wal", "${DATA_DIR,,}/wal"),
    )
    .unwrap();
    let err = fail(&check_config(
        &bad,
        Some("--config.expand-env"),
        &[("DATA_DIR", "/a")],
    ));
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(
        err.contains("expanding environment variables (--config.expand-env): line 22 column 13: ${DATA_DIR,,}: not supported"),
        "{err}"
    );
    let unclosed = dir.path().join("unclosed.yaml");
    std::fs::write(&unclosed, "server:\n  http_listen_port: ${HTTP_PORT:-0\n").unwrap();
    let err = fail(&check_config(&unclosed, Some("--config.expand-env"), &[]));
    assert!(err.contains("line 2 column 21: ${HTTP_PORT:-0"), "{err}");
    assert!(err.contains("missing closing brace"), "{err}");
}
