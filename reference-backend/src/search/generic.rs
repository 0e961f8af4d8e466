//! Search over encoded traces (`TracesData` bytes): decode, evaluate span by span.
//!
//! Per trace: spans are de-duplicated by span id (first copy wins, as trace lookups do);
//! the root span is the first span with an empty parent span id, and the root service is
//! the `service.name` of its resource; the trace starts at its earliest span start and lasts
//! until its latest span end. `minDuration`/`maxDuration` apply to that trace duration and
//! `start`/`end` keep traces overlapping the range. A trace with at least one matching span
//! is a hit; the source keeps the `limit` hits that start last (see [`super::rank`]).

use std::collections::HashSet;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, TracesData, status};
use prost::Message;
use tempo_api::trace_id::{TraceId, trace_id_to_hex};

use super::ast::{Expr, Field, Intrinsic, Scope, ValueRef};
use super::{
    HitValue, SearchPlan, SearchResult, ServiceStats, SpanHit, TraceHit, count_span, rank,
};
use crate::error::{Error, Result};

/// Search encoded traces. Each item is one trace's id and its encoded spans.
pub fn search_encoded<'a>(
    traces: impl Iterator<Item = (TraceId, &'a [u8])>,
    plan: &SearchPlan,
) -> Result<SearchResult> {
    let mut out = SearchResult::default();
    let attributes = plan.filter.referenced_attributes();
    for (id, bytes) in traces {
        let td = decode(&id, bytes)?;
        let trace = DecodedTrace::new(&td);
        out.inspected_traces += 1;
        out.inspected_spans += trace.spans.len() as u64;
        if trace.spans.is_empty() || !plan.admits(trace.start_ns, trace.end_ns) {
            continue;
        }
        let mut matched: Vec<(&[KeyValue], &Span)> = trace
            .spans
            .iter()
            .copied()
            .filter(|(res, span)| eval(&plan.filter, &trace, res, span))
            .collect();
        if matched.is_empty() {
            continue;
        }
        let count = matched.len() as u32;
        matched.sort_by(|a, b| {
            (a.1.start_time_unix_nano, &a.1.span_id).cmp(&(b.1.start_time_unix_nano, &b.1.span_id))
        });
        matched.truncate(plan.spans_per_spanset);
        let mut service_stats = ServiceStats::new();
        for (res, span) in &trace.spans {
            let service = match attribute(res, "service.name") {
                Some(ValueRef::Str(s)) => Some(s),
                _ => None,
            };
            let error = span
                .status
                .as_ref()
                .is_some_and(|s| s.code == status::StatusCode::Error as i32);
            count_span(&mut service_stats, service, error);
        }
        out.traces.push(TraceHit {
            trace_id: id,
            root_service_name: trace.root_service.map(str::to_owned),
            root_span_name: trace.root_name.map(str::to_owned),
            start_ns: trace.start_ns,
            duration_ns: trace.duration_ns(),
            matched: count,
            spans: matched
                .iter()
                .map(|(res, span)| span_hit(res, span, &attributes))
                .collect(),
            service_stats,
        });
        if out.traces.len() >= plan.limit.saturating_mul(2).max(64) {
            rank(&mut out.traces, plan.limit);
        }
    }
    rank(&mut out.traces, plan.limit);
    Ok(out)
}

/// Decode one stored trace (several concatenated encodings merge into one message).
pub fn decode(id: &TraceId, bytes: &[u8]) -> Result<TracesData> {
    TracesData::decode(bytes).map_err(|e| {
        Error::Internal(format!(
            "stored trace {} does not decode: {e}",
            trace_id_to_hex(id)
        ))
    })
}

/// A decoded trace's spans (de-duplicated) with the trace-level facts queries read.
pub struct DecodedTrace<'a> {
    /// Each span with its resource's attributes.
    pub spans: Vec<(&'a [KeyValue], &'a Span)>,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// Root span name, when the root span is present.
    pub root_name: Option<&'a str>,
    /// Root span's `service.name`, when the root span is present and has one.
    pub root_service: Option<&'a str>,
}

impl<'a> DecodedTrace<'a> {
    /// Walk `td` once.
    pub fn new(td: &'a TracesData) -> Self {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut t = DecodedTrace {
            spans: Vec::new(),
            start_ns: u64::MAX,
            end_ns: 0,
            root_name: None,
            root_service: None,
        };
        let mut root_seen = false;
        for rs in &td.resource_spans {
            let res: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                if !seen.insert(&span.span_id) {
                    continue;
                }
                t.start_ns = t.start_ns.min(span.start_time_unix_nano);
                t.end_ns = t.end_ns.max(span.end_time_unix_nano);
                if span.parent_span_id.is_empty() && !root_seen {
                    root_seen = true;
                    t.root_name = Some(&span.name);
                    t.root_service = service_name(res);
                }
                t.spans.push((res, span));
            }
        }
        if t.spans.is_empty() {
            t.start_ns = 0;
        }
        t
    }

    /// Latest end − earliest start.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// The string `service.name` among resource attributes `res`.
fn service_name(res: &[KeyValue]) -> Option<&str> {
    match attribute(res, "service.name") {
        Some(ValueRef::Str(s)) => Some(s),
        _ => None,
    }
}

/// Is `e` true for `span` (with resource attributes `res`) of `trace`?
pub fn eval(e: &Expr, trace: &DecodedTrace<'_>, res: &[KeyValue], span: &Span) -> bool {
    match e {
        Expr::All => true,
        Expr::Cond(c) => c.matches(field_value(&c.field, trace, res, span)),
        Expr::And(a, b) => eval(a, trace, res, span) && eval(b, trace, res, span),
        Expr::Or(a, b) => eval(a, trace, res, span) || eval(b, trace, res, span),
    }
}

/// What `field` reads on `span`; `None` when absent.
pub fn field_value<'a>(
    field: &Field,
    trace: &DecodedTrace<'a>,
    res: &'a [KeyValue],
    span: &'a Span,
) -> Option<ValueRef<'a>> {
    match field {
        Field::Attr { scope, key } => scoped_attribute(*scope, key, res, span),
        Field::Intrinsic(i) => match i {
            Intrinsic::Name => Some(ValueRef::Str(&span.name)),
            Intrinsic::Status => Some(ValueRef::Int(i64::from(
                span.status.as_ref().map_or(0, |s| s.code),
            ))),
            Intrinsic::Kind => Some(ValueRef::Int(i64::from(span.kind))),
            Intrinsic::Duration => Some(ValueRef::Duration(
                span.end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano),
            )),
            Intrinsic::RootServiceName => trace.root_service.map(ValueRef::Str),
            Intrinsic::RootName => trace.root_name.map(ValueRef::Str),
            Intrinsic::TraceDuration => Some(ValueRef::Duration(trace.duration_ns())),
        },
    }
}

/// Attribute `key` by scope: `Any` reads the span's attribute, else the resource's.
pub fn scoped_attribute<'a>(
    scope: Scope,
    key: &str,
    res: &'a [KeyValue],
    span: &'a Span,
) -> Option<ValueRef<'a>> {
    match scope {
        Scope::Span => attribute(&span.attributes, key),
        Scope::Resource => attribute(res, key),
        Scope::Any => attribute(&span.attributes, key).or_else(|| attribute(res, key)),
    }
}

/// The first attribute named `key`.
pub fn attribute<'a>(attrs: &'a [KeyValue], key: &str) -> Option<ValueRef<'a>> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value_ref(kv.value.as_ref()))
}

/// An OTLP value as conditions see it.
pub fn value_ref(v: Option<&AnyValue>) -> ValueRef<'_> {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => ValueRef::Str(s),
        Some(any_value::Value::IntValue(i)) => ValueRef::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => ValueRef::Float(*f),
        Some(any_value::Value::BoolValue(b)) => ValueRef::Bool(*b),
        _ => ValueRef::Other,
    }
}

fn span_hit(res: &[KeyValue], span: &Span, attributes: &[(Scope, &str)]) -> SpanHit {
    let mut id = [0u8; 8];
    if span.span_id.len() == 8 {
        id.copy_from_slice(&span.span_id);
    }
    SpanHit {
        span_id: id,
        name: span.name.clone(),
        start_ns: span.start_time_unix_nano,
        duration_ns: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano),
        attributes: attributes
            .iter()
            .filter_map(|(scope, key)| {
                let v = match scoped_attribute(*scope, key, res, span)? {
                    ValueRef::Str(s) => HitValue::Str(s.to_owned()),
                    ValueRef::Int(i) => HitValue::Int(i),
                    ValueRef::Float(f) => HitValue::Float(f),
                    ValueRef::Bool(b) => HitValue::Bool(b),
                    ValueRef::Duration(_) | ValueRef::Other => return None,
                };
                Some(((*key).to_owned(), v))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::search::traceql::parse_traceql;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(id: u8, parent: Option<u8>, start: u64, name: &str) -> Span {
        Span {
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            ..Default::default()
        }
    }

    fn encode(service: &str, spans: Vec<Span>) -> Vec<u8> {
        TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn plan(q: &str, limit: usize, spss: usize) -> SearchPlan {
        SearchPlan {
            limit,
            spans_per_spanset: spss,
            ..SearchPlan::new(parse_traceql(q).unwrap())
        }
    }

    #[test]
    fn concatenated_parts_merge_and_duplicate_spans_count_once() {
        let mut bytes = encode(
            "child",
            vec![span(3, Some(1), 300, "c"), span(2, Some(1), 200, "b")],
        );
        bytes.extend(encode("root", vec![span(1, None, 100, "a")]));
        bytes.extend(encode("child", vec![span(2, Some(1), 200, "b")]));
        let r = search_encoded(
            [([7; 16], bytes.as_slice())].into_iter(),
            &plan("{}", 20, 2),
        )
        .unwrap();
        assert_eq!((r.inspected_traces, r.inspected_spans), (1, 3));
        let hit = &r.traces[0];
        assert_eq!(hit.matched, 3);
        assert_eq!(hit.root_service_name.as_deref(), Some("root"));
        assert_eq!(hit.root_span_name.as_deref(), Some("a"));
        assert_eq!((hit.start_ns, hit.duration_ns), (100, 210));
        let ids: Vec<u8> = hit.spans.iter().map(|s| s.span_id[0]).collect();
        assert_eq!(ids, [1, 2], "earliest matched spans first");
    }

    #[test]
    fn a_source_keeps_the_most_recent_hits_whatever_the_input_order() {
        let traces: Vec<([u8; 16], Vec<u8>)> = (1..=50u8)
            .map(|i| {
                (
                    [i; 16],
                    encode("s", vec![span(i, None, u64::from(i) * 1000, "x")]),
                )
            })
            .collect();
        let mut reversed = traces.clone();
        reversed.reverse();
        for input in [traces, reversed] {
            let r = search_encoded(
                input.iter().map(|(id, b)| (*id, b.as_slice())),
                &plan("{}", 3, 3),
            )
            .unwrap();
            let ids: Vec<u8> = r.traces.iter().map(|t| t.trace_id[0]).collect();
            assert_eq!(ids, [50, 49, 48]);
            assert_eq!(r.inspected_traces, 50);
        }
    }

    #[test]
    fn undecodable_trace_is_an_error() {
        let bad = [0xff_u8, 0xff, 0xff];
        let e = search_encoded([([1; 16], &bad[..])].into_iter(), &plan("{}", 20, 3)).unwrap_err();
        assert!(e.to_string().contains("does not decode"), "{e}");
    }
}
