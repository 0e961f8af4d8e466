//! Cross-shape tests: fast path ≡ slow path, sizes, structure, determinism.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::encoded::EncodedTemplate;
use super::ids::TraceIds;
use super::*;

const PROFILES: [SizeProfile; 3] = [
    SizeProfile::Minimal,
    SizeProfile::Typical,
    SizeProfile::Heavy,
];

fn p(pairs: &[(&str, f64)]) -> Params {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Params that keep debug-mode tests quick (large-trace is covered at defaults separately).
fn quick(shape: &dyn Shape) -> Params {
    match shape.name() {
        "large-trace" => p(&[("spans", 1200.0), ("parts", 4.0), ("late_parts", 1.0)]),
        _ => Params::new(),
    }
}

fn spans(rs: &[ResourceSpans]) -> impl Iterator<Item = &Span> {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
}

/// Decode the fast path's bytes for every part and compare with the slow path.
fn assert_equivalent(t: &TraceTemplate, seed: u64, seq: u64, start: u64) {
    let enc = EncodedTemplate::new(t);
    let slow = instantiate(t, seed, seq, start);
    assert_eq!(enc.part_count(), slow.parts.len());
    assert_eq!(enc.span_count, slow.span_count);
    let total: usize = (0..enc.part_count()).map(|k| enc.part_spans(k)).sum();
    assert_eq!(total, enc.span_count);
    for (k, part) in slow.parts.iter().enumerate() {
        let mut out = Vec::new();
        let n = enc.instantiate_into(k, seed, seq, start, &mut out);
        assert_eq!(out.len(), enc.parts[k].byte_len);
        assert_eq!(n, spans(&part.resource_spans).count());
        assert_eq!(enc.part_delay(k), part.delay);
        let req = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(
            req.resource_spans, part.resource_spans,
            "part {k} seq {seq}"
        );
    }
}

#[test]
fn fast_path_equals_slow_path_for_every_shape() {
    for shape in shapes() {
        for profile in PROFILES {
            let params = quick(*shape);
            let mut templates = HashMap::new();
            let seqs = (0..140u64).chain([1000, 123_456_789, u64::MAX - 1, u64::MAX]);
            for (n, seq) in seqs.enumerate() {
                let seed = if n % 3 == 0 { 7 } else { 0xDEAD_BEEF };
                let v = seq % VARIANTS;
                let t = templates
                    .entry((seed, v))
                    .or_insert_with(|| shape.template(seed, v, profile, &params));
                let start = 1_700_000_000_000_000_000u64.wrapping_add(seq.wrapping_mul(1_000_003));
                assert_equivalent(t, seed, seq, start);
                if n % 50 == 0 {
                    assert_equivalent(t, seed, seq, 0);
                }
            }
        }
    }
}

#[test]
fn fast_path_appends_into_one_request() {
    // Entries of several traces concatenated are one valid request.
    let shape = by_name("microservices").unwrap();
    let mut body = Vec::new();
    let mut expect = Vec::new();
    for seq in 0..10u64 {
        let t = shape.template(1, seq % VARIANTS, SizeProfile::Typical, &Params::new());
        let enc = EncodedTemplate::new(&t);
        enc.instantiate_all_into(1, seq, 5_000 + seq, &mut body);
        for part in instantiate(&t, 1, seq, 5_000 + seq).parts {
            expect.extend(part.resource_spans);
        }
    }
    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert_eq!(req.resource_spans, expect);
}

/// Structure every generated trace must have.
fn assert_well_formed(g: &GeneratedTrace, start: u64, seed: u64, seq: u64) {
    assert_eq!(g.trace_id, TraceIds::new(seed, seq).trace_id());
    assert_eq!(g.parts[0].delay, Duration::ZERO);
    let all: Vec<&Span> = g
        .parts
        .iter()
        .flat_map(|p| spans(&p.resource_spans))
        .collect();
    assert_eq!(all.len(), g.span_count);
    let ids: HashSet<&[u8]> = all.iter().map(|s| s.span_id.as_slice()).collect();
    assert_eq!(ids.len(), all.len(), "span ids unique");
    let mut roots = 0;
    for s in &all {
        assert_eq!(s.trace_id, g.trace_id);
        assert_eq!(s.span_id.len(), 8);
        assert!(s.start_time_unix_nano >= start && s.start_time_unix_nano <= s.end_time_unix_nano);
        assert!(!s.name.is_empty());
        if s.parent_span_id.is_empty() {
            roots += 1;
        } else {
            assert!(ids.contains(s.parent_span_id.as_slice()), "parent in trace");
        }
        for l in &s.links {
            assert_eq!(l.trace_id.len(), 16);
            if l.trace_id == g.trace_id {
                assert!(ids.contains(l.span_id.as_slice()));
            }
        }
        for a in &s.attributes {
            if let Some(Value::StringValue(v)) = a.value.as_ref().and_then(|v| v.value.as_ref()) {
                assert!(
                    placeholder::parse_card(v.as_bytes()).is_none(),
                    "unpatched placeholder"
                );
            }
        }
    }
    assert_eq!(roots, 1, "one root");
}

#[test]
fn traces_are_well_formed_and_deterministic() {
    for shape in shapes() {
        for profile in PROFILES {
            let params = quick(*shape);
            for seq in [0u64, 1, 63, 64, 999] {
                let start = 1_000_000_000 * (seq + 1);
                let g = generate(*shape, 3, seq, start, profile, &params);
                assert_well_formed(&g, start, 3, seq);
                assert_eq!(g, generate(*shape, 3, seq, start, profile, &params));
                let v = seq % VARIANTS;
                assert_eq!(
                    shape.template(3, v, profile, &params),
                    shape.template(3, v % shape.variants(), profile, &params),
                    "{} variants()",
                    shape.name()
                );
            }
            assert_eq!(VARIANTS % shape.variants(), 0);
        }
    }
}

#[test]
fn catalog_lists_six_documented_shapes() {
    let names = names();
    assert_eq!(
        names,
        [
            "go-example",
            "microservices",
            "flat",
            "random-tree",
            "large-trace",
            "high-cardinality"
        ]
    );
    for s in shapes() {
        assert!(!s.describe().is_empty());
        assert_eq!(by_name(s.name()).map(|x| x.name()), Some(s.name()));
        for d in s.params() {
            assert!(!d.help.is_empty() && d.default.is_finite());
        }
    }
    assert!(by_name("nope").is_none());
}

/// Average encoded bytes per span (request entries, i.e. what goes on the wire).
fn bytes_per_span(shape: &dyn Shape, profile: SizeProfile, params: &Params) -> f64 {
    let (mut bytes, mut n) = (0usize, 0usize);
    for v in 0..shape.variants() {
        let enc = EncodedTemplate::new(&shape.template(11, v, profile, params));
        bytes += enc.parts.iter().map(|p| p.byte_len).sum::<usize>();
        n += enc.span_count;
    }
    bytes as f64 / n as f64
}

#[test]
fn bytes_per_span_match_profiles() {
    // Bands: minimal ≈ 65 B, typical 400–500 B, heavy ≈ 1.2 KB. Single-span go-example and
    // attribute-laden high-cardinality have higher minimal floors (documented on each).
    let band = |shape: &str, profile| match (shape, profile) {
        ("go-example", SizeProfile::Minimal) => (150.0, 200.0),
        ("high-cardinality", SizeProfile::Minimal) => (250.0, 350.0),
        (_, SizeProfile::Minimal) => (60.0, 100.0),
        (_, SizeProfile::Typical) => (400.0, 520.0),
        (_, SizeProfile::Heavy) => (1050.0, 1400.0),
    };
    let mut failures = Vec::new();
    for shape in shapes() {
        for profile in PROFILES {
            let params = match shape.name() {
                "large-trace" => p(&[("spans", 2000.0)]),
                _ => Params::new(),
            };
            let b = bytes_per_span(*shape, profile, &params);
            let (lo, hi) = band(shape.name(), profile);
            println!(
                "{:<17} {:<8} {:>7.1} B/span",
                shape.name(),
                format!("{profile:?}"),
                b
            );
            if !(lo..=hi).contains(&b) {
                failures.push(format!(
                    "{} {profile:?}: {b:.1} not in {lo}..{hi}",
                    shape.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn large_trace_defaults() {
    let shape = by_name("large-trace").unwrap();
    let t = shape.template(5, 9, SizeProfile::Typical, &Params::new());
    assert_eq!(t.span_count, 10_000);
    assert_eq!(t.parts.len(), 10);
    let delays: Vec<_> = t.parts.iter().map(|p| p.delay.as_millis()).collect();
    assert_eq!(delays, [0, 0, 0, 0, 0, 0, 0, 0, 2000, 2000]);
    let last = t.parts.last().unwrap();
    assert!(spans(&last.resource_spans).any(|s| s.parent_span_id.is_empty()));
    assert!(t.parts.iter().all(|p| {
        p.resource_spans
            .iter()
            .all(|rs| spans(std::slice::from_ref(rs)).count() <= 100)
    }));
    assert_equivalent(&t, 5, 9, 1_000);
    let g = instantiate(&t, 5, 9, 1_000);
    assert_well_formed(&g, 1_000, 5, 9);
}

#[test]
fn high_cardinality_values_vary_per_seq() {
    let shape = by_name("high-cardinality").unwrap();
    let params = p(&[("values", 50.0)]);
    let mut per_key: HashMap<String, HashSet<String>> = HashMap::new();
    for seq in 0..2000u64 {
        let g = generate(shape, 1, seq, 0, SizeProfile::Minimal, &params);
        for s in g.parts.iter().flat_map(|p| spans(&p.resource_spans)) {
            for a in &s.attributes {
                if let Some(Value::StringValue(v)) = a.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    per_key.entry(a.key.clone()).or_default().insert(v.clone());
                }
            }
        }
    }
    assert_eq!(per_key.len(), 20, "every key used");
    for (k, vals) in &per_key {
        assert_eq!(vals.len(), 50, "{k}: {} values", vals.len());
        assert!(vals.iter().all(|v| v.len() == 3 && v.starts_with('v')));
    }
}

#[test]
fn microservices_error_rate_and_services() {
    let shape = by_name("microservices").unwrap();
    let failing = (0..VARIANTS)
        .filter(|&v| {
            let t = shape.template(2, v, SizeProfile::Typical, &Params::new());
            let root = t
                .parts
                .iter()
                .flat_map(|p| spans(&p.resource_spans))
                .find(|s| s.parent_span_id.is_empty())
                .unwrap();
            root.status.as_ref().map(|s| s.code) == Some(StatusCode::Error as i32)
        })
        .count();
    assert_eq!(failing, 3, "round(0.05 × 64)");
    let t = shape.template(
        2,
        0,
        SizeProfile::Typical,
        &p(&[("services", 6.0), ("depth", 4.0)]),
    );
    assert_eq!(t.parts[0].resource_spans.len(), 6);
    let none = shape.template(2, 0, SizeProfile::Typical, &p(&[("error_rate", 0.0)]));
    assert!(spans(&none.parts[0].resource_spans).all(|s| s.status.is_none()));
}
