//! The soak scenario against the embedded reference backend: while the load holds, the
//! process's RSS must not keep climbing. `scenarios/soak.yaml` as committed (the same
//! backend config, shape, batch and read-back), with one hold at a rate a debug build
//! takes; the check is the trend of the resource samples over the hold (Theil–Sen slope
//! per accepted span), not a time. A backend that keeps every trace in memory until a
//! block is cut (as one with 30-minute blocks does) climbs by about its ingest rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use loadgen::run::{RunOptions, run};
use loadgen::scenario::{HumanDuration, Scenario, Stage};
use loadgen::slope::hold_trends;

/// Offered rate of the hold, spans/s.
const RATE: f64 = 4000.0;
/// Hold length: long enough for the backend to cut and write blocks twice.
const HOLD_S: u64 = 90;
/// Seconds of the hold left to settle (the live traces and the first head block fill,
/// the first block is written) before the trend is measured.
const SETTLE_S: u32 = 40;
/// Largest RSS growth accepted per span taken. Keeping the spans in memory costs their
/// size and more (about 500 bytes per span of this shape); a flat backend's trend is near 0.
const MAX_BYTES_PER_SPAN: f64 = 60.0;

fn soak() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/soak.yaml");
    let mut s = Scenario::load(&path).unwrap();
    s.rate.stages = vec![
        Stage {
            target: RATE,
            duration: HumanDuration(std::time::Duration::from_secs(1)),
        },
        Stage {
            target: RATE,
            duration: HumanDuration(std::time::Duration::from_secs(HOLD_S)),
        },
    ];
    s.rate.max_in_flight = 32;
    s.verify.delay = HumanDuration(std::time::Duration::from_secs(2));
    s.verify.sample = 0.01;
    // Only the memory trend is judged here; a slow debug build may miss the p99 target.
    s.thresholds = Default::default();
    s.validate().unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails on the current backend: in a debug build, embedded, RSS climbed 483 bytes per span over seconds 42-91 of the hold; run with --ignored"]
async fn embedded_backend_rss_stays_flat_while_the_soak_holds() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        scenario_file: "scenarios/soak.yaml".into(),
        out: Some(dir.path().to_path_buf()),
        ..RunOptions::default()
    };
    let report = run(soak(), &opts).await.unwrap();
    assert_eq!(
        report.totals.spans_accepted, report.totals.spans_sent,
        "every span accepted"
    );
    let v = report.verification.as_ref().unwrap();
    assert!(v.sampled_traces > 20, "{v:?}");
    assert_eq!(v.complete_traces, v.sampled_traces, "{v:?}");
    let trends = hold_trends(&report, SETTLE_S);
    assert_eq!(trends.len(), 1, "one hold measured: {trends:?}");
    let h = &trends[0];
    assert!(
        h.accepted_spans_per_s > RATE * 0.9,
        "the hold ran at its rate: {h:?}"
    );
    assert!(h.trend.samples >= 30, "{h:?}");
    let per_span = h.trend.bytes_per_span(h.accepted_spans_per_s);
    eprintln!(
        "soak rss trend over seconds {}..{}: {:.0} bytes/s at {:.0} spans/s = {per_span:.1} bytes per span; rss {:.1}..{:.1} MiB",
        h.trend.from,
        h.trend.to,
        h.trend.bytes_per_s,
        h.accepted_spans_per_s,
        h.trend.min_rss as f64 / 1048576.0,
        h.trend.max_rss as f64 / 1048576.0,
    );
    assert!(
        per_span < MAX_BYTES_PER_SPAN,
        "RSS climbs by {per_span:.1} bytes per accepted span during the hold ({:.0} bytes/s; \
         limit {MAX_BYTES_PER_SPAN} bytes per span): the backend keeps what it ingests",
        h.trend.bytes_per_s
    );
}
