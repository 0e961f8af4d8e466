//! Query parsing: TraceQL (lexer and parser), logfmt `tags`, search parameters. Whatever
//! parses is also evaluated over a fixed corpus, by the generic evaluator and by rb2's
//! columnar search, which must give the same hits.

use std::sync::{Arc, OnceLock};

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;
use reference_backend::block::{
    BlockInput, BlockReader, EncodingSettings, TraceRecord, format_by_name,
};
use reference_backend::search::generic::search_encoded;
use reference_backend::search::lexer::tokenize;
use reference_backend::search::request::{parse_search, parse_tag_request};
use reference_backend::search::tags::{parse_logfmt, tags_to_expr};
use reference_backend::search::traceql::{parse_field, parse_traceql};
use reference_backend::search::{Expr, SearchPlan, TagSummary};
use reference_backend::store::BlockStore;
use tempo_api::trace_id::TraceId;

use crate::input::block_on;

/// TraceQL: the lexer gives tokens at increasing char boundaries; the parser answers Ok
/// or a message with a column; an accepted query evaluates the same on rb2 as on the
/// generic evaluator; `parse_field` (the v2 tag-values path) never panics.
pub fn traceql(data: &[u8]) {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    match tokenize(q) {
        Ok(toks) => {
            let mut last = 0;
            for t in &toks {
                assert!(
                    t.at >= last && q.is_char_boundary(t.at),
                    "token offset {}",
                    t.at
                );
                last = t.at;
            }
        }
        Err(e) => {
            assert!(e.at <= q.len(), "error offset {} past the query", e.at);
            let _ = e.column(q);
        }
    }
    if let Ok(expr) = parse_traceql(q) {
        evaluate(&SearchPlan::new(expr), data);
    }
    let _ = parse_field(q);
}

/// logfmt `tags`: parsing and the expression built from the pairs never panic; accepted
/// tags evaluate the same on rb2 as on the generic evaluator.
pub fn logfmt_tags(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pairs) = parse_logfmt(text) else {
        return;
    };
    if let Ok(expr) = tags_to_expr(&pairs) {
        evaluate(&SearchPlan::new(expr), data);
    }
}

/// `/api/search` and tag endpoint parameters (`k=v&k2=v2`, no percent-decoding): never a
/// panic; an accepted search plan evaluates the same on rb2 as on the generic evaluator;
/// an accepted tag request's filter summarizes the corpus.
pub fn search_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params: Vec<(String, String)> = text
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect();
    if let Ok(plan) = parse_search(&params) {
        evaluate(&plan, data);
    }
    if let Ok(req) = parse_tag_request(&params) {
        summarize(req.range_ns, &req.filter);
    }
}

/// Run `plan` over the corpus with the generic evaluator and on the rb2 block; one input
/// in four (by a hash of `input`) also on the block of one-trace row groups and tiny pages,
/// which is slower to search.
fn evaluate(plan: &SearchPlan, input: &[u8]) {
    let c = corpus();
    let want = match search_encoded(c.traces.iter().map(|(i, b)| (*i, b.as_slice())), plan) {
        Ok(r) => r,
        Err(e) => panic!("generic search of a valid corpus failed: {e}"),
    };
    let tiny = input.iter().fold(0u8, |a, b| a.wrapping_add(*b)) % 4 == 0;
    for reader in c.readers.iter().take(if tiny { 2 } else { 1 }) {
        match block_on(reader.search(plan)) {
            Ok(got) => assert_eq!(
                format!("{:?}", got.traces),
                format!("{:?}", want.traces),
                "rb2 and the generic evaluator disagree on {plan:?}"
            ),
            Err(e) => panic!("rb2 search of a valid block failed: {e}"),
        }
    }
}

/// Tag summary of the corpus (rb2 blocks summarize through the same generic code after
/// `read_all`, which `rb2_block` exercises).
fn summarize(range_ns: Option<(u64, u64)>, filter: &Expr) {
    let c = corpus();
    let keep = |s: u64, e: u64| range_ns.is_none_or(|(a, b)| e >= a && s <= b);
    if let Err(e) = TagSummary::from_encoded(
        c.traces.iter().map(|(i, b)| (*i, b.as_slice())),
        keep,
        filter,
    ) {
        panic!("tag summary of a valid corpus failed: {e}");
    }
}

/// The fixed traces and rb2 blocks holding them (default settings; tiny pages and one
/// trace per row group).
struct Corpus {
    traces: Vec<(TraceId, Vec<u8>)>,
    readers: Vec<Arc<dyn BlockReader>>,
}

/// Start of the corpus (unix ns).
pub const T0: u64 = 1_700_000_000_000_000_000;

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let mut traces: Vec<(TraceId, Vec<u8>)> = (0..12u64)
            .map(|n| {
                let (id, td) = trace(n);
                (id, td.encode_to_vec())
            })
            .collect();
        traces.sort_by_key(|t| t.0);
        let tiny = EncodingSettings {
            row_group_bytes: 1,
            page_size: 64,
            ..EncodingSettings::default()
        };
        let readers = [EncodingSettings::default(), tiny]
            .iter()
            .map(|s| rb2_reader(s, &traces))
            .collect();
        Corpus { traces, readers }
    })
}

fn rb2_reader(settings: &EncodingSettings, traces: &[(TraceId, Vec<u8>)]) -> Arc<dyn BlockReader> {
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
    let Some(fmt) = format_by_name("rb2", settings) else {
        panic!("rb2 is not a format");
    };
    let store = BlockStore::memory();
    block_on(async {
        let input = BlockInput {
            tenant: "fuzz",
            block_id: uuid::Uuid::from_u128(7),
            traces: &records,
        };
        let meta = match fmt.write(&store, input).await {
            Ok(m) => m,
            Err(e) => panic!("rb2 write of the corpus: {e}"),
        };
        match fmt.open(&store, &meta).await {
            Ok(r) => r,
            Err(e) => panic!("rb2 open of the corpus: {e}"),
        }
    })
}

fn value(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: v,
        ..Default::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, value(any_value::Value::StringValue(v.into())))
}

/// Trace `n`: two resources, spans of every kind and status, attributes of every type
/// under shared keys (strings, ints, floats, bools, bytes, arrays, empty values), keys on
/// both scopes, dedicated keys holding other types, a missing root in some traces.
fn trace(n: u64) -> (TraceId, TracesData) {
    let mut id = [0u8; 16];
    id[0] = 0x5a;
    id[8..].copy_from_slice(&(n * 7_919 + 1).to_be_bytes());
    let base = T0 + (n % 4) * 1_000_000_000;
    let words = ["GET", "POST", "x", "Ünïcode", "", "a.b*", "error"];
    let attr = |i: u64| -> KeyValue {
        let key = [
            "http.method",
            "http.status_code",
            "k",
            "env",
            "service.name",
        ][(i % 5) as usize];
        let v = match (n + i) % 7 {
            0 => any_value::Value::StringValue(words[((n + i) % 7) as usize].into()),
            1 => any_value::Value::IntValue((n as i64 + i as i64) % 5 * 100),
            2 => any_value::Value::DoubleValue((n + i) as f64 / 2.0),
            3 => any_value::Value::BoolValue((n + i).is_multiple_of(2)),
            4 => any_value::Value::BytesValue(vec![n as u8, i as u8]),
            5 => any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue("x".into())),
                }],
            }),
            _ => any_value::Value::StringValue(words[(i % 7) as usize].into()),
        };
        if (n + i) % 11 == 10 {
            kv(key, None)
        } else {
            kv(key, value(v))
        }
    };
    let span = |i: u64| Span {
        trace_id: id.to_vec(),
        span_id: (n * 100 + i + 1).to_be_bytes().to_vec(),
        parent_span_id: match (i, n % 3) {
            (0, 0) => Vec::new(),
            (0, _) => vec![0xee; 8],
            _ => (n * 100 + 1).to_be_bytes().to_vec(),
        },
        name: ["GET /", "db", "op-é", ""][((n + i) % 4) as usize].into(),
        kind: ((n + i) % 6) as i32,
        start_time_unix_nano: base + i * 1_000_000,
        end_time_unix_nano: base + i * 1_000_000 + (n + 1) * (i + 1) * 700_000,
        attributes: (0..(i % 4) + 1).map(|j| attr(i * 3 + j)).collect(),
        status: ((n + i) % 4 != 3).then(|| Status {
            code: ((n + i) % 3) as i32,
            message: String::new(),
        }),
        ..Default::default()
    };
    let resource = |svc: &str, extra: u64| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![s("service.name", svc), attr(extra)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: Vec::new(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut a = resource(["cart", "payments", "Cart"][(n % 3) as usize], n);
    let mut b = resource("db", n + 1);
    a.scope_spans[0].spans = (0..3).map(span).collect();
    b.scope_spans[0].spans = (3..3 + n % 3).map(span).collect();
    let mut resource_spans = vec![a];
    if !n.is_multiple_of(3) {
        resource_spans.push(b);
    }
    (id, TracesData { resource_spans })
}
