//! `go-example`: the Go HTTP service of the Tempo upgrade guide.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use super::ids::Rng;
use super::kit::{self, MS, US, event, i, s};
use super::{ParamDoc, Params, Shape, TemplatePart, TraceTemplate};
use crate::scenario::SizeProfile;

/// One `SPAN_KIND_SERVER` span `main-handler` with the event `handling request`, about
/// 100 ms long, from service `my-tempered-app` 1.0.0, scope `my-component`.
///
/// Every profile keeps that identity (resource, scope, span, event). Minimal adds nothing
/// else; typical adds HTTP server semantic-convention attributes and the Go SDK's
/// `telemetry.sdk.*` resource attributes; heavy adds request/response headers, network,
/// host, process and Kubernetes attributes and event attributes. Because each trace is a
/// single span carrying its own resource, a minimal trace is bigger than the profile's
/// nominal 65 bytes (≈ 150 B): the resource, scope and event are the shape's floor.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoExample;

const SALT: u64 = 0x60_E8A3;

const ROUTES: [(&str, &str, &str); 4] = [
    ("GET", "/", "/"),
    ("GET", "/hello", "/hello"),
    ("GET", "/api/items/42", "/api/items/{id}"),
    ("POST", "/api/items", "/api/items"),
];

impl Shape for GoExample {
    fn name(&self) -> &'static str {
        "go-example"
    }

    fn describe(&self) -> &'static str {
        "Tempo upgrade-guide Go app: one server span `main-handler` (~100 ms) with event `handling request`"
    }

    fn params(&self) -> &'static [ParamDoc] {
        &[]
    }

    fn template(&self, seed: u64, variant: u64, profile: SizeProfile, _: &Params) -> TraceTemplate {
        let mut rng = Rng::new(seed, variant ^ SALT);
        // About 100 ms, ±10 % by variant.
        let duration = rng.range(90 * MS, 110 * MS);
        let event_at = rng.range(50 * US, 2 * MS);
        let mut span = kit::span(0, None, "main-handler", SpanKind::Server, 0, duration);
        let mut ev = event(event_at, "handling request", Vec::new());

        let mut res = vec![
            s("service.name", "my-tempered-app"),
            s("service.version", "1.0.0"),
        ];
        if profile != SizeProfile::Minimal {
            let &(method, path, route) = rng.pick(&ROUTES).unwrap_or(&ROUTES[0]);
            let status = if rng.chance(0.05) { 404 } else { 200 };
            span.attributes = vec![
                s("http.request.method", method),
                s("url.path", path),
                s("http.route", route),
                i("http.response.status_code", status),
                s("server.address", "localhost"),
                i("server.port", 8080),
                s("user_agent.original", kit::user_agent(&mut rng)),
            ];
            if profile == SizeProfile::Heavy {
                heavy(&mut rng, &mut res, &mut span.attributes, &mut ev.attributes);
            }
        }
        span.events = vec![ev];
        let rs = ResourceSpans {
            resource: Some(Resource {
                attributes: res,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(kit::scope("my-component", "")),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        };
        TraceTemplate {
            parts: vec![TemplatePart {
                delay: std::time::Duration::ZERO,
                resource_spans: vec![rs],
            }],
            span_count: 1,
        }
    }
}

fn heavy(
    rng: &mut Rng,
    res: &mut Vec<KeyValue>,
    attrs: &mut Vec<KeyValue>,
    ev: &mut Vec<KeyValue>,
) {
    res.extend([
        s("telemetry.sdk.language", "go"),
        s("telemetry.sdk.name", "opentelemetry"),
        s("telemetry.sdk.version", "1.35.0"),
        s("service.instance.id", rng.uuid()),
        s("host.name", format!("my-tempered-app-{}", rng.hex(5))),
        s("os.type", "linux"),
        s("process.runtime.name", "go"),
        s("process.runtime.version", "go1.24.4"),
        i("process.pid", rng.range(1, 65_535) as i64),
    ]);
    attrs.extend([
        s("url.scheme", "http"),
        s("url.query", format!("page={}&sort=desc", rng.range(1, 50))),
        s("network.protocol.version", "1.1"),
        s("client.address", kit::ip(rng)),
        s(
            "http.request.header.accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        s("http.request.header.accept-encoding", "gzip, deflate, br"),
        s("http.request.header.x-request-id", rng.uuid()),
        s(
            "http.response.header.content-type",
            "application/json; charset=utf-8",
        ),
        i("http.response.body.size", rng.range(64, 4096) as i64),
    ]);
    ev.extend([
        s("handler.stage", "start"),
        i("goroutine.id", rng.range(10, 5000) as i64),
    ]);
}
