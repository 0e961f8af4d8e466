//! `microservices`: a frontend → api → backends fan-out with caches and databases.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::ids::Rng;
use super::kit::{self, Grouped, Lang, MS, US, event, i, s};
use super::{ParamDoc, Params, Shape, TemplatePart, TraceTemplate, VARIANTS};
use crate::scenario::SizeProfile;

/// A request entering `frontend`, calling `api-gateway`, which fans out to backend services
/// (each with its own resource) that read a Redis cache and query PostgreSQL; backends
/// beyond the first row call the next row, up to `depth` services deep. Server/client
/// pairs carry HTTP semantic conventions, cache and database spans `db.*` ones; each has
/// its instrumentation library's scope (minimal: one short scope per service).
///
/// Errors are per trace: `round(error_rate × VARIANTS)` of the 64 variants fail (so the
/// realised rate is a multiple of 1/64 ≈ 1.6 %): their deepest database span gets status
/// ERROR and an `exception` event, and every ancestor span ERROR (HTTP 500). Unless the
/// profile is minimal, the root links to the root of the previous trace (`seq - 1`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Microservices;

const SALT: u64 = 0x3C5_5E4F;

const SERVICES: [&str; 10] = [
    "frontend",
    "api-gateway",
    "cart",
    "inventory",
    "payments",
    "users",
    "shipping",
    "recommendations",
    "search",
    "notifications",
];
const ROUTES: [(&str, &str); 4] = [
    ("GET", "/checkout"),
    ("GET", "/cart"),
    ("GET", "/products/{id}"),
    ("POST", "/orders"),
];
const SCOPE_HTTP: usize = 0;
const SCOPE_REDIS: usize = 1;
const SCOPE_SQL: usize = 2;
const MINIMAL_SCOPE: usize = 3;

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "services",
        default: 4.0,
        help: "services per trace (2–10): frontend, api-gateway, then backends",
    },
    ParamDoc {
        name: "depth",
        default: 3.0,
        help: "longest chain of services (2–10); 2 = frontend → api-gateway only",
    },
    ParamDoc {
        name: "error_rate",
        default: 0.05,
        help: "share of traces that fail (quantised to 1/64)",
    },
    ParamDoc {
        name: "link_previous",
        default: 1.0,
        help: "1 = root links to the previous trace's root (typical/heavy), 0 = no links",
    },
];

impl Shape for Microservices {
    fn name(&self) -> &'static str {
        "microservices"
    }

    fn describe(&self) -> &'static str {
        "frontend → api-gateway → backends with Redis and PostgreSQL spans, HTTP/DB semconv, errors at a set rate"
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
        let services = kit::count(params, "services", 4, 2, SERVICES.len() as u64) as usize;
        let depth = kit::count(params, "depth", 3, 2, 10) as usize;
        let error_rate = kit::fraction(params, "error_rate", 0.05);
        let link = kit::param(params, "link_previous", 1.0) > 0.0;
        let mut rng = Rng::new(seed, variant ^ SALT);
        let resources: Vec<_> = SERVICES[..services]
            .iter()
            .enumerate()
            .map(|(n, name)| {
                // Service identity is stable per seed; four instances per service.
                let mut r = Rng::new(seed, SALT ^ ((n as u64) << 8) ^ ((variant % 4) << 16));
                let lang = Lang::pick(&mut Rng::new(seed, SALT ^ n as u64));
                kit::service_resource(name, "2.4.1", lang, profile, &mut r)
            })
            .collect();
        let scopes = [
            kit::scope(
                "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                "0.61.0",
            ),
            kit::scope("github.com/redis/go-redis/extra/redisotel", "9.7.3"),
            kit::scope("github.com/XSAM/otelsql", "0.38.0"),
            kit::scope("shop", ""),
        ];
        let backends = if depth > 2 { services - 2 } else { 0 };
        let width = backends.div_ceil(depth.saturating_sub(2).max(1)).max(1);
        let mut b = Builder {
            g: Grouped::default(),
            parents: Vec::new(),
            rng: &mut rng,
            profile,
            backends,
            width,
            db_spans: Vec::new(),
        };
        let &(method, route) = b.rng.pick(&ROUTES).unwrap_or(&ROUTES[0]);
        // frontend: root server span, then a client call to api-gateway.
        let root = b.push(
            0,
            SCOPE_HTTP,
            None,
            format!("{method} {route}"),
            SpanKind::Server,
            0,
        );
        b.server_attrs(root, method, route, "frontend");
        let t0 = b.rng.range(100 * US, 400 * US);
        let end = b.call(
            0,
            root,
            1,
            t0,
            &format!("/api/v1{}", route.replace("/{id}", "")),
        );
        let root_end = end + b.rng.range(100 * US, MS);
        if let Some(sp) = b.g.get_mut(root) {
            sp.end_time_unix_nano = root_end;
            if link && profile != SizeProfile::Minimal {
                sp.links = vec![kit::link_other(
                    1,
                    0,
                    vec![s("link.type", "previous-request")],
                )];
            }
        }
        if kit::variant_fails(seed, SALT, variant, VARIANTS, error_rate) {
            b.fail();
        }
        let span_count = b.g.len();
        TraceTemplate {
            parts: vec![TemplatePart {
                delay: std::time::Duration::ZERO,
                resource_spans: b.g.build(&resources, &scopes, kit::schema_url(profile)),
            }],
            span_count,
        }
    }
}

struct Builder<'a> {
    g: Grouped,
    parents: Vec<Option<usize>>,
    rng: &'a mut Rng,
    profile: SizeProfile,
    backends: usize,
    width: usize,
    db_spans: Vec<usize>,
}

impl Builder<'_> {
    /// Push a span (index = position) and return its index.
    fn push(
        &mut self,
        svc: usize,
        scope: usize,
        parent: Option<usize>,
        name: String,
        kind: SpanKind,
        start: u64,
    ) -> usize {
        let idx = self.g.len();
        // Minimal keeps one short scope per service.
        let scope = if self.profile == SizeProfile::Minimal {
            MINIMAL_SCOPE
        } else {
            scope
        };
        self.g
            .push(svc, scope, kit::span(idx, parent, name, kind, start, start));
        self.parents.push(parent);
        idx
    }

    fn set(&mut self, idx: usize, end: u64, attrs: Vec<KeyValue>) {
        let profile = self.profile;
        if let Some(sp) = self.g.get_mut(idx) {
            sp.end_time_unix_nano = end.max(sp.start_time_unix_nano);
            if profile != SizeProfile::Minimal {
                sp.attributes.extend(attrs);
            }
        }
    }

    fn server_attrs(&mut self, idx: usize, method: &str, route: &str, svc: &str) {
        let mut a = vec![
            s("http.request.method", method),
            s(
                "url.path",
                route.replace("{id}", &self.rng.range(1, 9999).to_string()),
            ),
            s("http.route", route),
            i("http.response.status_code", 200),
            s("server.address", format!("{svc}.shop.svc")),
            i("server.port", 8080),
            s("network.protocol.version", "1.1"),
            s("client.address", kit::ip(self.rng)),
            s("user_agent.original", kit::user_agent(self.rng)),
        ];
        if self.profile == SizeProfile::Heavy {
            a.extend(heavy_http(self.rng));
        }
        self.set(idx, 0, a);
    }

    /// A client span in `from` calling service `to` (whose server span is nested); returns
    /// the client span's end.
    fn call(&mut self, from: usize, parent: usize, to: usize, start: u64, path: &str) -> u64 {
        let svc = SERVICES[to];
        let client = self.push(
            from,
            SCOPE_HTTP,
            Some(parent),
            "GET".into(),
            SpanKind::Client,
            start,
        );
        let s_start = start + self.rng.range(150 * US, 600 * US);
        let route = path.to_owned();
        let server = self.push(
            to,
            SCOPE_HTTP,
            Some(client),
            format!("GET {route}"),
            SpanKind::Server,
            s_start,
        );
        self.server_attrs(server, "GET", &route, svc);
        let mut t = s_start + self.rng.range(20 * US, 200 * US);
        // Cache lookup, then a database query on a miss (always at the leaves).
        let leaf = self.children(to).is_empty();
        t = self.cache(to, server, t);
        if leaf || self.rng.chance(0.35) {
            for _ in 0..self.rng.range(1, 2) {
                t = self.query(to, server, t);
            }
        }
        for child in self.children(to) {
            t = self.call(to, server, child, t, &format!("/v1/{}", SERVICES[child]));
        }
        let s_end = t + self.rng.range(50 * US, 400 * US);
        self.set(server, s_end, Vec::new());
        let end = s_end + self.rng.range(150 * US, 600 * US);
        let mut a = vec![
            s("http.request.method", "GET"),
            s("url.full", format!("http://{svc}.shop.svc:8080{route}")),
            s("server.address", format!("{svc}.shop.svc")),
            i("server.port", 8080),
            i("http.response.status_code", 200),
        ];
        if self.profile == SizeProfile::Heavy {
            a.extend(heavy_http(self.rng));
        }
        self.set(client, end, a);
        end
    }

    fn children(&self, svc: usize) -> Vec<usize> {
        let (w, nb) = (self.width, self.backends);
        match svc {
            0 => vec![1],
            1 => (0..w.min(nb)).map(|j| j + 2).collect(),
            _ if svc - 2 + w < nb => vec![svc + w],
            _ => Vec::new(),
        }
    }

    fn cache(&mut self, svc: usize, parent: usize, start: u64) -> u64 {
        let key = format!("{}:{}", SERVICES[svc], self.rng.range(1, 99_999));
        let idx = self.push(
            svc,
            SCOPE_REDIS,
            Some(parent),
            "GET".into(),
            SpanKind::Client,
            start,
        );
        let end = start + self.rng.range(80 * US, 600 * US);
        let mut a = vec![
            s("db.system", "redis"),
            s("db.operation.name", "GET"),
            s("db.statement", format!("GET {key}")),
            s("server.address", "redis.shop.svc"),
            i("server.port", 6379),
            i("db.redis.database_index", 0),
        ];
        if self.profile == SizeProfile::Heavy {
            a.extend(heavy_db(self.rng));
        }
        self.set(idx, end, a);
        end + self.rng.range(10 * US, 50 * US)
    }

    fn query(&mut self, svc: usize, parent: usize, start: u64) -> u64 {
        let table = SERVICES[svc].replace('-', "_");
        let stmt = format!(
            "SELECT id, owner_id, status, total_cents, updated_at FROM {table} WHERE owner_id = $1 AND status = $2 ORDER BY updated_at DESC LIMIT 50"
        );
        let idx = self.push(
            svc,
            SCOPE_SQL,
            Some(parent),
            format!("SELECT shop.{table}"),
            SpanKind::Client,
            start,
        );
        let end = start + self.rng.range(MS, 8 * MS);
        let mut a = vec![
            s("db.system", "postgresql"),
            s("db.namespace", "shop"),
            s("db.operation.name", "SELECT"),
            s("db.collection.name", table),
            s("db.statement", stmt),
            s("server.address", "postgres.shop.svc"),
            i("server.port", 5432),
            i("db.response.returned_rows", self.rng.range(0, 50) as i64),
        ];
        if self.profile == SizeProfile::Heavy {
            a.extend(heavy_db(self.rng));
        }
        self.set(idx, end, a);
        self.db_spans.push(idx);
        end + self.rng.range(10 * US, 80 * US)
    }

    /// Fail the deepest database span and everything above it.
    fn fail(&mut self) {
        let Some(&db) = self.db_spans.last() else {
            return;
        };
        let heavy = self.profile == SizeProfile::Heavy;
        if let Some(sp) = self.g.get_mut(db) {
            kit::set_error(sp, "pq: deadlock detected");
            let mut a = vec![
                s("exception.type", "*pq.Error"),
                s("exception.message", "pq: deadlock detected"),
            ];
            if heavy {
                a.push(s("exception.stacktrace", STACK));
            }
            let at = sp.end_time_unix_nano.saturating_sub(10 * US);
            sp.events.push(event(at, "exception", a));
        }
        let mut up = self.parents.get(db).copied().flatten();
        while let Some(p) = up {
            if let Some(sp) = self.g.get_mut(p) {
                mark_500(sp);
            }
            up = self.parents.get(p).copied().flatten();
        }
    }
}

fn mark_500(sp: &mut Span) {
    kit::set_error(sp, "");
    kit::set_int(sp, "http.response.status_code", 500);
}

fn heavy_http(rng: &mut Rng) -> Vec<KeyValue> {
    vec![
        s("http.request.header.x-request-id", rng.uuid()),
        s(
            "http.request.header.accept",
            "application/json, text/plain, */*",
        ),
        s("http.request.header.traceparent-origin", "edge-proxy"),
        s(
            "http.response.header.content-type",
            "application/json; charset=utf-8",
        ),
        i("http.request.body.size", rng.range(0, 4096) as i64),
        i("http.response.body.size", rng.range(64, 65_536) as i64),
        s("network.peer.address", kit::ip(rng)),
        i("network.peer.port", rng.range(32_768, 60_999) as i64),
        s(
            "code.function.name",
            "github.com/shop/internal/handlers.(*Handler).ServeHTTP",
        ),
        s("code.file.path", "/app/internal/handlers/handler.go"),
        s(
            "enduser.id",
            format!("customer-{}", rng.range(1, 1_000_000)),
        ),
        s("session.id", rng.uuid()),
    ]
}

fn heavy_db(rng: &mut Rng) -> Vec<KeyValue> {
    vec![
        s("db.user", "shop_app"),
        s(
            "db.connection_string",
            "postgresql://postgres.shop.svc:5432/shop?sslmode=require",
        ),
        s("network.peer.address", kit::ip(rng)),
        i("network.peer.port", rng.range(32_768, 60_999) as i64),
        s("db.client.connection.pool.name", "primary"),
        i("db.client.connection.pool.in_use", rng.range(1, 32) as i64),
        s(
            "code.function.name",
            "github.com/shop/internal/store.(*Store).Query",
        ),
        s("code.file.path", "/app/internal/store/store.go"),
        i("code.line.number", rng.range(40, 400) as i64),
        s("thread.name", format!("pgx-conn-{}", rng.range(1, 32))),
        s("query.fingerprint", rng.hex(40)),
    ]
}

const STACK: &str = "goroutine 42 [running]:\nruntime/debug.Stack()\n\t/usr/local/go/src/runtime/debug/stack.go:26\ngithub.com/shop/internal/store.(*Store).Query(...)\n\t/app/internal/store/store.go:118\ngithub.com/shop/internal/handlers.(*Handler).ServeHTTP(...)\n\t/app/internal/handlers/handler.go:77\nnet/http.serverHandler.ServeHTTP(...)\n\t/usr/local/go/src/net/http/server.go:3210";
