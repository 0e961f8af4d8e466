//! Search and tag endpoints over a fixed corpus with known answers: the same assertions on
//! live data, after `/flush` (blocks of the configured format) and after a restart (blocks
//! only); Tempo's 400s; merging of one trace held in memory and in a block; block read
//! errors; tenant isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod search_support;

use std::time::Duration;

use reference_backend::Backend;
use reference_backend::block::{EncodingSettings, format_by_name};
use search_support::corpus::{self, search_hex, span_hex};
use search_support::{check_corpus, got, search};
use tempo_api::search::{SearchRequest, SearchResponse};

async fn ingest(b: &Backend, tenant: Option<&str>, req: &corpus::ExportRequest) {
    let (status, _, body) = common::post_proto(b, tenant, req).await;
    assert_eq!(status, 200, "ingest: {body:?}");
}

async fn flush(b: &Backend) {
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

/// GET `path` with query `pairs`; status and body.
async fn get(b: &Backend, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let base = format!("http://{}{path}", b.addrs.http);
    let url = reqwest::Url::parse_with_params(&base, pairs).unwrap();
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn block_formats_on_disk(dir: &std::path::Path) -> Vec<String> {
    let tenant = dir.join("blocks").join("single-tenant");
    std::fs::read_dir(tenant)
        .unwrap()
        .map(|e| {
            let meta = std::fs::read(e.unwrap().path().join("meta.json")).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&meta).unwrap();
            v["format"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The corpus answers on live data, after a flush to `format` blocks, and after a restart
/// with the WAL gone (blocks only).
async fn corpus_answers_everywhere(format: &str) {
    assert!(
        format_by_name(format, &EncodingSettings::default()).is_some(),
        "block format {format} is not built in"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ingester.trace_idle_period.0 = Duration::from_secs(3600);
    cfg.storage.trace.block.version = format.into();
    // Release 2 writes and reads both formats.
    cfg.release = reference_backend::release::ReleaseId::R2;
    let b = common::start(cfg.clone()).await;
    ingest(&b, None, &corpus::request()).await;
    check_corpus(&common::client(&b), &format!("{format} live"), 0).await;
    flush(&b).await;
    assert_eq!(block_formats_on_disk(dir.path()), [format]);
    check_corpus(&common::client(&b), &format!("{format} flushed"), 1).await;
    b.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let b = common::start(cfg).await;
    check_corpus(&common::client(&b), &format!("{format} restarted"), 1).await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_answers_on_live_data_rb1_blocks_and_after_restart() {
    corpus_answers_everywhere("rb1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_answers_on_live_data_rb2_blocks_and_after_restart() {
    corpus_answers_everywhere("rb2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_requests_are_400_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::start(common::config(dir.path())).await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("q", "{}"), ("tags", "a=b")],
            "can't specify tags and q",
        ),
        (
            vec![("tags", "a=1 a=2")],
            "invalid tags: tag a has been set twice",
        ),
        (
            vec![("tags", "=x")],
            "invalid tags: unexpected '=' at pos 1",
        ),
        (
            vec![("tags", "a=\"x")],
            "invalid tags: unterminated quoted value",
        ),
        (
            vec![("tags", "status.code=broken")],
            "status.code must be unset, ok or error",
        ),
        (
            vec![("minDuration", "abc")],
            "invalid minDuration: time: invalid duration \"abc\"",
        ),
        (
            vec![("maxDuration", "1x")],
            "invalid maxDuration: time: unknown unit",
        ),
        (
            vec![("minDuration", "2s"), ("maxDuration", "1s")],
            "invalid maxDuration: must be greater than minDuration",
        ),
        (
            vec![("limit", "0")],
            "invalid limit: must be a positive number",
        ),
        (
            vec![("limit", "-3")],
            "invalid limit: must be a positive number",
        ),
        (
            vec![("limit", "abc")],
            "invalid limit: strconv.Atoi: parsing \"abc\": invalid syntax",
        ),
        (
            vec![("limit", "99999999999999999999")],
            "invalid limit: strconv.Atoi: parsing \"99999999999999999999\": value out of range",
        ),
        (
            vec![("start", "abc"), ("end", "10")],
            "invalid start: strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (vec![("start", "1"), ("end", "x")], "invalid end"),
        (
            vec![("start", "5000000000"), ("end", "5000000001")],
            "invalid start: strconv.ParseUint: parsing \"5000000000\": value out of range",
        ),
        (
            vec![("start", "10"), ("end", "5")],
            "http parameter start must be before end. received start=10 end=5",
        ),
        (
            vec![("start", "10"), ("end", "10")],
            "http parameter start must be before end",
        ),
        (
            vec![("start", "10")],
            "http parameter start must be before end. received start=10 end=0",
        ),
        (
            vec![("start", "1"), ("end", "604802")],
            "range specified by start and end exceeds 168h0m0s",
        ),
        (
            vec![("spss", "101")],
            "spans per span set exceeds 100. received 101",
        ),
        (
            vec![("spss", "0")],
            "invalid spss: must be a positive number",
        ),
        (vec![("q", "{ .a = ")], "invalid TraceQL query"),
    ];
    for (pairs, want) in cases {
        let (status, body) = get(&b, "/api/search", &pairs).await;
        assert_eq!(status, 400, "{pairs:?}: {body}");
        assert!(body.contains(want), "{pairs:?}: {body:?} lacks {want:?}");
    }
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_traceql_is_400_naming_the_construct() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::start(common::config(dir.path())).await;
    let cases = [
        ("{ } | count() > 1", "aggregate count()"),
        ("{ } | select(.http.method)", "select(...)"),
        ("{ } | { .a = 1 }", "pipelines ('|') are not supported"),
        ("{ .a = 1 } >> { .b = 2 }", "structural operator '>>'"),
        ("{ .a = 1 } < { .b = 2 }", "structural operator '<'"),
        ("{ .a = 1 } ~ { .b = 2 }", "sibling operator '~'"),
        ("{ .a = 1 } && { .b = 2 }", "'&&' between spansets"),
        ("{ .a = 1 } || { .b = 2 }", "'||' between spansets"),
        ("{ event.name = \"x\" }", "'event.' attributes"),
        ("{ link.a = 1 }", "'link.' attributes"),
        (
            "{ instrumentation.name = \"x\" }",
            "'instrumentation.' attributes",
        ),
        ("{ .a = nil }", "nil is not supported"),
        ("{ .a + 1 > 2 }", "arithmetic ('+')"),
        ("{ duration / 2 > 1s }", "arithmetic ('/')"),
        ("{ statusMessage = \"x\" }", "intrinsic 'statusMessage'"),
        ("{ foo = 1 }", "unknown intrinsic 'foo'"),
        ("{ status = \"error\" }", "status compares only"),
    ];
    for (q, want) in cases {
        let (status, body) = get(&b, "/api/search", &[("q", q)]).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.starts_with("invalid TraceQL query: "), "{q}: {body}");
        assert!(body.contains(want), "{q}: {body:?} lacks {want:?}");
    }
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tag_requests_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::start(common::config(dir.path())).await;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case<'_>; 6] = [
        (
            "/api/search/tags",
            vec![("scope", "bogus")],
            "invalid scope: bogus",
        ),
        (
            "/api/v2/search/tags",
            vec![("start", "10"), ("end", "5")],
            "start must be before end",
        ),
        (
            "/api/search/tag/service.name/values",
            vec![("limit", "x")],
            "invalid limit",
        ),
        (
            "/api/v2/search/tag/foo/values",
            vec![],
            "invalid tag \"foo\": unknown intrinsic 'foo'",
        ),
        (
            "/api/v2/search/tag/event.x/values",
            vec![],
            "'event.' attributes are not supported",
        ),
        (
            "/api/v2/search/tag/service.name/values",
            vec![],
            "unknown attribute scope 'service.'",
        ),
    ];
    for (path, pairs, want) in cases {
        let (status, body) = get(&b, path, &pairs).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body:?} lacks {want:?}");
    }
    b.shutdown().await.unwrap();
}

/// Trace 6 split: its root in a flushed block, its shards still in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_in_a_block_and_in_memory_is_one_hit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ingester.trace_idle_period.0 = Duration::from_secs(3600);
    let b = common::start(cfg).await;
    let part = |keep: fn(u8, u8) -> bool| corpus::ExportRequest {
        resource_spans: corpus::resource_spans(&[6], keep),
    };
    ingest(&b, None, &part(|_, s| s <= 3)).await;
    flush(&b).await;
    ingest(&b, None, &part(|_, s| s > 3)).await;
    let c = common::client(&b);
    let r: SearchResponse =
        search(&c, &SearchRequest::traceql("{ kind = internal }"), "split").await;
    assert_eq!(got(&r), [(search_hex(6), 5)]);
    let t = &r.traces[0];
    let ids: Vec<&str> = t.span_sets[0]
        .spans
        .iter()
        .map(|s| s.span_id.as_str())
        .collect();
    assert_eq!(ids, [span_hex(6, 2), span_hex(6, 3), span_hex(6, 4)]);
    assert_eq!(t.start_time_unix_nano, corpus::trace_start_ns(6));
    assert_eq!(t.duration_ms, 3000);
    assert_eq!(r.metrics.total_blocks, 1);
    let r = search(&c, &SearchRequest::traceql("{}").with_spss(10), "split").await;
    assert_eq!(got(&r), [(search_hex(6), 6)]);
    assert_eq!(r.traces[0].root_service_name, "frontend");
    assert_eq!(r.traces[0].duration_ms, 3000);
    assert_eq!(r.traces[0].span_sets[0].spans.len(), 6);
    assert_eq!(
        search_support::service_stats(&r.traces[0]),
        [("frontend", 1, 0), ("search", 5, 0)],
        "serviceStats add up across the block and memory"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_block_fails_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let b = common::start(cfg.clone()).await;
    ingest(&b, None, &corpus::request()).await;
    flush(&b).await;
    b.shutdown().await.unwrap();
    let tenant_dir = dir.path().join("blocks").join("single-tenant");
    for e in std::fs::read_dir(&tenant_dir).unwrap() {
        std::fs::remove_file(e.unwrap().path().join("data")).unwrap();
    }
    let b = common::start(cfg).await;
    for path in [
        "/api/search",
        "/api/search/tags",
        "/api/v2/search/tag/name/values",
    ] {
        let (status, body) = get(&b, path, &[]).await;
        assert_eq!(status, 500, "{path}: {body}");
    }
    let (_, metrics) = get(&b, "/metrics", &[]).await;
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("reference_backend_block_read_errors"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(errors, Some(3.0), "{metrics}");
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_traces() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.multitenancy_enabled = true;
    let b = common::start(cfg).await;
    ingest(&b, Some("team-a"), &corpus::request()).await;
    let url = format!("http://{}/api/search?q=%7B%7D", b.addrs.http);
    let http = reqwest::Client::new();
    let ask = |tenant: &'static str| http.get(&url).header("X-Scope-OrgID", tenant).send();
    let a: SearchResponse = ask("team-a").await.unwrap().json().await.unwrap();
    assert_eq!(a.traces.len(), 6);
    let other: SearchResponse = ask("team-b").await.unwrap().json().await.unwrap();
    assert!(other.traces.is_empty());
    let (status, _) = get(&b, "/api/search", &[("q", "{}")]).await;
    assert_eq!(status, 401);
    let (status, _) = get(&b, "/api/search/tags", &[]).await;
    assert_eq!(status, 401);
    flush(&b).await;
    let other: SearchResponse = ask("team-b").await.unwrap().json().await.unwrap();
    assert!(other.traces.is_empty());
    b.shutdown().await.unwrap();
}
