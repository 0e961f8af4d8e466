//! `high-cardinality`: attribute keys × values with a cardinality knob.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::ids::Rng;
use super::kit::{self, Grouped, Lang, MS, US, event, i, s};
use super::{ParamDoc, Params, Shape, TemplatePart, TraceTemplate, placeholder};
use crate::scenario::SizeProfile;

/// A server root and `spans − 1` internal children of service `hc-service`, each span with
/// `attrs_per_span` attributes whose keys come from a pool of `keys` and whose string
/// values take `values` distinct forms (`v0000`…`v0999` for 1000).
///
/// How cardinality survives shared templates: templates are per variant (`seq % 64`), so
/// which *keys* a span carries varies by variant (the pool is cycled so every key is used
/// once `64 × spans × attrs_per_span ≥ keys`), while every *value* is a fixed-width
/// placeholder ([`placeholder::card`]) replaced per trace from `(seed, seq, ordinal)`, both
/// by [`super::instantiate`] and by the encoded fast path (same width, so bytes are patched
/// in place). Each key therefore sees up to `values` distinct values over a run.
/// The cardinality attributes come on top of the profile: minimal spans carry only them.
#[derive(Debug, Clone, Copy, Default)]
pub struct HighCardinality;

const SALT: u64 = 0x41C_A4D;

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "keys",
        default: 20.0,
        help: "distinct attribute keys (1–100000)",
    },
    ParamDoc {
        name: "values",
        default: 1000.0,
        help: "distinct values per key (1–1000000000000)",
    },
    ParamDoc {
        name: "attrs_per_span",
        default: 10.0,
        help: "cardinality attributes per span (0–1000, at most `keys`)",
    },
    ParamDoc {
        name: "spans",
        default: 5.0,
        help: "spans per trace (1–10000)",
    },
];

const KEYS: [&str; 20] = [
    "user.id",
    "tenant.id",
    "session.id",
    "customer.id",
    "order.id",
    "cart.id",
    "device.id",
    "account.id",
    "request.origin",
    "feature.flag",
    "experiment.arm",
    "region.zone",
    "shard.id",
    "pod.ordinal",
    "build.id",
    "release.channel",
    "locale",
    "currency",
    "payment.method",
    "referrer",
];

fn key(k: u64) -> String {
    match KEYS.get(k as usize) {
        Some(name) => (*name).to_owned(),
        None => format!("hc.key.{k}"),
    }
}

impl Shape for HighCardinality {
    fn name(&self) -> &'static str {
        "high-cardinality"
    }

    fn describe(&self) -> &'static str {
        "spans with many attribute keys, values varying per trace (keys × values cardinality knob)"
    }

    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }

    fn template(
        &self,
        seed: u64,
        variant: u64,
        profile: SizeProfile,
        params: &Params,
    ) -> TraceTemplate {
        let keys = kit::count(params, "keys", 20, 1, 100_000);
        let values = kit::count(params, "values", 1000, 1, 1_000_000_000_000);
        let per_span = kit::count(params, "attrs_per_span", 10, 0, 1000).min(keys);
        let n = kit::count(params, "spans", 5, 1, 10_000) as usize;
        let mut rng = Rng::new(seed, variant ^ SALT);
        let resource = kit::service_resource("hc-service", "1.4.2", Lang::Go, profile, &mut rng);
        let scope = kit::scope("loadgen.high-cardinality", "1.0.0");
        let value = placeholder::card(values);
        // Keys cycle through the pool across variants and spans so that all are used.
        let mut next_key = (variant * n as u64 * per_span) % keys;
        let mut g = Grouped::default();
        let mut t = rng.range(50 * US, 300 * US);
        let mut children = Vec::with_capacity(n.saturating_sub(1));
        for c in 1..n {
            let dur = rng.range(200 * US, 3 * MS);
            let mut sp = kit::span(
                c,
                Some(0),
                format!("handle-step-{}", c % 8),
                SpanKind::Internal,
                t,
                t + dur,
            );
            sp.attributes = hc_attrs(&mut next_key, keys, per_span, &value);
            sp.attributes
                .extend(profile_attrs(&mut rng, profile, false));
            if profile == SizeProfile::Heavy {
                sp.events = vec![event(
                    t + dur / 2,
                    "step.progress",
                    vec![i("step", c as i64), s("detail", rng.hex(48))],
                )];
            }
            children.push(sp);
            t += dur + rng.range(10 * US, 100 * US);
        }
        let mut root = kit::span(
            0,
            None,
            "GET /api/v2/resources/{id}",
            SpanKind::Server,
            0,
            t + rng.range(50 * US, MS),
        );
        root.attributes = hc_attrs(&mut next_key, keys, per_span, &value);
        root.attributes
            .extend(profile_attrs(&mut rng, profile, true));
        g.push(0, 0, root);
        for c in children {
            g.push(0, 0, c);
        }
        TraceTemplate {
            parts: vec![TemplatePart {
                delay: std::time::Duration::ZERO,
                resource_spans: g.build(&[resource], &[scope], kit::schema_url(profile)),
            }],
            span_count: n,
        }
    }
}

/// `per_span` distinct keys (consecutive in the cycled pool), each with a placeholder value.
fn hc_attrs(next_key: &mut u64, keys: u64, per_span: u64, value: &str) -> Vec<KeyValue> {
    (0..per_span)
        .map(|_| {
            let k = *next_key;
            *next_key = (*next_key + 1) % keys;
            s(&key(k), value)
        })
        .collect()
}

fn profile_attrs(rng: &mut Rng, profile: SizeProfile, root: bool) -> Vec<KeyValue> {
    let mut a = Vec::new();
    if profile == SizeProfile::Minimal {
        return a;
    }
    if root {
        a.extend([
            s("http.request.method", "GET"),
            s("http.route", "/api/v2/resources/{id}"),
            i("http.response.status_code", 200),
        ]);
    }
    a.extend([
        s("code.function.name", "main.(*resourceHandler).step"),
        s("thread.name", format!("worker-{}", rng.below(16))),
        i("step.items", rng.range(1, 500) as i64),
    ]);
    if profile == SizeProfile::Heavy {
        a.extend([
            s("code.file.path", "/app/internal/resources/handler.go"),
            i("code.line.number", rng.range(20, 900) as i64),
            s("cache.key", format!("resources:{}", rng.hex(24))),
            s("auth.subject", format!("svc-account-{}", rng.hex(8))),
            s("payload.digest", rng.hex(64)),
            s("user_agent.original", kit::user_agent(rng)),
            s("client.address", kit::ip(rng)),
            s(
                "upstream.trace_state",
                format!("rojo=00f067aa0ba902b7,congo={}", rng.hex(16)),
            ),
            s(
                "feature.flags",
                "new-pricing,fast-path,beta-search,dark-mode",
            ),
            s("deployment.ring", "canary"),
            s("request.id", rng.uuid()),
        ]);
    }
    a
}
