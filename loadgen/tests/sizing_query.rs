//! Sizing from hold stages and query load alongside ingest, in-process against the
//! embedded backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use loadgen::report::model::ShardInfo;
use loadgen::report::{load, merge, render_html, render_markdown, write_all};
use loadgen::run::{RunOptions, run};
use loadgen::scenario::Scenario;
use loadgen::scenario::rate::RatePlan;

/// The embedded runs share two cores: one at a time keeps their timing honest.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SIZING: &str = r#"
name: sizing-smoke
target: { kind: embedded }
rate:
  stages:
    - { target: 500, duration: 1s }
    - { target: 500, duration: 2s }
    - { target: 1000, duration: 1s }
    - { target: 1000, duration: 2s }
  batch: 50
  max_in_flight: 16
verify: { sample: 0.1, delay: 50ms, timeout: 10s }
sizing: { target_spans_per_s: 10000 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_holds_give_the_highest_rate_and_the_node_count() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(Scenario::parse(SIZING).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    assert!(report.passed, "{:?}", report.thresholds);
    let z = report.sizing.as_ref().expect("sizing");
    assert_eq!(z.steps.len(), 2, "{z:?}");
    for s in &z.steps {
        assert!(
            s.held,
            "step {} did not hold: {:?}",
            s.offered_spans_per_s, s.reasons
        );
        assert!(s.cpu_cores.is_some() && s.rss_bytes.is_some(), "{s:?}");
    }
    assert_eq!(
        (
            z.steps[0].offered_spans_per_s,
            z.steps[1].offered_spans_per_s
        ),
        (500.0, 1000.0)
    );
    assert_eq!((z.steps[0].window, z.steps[1].window), ((2, 3), (5, 6)));
    assert_eq!(z.highest_held_spans_per_s, Some(1000.0));
    assert_eq!(z.headroom, 0.2);
    // ceil(10,000 / (1,000 × 0.8)) = ceil(12.5)
    assert_eq!(z.nodes_needed, Some(13));

    let md = render_markdown(&report);
    let top: String = md.lines().take(6).collect::<Vec<_>>().join("\n");
    assert!(
        top.contains("Highest rate that held: 1,000 spans/s on")
            && top.contains("13 nodes for 10,000 spans/s at 20 % headroom"),
        "{top}"
    );
    assert!(
        md.contains("## Sizing") && md.contains("upper bound"),
        "{md}"
    );
    assert!(render_html(&report).contains("<section id=\"sizing\">"));
    let lines = loadgen::summary::summary_lines(&report);
    assert!(
        lines.contains("SIZING  highest rate that held: 1000 spans/s"),
        "{lines}"
    );

    // The new fields survive report.json.
    let written = write_all(&report, dir.path()).unwrap();
    let back = load(&written.json).unwrap().sizing.unwrap();
    assert_eq!(
        (
            back.steps.len(),
            back.nodes_needed,
            back.highest_held_spans_per_s
        ),
        (2, Some(13), Some(1000.0))
    );
    assert_eq!(back.steps[1].window, z.steps[1].window);
    assert!(back.steps.iter().all(|s| s.held && s.cpu_cores.is_some()));

    // Two shards of the same run: each step offered twice as much, and the sizing is
    // measured again from the merged series.
    let mut a = report.clone();
    a.shards = vec![ShardInfo {
        index: 0,
        count: 2,
        host: "a".into(),
    }];
    let mut b = report.clone();
    b.shards = vec![ShardInfo {
        index: 1,
        count: 2,
        host: "b".into(),
    }];
    let m = merge(&[a, b]).unwrap();
    let mz = m.sizing.as_ref().unwrap();
    assert_eq!(mz.steps[1].offered_spans_per_s, 2000.0);
    assert_eq!(mz.highest_held_spans_per_s, Some(2000.0), "{mz:?}");
    assert_eq!(mz.nodes_needed, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_load_looks_up_and_searches_sent_traces() {
    let _one = ONE_AT_A_TIME.lock().await;
    let yaml = r#"
name: query-smoke
target: { kind: embedded }
rate: { value: 1000, duration: 3s, batch: 50, max_in_flight: 16 }
query_load: { trace_by_id_per_second: 20, search_per_second: 5 }
verify: { sample: 0.05, delay: 50ms, timeout: 10s }
"#;
    let report = run(Scenario::parse(yaml).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    assert!(report.passed, "{:?}", report.thresholds);
    let q = report.query_load.as_ref().expect("query load");
    assert!(q.trace_by_id.count > 0, "{q:?}");
    assert_eq!(q.trace_by_id_errors, 0, "{:?}", q.error_messages);
    // Searches run against the backend's /api/search and succeed.
    assert!(q.search.count > 0, "{q:?}");
    assert_eq!(q.search_errors, 0, "{:?}", q.error_messages);
    assert_eq!(q.trace_by_id_per_second, 20.0);
    for h in ["query_trace_by_id_us", "query_search_us"] {
        assert!(report.histograms.contains_key(h), "{h}");
    }
    let md = render_markdown(&report);
    assert!(md.contains("search"), "{md}");
    assert!(report.sizing.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_load_without_a_query_url_is_skipped_with_a_note() {
    let sink = loadgen::sink::Sink::start(loadgen::sink::SinkConfig::default())
        .await
        .unwrap();
    let yaml = format!(
        r#"
name: no-query-url
target:
  kind: otlp
  endpoints: ["http://{}"]
  protocol: http-protobuf
rate: {{ value: 500, duration: 1s, batch: 50 }}
verify: {{ enabled: false }}
query_load: {{ trace_by_id_per_second: 10 }}
"#,
        sink.http_addr
    );
    let report = run(Scenario::parse(&yaml).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    let q = report.query_load.as_ref().unwrap();
    assert_eq!((q.trace_by_id.count, q.trace_by_id_errors), (0, 0));
    assert!(q.notes[0].contains("no query URL"), "{:?}", q.notes);
    sink.stop().await;
}

#[test]
fn the_sizing_scenario_asks_for_a_million_spans_per_second() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/sizing.yaml");
    let s = Scenario::load(&path).unwrap();
    let z = s.sizing.as_ref().unwrap();
    assert_eq!((z.target_spans_per_s, z.headroom), (Some(1_000_000.0), 0.2));
    let plan = RatePlan::new(&s.rate, s.duration().as_secs_f64(), 1.0);
    let rates: Vec<f64> = plan.holds().iter().map(|h| h.2).collect();
    assert_eq!(rates, [20_000.0, 50_000.0, 100_000.0, 200_000.0]);
    assert!(Scenario::parse("name: x\nrate: { value: 1 }\nsizing: { headroom: 1.0 }").is_err());
}

#[test]
fn older_reports_without_the_new_fields_still_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report-skeleton.json");
    let r = load(&path).unwrap();
    assert!(r.sizing.is_none());
    let q = r.query_load.unwrap();
    assert!(q.error_messages.is_empty() && q.notes.is_empty());
}
