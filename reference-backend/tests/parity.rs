//! Tempo parity: all-zero ids refused on every ingest path (with nothing accepted lost), and
//! cross-tenant reads (`X-Scope-OrgID: a|b`) by id, search and tags, with Tempo's rules for
//! the header and writes that stay single-tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{client, config, kv, post_proto, request, span_names, start, trace_id};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use reference_backend::Backend;
use tempo_api::search::{SearchRequest, TagsRequest};
use tempo_api::{TempoClient, join_tenants};

/// One request holding trace `good` (one span) and trace `bad` (one span whose ids
/// `break_ids` spoils), in that order.
fn mixed(
    good: u64,
    bad: u64,
    break_ids: fn(&mut opentelemetry_proto::tonic::trace::v1::Span),
) -> ExportTraceServiceRequest {
    let mut r = request("svc", good, 1, 1);
    let mut b = request("svc", bad, 1, 1).resource_spans[0].scope_spans[0].spans[0].clone();
    break_ids(&mut b);
    r.resource_spans[0].scope_spans[0].spans.push(b);
    r
}

async fn post_json(
    b: &Backend,
    tenant: Option<&str>,
    req: &ExportTraceServiceRequest,
) -> (u16, String) {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", b.addrs.otlp_http))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(req).unwrap());
    if let Some(t) = tenant {
        r = r.header("X-Scope-OrgID", t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn grpc_export(
    b: &Backend,
    tenant: Option<&str>,
    req: ExportTraceServiceRequest,
) -> Result<(), tonic::Status> {
    let mut grpc = TraceServiceClient::connect(format!("http://{}", b.addrs.otlp_grpc))
        .await
        .unwrap();
    let mut r = tonic::Request::new(req);
    if let Some(t) = tenant {
        r.metadata_mut().insert("x-scope-orgid", t.parse().unwrap());
    }
    grpc.export(r).await.map(|_| ())
}

async fn metrics(b: &Backend) -> String {
    reqwest::get(format!("http://{}/metrics", b.addrs.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_zero_ids_are_refused_on_every_ingest_path_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path())).await;
    assert_eq!(post_proto(&b, None, &request("svc", 1, 1, 2)).await.0, 200);
    let zero_trace = |s: &mut opentelemetry_proto::tonic::trace::v1::Span| s.trace_id = vec![0; 16];
    let zero_span = |s: &mut opentelemetry_proto::tonic::trace::v1::Span| s.span_id = vec![0; 8];
    let trace_msg =
        "trace ids must not be all zero (resource_spans[0].scope_spans[0].spans[1].trace_id";
    let span_msg = "span ids must be 64 bit and not all zero, received 64 bits all zero (resource_spans[0].scope_spans[0].spans[1].span_id)";

    // Each path refuses the whole request: trace 2 (valid) comes with the bad span.
    let (s, _, body) = post_proto(&b, None, &mixed(2, 3, zero_trace)).await;
    assert_eq!(s, 400);
    assert!(
        String::from_utf8_lossy(&body).contains(trace_msg),
        "{body:?}"
    );
    let (s, body) = post_json(&b, None, &mixed(2, 3, zero_trace)).await;
    assert_eq!(s, 400);
    assert!(body.contains(trace_msg), "{body}");
    let e = grpc_export(&b, None, mixed(2, 3, zero_trace))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains(trace_msg), "{e:?}");

    let (s, body) = post_json(&b, None, &mixed(2, 3, zero_span)).await;
    assert_eq!(s, 400);
    assert!(body.contains(span_msg), "{body}");
    let e = grpc_export(&b, None, mixed(2, 3, zero_span))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains(span_msg), "{e:?}");
    // A large body takes the blocking-pool path of the walker: same answer.
    let mut big = mixed(2, 3, zero_trace);
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("pad", &"x".repeat(300 * 1024)));
    let (s, _, body) = post_proto(&b, None, &big).await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains(trace_msg));

    let c = client(&b);
    assert_eq!(
        span_names(&c.trace_v1(&trace_id(1)).await.unwrap().unwrap()).len(),
        2
    );
    for t in [2, 3] {
        assert!(
            c.trace_v1(&trace_id(t)).await.unwrap().is_none(),
            "trace {t}"
        );
    }
    assert!(c.trace_v1(&[0; 16]).await.unwrap().is_none());
    // After a flush (blocks written) and still: only trace 1.
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(c.trace_v1(&trace_id(1)).await.unwrap().is_some());
    assert!(c.trace_v1(&trace_id(2)).await.unwrap().is_none());
    let m = metrics(&b).await;
    // Four trace-id refusals and two span-id refusals of two spans each.
    assert!(
        m.contains(
            "tempo_discarded_spans_total{reason=\"invalid_trace_id\",tenant=\"single-tenant\"} 8"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "tempo_discarded_spans_total{reason=\"invalid_span_id\",tenant=\"single-tenant\"} 4"
        ),
        "{m}"
    );
    assert!(m.contains("tempo_distributor_spans_received_total{tenant=\"single-tenant\"} 2"));
    b.shutdown().await.unwrap();
}

/// Trace `t` with one span (`span_byte` repeated as its id) named `name`, service `svc`,
/// and the attribute `attr` = "1".
fn one_span(svc: &str, t: u64, span_byte: u8, name: &str, attr: &str) -> ExportTraceServiceRequest {
    let mut r = request(svc, t, 1, 1);
    let s = &mut r.resource_spans[0].scope_spans[0].spans[0];
    s.span_id = vec![span_byte; 8];
    s.name = name.into();
    s.attributes.push(kv(attr, "1"));
    r
}

fn ids(resp: &tempo_api::search::SearchResponse) -> BTreeSet<String> {
    resp.traces.iter().map(|t| t.trace_id.clone()).collect()
}

fn hex(t: u64) -> String {
    tempo_api::trace_id_to_search_hex(&trace_id(t))
}

async fn tag_names(c: &TempoClient) -> BTreeSet<String> {
    c.search_tags()
        .await
        .unwrap()
        .tag_names
        .into_iter()
        .collect()
}

async fn check_cross_tenant_reads(base: &TempoClient) {
    let both = base
        .clone()
        .with_tenant(Some("team-b|team-a|team-b".into()));
    let a = base.clone().with_tenant(Some("team-a".into()));
    let bb = base.clone().with_tenant(Some("team-b".into()));

    // By id: the parts of trace 1 written under each tenant, merged; one tenant sees its own.
    let spans = span_names(&both.trace_v1(&trace_id(1)).await.unwrap().unwrap());
    assert_eq!(spans, ["a-span", "b-span"]);
    assert_eq!(
        span_names(&a.trace_v1(&trace_id(1)).await.unwrap().unwrap()),
        ["a-span"]
    );
    assert_eq!(
        span_names(&bb.trace_v1(&trace_id(1)).await.unwrap().unwrap()),
        ["b-span"]
    );
    let v2 = both.trace_v2(&trace_id(1)).await.unwrap().unwrap();
    assert_eq!(span_names(&v2.resource_spans), ["a-span", "b-span"]);
    assert!(
        both.trace_v1(&trace_id(4)).await.unwrap().is_none(),
        "team-c is not read"
    );

    // Search: hits of both tenants, trace 1 once with both parts counted.
    let all = both.search(&SearchRequest::traceql("{}")).await.unwrap();
    assert_eq!(
        ids(&all),
        [hex(1), hex(2), hex(3), hex(6)].into_iter().collect()
    );
    let t1 = all.traces.iter().find(|t| t.trace_id == hex(1)).unwrap();
    assert_eq!(t1.span_sets[0].matched, 2);
    let stats: Vec<(&str, u32)> = t1
        .service_stats
        .iter()
        .map(|(k, v)| (k.as_str(), v.span_count))
        .collect();
    assert_eq!(stats, [("svc-a", 1), ("svc-b", 1)]);
    let only_b = both
        .search(&SearchRequest::traceql("{ span.onlyb = \"1\" }"))
        .await
        .unwrap();
    assert_eq!(ids(&only_b), [hex(1), hex(2)].into_iter().collect());
    assert_eq!(
        ids(&a.search(&SearchRequest::traceql("{}")).await.unwrap()),
        [hex(1), hex(3), hex(6)].into_iter().collect()
    );

    // Tags: the union of both tenants' names and values, nothing of team-c.
    let names = tag_names(&both).await;
    assert!(
        names.contains("onlya") && names.contains("onlyb"),
        "{names:?}"
    );
    assert!(!names.contains("onlyc"), "{names:?}");
    let a_names = tag_names(&a).await;
    assert!(
        a_names.contains("onlya") && !a_names.contains("onlyb"),
        "{a_names:?}"
    );
    let v2 = both
        .search_tags_v2_with(&TagsRequest::scope("span"))
        .await
        .unwrap();
    let span_tags: BTreeSet<&str> = v2.scopes[0].tags.iter().map(String::as_str).collect();
    assert!(
        span_tags.is_superset(&["onlya", "onlyb"].into_iter().collect()),
        "{span_tags:?}"
    );
    let values = both
        .search_tag_values("service.name")
        .await
        .unwrap()
        .tag_values;
    assert_eq!(values, ["svc-a", "svc-b"]);
    let typed = both
        .search_tag_values_v2("resource.service.name")
        .await
        .unwrap()
        .tag_values;
    let typed: Vec<&str> = typed.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(typed, ["svc-a", "svc-b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_reads_merge_by_id_search_and_tags_and_writes_stay_single_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.multitenancy_enabled = true;
    let b = start(cfg.clone()).await;
    // Trace 1: one part per tenant, team-a's already in a block, team-b's in memory.
    let ok = |r: (u16, Option<String>, bytes::Bytes)| assert_eq!(r.0, 200, "{:?}", r.2);
    ok(post_proto(
        &b,
        Some("team-a"),
        &one_span("svc-a", 1, 0xa1, "a-span", "onlya"),
    )
    .await);
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    ok(post_proto(
        &b,
        Some("team-b"),
        &one_span("svc-b", 1, 0xb1, "b-span", "onlyb"),
    )
    .await);
    ok(post_proto(
        &b,
        Some("team-b"),
        &one_span("svc-b", 2, 0xb2, "b2", "onlyb"),
    )
    .await);
    ok(post_proto(
        &b,
        Some("team-a"),
        &one_span("svc-a", 3, 0xa3, "a3", "onlya"),
    )
    .await);
    ok(post_proto(
        &b,
        Some("team-c"),
        &one_span("svc-c", 4, 0xc4, "c4", "onlyc"),
    )
    .await);

    // `a|a` is one tenant, as in Tempo: trace 6 lands in team-a.
    ok(post_proto(
        &b,
        Some("team-a|team-a"),
        &one_span("svc-a", 6, 0x66, "a6", "onlya"),
    )
    .await);
    let base = client(&b);
    check_cross_tenant_reads(&base).await;

    // Tempo's header rules on every read route: an empty part is 400 `no org id`, each part
    // is validated; no header at all is 401.
    let routes = [
        format!("/api/traces/{}", hex(1)),
        format!("/api/v2/traces/{}", hex(1)),
        "/api/search?q=%7B%7D".to_owned(),
        "/api/search/tags".to_owned(),
        "/api/v2/search/tags".to_owned(),
        "/api/search/tag/service.name/values".to_owned(),
        "/api/v2/search/tag/resource.service.name/values".to_owned(),
    ];
    let bad = [
        ("|team-a", 400, "no org id"),
        ("team-a|", 400, "no org id"),
        ("team-a||team-b", 400, "no org id"),
        ("team-a|..", 400, "tenant ID is '.' or '..'"),
        (
            "team-a|x/y",
            400,
            "tenant ID 'x/y' contains unsupported character '/'",
        ),
    ];
    for route in &routes {
        for (header, status, msg) in bad {
            let r = base
                .clone()
                .with_tenant(Some(header.into()))
                .trace_raw(route)
                .await
                .unwrap();
            assert_eq!(r.status, status, "{route} {header}: {}", r.text());
            assert!(r.text().contains(msg), "{route} {header}: {}", r.text());
        }
        assert_eq!(base.trace_raw(route).await.unwrap().status, 401, "{route}");
    }

    // Writes take exactly one tenant: `a|b` refused on both transports.
    let (s, _, body) =
        post_proto(&b, Some("team-a|team-b"), &one_span("x", 5, 0x55, "x", "x")).await;
    assert_eq!(s, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("multiple org IDs present"),
        "{body:?}"
    );
    let e = grpc_export(&b, Some("team-a|team-b"), one_span("x", 5, 0x55, "x", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("multiple org IDs present"), "{e:?}");
    let a = base.clone().with_tenant(Some("team-a".into()));
    assert!(a.trace_v1(&trace_id(6)).await.unwrap().is_some());
    let joined = base
        .clone()
        .with_tenant(Some(join_tenants(&["team-a", "team-b"])));
    assert!(joined.trace_v1(&trace_id(5)).await.unwrap().is_none());
    assert!(!dir.path().join("blocks/team-a|team-b").exists());
    // Shutdown leaves what is not in a block in the WAL: flush first, so that after the WAL
    // is removed every part is read from blocks.
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    b.shutdown().await.unwrap();

    // The same reads after a restart, every part now read from blocks.
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let b = start(cfg).await;
    check_cross_tenant_reads(&client(&b)).await;
    b.shutdown().await.unwrap();
}
