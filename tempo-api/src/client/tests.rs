#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::otlp::trace::v1::{ScopeSpans, Span};
use crate::trace_id::parse_trace_id;
use crate::trace_json::trace_v1_json;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ID_HEX: &str = "5b8efff798038103d269b633813fc700";

/// Serves one canned HTTP/1.1 response on 127.0.0.1 and returns the base URL
/// plus a handle yielding the raw request head it received.
async fn serve_once(
    status: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&body).await.unwrap();
        sock.shutdown().await.unwrap();
        String::from_utf8(req).unwrap()
    });
    (format!("http://{addr}"), handle)
}

fn header<'a>(request: &'a str, name: &str) -> Option<&'a str> {
    request.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn request_line(request: &str) -> &str {
    request.lines().next().unwrap()
}

fn id() -> TraceId {
    parse_trace_id(ID_HEX).unwrap()
}

fn one_span() -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: id().to_vec(),
                span_id: vec![1; 8],
                name: "root".into(),
                ..Span::default()
            }],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }]
}

#[tokio::test]
async fn v1_not_found_is_none_and_tenant_header_is_sent() {
    let (base, req) = serve_once("404 Not Found", "text/plain", Vec::new()).await;
    let client = TempoClient::new(&base)
        .unwrap()
        .with_tenant(Some("team-a".into()));
    assert!(client.trace_v1(&id()).await.unwrap().is_none());
    let req = req.await.unwrap();
    assert_eq!(
        request_line(&req),
        format!("GET /api/traces/{ID_HEX} HTTP/1.1")
    );
    assert_eq!(header(&req, "x-scope-orgid"), Some("team-a"));
    assert_eq!(header(&req, "accept"), Some(ACCEPT_JSON));
}

#[tokio::test]
async fn no_tenant_sends_no_header() {
    let (base, req) = serve_once("200 OK", "text/plain", b"echo".to_vec()).await;
    let client = TempoClient::new(&base).unwrap();
    assert_eq!(client.echo().await.unwrap(), "echo");
    let req = req.await.unwrap();
    assert_eq!(request_line(&req), "GET /api/echo HTTP/1.1");
    assert_eq!(header(&req, "x-scope-orgid"), None);
}

#[tokio::test]
async fn v1_json_decodes_base64_ids() {
    let body = serde_json::to_vec(&trace_v1_json(&one_span())).unwrap();
    let (base, _req) = serve_once("200 OK", "application/json", body).await;
    let got = TempoClient::new(&base)
        .unwrap()
        .trace_v1(&id())
        .await
        .unwrap();
    assert_eq!(got, Some(one_span()));
}

#[tokio::test]
async fn v1_proto_sends_accept_and_decodes() {
    let body = TracesData {
        resource_spans: one_span(),
    }
    .encode_to_vec();
    let (base, req) = serve_once("200 OK", "application/protobuf", body).await;
    let got = TempoClient::new(&base)
        .unwrap()
        .trace_v1_proto(&id())
        .await
        .unwrap();
    assert_eq!(got, Some(one_span()));
    assert_eq!(header(&req.await.unwrap(), "accept"), Some(ACCEPT_PROTOBUF));
}

#[tokio::test]
async fn v2_empty_trace_is_none() {
    let (base, req) = serve_once(
        "200 OK",
        "application/json",
        br#"{"trace":{},"metrics":{}}"#.to_vec(),
    )
    .await;
    let got = TempoClient::new(&base)
        .unwrap()
        .trace_v2(&id())
        .await
        .unwrap();
    assert!(got.is_none());
    assert_eq!(
        request_line(&req.await.unwrap()),
        format!("GET /api/v2/traces/{ID_HEX} HTTP/1.1")
    );
}

#[tokio::test]
async fn v2_partial_trace_keeps_status() {
    let mut body = crate::trace_json::trace_by_id_v2_json(&one_span(), 77);
    body.status = Some("PARTIAL".into());
    body.message = Some("too big".into());
    let (base, _req) = serve_once(
        "200 OK",
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    let got = TempoClient::new(&base)
        .unwrap()
        .trace_v2(&id())
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_partial());
    assert_eq!(got.metrics.inspected_bytes, 77);
    assert_eq!(got.message.as_deref(), Some("too big"));
    assert_eq!(got.resource_spans, one_span());
}

#[tokio::test]
async fn v2_proto_decodes_wrapper() {
    let body = TraceByIdResponseProto {
        trace: Some(TracesData {
            resource_spans: one_span(),
        }),
        metrics: None,
        status: 0,
        message: String::new(),
    }
    .encode_to_vec();
    let (base, _req) = serve_once("200 OK", "application/protobuf", body).await;
    let got = TempoClient::new(&base)
        .unwrap()
        .trace_v2_proto(&id())
        .await
        .unwrap()
        .unwrap();
    assert!(!got.is_partial());
    assert_eq!(got.resource_spans, one_span());
}

#[tokio::test]
async fn server_errors_carry_status_body_and_url() {
    let (base, _req) =
        serve_once("500 Internal Server Error", "text/plain", b"boom".to_vec()).await;
    let err = TempoClient::new(&base)
        .unwrap()
        .trace_v1(&id())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    let msg = err.to_string();
    assert!(msg.contains("boom") && msg.contains(ID_HEX), "{msg}");
}

#[tokio::test]
async fn raw_returns_bad_input_answers() {
    let text = "trace IDs can only contain hex characters: invalid character 'x' at position 1";
    let (base, req) = serve_once(
        "400 Bad Request",
        "text/plain; charset=utf-8",
        text.as_bytes().to_vec(),
    )
    .await;
    let raw = TempoClient::new(&base)
        .unwrap()
        .trace_raw("/api/traces/xyz")
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    assert_eq!(raw.text(), text);
    assert_eq!(raw.content_type(), Some("text/plain; charset=utf-8"));
    let req = req.await.unwrap();
    assert_eq!(request_line(&req), "GET /api/traces/xyz HTTP/1.1");
    // reqwest's default; Tempo treats anything but protobuf as JSON.
    assert_eq!(header(&req, "accept"), Some("*/*"));
}

#[tokio::test]
async fn ready_maps_503_to_false() {
    let (base, _req) = serve_once(
        "503 Service Unavailable",
        "text/plain",
        b"Ingester not ready".to_vec(),
    )
    .await;
    assert!(!TempoClient::new(&base).unwrap().ready().await.unwrap());
    let (base, req) = serve_once("200 OK", "text/plain", b"ready".to_vec()).await;
    assert!(TempoClient::new(&base).unwrap().ready().await.unwrap());
    assert_eq!(request_line(&req.await.unwrap()), "GET /ready HTTP/1.1");
    let (base, _req) = serve_once("401 Unauthorized", "text/plain", b"no org id".to_vec()).await;
    assert_eq!(
        TempoClient::new(&base)
            .unwrap()
            .ready()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
}

#[tokio::test]
async fn search_builds_query_and_parses() {
    let body = br#"{"traces":[{"traceID":"abc","durationMs":3,"extra":1}],"metrics":{"inspectedBytes":"5"}}"#;
    let (base, req) = serve_once("200 OK", "application/json", body.to_vec()).await;
    let resp = TempoClient::new(&base)
        .unwrap()
        .search(&SearchRequest::traceql("{ .a = \"b c\" }").with_limit(2))
        .await
        .unwrap();
    assert_eq!(resp.traces[0].trace_id, "abc");
    assert_eq!(resp.metrics.inspected_bytes, 5);
    let line = request_line(&req.await.unwrap()).to_string();
    assert!(line.starts_with("GET /api/search?q="), "{line}");
    assert!(line.contains("&limit=2 "), "{line}");
    let target = line.split(' ').nth(1).unwrap();
    let parsed = Url::parse(&format!("http://x{target}")).unwrap();
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(pairs[0], ("q".to_string(), "{ .a = \"b c\" }".to_string()));
}

#[tokio::test]
async fn base_path_prefix_and_tag_segments() {
    let (base, req) = serve_once(
        "200 OK",
        "application/json",
        br#"{"tagValues":[{"type":"string","value":"x"}]}"#.to_vec(),
    )
    .await;
    let client = TempoClient::new(&format!("{base}/tempo/")).unwrap();
    let got = client
        .search_tag_values_v2("resource.service.name")
        .await
        .unwrap();
    assert_eq!(got.tag_values[0].value, "x");
    assert_eq!(
        request_line(&req.await.unwrap()),
        "GET /tempo/api/v2/search/tag/resource.service.name/values HTTP/1.1"
    );
}

#[tokio::test]
async fn buildinfo_and_tags() {
    let (base, req) = serve_once(
        "200 OK",
        "application/json",
        br#"{"version":"2.10.1","goVersion":"go1.25"}"#.to_vec(),
    )
    .await;
    let info = TempoClient::new(&base).unwrap().buildinfo().await.unwrap();
    assert_eq!(info.version, "2.10.1");
    assert_eq!(
        request_line(&req.await.unwrap()),
        "GET /api/status/buildinfo HTTP/1.1"
    );

    let (base, req) = serve_once(
        "200 OK",
        "application/json",
        br#"{"scopes":[{"name":"span","tags":["a"]}]}"#.to_vec(),
    )
    .await;
    let tags = TempoClient::new(&base)
        .unwrap()
        .search_tags_v2()
        .await
        .unwrap();
    assert_eq!(tags.scopes[0].tags, ["a"]);
    assert_eq!(
        request_line(&req.await.unwrap()),
        "GET /api/v2/search/tags HTTP/1.1"
    );
}

#[tokio::test]
async fn undecodable_body_is_a_decode_error() {
    let (base, _req) = serve_once("200 OK", "application/json", b"not json".to_vec()).await;
    let err = TempoClient::new(&base)
        .unwrap()
        .search_tags()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Decode { ref url, .. } if url.ends_with("/api/search/tags")),
        "{err}"
    );
}

#[tokio::test]
async fn transport_error_names_url() {
    // Bind then drop to get a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = TempoClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let err = client.echo().await.unwrap_err();
    match &err {
        ClientError::Transport { url, .. } => assert!(url.ends_with("/api/echo"), "{url}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn invalid_base_urls() {
    assert!(matches!(
        TempoClient::new("not a url"),
        Err(ClientError::InvalidUrl { .. })
    ));
    assert!(matches!(
        TempoClient::new("ftp://x"),
        Err(ClientError::InvalidUrl { .. })
    ));
    assert!(matches!(
        TempoClient::new("mailto:a@b"),
        Err(ClientError::InvalidUrl { .. })
    ));
}
