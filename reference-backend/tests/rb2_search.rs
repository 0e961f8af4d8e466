//! Property test: rb2's columnar search answers exactly as the generic evaluator
//! (`search::generic::search_encoded`, which decodes every trace) over the same traces.
//!
//! Random traces (several resources, duplicate span ids, missing roots, attributes of
//! every scalar type under shared keys, dedicated keys holding other types, repeated keys)
//! go into rb2 blocks with default settings and with one-trace row groups and tiny pages;
//! random expressions (every intrinsic, `span.`/`resource.`/`.` attributes, every operator,
//! `&&`/`||`) with random limits, spss, duration and time bounds are compared hit by hit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use proptest::prelude::*;
use prost::Message;
use reference_backend::block::{
    BlockInput, BlockReader, EncodingSettings, TraceRecord, format_by_name,
};
use reference_backend::search::SearchPlan;
use reference_backend::search::ast::{Cond, Expr, Field, Intrinsic, Op, Scope, Static};
use reference_backend::search::generic::search_encoded;
use reference_backend::store::BlockStore;

const T0: u64 = 1_700_000_000_000_000_000;
const KEYS: [&str; 7] = [
    "http.method",
    "http.route",
    "k1",
    "k2",
    "k3",
    "env",
    "service.name",
];
const STRS: [&str; 5] = ["GET", "POST", "x", "y", "prod"];

fn value() -> impl Strategy<Value = Option<AnyValue>> {
    let v = prop_oneof![
        4 => prop::sample::select(STRS.to_vec()).prop_map(|s| any_value::Value::StringValue(s.into())),
        2 => (0..4i64).prop_map(any_value::Value::IntValue),
        1 => prop::sample::select(vec![0.5, 1.5, 3.0]).prop_map(any_value::Value::DoubleValue),
        1 => any::<bool>().prop_map(any_value::Value::BoolValue),
        1 => Just(any_value::Value::ArrayValue(ArrayValue { values: vec![] })),
    ];
    prop_oneof![9 => v.prop_map(|v| Some(AnyValue { value: Some(v) })), 1 => Just(None)]
}

fn attrs(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (prop::sample::select(KEYS.to_vec()), value()).prop_map(|(k, value)| KeyValue {
            key: k.into(),
            value,
            ..Default::default()
        }),
        0..max,
    )
}

/// (resource attributes, spans as (span id, parent choice, name, kind, status, start, dur, attrs)).
type SpanSpec = (u8, u8, u8, i32, Option<i32>, u64, u64, Vec<KeyValue>);

fn trace() -> impl Strategy<Value = Vec<(Vec<KeyValue>, Vec<SpanSpec>)>> {
    let span = (
        0..6u8,
        0..3u8,
        0..3u8,
        0..6i32,
        prop::option::of(0..3i32),
        0..5_000u64,
        prop_oneof![0..2_000u64, Just(0u64)],
        attrs(5),
    );
    prop::collection::vec((attrs(3), prop::collection::vec(span, 1..4)), 1..3)
}

fn build(n: usize, spec: Vec<(Vec<KeyValue>, Vec<SpanSpec>)>) -> ([u8; 16], TracesData) {
    let mut id = [0u8; 16];
    id[0] = 0x42;
    id[8..].copy_from_slice(&(n as u64 * 7919).to_be_bytes());
    let base = T0 + (n as u64 % 5) * 1_000_000_000;
    let resource_spans = spec
        .into_iter()
        .map(|(res, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: res,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .into_iter()
                    .map(
                        |(sid, parent, name, kind, status, start, dur, attributes)| Span {
                            trace_id: id.to_vec(),
                            span_id: vec![sid + 1; 8],
                            parent_span_id: match parent {
                                0 => Vec::new(),
                                1 => vec![1; 8],
                                _ => vec![0xee; 8],
                            },
                            name: ["a", "b", "GET /"][name as usize].into(),
                            kind,
                            start_time_unix_nano: base + start * 1000,
                            end_time_unix_nano: base + (start + dur) * 1000,
                            attributes,
                            status: status.map(|code| Status {
                                code,
                                message: String::new(),
                            }),
                            ..Default::default()
                        },
                    )
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    (id, TracesData { resource_spans })
}

fn literal() -> impl Strategy<Value = Static> {
    prop_oneof![
        prop::sample::select(STRS.to_vec()).prop_map(|s| Static::Str(s.into())),
        (0..4i64).prop_map(Static::Int),
        prop::sample::select(vec![0.5, 1.5, 2.0]).prop_map(Static::Float),
        any::<bool>().prop_map(Static::Bool),
        (0..2_000_000u64).prop_map(Static::Duration),
        (0..3i32).prop_map(Static::Status),
        (0..6i32).prop_map(Static::Kind),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    let intrinsic = prop::sample::select(vec![
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::Kind,
        Intrinsic::Duration,
        Intrinsic::RootServiceName,
        Intrinsic::RootName,
        Intrinsic::TraceDuration,
    ])
    .prop_map(Field::Intrinsic);
    let attr = (
        prop::sample::select(vec![Scope::Span, Scope::Resource, Scope::Any]),
        prop::sample::select(KEYS.to_vec()),
    )
        .prop_map(|(scope, key)| Field::Attr {
            scope,
            key: key.into(),
        });
    prop_oneof![1 => intrinsic, 2 => attr]
}

fn cond() -> impl Strategy<Value = Expr> {
    let op = prop::sample::select(vec![
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Ge,
        Op::Lt,
        Op::Le,
        Op::Re,
        Op::NotRe,
    ]);
    let regex = prop::sample::select(vec!["G.*", "x|y", ".*", "P", "pro."]);
    (field(), op, literal(), regex).prop_map(|(field, op, lit, re)| {
        let value = match op {
            Op::Re | Op::NotRe => Static::Str(re.into()),
            _ => lit,
        };
        Expr::Cond(Cond::new(field, op, value).unwrap())
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![1 => Just(Expr::All), 6 => cond()];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn plan() -> impl Strategy<Value = SearchPlan> {
    (
        expr(),
        prop::sample::select(vec![1usize, 2, 5, 100]),
        1..4usize,
        prop::option::of(0..1_500_000u64),
        prop::option::of(0..3_000_000u64),
        prop::option::of(0..3u64),
        prop::option::of(1..5u64),
    )
        .prop_map(
            |(filter, limit, spss, min_d, max_d, start, end)| SearchPlan {
                filter,
                min_duration_ns: min_d,
                max_duration_ns: max_d,
                start_ns: start.map(|s| T0 + s * 1_000_000_000 + 2_000_000),
                end_ns: end.map(|e| T0 + e * 1_000_000_000),
                limit,
                spans_per_spanset: spss,
            },
        )
}

fn block(
    rt: &tokio::runtime::Runtime,
    settings: &EncodingSettings,
    traces: &[([u8; 16], Vec<u8>)],
) -> std::sync::Arc<dyn BlockReader> {
    let records: Vec<TraceRecord<'_>> = traces
        .iter()
        .map(|(id, d)| TraceRecord {
            id: *id,
            data: d,
            start_ns: 0,
            end_ns: 0,
            spans: 0,
        })
        .collect();
    let fmt = format_by_name("rb2", settings).unwrap();
    let store = BlockStore::memory();
    rt.block_on(async {
        let meta = fmt
            .write(
                &store,
                BlockInput {
                    tenant: "t",
                    block_id: uuid::Uuid::new_v4(),
                    traces: &records,
                },
            )
            .await
            .unwrap();
        fmt.open(&store, &meta).await.unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn rb2_search_equals_the_generic_evaluator(
        specs in prop::collection::vec(trace(), 1..20),
        plans in prop::collection::vec(plan(), 8),
    ) {
        let mut traces: Vec<([u8; 16], Vec<u8>)> = specs
            .into_iter()
            .enumerate()
            .map(|(n, s)| {
                let (id, td) = build(n, s);
                (id, td.encode_to_vec())
            })
            .collect();
        traces.sort_by_key(|t| t.0);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let tiny = EncodingSettings {
            row_group_bytes: 1,
            page_size: 64,
            ..EncodingSettings::default()
        };
        let readers = [
            block(&rt, &EncodingSettings::default(), &traces),
            block(&rt, &tiny, &traces),
        ];
        for plan in &plans {
            let want = search_encoded(traces.iter().map(|(i, b)| (*i, b.as_slice())), plan).unwrap();
            for reader in &readers {
                let got = rt.block_on(reader.search(plan)).unwrap();
                prop_assert_eq!(&got.traces, &want.traces, "plan {:?}", plan);
            }
        }
    }
}

/// A block big enough for several scan batches per row group, with a key whose values are
/// all different (stored in the plain string column) and a key with few values (the
/// dictionary fast path), searched every way; answers equal the generic evaluator's.
#[test]
fn plain_strings_and_multi_batch_row_groups_answer_like_the_generic_evaluator() {
    let s = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let mut traces: Vec<([u8; 16], Vec<u8>)> = (0..2_000u64)
        .map(|n| {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&(n * 104_729).to_be_bytes());
            let spans = (0..10u64)
                .map(|i| Span {
                    trace_id: id.to_vec(),
                    span_id: (n * 10 + i + 1).to_be_bytes().to_vec(),
                    parent_span_id: if i == 0 {
                        Vec::new()
                    } else {
                        (n * 10 + 1).to_be_bytes().to_vec()
                    },
                    name: format!("op-{}", i % 3),
                    start_time_unix_nano: T0 + n * 1_000 + i,
                    end_time_unix_nano: T0 + n * 1_000 + i + 50,
                    attributes: vec![
                        s("uid", format!("u-{}", n * 10 + i)),
                        s("k", ["a", "b", "c"][((n + i) % 3) as usize].into()),
                    ],
                    ..Default::default()
                })
                .collect();
            let td = TracesData {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![s("service.name", format!("svc-{}", n % 4))],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            (id, td.encode_to_vec())
        })
        .collect();
    traces.sort_by_key(|t| t.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let reader = block(&rt, &EncodingSettings::default(), &traces);
    let c = |scope, key: &str, op, v: &str| {
        Expr::Cond(
            Cond::new(
                Field::Attr {
                    scope,
                    key: key.into(),
                },
                op,
                Static::Str(v.into()),
            )
            .unwrap(),
        )
    };
    let queries = [
        c(Scope::Span, "uid", Op::Eq, "u-12345"),
        c(Scope::Span, "uid", Op::Re, "u-1999."),
        c(Scope::Any, "uid", Op::Eq, "u-7"),
        c(Scope::Span, "k", Op::Eq, "b"),
        c(Scope::Any, "k", Op::Ne, "a"),
        Expr::And(
            Box::new(c(Scope::Span, "k", Op::Eq, "c")),
            Box::new(c(Scope::Span, "uid", Op::Re, "u-1.*5")),
        ),
    ];
    for filter in queries {
        for limit in [3, 5_000] {
            let plan = SearchPlan {
                limit,
                ..SearchPlan::new(filter.clone())
            };
            let want =
                search_encoded(traces.iter().map(|(i, b)| (*i, b.as_slice())), &plan).unwrap();
            let got = rt.block_on(reader.search(&plan)).unwrap();
            assert!(!want.traces.is_empty(), "{filter:?} finds something");
            assert_eq!(got.traces, want.traces, "{filter:?} limit {limit}");
            assert_eq!(got.inspected_spans, 20_000);
        }
    }
}
