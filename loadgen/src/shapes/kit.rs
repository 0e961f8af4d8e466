//! Building blocks for shapes: attributes, placeholder spans, resources, grouping, params.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::Params;
use super::ids::Rng;
use super::placeholder;
use crate::scenario::SizeProfile;

/// One microsecond in nanoseconds.
pub const US: u64 = 1_000;
/// One millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;
/// Semantic-conventions schema used by the shapes.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

/// The schema URL for a profile (minimal leaves it out, to stay small).
pub fn schema_url(profile: SizeProfile) -> &'static str {
    match profile {
        SizeProfile::Minimal => "",
        _ => SCHEMA_URL,
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// String attribute.
pub fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

/// Integer attribute.
pub fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

/// Float attribute.
pub fn f(key: &str, value: f64) -> KeyValue {
    kv(key, Value::DoubleValue(value))
}

/// Boolean attribute.
pub fn b(key: &str, value: bool) -> KeyValue {
    kv(key, Value::BoolValue(value))
}

/// A span with placeholder ids for position `index` (parent by position; `None` = root),
/// times relative to the trace start.
pub fn span(
    index: usize,
    parent: Option<usize>,
    name: impl Into<String>,
    kind: SpanKind,
    start: u64,
    end: u64,
) -> Span {
    Span {
        trace_id: placeholder::this_trace(),
        span_id: placeholder::span_ref(index as u64),
        parent_span_id: parent
            .map(|p| placeholder::span_ref(p as u64))
            .unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        ..Default::default()
    }
}

/// An event at `time` (relative to the trace start).
pub fn event(time: u64, name: &str, attributes: Vec<KeyValue>) -> Event {
    Event {
        time_unix_nano: time,
        name: name.to_owned(),
        attributes,
        ..Default::default()
    }
}

/// A link to span `index` of this trace.
pub fn link_within(index: usize, attributes: Vec<KeyValue>) -> Link {
    Link {
        trace_id: placeholder::this_trace(),
        span_id: placeholder::span_ref(index as u64),
        attributes,
        ..Default::default()
    }
}

/// A link to span `index` of trace `seq - delta` of the same run.
pub fn link_other(delta: u64, index: usize, attributes: Vec<KeyValue>) -> Link {
    Link {
        trace_id: placeholder::other_trace(delta),
        span_id: placeholder::span_ref(index as u64),
        attributes,
        ..Default::default()
    }
}

/// Mark a span as failed.
pub fn set_error(span: &mut Span, message: &str) {
    span.status = Some(Status {
        message: message.to_owned(),
        code: StatusCode::Error as i32,
    });
}

/// Replace the value of an integer attribute if present.
pub fn set_int(span: &mut Span, key: &str, value: i64) {
    for a in span.attributes.iter_mut().filter(|a| a.key == key) {
        a.value = Some(AnyValue {
            value: Some(Value::IntValue(value)),
        });
    }
}

/// An instrumentation scope.
pub fn scope(name: &str, version: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: name.to_owned(),
        version: version.to_owned(),
        ..Default::default()
    }
}

/// SDK language of a synthetic service (drives `telemetry.sdk.*` and `process.runtime.*`).
#[derive(Debug, Clone, Copy)]
pub enum Lang {
    /// Go.
    Go,
    /// Java.
    Java,
    /// Python.
    Python,
    /// Node.js.
    Node,
}

impl Lang {
    /// A language picked by the RNG.
    pub fn pick(rng: &mut Rng) -> Lang {
        match rng.below(4) {
            0 => Lang::Go,
            1 => Lang::Java,
            2 => Lang::Python,
            _ => Lang::Node,
        }
    }
    fn sdk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Lang::Go => ("go", "1.35.0", "go", "go1.24.4"),
            Lang::Java => (
                "java",
                "1.50.0",
                "OpenJDK Runtime Environment",
                "21.0.7+6-LTS",
            ),
            Lang::Python => ("python", "1.34.1", "cpython", "3.12.11"),
            Lang::Node => ("nodejs", "2.0.1", "nodejs", "22.17.0"),
        }
    }
}

/// A service resource sized by profile: minimal has `service.name` only, typical adds the
/// usual SDK and host attributes, heavy adds process, OS, container and Kubernetes ones.
pub fn service_resource(
    service: &str,
    version: &str,
    lang: Lang,
    profile: SizeProfile,
    rng: &mut Rng,
) -> Resource {
    let mut a = vec![s("service.name", service)];
    if profile != SizeProfile::Minimal {
        let (language, sdk_version, runtime, runtime_version) = lang.sdk();
        a.extend([
            s("service.version", version),
            s("telemetry.sdk.language", language),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.version", sdk_version),
            s("host.name", format!("{service}-{}", rng.hex(5))),
        ]);
        if profile == SizeProfile::Heavy {
            let pod = format!("{service}-{}-{}", rng.hex(10), rng.hex(5));
            a.extend([
                s("service.namespace", "shop"),
                s("service.instance.id", rng.uuid()),
                s("deployment.environment.name", "production"),
                s("process.runtime.name", runtime),
                s("process.runtime.version", runtime_version),
                i("process.pid", rng.range(1, 65_535) as i64),
                s("os.type", "linux"),
                s("host.arch", "amd64"),
                s("container.id", rng.hex(64)),
                s("k8s.namespace.name", "shop"),
                s("k8s.pod.name", pod),
                s("k8s.node.name", format!("node-pool-{}", rng.hex(6))),
                s("cloud.region", "eu-west-1"),
            ]);
        }
    }
    Resource {
        attributes: a,
        ..Default::default()
    }
}

/// Spans tagged with the resource and scope (indices into the caller's tables) they
/// belong to; [`Grouped::build`] turns them into `ResourceSpans`.
#[derive(Debug, Default)]
pub struct Grouped {
    items: Vec<(usize, usize, Span)>,
}

impl Grouped {
    /// Add a span of resource `res` and scope `scope`.
    pub fn push(&mut self, res: usize, scope: usize, span: Span) {
        self.items.push((res, scope, span));
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The span pushed at position `pos`.
    pub fn get_mut(&mut self, pos: usize) -> Option<&mut Span> {
        self.items.get_mut(pos).map(|(_, _, s)| s)
    }

    /// One `ResourceSpans` per resource and one `ScopeSpans` per scope within it, both in
    /// order of first appearance; spans keep push order.
    pub fn build(
        self,
        resources: &[Resource],
        scopes: &[InstrumentationScope],
        schema_url: &str,
    ) -> Vec<ResourceSpans> {
        // (resource, [(scope, spans)])
        type ByScope = Vec<(usize, Vec<Span>)>;
        let mut out: Vec<(usize, ByScope)> = Vec::new();
        for (res, sc, span) in self.items {
            let pos = match out.iter().position(|(r, _)| *r == res) {
                Some(p) => p,
                None => {
                    out.push((res, Vec::new()));
                    out.len() - 1
                }
            };
            let scopes_of = &mut out[pos].1;
            match scopes_of.iter_mut().find(|(s, _)| *s == sc) {
                Some((_, spans)) => spans.push(span),
                None => scopes_of.push((sc, vec![span])),
            }
        }
        out.into_iter()
            .map(|(res, scs)| ResourceSpans {
                resource: resources.get(res).cloned(),
                scope_spans: scs
                    .into_iter()
                    .map(|(sc, spans)| ScopeSpans {
                        scope: scopes.get(sc).cloned(),
                        spans,
                        schema_url: schema_url.to_owned(),
                    })
                    .collect(),
                schema_url: schema_url.to_owned(),
            })
            .collect()
    }
}

/// A numeric parameter (non-finite or missing values give the default).
pub fn param(params: &Params, name: &str, default: f64) -> f64 {
    params
        .get(name)
        .copied()
        .filter(|v| v.is_finite())
        .unwrap_or(default)
}

/// A count parameter, rounded and clamped to `min..=max`.
pub fn count(params: &Params, name: &str, default: u64, min: u64, max: u64) -> u64 {
    let v = param(params, name, default as f64).round();
    if v <= min as f64 {
        min
    } else if v >= max as f64 {
        max
    } else {
        v as u64
    }
}

/// A probability parameter clamped to `0..=1`.
pub fn fraction(params: &Params, name: &str, default: f64) -> f64 {
    param(params, name, default).clamp(0.0, 1.0)
}

/// Whether `variant` is one of the `round(rate × variants)` variants chosen to fail, so the
/// failing share of traces is as close to `rate` as `variants` allows. Deterministic in
/// `(seed, salt)`.
pub fn variant_fails(seed: u64, salt: u64, variant: u64, variants: u64, rate: f64) -> bool {
    let failing = (rate.clamp(0.0, 1.0) * variants as f64).round() as u64;
    let key = |v: u64| super::ids::mix64(seed ^ super::ids::mix64(salt ^ v));
    let mine = key(variant);
    (0..variants).filter(|&v| key(v) < mine).count() < failing as usize
}

/// A semconv user agent string chosen by the RNG.
pub fn user_agent(rng: &mut Rng) -> &'static str {
    const AGENTS: [&str; 4] = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "curl/8.8.0",
    ];
    AGENTS[rng.below(AGENTS.len() as u64) as usize]
}

/// A private IPv4 address.
pub fn ip(rng: &mut Rng) -> String {
    format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.range(1, 254)
    )
}
