//! Property test: random OTLP traces written through every block format read back exactly.
//!
//! Traces have several resources and scopes (identical ones too), every `AnyValue` kind
//! (nested arrays and kvlists, bytes, empty values, profile string-table references),
//! events, links with attributes, trace state, flags, dropped counts, empty names, status
//! or none, and odd ids (other trace id, ids not 8 bytes, parents outside the trace, end
//! before start). Each block is read back by id (`find_trace`) and whole (`read_all`).
//!
//! Normalisation, as the block contract allows: `ResourceSpans` and `ScopeSpans` entries
//! without spans are dropped by rb2 (they carry no span of the trace). Nothing else is:
//! attribute order, duplicate entries, NaN and -0.0 bit patterns must survive, compared
//! both field by field and as encoded bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use proptest::prelude::*;
use prost::Message;
use reference_backend::block::{BlockInput, EncodingSettings, TraceRecord, format_by_name};
use reference_backend::store::BlockStore;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z.]{1,12}",
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        "\\PC{0,20}",
    ]
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(1.5),
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        text().prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        double().prop_map(any_value::Value::DoubleValue),
        bytes(12).prop_map(any_value::Value::BytesValue),
        (1..5i32).prop_map(any_value::Value::StringValueStrindex),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    let leaf = prop_oneof![8 => leaf, 1 => Just(AnyValue { value: None })];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            proptest::collection::vec(("[a-z]{0,4}", proptest::option::of(inner)), 0..4).prop_map(
                |kvs| AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                        values: kvs
                            .into_iter()
                            .map(|(key, value)| KeyValue {
                                key,
                                value,
                                key_strindex: 0,
                            })
                            .collect(),
                    })),
                }
            ),
        ]
    })
}

/// Keys repeat across spans (and within one: duplicates are kept in order).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("http.method".to_owned()),
        Just("http.route".to_owned()),
        Just("http.status_code".to_owned()),
        Just("service.name".to_owned()),
        "[a-z]{1,3}",
        Just(String::new()),
    ]
}

fn attributes(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    let kv = (
        key(),
        proptest::option::weighted(0.95, any_value()),
        prop_oneof![10 => Just(0i32), 1 => 1..3i32],
    )
        .prop_map(|(key, value, key_strindex)| KeyValue {
            key,
            value,
            key_strindex,
        });
    proptest::collection::vec(kv, 0..max)
}

fn resource() -> impl Strategy<Value = Option<Resource>> {
    let entity = (text(), text(), proptest::collection::vec(text(), 0..2)).prop_map(
        |(r#type, schema_url, id_keys)| EntityRef {
            r#type,
            schema_url,
            id_keys,
            description_keys: Vec::new(),
        },
    );
    proptest::option::weighted(
        0.9,
        (
            attributes(5),
            any::<u32>(),
            proptest::collection::vec(entity, 0..2),
        )
            .prop_map(
                |(attributes, dropped_attributes_count, entity_refs)| Resource {
                    attributes,
                    dropped_attributes_count,
                    entity_refs,
                },
            ),
    )
}

fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    proptest::option::weighted(
        0.9,
        (text(), text(), attributes(3), any::<u32>()).prop_map(
            |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
                name,
                version,
                attributes,
                dropped_attributes_count,
            },
        ),
    )
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 1_700_000_000_000_000_000u64..1_700_000_100_000_000_000,
        1 => any::<u64>(),
        1 => Just(0u64),
    ]
}

/// A span before its ids are chosen (they depend on the other spans of the trace).
#[derive(Debug, Clone)]
struct SpanDraft {
    span: Span,
    /// 0 = root, 1 = parent is another span of the trace, 2 = random 8 bytes,
    /// 3 = random length.
    parent_kind: u8,
    /// 0 = 8 random bytes, 1 = random length.
    id_kind: u8,
    other_trace: bool,
}

fn span() -> impl Strategy<Value = SpanDraft> {
    let event = (time(), text(), attributes(3), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    );
    let link = (
        bytes(17),
        bytes(9),
        text(),
        attributes(3),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count,
                flags,
            },
        );
    let status = proptest::option::of(
        (text(), -1..4i32).prop_map(|(message, code)| Status { message, code }),
    );
    (
        (
            text(),
            -1..7i32,
            time(),
            prop_oneof![3 => 0..10_000_000u64, 1 => any::<u64>()],
        ),
        (text(), any::<u32>(), attributes(8), any::<u32>()),
        (proptest::collection::vec(event, 0..3), any::<u32>()),
        (proptest::collection::vec(link, 0..3), any::<u32>(), status),
        (
            prop_oneof![3 => Just(0u8), 4 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
            prop_oneof![9 => Just(0u8), 1 => Just(1u8)],
            proptest::bool::weighted(0.05),
            proptest::bool::weighted(0.05),
        ),
    )
        .prop_map(
            |(
                (name, kind, start, dur),
                (trace_state, flags, attributes, dropped_attributes_count),
                (events, dropped_events_count),
                (links, dropped_links_count, status),
                (parent_kind, id_kind, other_trace, backwards),
            )| {
                let end = if backwards {
                    start.wrapping_sub(dur)
                } else {
                    start.wrapping_add(dur)
                };
                SpanDraft {
                    span: Span {
                        name,
                        kind,
                        start_time_unix_nano: start,
                        end_time_unix_nano: end,
                        trace_state,
                        flags,
                        attributes,
                        dropped_attributes_count,
                        events,
                        dropped_events_count,
                        links,
                        dropped_links_count,
                        status,
                        ..Default::default()
                    },
                    parent_kind,
                    id_kind,
                    other_trace,
                }
            },
        )
}

type Shape = Vec<(
    Option<Resource>,
    String,
    Vec<(Option<InstrumentationScope>, String, Vec<SpanDraft>)>,
)>;

fn trace_shape() -> impl Strategy<Value = (Shape, u64)> {
    let scope_spans = (scope(), text(), proptest::collection::vec(span(), 0..4));
    let rs = (
        resource(),
        text(),
        proptest::collection::vec(scope_spans, 0..3),
    );
    (proptest::collection::vec(rs, 1..4), any::<u64>())
}

/// Fill in ids: deterministic from `seed` so shrinking keeps them stable.
fn build(id: [u8; 16], shape: Shape, seed: u64) -> TracesData {
    let mut n = seed;
    let mut next = move || {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        n
    };
    let mut ids: Vec<Vec<u8>> = Vec::new();
    let mut td = TracesData::default();
    for (resource, schema_url, scopes) in shape {
        let mut rs = ResourceSpans {
            resource,
            schema_url,
            scope_spans: Vec::new(),
        };
        for (scope, schema_url, drafts) in scopes {
            let mut ss = ScopeSpans {
                scope,
                schema_url,
                spans: Vec::new(),
            };
            for d in drafts {
                let mut sp = d.span;
                sp.trace_id = if d.other_trace {
                    next().to_le_bytes().to_vec()
                } else {
                    id.to_vec()
                };
                sp.span_id = match d.id_kind {
                    0 => next().to_be_bytes().to_vec(),
                    _ => next().to_be_bytes()[..(next() % 9) as usize].to_vec(),
                };
                sp.parent_span_id = match d.parent_kind {
                    0 => Vec::new(),
                    1 if !ids.is_empty() => ids[(next() % ids.len() as u64) as usize].clone(),
                    1 | 2 => next().to_be_bytes().to_vec(),
                    _ => next().to_be_bytes()[..(next() % 8) as usize].to_vec(),
                };
                ids.push(sp.span_id.clone());
                ss.spans.push(sp);
            }
            rs.scope_spans.push(ss);
        }
        td.resource_spans.push(rs);
    }
    td
}

/// What rb2 gives back: entries without spans dropped.
fn without_empty_entries(td: &TracesData) -> TracesData {
    let mut out = td.clone();
    for rs in &mut out.resource_spans {
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    out.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    out
}

fn span_count(td: &TracesData) -> usize {
    td.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Field-by-field comparison with the path of the first difference, then the bytes.
fn same(got: &TracesData, want: &TracesData, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        got.resource_spans.len(),
        want.resource_spans.len(),
        "{}: resource entries",
        what
    );
    for (r, (g, w)) in got
        .resource_spans
        .iter()
        .zip(&want.resource_spans)
        .enumerate()
    {
        prop_assert_eq!(
            &g.resource.as_ref().map(Message::encode_to_vec),
            &w.resource.as_ref().map(Message::encode_to_vec),
            "{}: resource {}",
            what,
            r
        );
        prop_assert_eq!(
            &g.schema_url,
            &w.schema_url,
            "{}: resource {} schema url",
            what,
            r
        );
        prop_assert_eq!(
            g.scope_spans.len(),
            w.scope_spans.len(),
            "{}: scopes of resource {}",
            what,
            r
        );
        for (s, (gs, ws)) in g.scope_spans.iter().zip(&w.scope_spans).enumerate() {
            prop_assert_eq!(
                &gs.scope.as_ref().map(Message::encode_to_vec),
                &ws.scope.as_ref().map(Message::encode_to_vec),
                "{}: scope {}/{}",
                what,
                r,
                s
            );
            prop_assert_eq!(
                &gs.schema_url,
                &ws.schema_url,
                "{}: scope {}/{} schema url",
                what,
                r,
                s
            );
            prop_assert_eq!(
                gs.spans.len(),
                ws.spans.len(),
                "{}: spans of scope {}/{}",
                what,
                r,
                s
            );
            for (i, (a, b)) in gs.spans.iter().zip(&ws.spans).enumerate() {
                let at = format!("{what}: span {r}/{s}/{i}");
                prop_assert_eq!(&a.trace_id, &b.trace_id, "{} trace id", at);
                prop_assert_eq!(&a.span_id, &b.span_id, "{} span id", at);
                prop_assert_eq!(&a.parent_span_id, &b.parent_span_id, "{} parent", at);
                prop_assert_eq!(&a.name, &b.name, "{} name", at);
                prop_assert_eq!(a.kind, b.kind, "{} kind", at);
                prop_assert_eq!(
                    a.start_time_unix_nano,
                    b.start_time_unix_nano,
                    "{} start",
                    at
                );
                prop_assert_eq!(a.end_time_unix_nano, b.end_time_unix_nano, "{} end", at);
                prop_assert_eq!(&a.trace_state, &b.trace_state, "{} trace state", at);
                prop_assert_eq!(a.flags, b.flags, "{} flags", at);
                prop_assert_eq!(&a.status, &b.status, "{} status", at);
                prop_assert_eq!(
                    a.dropped_attributes_count,
                    b.dropped_attributes_count,
                    "{} dropped attributes",
                    at
                );
                prop_assert_eq!(
                    a.dropped_events_count,
                    b.dropped_events_count,
                    "{} dropped events",
                    at
                );
                prop_assert_eq!(
                    a.dropped_links_count,
                    b.dropped_links_count,
                    "{} dropped links",
                    at
                );
                let enc =
                    |kvs: &[KeyValue]| kvs.iter().map(Message::encode_to_vec).collect::<Vec<_>>();
                prop_assert_eq!(enc(&a.attributes), enc(&b.attributes), "{} attributes", at);
                let ev = |e: &[Event]| e.iter().map(Message::encode_to_vec).collect::<Vec<_>>();
                prop_assert_eq!(ev(&a.events), ev(&b.events), "{} events", at);
                let ln = |l: &[Link]| l.iter().map(Message::encode_to_vec).collect::<Vec<_>>();
                prop_assert_eq!(ln(&a.links), ln(&b.links), "{} links", at);
            }
        }
    }
    prop_assert_eq!(
        got.encode_to_vec(),
        want.encode_to_vec(),
        "{}: encoded bytes",
        what
    );
    Ok(())
}

fn check(traces: Vec<(Shape, u64)>) -> Result<(), TestCaseError> {
    // Distinct, sorted ids; the data of a trace may be two concatenated encodings (how
    // the live store appends late spans).
    let mut corpus: Vec<([u8; 16], Vec<u8>, TracesData)> = Vec::new();
    for (n, (shape, seed)) in traces.into_iter().enumerate() {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&seed.to_be_bytes());
        id[8..].copy_from_slice(&(n as u64).to_be_bytes());
        let td = build(id, shape, seed);
        if span_count(&td) == 0 {
            continue;
        }
        let half = td.resource_spans.len() / 2;
        let (a, b) = td.resource_spans.split_at(half);
        let mut data = TracesData {
            resource_spans: a.to_vec(),
        }
        .encode_to_vec();
        data.extend(
            TracesData {
                resource_spans: b.to_vec(),
            }
            .encode_to_vec(),
        );
        corpus.push((id, data, td));
    }
    corpus.sort_by_key(|a| a.0);
    let records: Vec<TraceRecord<'_>> = corpus
        .iter()
        .map(|(id, data, _)| TraceRecord {
            id: *id,
            data,
            start_ns: 0,
            end_ns: 0,
            spans: 0,
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for format in ["rb1", "rb2"] {
        // Small row groups and pages so lookups cross page and row-group boundaries.
        let settings = EncodingSettings {
            page_size: 1024,
            row_group_bytes: 2048,
            ..EncodingSettings::default()
        };
        let fmt = format_by_name(format, &settings).unwrap();
        let store = BlockStore::memory();
        let meta = rt
            .block_on(fmt.write(
                &store,
                BlockInput {
                    tenant: "t",
                    block_id: uuid::Uuid::new_v4(),
                    traces: &records,
                },
            ))
            .unwrap();
        prop_assert_eq!(meta.total_objects, corpus.len() as u64);
        let reader = rt.block_on(fmt.open(&store, &meta)).unwrap();
        let normalise = |td: &TracesData| {
            if format == "rb2" {
                without_empty_entries(td)
            } else {
                td.clone()
            }
        };
        for (id, _, td) in &corpus {
            let got = rt.block_on(reader.find_trace(id)).unwrap();
            prop_assert!(got.is_some(), "{}: trace {:x?} not found", format, id);
            let got = TracesData::decode(got.unwrap().as_slice()).unwrap();
            same(&got, &normalise(td), &format!("{format} find_trace"))?;
        }
        let mut missing = corpus.first().map(|c| c.0).unwrap_or_default();
        missing[15] ^= 0x5a;
        prop_assert!(rt.block_on(reader.find_trace(&missing)).unwrap().is_none());
        let all = rt.block_on(reader.read_all()).unwrap();
        prop_assert_eq!(all.len(), corpus.len(), "{}: read_all count", format);
        for ((gid, bytes), (id, _, td)) in all.iter().zip(&corpus) {
            prop_assert_eq!(gid, id, "{}: read_all order", format);
            let got = TracesData::decode(bytes.as_slice()).unwrap();
            same(&got, &normalise(td), &format!("{format} read_all"))?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn blocks_round_trip_every_field(traces in proptest::collection::vec(trace_shape(), 1..24)) {
        check(traces)?;
    }
}
