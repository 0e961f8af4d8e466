//! The search corpus and every assertion on it, written against the HTTP API only so the
//! same checks run on live data, on flushed blocks of any format and after a restart.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod cases;
pub mod corpus;
mod tag_checks;

use corpus::{BASE_S, search_hex, span_hex, trace_start_ns};
use tempo_api::TempoClient;
use tempo_api::search::{SearchRequest, SearchResponse, TraceSearchMetadata};

pub use cases::TRACEQL_CASES;
pub use tag_checks::check_tags;

/// `(trace number, matched spans)`, in any order.
pub type Want<'a> = &'a [(u8, u32)];

/// Search and fail with the request in the message.
pub async fn search(c: &TempoClient, req: &SearchRequest, phase: &str) -> SearchResponse {
    c.search(req)
        .await
        .unwrap_or_else(|e| panic!("[{phase}] {req:?}: {e}"))
}

/// Search with raw query pairs (legacy tag parameters).
pub async fn search_pairs(
    c: &TempoClient,
    pairs: &[(&str, String)],
    phase: &str,
) -> SearchResponse {
    c.get_json(&["api", "search"], pairs)
        .await
        .unwrap_or_else(|e| panic!("[{phase}] {pairs:?}: {e}"))
}

/// Returned `(trace id, matched)` in answer order.
pub fn got(r: &SearchResponse) -> Vec<(String, u32)> {
    r.traces
        .iter()
        .map(|t| {
            (
                t.trace_id.clone(),
                t.span_sets.first().map_or(0, |s| s.matched),
            )
        })
        .collect()
}

/// What `want` should look like in answer order (most recent start first: the corpus's
/// traces start in number order).
pub fn expected(want: Want<'_>) -> Vec<(String, u32)> {
    let mut w = want.to_vec();
    w.sort_by_key(|x| std::cmp::Reverse(x.0));
    w.into_iter().map(|(n, m)| (search_hex(n), m)).collect()
}

/// A hit's `serviceStats` as (service, spans, errors), by service.
pub fn service_stats(t: &TraceSearchMetadata) -> Vec<(&str, u32, u32)> {
    t.service_stats
        .iter()
        .map(|(svc, s)| (svc.as_str(), s.span_count, s.error_count))
        .collect()
}

/// Every corpus assertion; `total_blocks` is how many flushed blocks hold the corpus.
pub async fn check_corpus(c: &TempoClient, phase: &str, total_blocks: u32) {
    for (construct, q, want) in TRACEQL_CASES {
        let r = search(c, &SearchRequest::traceql(*q), phase).await;
        assert_eq!(got(&r), expected(want), "[{phase}] {construct}: {q}");
    }
    check_hits(c, phase, total_blocks).await;
    check_filters(c, phase).await;
    check_tag_search(c, phase).await;
    check_tags(c, phase).await;
}

async fn check_hits(c: &TempoClient, phase: &str, total_blocks: u32) {
    let r = search(c, &SearchRequest::traceql("{}"), phase).await;
    assert_eq!(r.metrics.inspected_traces, 6, "[{phase}] {:?}", r.metrics);
    assert_eq!(r.metrics.inspected_spans, 16, "[{phase}] {:?}", r.metrics);
    assert!(r.metrics.inspected_bytes > 0, "[{phase}] {:?}", r.metrics);
    assert_eq!(
        r.metrics.total_blocks, total_blocks,
        "[{phase}] {:?}",
        r.metrics
    );
    let t6 = &r.traces[0];
    assert_eq!(t6.trace_id, "abcde", "[{phase}] leading zeros stripped");
    assert_eq!(t6.root_service_name, "frontend");
    assert_eq!(t6.root_trace_name, "GET /search");
    assert_eq!(t6.duration_ms, 3000);
    assert_eq!(t6.start_time_unix_nano, trace_start_ns(6));
    assert_eq!(
        t6.span_set.as_ref(),
        t6.span_sets.first(),
        "[{phase}] spanSet"
    );
    let ids: Vec<&str> = t6.span_sets[0]
        .spans
        .iter()
        .map(|s| s.span_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [span_hex(6, 1), span_hex(6, 2), span_hex(6, 3)],
        "[{phase}] spss 3"
    );
    assert_eq!(
        service_stats(t6),
        [("frontend", 1, 0), ("search", 5, 0)],
        "[{phase}] serviceStats count every span, not only matched ones"
    );
    let r = search(c, &SearchRequest::traceql("{ status = error }"), phase).await;
    assert_eq!(
        service_stats(&r.traces[0]),
        [("db", 1, 0), ("frontend", 1, 1), ("payment", 1, 1)],
        "[{phase}] serviceStats errors"
    );

    let r = search(c, &SearchRequest::traceql(r#"{ name = "GetCart" }"#), phase).await;
    let (t5, t1) = (&r.traces[0], &r.traces[1]);
    assert_eq!(
        t5.root_service_name, "<root span not yet received>",
        "[{phase}]"
    );
    assert_eq!(t5.root_trace_name, "");
    assert_eq!(
        (t5.start_time_unix_nano, t5.duration_ms),
        (trace_start_ns(5), 10)
    );
    let span = &t5.span_sets[0].spans[0];
    assert_eq!(span.span_id, span_hex(5, 2));
    assert_eq!(span.name, "GetCart");
    assert_eq!(span.start_time_unix_nano, trace_start_ns(5));
    assert_eq!(span.duration_nanos, 10_000_000);
    assert!(
        span.attributes.is_empty(),
        "[{phase}] intrinsics are not attributes"
    );
    assert_eq!(
        (t1.root_service_name.as_str(), t1.root_trace_name.as_str()),
        ("frontend", "GET /cart")
    );
    assert_eq!(
        (t1.start_time_unix_nano, t1.duration_ms),
        (trace_start_ns(1), 120)
    );

    // Matched spans show the attributes the query read, with their types.
    let q = r#"{ .http.status_code >= 200 && resource.deployment.environment = "staging" }"#;
    let r = search(c, &SearchRequest::traceql(q), phase).await;
    let attrs = serde_json::to_value(&r.traces[0].span_sets[0].spans[0].attributes).unwrap();
    assert_eq!(
        attrs,
        serde_json::json!([
            {"key": "http.status_code", "value": {"intValue": "200"}},
            {"key": "deployment.environment", "value": {"stringValue": "staging"}}
        ]),
        "[{phase}]"
    );
    let q = "{ .payment.amount > 1 && .cache.hit = false }";
    let r = search(c, &SearchRequest::traceql(q), phase).await;
    let attrs = serde_json::to_value(&r.traces[0].span_sets[0].spans[0].attributes).unwrap();
    assert_eq!(
        attrs,
        serde_json::json!([
            {"key": "payment.amount", "value": {"doubleValue": 42.5}},
            {"key": "cache.hit", "value": {"boolValue": false}}
        ]),
        "[{phase}]"
    );

    // spss: the matched spans that start first; `matched` counts them all.
    for (spss, n) in [(1, 1), (5, 5), (100, 6)] {
        let r = search(c, &SearchRequest::traceql("{}").with_spss(spss), phase).await;
        let set = &r.traces[0].span_sets[0];
        let ids: Vec<String> = set.spans.iter().map(|s| s.span_id.clone()).collect();
        let want: Vec<String> = (1..=n).map(|s| span_hex(6, s)).collect();
        assert_eq!((ids, set.matched), (want, 6), "[{phase}] spss={spss}");
    }
    let r = search(
        c,
        &SearchRequest::traceql("{ kind = internal }").with_spss(2),
        phase,
    )
    .await;
    let ids: Vec<&str> = r.traces[0].span_sets[0]
        .spans
        .iter()
        .map(|s| s.span_id.as_str())
        .collect();
    assert_eq!(ids, [span_hex(6, 2), span_hex(6, 3)], "[{phase}]");

    // limit keeps the most recent traces.
    for (limit, want) in [(1, &[(6, 6)][..]), (2, &[(6, 6), (5, 1)][..])] {
        let r = search(c, &SearchRequest::traceql("{}").with_limit(limit), phase).await;
        assert_eq!(got(&r), expected(want), "[{phase}] limit={limit}");
    }
    let r = search(
        c,
        &SearchRequest::traceql("{ status = unset }").with_limit(3),
        phase,
    )
    .await;
    assert_eq!(
        got(&r),
        expected(&[(6, 6), (5, 1), (4, 2)]),
        "[{phase}] limit 3"
    );
}

fn durations(q: &str, min: Option<&str>, max: Option<&str>) -> SearchRequest {
    SearchRequest {
        min_duration: min.map(str::to_owned),
        max_duration: max.map(str::to_owned),
        ..SearchRequest::traceql(q)
    }
}

async fn check_filters(c: &TempoClient, phase: &str) {
    let all: Want<'_> = &[(1, 3), (2, 3), (3, 1), (4, 2), (5, 1), (6, 6)];
    let cases: [(&str, SearchRequest, Want<'_>); 12] = [
        (
            "minDuration",
            durations("{}", Some("100ms"), None),
            &[(1, 3), (2, 3), (6, 6)],
        ),
        (
            "minDuration inclusive",
            durations("{}", Some("120ms"), None),
            &[(1, 3), (2, 3), (6, 6)],
        ),
        (
            "maxDuration",
            durations("{}", None, Some("100ms")),
            &[(3, 1), (4, 2), (5, 1)],
        ),
        (
            "maxDuration inclusive",
            durations("{}", None, Some("120ms")),
            &[(1, 3), (3, 1), (4, 2), (5, 1)],
        ),
        (
            "min and max",
            durations("{}", Some("10ms"), Some("1s")),
            &[(1, 3), (2, 3), (4, 2), (5, 1)],
        ),
        (
            "duration in whole ms",
            durations("{}", Some("2500us"), None),
            all,
        ),
        (
            "durations with a query",
            durations("{ kind = server }", None, Some("100ms")),
            &[(3, 1), (5, 1)],
        ),
        (
            "start/end",
            SearchRequest::traceql("{}").with_range(BASE_S as u32 + 50, BASE_S as u32 + 130),
            &[(2, 3), (3, 1)],
        ),
        (
            "start/end overlap",
            SearchRequest::traceql("{}").with_range(BASE_S as u32 + 302, BASE_S as u32 + 400),
            &[(6, 6)],
        ),
        (
            "end is inclusive",
            SearchRequest::traceql("{}").with_range(BASE_S as u32 - 100, BASE_S as u32),
            &[(1, 3)],
        ),
        (
            "start/end with a query",
            SearchRequest::traceql("{ kind = server }")
                .with_range(BASE_S as u32 + 100, BASE_S as u32 + 250),
            &[(3, 1), (5, 1)],
        ),
        (
            "tags with start/end",
            SearchRequest::tags("http.method=get").with_range(BASE_S as u32, BASE_S as u32 + 130),
            &[(1, 1), (3, 1)],
        ),
    ];
    for (what, req, want) in cases {
        let r = search(c, &req, phase).await;
        assert_eq!(got(&r), expected(want), "[{phase}] {what}: {req:?}");
    }
    let far = SearchRequest::traceql("{}").with_range(BASE_S as u32 + 1000, BASE_S as u32 + 2000);
    let r = search(c, &far, phase).await;
    assert!(r.traces.is_empty(), "[{phase}] nothing in range");
    assert_eq!(
        r.metrics.total_blocks, 0,
        "[{phase}] blocks out of range are skipped"
    );
}

async fn check_tag_search(c: &TempoClient, phase: &str) {
    let cases: [(&str, Want<'_>); 10] = [
        ("service.name=cart", &[(1, 1), (4, 1), (5, 1)]),
        ("http.method=get", &[(1, 1), (3, 1), (5, 1), (6, 1)]),
        (
            "http.method=GET http.status_code=200",
            &[(1, 1), (3, 1), (6, 1)],
        ),
        ("name=cart", &[(1, 3), (4, 2), (5, 1)]),
        ("status.code=error", &[(2, 2)]),
        ("root.service.name=front", &[(1, 3), (2, 3), (3, 1), (6, 6)]),
        ("cache.hit=true", &[(1, 1)]),
        ("db.rows=3", &[(1, 1)]),
        ("deployment.environment=STAG", &[(3, 1), (4, 2)]),
        (r#"http.url="shop.example/CART""#, &[(1, 1)]),
    ];
    for (tags, want) in cases {
        let r = search(c, &SearchRequest::tags(tags), phase).await;
        assert_eq!(got(&r), expected(want), "[{phase}] tags={tags}");
    }
    let r = search(
        c,
        &durations("{}", Some("20ms"), None).clone_with_tags("service.name=cart"),
        phase,
    )
    .await;
    assert_eq!(
        got(&r),
        expected(&[(1, 1), (4, 1)]),
        "[{phase}] tags + minDuration"
    );
    let legacy: [(&[(&str, &str)], Want<'_>); 4] = [
        (&[("service.name", "cart")], &[(1, 1), (4, 1), (5, 1)]),
        (&[("service.name", "cart"), ("limit", "1")], &[(5, 1)]),
        (
            &[("http.method", "GET"), ("service.name", "frontend")],
            &[(1, 1), (3, 1), (6, 1)],
        ),
        // With start/end, other parameters are not tags.
        (
            &[
                ("service.name", "cart"),
                ("start", "1699999000"),
                ("end", "1700001000"),
            ],
            &[(1, 3), (2, 3), (3, 1), (4, 2), (5, 1), (6, 6)],
        ),
    ];
    for (pairs, want) in legacy {
        let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let r = search_pairs(c, &pairs, phase).await;
        assert_eq!(got(&r), expected(want), "[{phase}] legacy {pairs:?}");
    }
}

trait WithTags {
    fn clone_with_tags(self, tags: &str) -> SearchRequest;
}

impl WithTags for SearchRequest {
    fn clone_with_tags(self, tags: &str) -> SearchRequest {
        SearchRequest {
            q: None,
            tags: Some(tags.into()),
            ..self
        }
    }
}
