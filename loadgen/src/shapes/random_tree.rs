//! `random-tree`: trees with random depth, fan-out, services, durations and attributes.

use std::collections::VecDeque;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::ids::Rng;
use super::kit::{self, Grouped, Lang, MS, US, b, event, f, i, s};
use super::{ParamDoc, Params, Shape, TemplatePart, TraceTemplate};
use crate::scenario::SizeProfile;

/// Breadth-first random trees: each span below `max_depth` gets a Poisson(`mean_fanout`)
/// number of children (the root at least one), capped at `max_spans`. Children run within
/// their parent's time span; about 30 % move to another service (2–5 services per trace,
/// each its own resource) as server spans; about 5 % link to an earlier span of the same
/// trace. Attributes mix string, int, double and bool values; heavy adds events.
/// Deterministic in `(seed, variant)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomTree;

const SALT: u64 = 0x7EE_0BAD;

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "max_depth",
        default: 4.0,
        help: "levels including the root (1–64)",
    },
    ParamDoc {
        name: "mean_fanout",
        default: 3.0,
        help: "mean children per span (Poisson, 0–50)",
    },
    ParamDoc {
        name: "max_spans",
        default: 200.0,
        help: "cap on spans per trace (1–100000)",
    },
];

const SERVICES: [&str; 8] = [
    "gateway", "orders", "billing", "catalog", "ledger", "auth", "pricing", "mailer",
];
const VERBS: [&str; 8] = [
    "fetch", "compute", "validate", "render", "load", "store", "publish", "resolve",
];
const NOUNS: [&str; 8] = [
    "user", "invoice", "price", "session", "profile", "quote", "catalog", "token",
];

impl Shape for RandomTree {
    fn name(&self) -> &'static str {
        "random-tree"
    }

    fn describe(&self) -> &'static str {
        "random trees: Poisson fan-out, bounded depth, several services, mixed attribute types"
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
        let max_depth = kit::count(params, "max_depth", 4, 1, 64) as usize;
        let fanout = kit::param(params, "mean_fanout", 3.0).clamp(0.0, 50.0);
        let max_spans = kit::count(params, "max_spans", 200, 1, 100_000) as usize;
        let mut rng = Rng::new(seed, variant ^ SALT);
        let n_services = rng.range(2, 5) as usize;
        let first = rng.below(SERVICES.len() as u64) as usize;
        let services: Vec<usize> = (0..n_services)
            .map(|k| (first + k * 3) % SERVICES.len())
            .collect();
        let resources: Vec<_> = services
            .iter()
            .map(|&sv| {
                let mut r = Rng::new(seed, SALT ^ ((sv as u64) << 8));
                let lang = Lang::pick(&mut r);
                kit::service_resource(SERVICES[sv], "1.0.0", lang, profile, &mut r)
            })
            .collect();
        let scope = kit::scope("loadgen.random-tree", "1.0.0");

        let mut g = Grouped::default();
        let root_dur = (rng.f64() * (2000f64).ln()).exp() as u64 * MS; // 1 ms – 2 s, log-uniform
        let root_svc = rng.below(n_services as u64) as usize;
        let mut root = kit::span(
            0,
            None,
            name(&mut rng),
            SpanKind::Server,
            0,
            root_dur.max(MS),
        );
        decorate(&mut rng, &mut root, profile);
        g.push(root_svc, 0, root);
        // (index, depth, service, start, end)
        let mut queue = VecDeque::from([(0usize, 0usize, root_svc, 0u64, root_dur.max(MS))]);
        while let Some((idx, depth, svc, start, end)) = queue.pop_front() {
            if depth + 1 >= max_depth {
                continue;
            }
            let mut kids = rng.poisson(fanout) as usize;
            if idx == 0 {
                kids = kids.max(1);
            }
            for _ in 0..kids {
                if g.len() >= max_spans {
                    break;
                }
                let child = g.len();
                let span_len = end - start;
                let c_start = start + (rng.f64() * 0.6 * span_len as f64) as u64;
                let c_end = c_start + ((rng.f64() * 0.95 * (end - c_start) as f64) as u64).max(US);
                let (c_svc, kind) = if rng.chance(0.3) {
                    (rng.below(n_services as u64) as usize, SpanKind::Server)
                } else if rng.chance(0.2) {
                    (svc, SpanKind::Client)
                } else {
                    (svc, SpanKind::Internal)
                };
                let mut sp = kit::span(
                    child,
                    Some(idx),
                    name(&mut rng),
                    kind,
                    c_start,
                    c_end.min(end),
                );
                decorate(&mut rng, &mut sp, profile);
                if rng.chance(0.05) {
                    let target = rng.below(child as u64) as usize;
                    sp.links = vec![kit::link_within(target, vec![s("link.kind", "related")])];
                }
                if rng.chance(0.03) {
                    kit::set_error(&mut sp, "random failure");
                }
                queue.push_back((child, depth + 1, c_svc, c_start, c_end.min(end)));
                g.push(c_svc, 0, sp);
            }
        }
        let span_count = g.len();
        TraceTemplate {
            parts: vec![TemplatePart {
                delay: std::time::Duration::ZERO,
                resource_spans: g.build(&resources, &[scope], kit::schema_url(profile)),
            }],
            span_count,
        }
    }
}

fn name(rng: &mut Rng) -> String {
    let v = rng.pick(&VERBS).copied().unwrap_or("run");
    let n = rng.pick(&NOUNS).copied().unwrap_or("task");
    format!("{v} {n}")
}

fn attr(rng: &mut Rng, k: usize) -> KeyValue {
    match k % 12 {
        0 => s(
            "app.user.tier",
            ["free", "pro", "enterprise"][rng.below(3) as usize],
        ),
        1 => i("app.cart.items", rng.range(0, 40) as i64),
        2 => b("app.feature.new_checkout", rng.chance(0.5)),
        3 => f("app.price.total", rng.range(100, 99_999) as f64 / 100.0),
        4 => s(
            "app.region",
            ["eu-west-1", "us-east-1", "ap-south-1"][rng.below(3) as usize],
        ),
        5 => i("app.retry.count", rng.range(0, 3) as i64),
        6 => s("app.request.id", rng.uuid()),
        7 => f("app.cache.hit_ratio", rng.f64()),
        8 => b("app.cache.hit", rng.chance(0.7)),
        9 => s(
            "app.customer.id",
            format!("cust-{}", rng.range(1, 1_000_000)),
        ),
        10 => i("app.queue.depth", rng.range(0, 10_000) as i64),
        _ => s("app.build.commit", rng.hex(40)),
    }
}

fn decorate(
    rng: &mut Rng,
    sp: &mut opentelemetry_proto::tonic::trace::v1::Span,
    profile: SizeProfile,
) {
    let n = match profile {
        SizeProfile::Minimal => 0,
        SizeProfile::Typical => 10,
        SizeProfile::Heavy => 24,
    };
    let offset = rng.below(12) as usize;
    sp.attributes = (0..n)
        .map(|k| {
            let mut kv = attr(rng, offset + k);
            if k >= 12 {
                kv.key = format!("{}.{}", kv.key, k / 12);
            }
            kv
        })
        .collect();
    if profile == SizeProfile::Heavy {
        let (st, en) = (sp.start_time_unix_nano, sp.end_time_unix_nano);
        sp.events = (0..rng.range(1, 3))
            .map(|k| {
                let at = st + (en - st) * (k + 1) / 4;
                event(
                    at,
                    "checkpoint",
                    vec![i("checkpoint.n", k as i64), attr(rng, 6), attr(rng, 11)],
                )
            })
            .collect();
    }
}
