//! `flat`: one root and N children, like telemetrygen.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::ids::Rng;
use super::kit::{self, Grouped, Lang, MS, US, event, i, s};
use super::{ParamDoc, Params, Shape, TemplatePart, TraceTemplate};
use crate::scenario::SizeProfile;

/// A client root `lets-go` with `children` server children `okey-dokey-<n>`, all of
/// service `telemetrygen` (telemetrygen's trace shape). Typical adds RPC/network attributes
/// and the SDK resource; heavy adds more attributes and an event per span.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flat;

const SALT: u64 = 0xF1A7;

const PARAMS: &[ParamDoc] = &[ParamDoc {
    name: "children",
    default: 10.0,
    help: "child spans under the root (0–100000)",
}];

impl Shape for Flat {
    fn name(&self) -> &'static str {
        "flat"
    }

    fn describe(&self) -> &'static str {
        "telemetrygen-like: client root `lets-go` + N server children `okey-dokey-<n>`"
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
        let children = kit::count(params, "children", 10, 0, 100_000) as usize;
        let mut rng = Rng::new(seed, variant ^ SALT);
        let resource =
            kit::service_resource("telemetrygen", "0.129.0", Lang::Go, profile, &mut rng);
        let scope = kit::scope("telemetrygen", "");
        let peer = kit::ip(&mut rng);
        let mut g = Grouped::default();
        let mut t = rng.range(10 * US, 50 * US);
        let mut kids = Vec::with_capacity(children);
        for n in 0..children {
            let dur = rng.range(100 * US, 150 * US);
            let mut sp = kit::span(
                n + 1,
                Some(0),
                format!("okey-dokey-{n}"),
                SpanKind::Server,
                t,
                t + dur,
            );
            if profile != SizeProfile::Minimal {
                sp.attributes = vec![
                    s("net.sock.peer.addr", peer.clone()),
                    s("peer.service", "telemetrygen-client"),
                    s("rpc.system", "grpc"),
                    s("rpc.service", "telemetrygen.v1.Generator"),
                    s("rpc.method", "OkeyDokey"),
                    i("rpc.grpc.status_code", 0),
                    s("server.address", "telemetrygen-server"),
                    i("server.port", 4317),
                    s("network.peer.address", peer.clone()),
                    i("network.peer.port", rng.range(32_768, 60_999) as i64),
                    s("network.transport", "tcp"),
                    s("worker.id", format!("worker-{}", rng.below(8))),
                ];
            }
            if profile == SizeProfile::Heavy {
                heavy(&mut rng, &mut sp, t, dur);
            }
            kids.push(sp);
            t += dur + rng.range(5 * US, 30 * US);
        }
        let mut root = kit::span(
            0,
            None,
            "lets-go",
            SpanKind::Client,
            0,
            t + rng.range(10 * US, MS),
        );
        if profile != SizeProfile::Minimal {
            root.attributes = vec![
                s("net.peer.ip", "1.2.3.4"),
                s("peer.service", "telemetrygen-server"),
                s("rpc.system", "grpc"),
                s("rpc.service", "telemetrygen.v1.Generator"),
                s("server.address", "telemetrygen-server"),
                i("server.port", 4317),
                i("child_spans", children as i64),
            ];
        }
        if profile == SizeProfile::Heavy {
            let end = root.end_time_unix_nano;
            heavy(&mut rng, &mut root, 0, end);
        }
        g.push(0, 0, root);
        for k in kids {
            g.push(0, 0, k);
        }
        TraceTemplate {
            parts: vec![TemplatePart {
                delay: std::time::Duration::ZERO,
                resource_spans: g.build(&[resource], &[scope], kit::schema_url(profile)),
            }],
            span_count: children + 1,
        }
    }
}

fn heavy(
    rng: &mut Rng,
    sp: &mut opentelemetry_proto::tonic::trace::v1::Span,
    start: u64,
    dur: u64,
) {
    sp.attributes.extend([
        s("rpc.grpc.request.metadata.user-agent", "grpc-go/1.73.0"),
        s("rpc.grpc.request.metadata.content-type", "application/grpc"),
        s("rpc.grpc.request.metadata.x-request-id", rng.uuid()),
        s("thread.name", format!("generator-pool-{}", rng.below(16))),
        i("thread.id", rng.range(1, 512) as i64),
        s(
            "code.function.name",
            "github.com/open-telemetry/telemetrygen/internal/traces.(*worker).simulateTraces",
        ),
        s(
            "code.file.path",
            "/src/cmd/telemetrygen/pkg/traces/worker.go",
        ),
        i("code.line.number", rng.range(60, 180) as i64),
        s("payload.digest", rng.hex(64)),
        s("tenant.id", format!("tenant-{}", rng.below(20))),
    ]);
    sp.events = vec![
        event(
            start + dur / 3,
            "message",
            vec![
                s("message.type", "SENT"),
                i("message.id", 1),
                i("message.uncompressed_size", rng.range(100, 9999) as i64),
            ],
        ),
        event(
            start + 2 * dur / 3,
            "message",
            vec![
                s("message.type", "RECEIVED"),
                i("message.id", 1),
                i("message.uncompressed_size", rng.range(100, 9999) as i64),
            ],
        ),
    ];
}
