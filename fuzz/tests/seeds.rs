//! Seed inputs for every target, built from the golden blocks, the scenario files, the
//! reference configs and requests like the test suites send. Ignored by default: run
//!
//! ```sh
//! FUZZ_SEEDS_DIR=target/fuzz-seeds cargo test -p tracebench-fuzz --test seeds -- --ignored
//! ```
//!
//! then merge each `target/fuzz-seeds/<target>` into `fuzz/corpus/<target>` with libFuzzer's
//! `-merge=1` (see `fuzz/README.md`). Every seed also passes its target here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use reference_backend::ingest::batch::split_valid;
use reference_backend::wal::record;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden(format: &str, object: &str) -> Vec<u8> {
    std::fs::read(repo().join(format!(
        "reference-backend/testdata/{format}/single-tenant/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/{object}"
    )))
    .unwrap()
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value,
        ..Default::default()
    }
}

/// A request with every span field and value kind set, `traces` traces of 3 spans.
fn request(traces: u8, long: usize) -> ExportTraceServiceRequest {
    let span = |t: u8, i: u8| Span {
        trace_id: vec![t; 16],
        span_id: vec![i + 1; 8],
        parent_span_id: if i == 0 { Vec::new() } else { vec![1; 8] },
        trace_state: "k=v".into(),
        name: format!("op-{i}"),
        kind: i32::from(i % 6),
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: vec![
            kv("http.method", s("GET")),
            kv("long", s(&"x".repeat(long))),
            kv(
                "int",
                Some(AnyValue {
                    value: Some(any_value::Value::IntValue(200)),
                }),
            ),
            kv(
                "arr",
                Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![s("a").unwrap()],
                    })),
                }),
            ),
            kv("empty", None),
        ],
        dropped_attributes_count: 1,
        events: vec![Event {
            time_unix_nano: 5,
            name: "e".into(),
            attributes: vec![kv("ek", s("ev"))],
            dropped_attributes_count: 0,
        }],
        links: vec![Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            flags: 1,
            ..Default::default()
        }],
        status: Some(Status {
            message: "m".into(),
            code: 2,
        }),
        flags: 0x100,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("svc"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..traces)
                    .flat_map(|t| (0..3).map(move |i| span(t + 1, i)))
                    .collect(),
                schema_url: "s".into(),
                ..Default::default()
            }],
            schema_url: "r".into(),
        }],
    }
}

/// Requests loadgen's shapes send.
fn shape_requests() -> Vec<ExportTraceServiceRequest> {
    use loadgen::scenario::SizeProfile;
    let mut out = Vec::new();
    for name in ["go-example", "microservices", "flat", "high-cardinality"] {
        let Some(shape) = loadgen::shapes::by_name(name) else {
            continue;
        };
        let t = loadgen::shapes::generate(
            shape,
            7,
            1,
            1_700_000_000_000_000_000,
            SizeProfile::default(),
            &Default::default(),
        );
        out.push(ExportTraceServiceRequest {
            resource_spans: t.parts.into_iter().flat_map(|p| p.resource_spans).collect(),
        });
    }
    out
}

fn prefixed(prefix: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![prefix];
    v.extend_from_slice(body);
    v
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

/// The `config: |` block of a conformance target file.
fn embedded_config(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("config: |") {
            inside = true;
        } else if inside {
            match line.strip_prefix("  ") {
                Some(l) => {
                    out.push_str(l);
                    out.push('\n');
                }
                None if line.is_empty() => out.push('\n'),
                None => break,
            }
        }
    }
    out
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut requests = vec![
        request(1, 3),
        request(3, 3000),
        ExportTraceServiceRequest::default(),
    ];
    requests.extend(shape_requests());
    for r in &requests {
        let pb = r.encode_to_vec();
        out.push(("wire_split", prefixed(0, &pb)));
        out.push(("wire_split", prefixed(0x85, &pb)));
        let json = serde_json::to_vec(r).unwrap();
        out.push(("otlp_gzip", gzip(&json)));
        out.push(("otlp_json", json));
    }
    let mut two = gzip(b"first");
    two.extend_from_slice(&gzip(b"second"));
    out.push(("otlp_gzip", two));
    for q in [
        "{}",
        r#"{ .http.status_code >= 200 && span."foo bar" != resource.service.name }"#,
        r#"{ span.http.method = "GET" || (name =~ "op-.*" && status = error) }"#,
        "{ duration > 1.5s && kind = server } ",
        r#"({ rootServiceName = "cart" && traceDuration < 2h45m })"#,
        r#"{ span:name = `raw\` && trace:rootName != "x\u00e9\n" }"#,
        "{ .n = -2 && .f <= 2e3 && .b = true && status != unset }",
        "{ resource.service.name = \"cart\" } | count() > 2",
        "{ event.name = \"x\" } >> { parent.y = 1 }",
        "{ .a = nil } && !{ .b } + 1",
    ] {
        out.push(("traceql", q.as_bytes().to_vec()));
    }
    for t in [
        r#"a=1 b="x y" c c2= d="q\"\u00e9""#,
        "service.name=cart\nhttp.method=GET status.code=error name=GET root.name=x",
        "rootServiceName=svc http.status_code=200 error=true",
    ] {
        out.push(("logfmt_tags", t.as_bytes().to_vec()));
    }
    for p in [
        "q={ .a = 1 }&limit=5&spss=2&start=1700000000&end=1700000100",
        "tags=service.name=cart&minDuration=1ms&maxDuration=2s",
        "service.name=cart&http.method=GET",
        "scope=span&q={ .x = \"y\" }&limit=3",
        "scope=intrinsic&start=1&end=2",
    ] {
        out.push(("search_params", p.as_bytes().to_vec()));
    }
    let backend = std::fs::read(repo().join("scenarios/backend.yaml")).unwrap();
    for release in 0..3u8 {
        out.push(("config", prefixed(release, &backend)));
        let target = repo().join(format!("scenarios/targets/reference-{}.yaml", release + 1));
        out.push((
            "config",
            prefixed(release, embedded_config(&target).as_bytes()),
        ));
    }
    out.push((
        "config",
        prefixed(
            1,
            b"storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: b\n      access_key: k\n      secret_key: s\n    block:\n      version: rb1\n      page_size_bytes: 64KiB\ncompactor:\n  compaction:\n    block_retention: 1h\n",
        ),
    ));
    for entry in std::fs::read_dir(repo().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().unwrap() != "backend.yaml"
        {
            out.push(("scenario", std::fs::read(&path).unwrap()));
        }
    }
    // WAL: a segment of real fragments, a torn copy, and a structured record list.
    let batch = split_valid(&request(3, 3));
    let mut segment = record::header().to_vec();
    segment.extend_from_slice(&record::encode("single-tenant", &batch.fragments));
    segment.extend_from_slice(&record::encode("t2", &batch.fragments[..1]));
    out.push(("wal_replay", prefixed(0, &segment)));
    out.push(("wal_replay", prefixed(1, &segment[..segment.len() - 7])));
    let mut structured = vec![2, 0x40, 0x01, 0x30, 0x00, 2];
    for tenant in ["a", "single-tenant"] {
        structured.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
        structured.extend_from_slice(tenant.as_bytes());
        structured.push(1);
        structured.extend_from_slice(&[7; 16]);
        structured.extend_from_slice(&[1, 0, 2, 0, 3, 0]);
        structured.extend_from_slice(&[4, 0, 1, 2, 3, 4]);
    }
    out.push(("wal_replay", structured));
    // Blocks.
    let (index, data) = (golden("rb1", "index"), golden("rb1", "data"));
    for mode in [0u8, 3] {
        let mut v = vec![mode];
        v.extend_from_slice(&(index.len() as u16).to_le_bytes());
        v.extend_from_slice(&index);
        v.extend_from_slice(&data);
        out.push(("rb1_block", v));
    }
    let rb2 = golden("rb2", "data");
    out.push(("rb2_block", prefixed(0, &rb2)));
    out.push(("rb2_block", prefixed(2, &rb2)));
    out.push(("block_meta", prefixed(0, &golden("rb1", "meta.json"))));
    out.push(("block_meta", prefixed(0, &golden("rb2", "meta.json"))));
    let meta = String::from_utf8(golden("rb2", "meta.json")).unwrap();
    let compacted = format!(
        "{},\n  \"compactedTime\": \"2024-01-01T00:00:00Z\"\n}}",
        meta.trim_end().trim_end_matches('}').trim_end()
    );
    out.push(("block_meta", prefixed(1, compacted.as_bytes())));
    let index_json = format!(
        "{{\"created_at\":\"2024-01-01T00:00:00.5Z\",\"meta\":[{meta}],\"compacted\":[{compacted}]}}"
    );
    out.push(("block_meta", prefixed(2, &gzip(index_json.as_bytes()))));
    out.push(("block_meta", prefixed(3, index_json.as_bytes())));
    out.push((
        "block_meta",
        prefixed(
            4,
            b"t/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/meta.json\nt/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/data\nt/index.json.gz\nt/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/meta.compacted.json\nx",
        ),
    ));
    out.push(("block_meta", prefixed(5, &golden("rb1", "bloom-0"))));
    out
}

#[test]
#[ignore = "writes seed files; run by hand (see the module doc)"]
fn write_seeds() {
    let root = std::env::var_os("FUZZ_SEEDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fuzz-seeds"));
    for (i, (target, bytes)) in seeds().into_iter().enumerate() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i:03}")), bytes).unwrap();
    }
}

/// Every seed passes its target (the targets hold on real inputs).
#[test]
fn seeds_pass_their_targets() {
    for (target, bytes) in seeds() {
        let (_, f) = tracebench_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == target)
            .unwrap();
        f(&bytes);
    }
}
