//! Shape throughput: the slow path (`instantiate` on prost structs, what the verifier uses)
//! versus the wire fast path (`EncodedTemplate::instantiate_into`, patching pre-encoded
//! bytes), in spans per second on one thread.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loadgen::scenario::SizeProfile;
use loadgen::shapes::encoded::EncodedTemplate;
use loadgen::shapes::{self, Params, TraceTemplate, VARIANTS};

const SEED: u64 = 42;
const START: u64 = 1_700_000_000_000_000_000;

fn templates(name: &str, profile: SizeProfile) -> Vec<TraceTemplate> {
    let Some(shape) = shapes::by_name(name) else {
        return Vec::new();
    };
    (0..VARIANTS)
        .map(|v| shape.template(SEED, v, profile, &Params::new()))
        .collect()
}

/// Slow path: one full cycle of variants per iteration.
fn slow(c: &mut Criterion) {
    let mut g = c.benchmark_group("shapes/instantiate");
    for (name, profile) in [
        ("go-example", SizeProfile::Typical),
        ("microservices", SizeProfile::Typical),
    ] {
        let ts = templates(name, profile);
        let spans: usize = ts.iter().map(|t| t.span_count).sum();
        g.throughput(Throughput::Elements(spans as u64));
        let mut seq = 0u64;
        g.bench_function(format!("{name}/{profile:?}"), |b| {
            b.iter(|| {
                for t in &ts {
                    black_box(shapes::instantiate(t, SEED, seq, START + seq));
                    seq += 1;
                }
            })
        });
    }
    g.finish();
}

/// Fast path: request bodies built by patching encoded templates.
fn fast(c: &mut Criterion) {
    let mut g = c.benchmark_group("shapes/instantiate_into");
    for (name, profile, traces) in [
        // 100 one-span traces = one 100-span request.
        ("go-example", SizeProfile::Typical, 100u64),
        ("go-example", SizeProfile::Heavy, 100),
        // One trace of every variant (≈ 15 spans each) into one body.
        ("microservices", SizeProfile::Typical, VARIANTS),
        ("flat", SizeProfile::Typical, VARIANTS),
    ] {
        let enc: Vec<EncodedTemplate> = templates(name, profile)
            .iter()
            .map(EncodedTemplate::new)
            .collect();
        if enc.is_empty() {
            continue;
        }
        let spans: u64 = (0..traces)
            .map(|k| enc[(k % VARIANTS) as usize].span_count as u64)
            .sum();
        g.throughput(Throughput::Elements(spans));
        let mut out = Vec::with_capacity(1 << 20);
        let mut base = 0u64;
        g.bench_function(format!("{name}/{profile:?}/{traces}-traces"), |b| {
            b.iter(|| {
                out.clear();
                for k in 0..traces {
                    let seq = base + k;
                    let t = &enc[(seq % VARIANTS) as usize];
                    t.instantiate_all_into(SEED, seq, START + seq * 1000, &mut out);
                }
                // Keep the variant cycle aligned so every iteration has the same spans.
                base += VARIANTS * 1024;
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// Cost of building and encoding one template (paid once per variant).
fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("shapes/template");
    let Some(shape) = shapes::by_name("microservices") else {
        return;
    };
    let mut v = 0u64;
    g.bench_function("microservices/Typical/build+encode", |b| {
        b.iter(|| {
            let t = shape.template(SEED, v % VARIANTS, SizeProfile::Typical, &Params::new());
            v += 1;
            black_box(EncodedTemplate::new(&t))
        })
    });
    g.finish();
}

criterion_group!(benches, slow, fast, build);
criterion_main!(benches);
