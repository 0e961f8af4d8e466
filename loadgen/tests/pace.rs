//! Who set the pace, end to end and in-process: a sink that answers slowly fills every
//! in-flight slot, and the report, the console summary, the sizing step and `compare` say
//! "backend saturated", never "the generator was the bottleneck"; an offered rate no
//! generator can produce, with more slots than requests, is the generator's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use loadgen::report::model::Limiter;
use loadgen::report::{CompareThresholds, compare, render_comparison};
use loadgen::run::{RunOptions, run};
use loadgen::scenario::Scenario;
use loadgen::sink::{Sink, SinkConfig, Stall};
use loadgen::summary::summary_lines;

const GENERATOR_BLAMED: &str = "generator was the bottleneck";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_is_saturated_not_a_generator_bottleneck() {
    // Every request is held until the next 100 ms boundary: two slots carry about 20
    // requests/s, the schedule asks for 30.
    let sink = Sink::start(SinkConfig {
        stall: Some(Stall {
            after_requests: 0,
            duration: Duration::from_millis(100),
            every: Some(Duration::from_millis(100)),
        }),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        r#"
name: slow-backend
target:
  kind: otlp
  endpoints: ["http://{}"]
  protocol: http-protobuf
rate: {{ value: 300, duration: 3s, batch: 10, max_in_flight: 2 }}
verify: {{ enabled: false }}
sizing: {{}}
"#,
        sink.http_addr
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let opts = RunOptions {
        scenario_file: "inline".into(),
        out: Some(out.clone()),
        ..RunOptions::default()
    };
    let report = run(Scenario::parse(&yaml).unwrap(), &opts).await.unwrap();
    sink.stop().await;

    let g = &report.generator;
    let pace = g.pace.as_ref().unwrap();
    assert_eq!(pace.limited_by, Limiter::BackendSaturated, "{pace:?}");
    assert!(!g.bottleneck);
    assert_eq!(pace.max_in_flight, 2);
    assert!(
        pace.slots_full_share > pace.generator_behind_share,
        "{pace:?}"
    );
    // Every request was answered; the slow answers only delayed them.
    assert_eq!(report.totals.requests_ok, report.totals.requests_sent);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    let console = summary_lines(&report);
    println!("{console}");
    for (name, text) in [("md", &md), ("html", &html), ("console", &console)] {
        assert!(
            text.to_lowercase().contains("backend saturated"),
            "{name}:\n{text}"
        );
        assert!(!text.contains(GENERATOR_BLAMED), "{name}:\n{text}");
    }
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("PACE    backend saturated: all 2 in-flight slots")),
        "{console}"
    );
    assert!(json.contains(r#""limited_by": "backend_saturated""#));

    // The sizing step did not hold, and says why.
    let step = &report.sizing.as_ref().unwrap().steps[0];
    assert!(!step.held, "{step:?}");
    assert_eq!(step.limited_by, Some(Limiter::BackendSaturated), "{step:?}");
    assert!(
        step.reasons.iter().any(|r| r.contains("backend saturated")),
        "{step:?}"
    );

    // compare, from the report as written.
    let written = loadgen::report::load(&out.join("report.json")).unwrap();
    let c = compare(
        std::slice::from_ref(&written),
        std::slice::from_ref(&written),
        &CompareThresholds::default(),
    );
    let text = render_comparison(&c);
    assert!(text.contains("backend saturated"), "{text}");
    assert!(!text.contains(GENERATOR_BLAMED), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_no_generator_can_produce_is_the_generators() {
    // 200,000 spans due within 1 ms (2e8 spans/s, several times what encoding alone does
    // on one core), in 400 requests with 1,024 slots: no request can ever wait for a slot.
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let yaml = format!(
        r#"
name: impossible-rate
target:
  kind: otlp
  endpoints: ["http://{}"]
  protocol: http-protobuf
rate: {{ value: 200000000, duration: 1ms, batch: 500, max_in_flight: 1024 }}
workload:
  mix:
    - {{ shape: flat, profile: minimal }}
verify: {{ enabled: false }}
"#,
        sink.http_addr
    );
    let report = run(Scenario::parse(&yaml).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(sink.counts().spans, report.totals.spans_sent);
    sink.stop().await;

    let g = &report.generator;
    let pace = g.pace.as_ref().unwrap();
    assert_eq!(pace.limited_by, Limiter::Generator, "{pace:?}");
    assert!(g.bottleneck);
    assert_eq!(pace.slots_full_share, 0.0, "{pace:?}");
    assert!(pace.achieved_ratio < 0.95, "{pace:?}");
    let md = loadgen::report::render_markdown(&report);
    assert!(md.contains("The generator was the bottleneck"), "{md}");
    assert!(!md.to_lowercase().contains("backend saturated"), "{md}");
    let console = summary_lines(&report);
    println!("{console}");
    assert!(
        console.contains("PACE    the generator was the bottleneck"),
        "{console}"
    );
}
