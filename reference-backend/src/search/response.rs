//! Search hits and tag summaries → Tempo's response bodies (`tempo_api::search`).

use std::collections::BTreeSet;

use tempo_api::search::{
    MetadataMetrics, SearchMetrics, SearchResponse, SearchSpan, SearchTagValuesResponse,
    SearchTagValuesV2Response, SearchTagsResponse, SearchTagsV2Response, SearchTagsV2Scope,
    ServiceStats, SpanSet, TagValue, TraceSearchMetadata,
};
use tempo_api::trace_id::trace_id_to_search_hex;
use tempo_api::trace_json::{AnyValue, KeyValue};

use super::ast::{Field, Intrinsic, Scope};
use super::engine::{SearchOutcome, TagOutcome};
use super::request::{TagRequest, TagScope};
use super::tag_summary::{TypedValue, ValueType};
use super::vocabulary::{INTRINSICS, KINDS, STATUSES};
use super::{HitValue, SpanHit, TraceHit};

/// What Tempo shows for a trace whose root span has not arrived.
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// The `/api/search` body.
pub fn search_response(outcome: &SearchOutcome) -> SearchResponse {
    SearchResponse {
        traces: outcome.hits.iter().map(trace_metadata).collect(),
        metrics: SearchMetrics {
            inspected_traces: u32::try_from(outcome.inspected_traces).unwrap_or(u32::MAX),
            inspected_bytes: outcome.inspected_bytes,
            total_blocks: u32::try_from(outcome.total_blocks).unwrap_or(u32::MAX),
            total_block_bytes: outcome.total_block_bytes,
            inspected_spans: outcome.inspected_spans,
            ..SearchMetrics::default()
        },
    }
}

fn trace_metadata(hit: &TraceHit) -> TraceSearchMetadata {
    let set = SpanSet {
        spans: hit.spans.iter().map(search_span).collect(),
        matched: hit.matched,
        attributes: Vec::new(),
    };
    TraceSearchMetadata {
        trace_id: trace_id_to_search_hex(&hit.trace_id),
        root_service_name: hit
            .root_service_name
            .clone()
            .unwrap_or_else(|| ROOT_NOT_RECEIVED.to_owned()),
        root_trace_name: hit.root_span_name.clone().unwrap_or_default(),
        start_time_unix_nano: hit.start_ns,
        duration_ms: u32::try_from(hit.duration_ns / 1_000_000).unwrap_or(u32::MAX),
        span_set: Some(set.clone()),
        span_sets: vec![set],
        service_stats: hit
            .service_stats
            .iter()
            .map(|(service, stat)| {
                let stats = ServiceStats {
                    span_count: stat.spans,
                    error_count: stat.errors,
                };
                (service.clone(), stats)
            })
            .collect(),
    }
}

fn search_span(s: &SpanHit) -> SearchSpan {
    SearchSpan {
        span_id: s.span_id.iter().map(|b| format!("{b:02x}")).collect(),
        name: s.name.clone(),
        start_time_unix_nano: s.start_ns,
        duration_nanos: s.duration_ns,
        attributes: s
            .attributes
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: Some(any_value(v)),
                key_strindex: 0,
            })
            .collect(),
    }
}

fn any_value(v: &HitValue) -> AnyValue {
    let mut out = AnyValue::default();
    match v {
        HitValue::Str(s) => out.string_value = Some(s.clone()),
        HitValue::Int(i) => out.int_value = Some(*i),
        HitValue::Float(f) => out.double_value = Some(*f),
        HitValue::Bool(b) => out.bool_value = Some(*b),
    }
    out
}

fn metadata_metrics(o: &TagOutcome) -> MetadataMetrics {
    MetadataMetrics {
        inspected_bytes: o.summary.inspected_bytes,
        total_blocks: u32::try_from(o.total_blocks).unwrap_or(u32::MAX),
        total_block_bytes: o.total_block_bytes,
        ..MetadataMetrics::default()
    }
}

/// Intrinsic tag names this backend can search, sorted.
pub fn intrinsic_tag_names() -> Vec<String> {
    let mut v: Vec<String> = INTRINSICS.iter().map(|(n, _)| (*n).to_owned()).collect();
    v.sort();
    v
}

fn limited<T>(mut v: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        v.truncate(n);
    }
    v
}

fn names_in(o: &TagOutcome, scope: TagScope) -> Vec<String> {
    match scope {
        TagScope::Resource => o.summary.resource.keys().cloned().collect(),
        TagScope::Span => o.summary.span.keys().cloned().collect(),
        TagScope::Intrinsic => intrinsic_tag_names(),
        TagScope::NotSummarized => Vec::new(),
    }
}

/// The `/api/search/tags` body: attribute names of every scope (or of `scope`).
pub fn tag_names_v1(o: &TagOutcome, req: &TagRequest) -> SearchTagsResponse {
    let names: Vec<String> = match req.scope {
        Some(scope) => names_in(o, scope),
        None => {
            let all: BTreeSet<&String> = o
                .summary
                .resource
                .keys()
                .chain(o.summary.span.keys())
                .collect();
            all.into_iter().cloned().collect()
        }
    };
    SearchTagsResponse {
        tag_names: limited(names, req.limit),
        metrics: metadata_metrics(o),
    }
}

/// The `/api/v2/search/tags` body: one entry per scope (`intrinsic` always; `resource` and
/// `span` when they have names).
pub fn tag_names_v2(o: &TagOutcome, req: &TagRequest) -> SearchTagsV2Response {
    let scopes = match req.scope {
        Some(TagScope::NotSummarized) => Vec::new(),
        Some(scope) => vec![scope],
        None => vec![TagScope::Resource, TagScope::Span, TagScope::Intrinsic],
    };
    let scopes = scopes
        .into_iter()
        .map(|scope| SearchTagsV2Scope {
            name: match scope {
                TagScope::Resource => "resource",
                TagScope::Span => "span",
                _ => "intrinsic",
            }
            .to_owned(),
            tags: limited(names_in(o, scope), req.limit),
        })
        .filter(|s| !s.tags.is_empty() || req.scope.is_some())
        .collect();
    SearchTagsV2Response {
        scopes,
        metrics: metadata_metrics(o),
    }
}

/// Where a v1 tag name's values come from (Tempo's v1 names map some keys to intrinsics
/// and well-known scopes).
pub fn v1_tag_field(tag: &str) -> Field {
    let intrinsic = match tag {
        "name" => Some(Intrinsic::Name),
        "status.code" => Some(Intrinsic::Status),
        "root.name" | "rootName" => Some(Intrinsic::RootName),
        "root.service.name" | "rootServiceName" => Some(Intrinsic::RootServiceName),
        _ => None,
    };
    if let Some(i) = intrinsic {
        return Field::Intrinsic(i);
    }
    let scope = match tag {
        "service.name" | "cluster" | "namespace" | "pod" | "container" | "k8s.namespace.name"
        | "k8s.cluster.name" | "k8s.pod.name" | "k8s.container.name" => Scope::Resource,
        "http.method" | "http.url" | "http.status_code" => Scope::Span,
        _ => Scope::Any,
    };
    Field::Attr {
        scope,
        key: tag.to_owned(),
    }
}

/// Distinct values of `field`, sorted by type then text.
pub fn values_of(o: &TagOutcome, field: &Field) -> Vec<TypedValue> {
    let s = &o.summary;
    let strings = |set: &BTreeSet<String>| -> Vec<TypedValue> {
        set.iter()
            .map(|t| TypedValue {
                kind: ValueType::String,
                text: t.clone(),
            })
            .collect()
    };
    let keywords = |set: &BTreeSet<i32>, names: &[(&str, i32)]| -> Vec<TypedValue> {
        set.iter()
            .filter_map(|c| names.iter().find(|(_, n)| n == c))
            .map(|(name, _)| TypedValue {
                kind: ValueType::Keyword,
                text: (*name).to_owned(),
            })
            .collect()
    };
    match field {
        Field::Intrinsic(i) => match i {
            Intrinsic::Name => strings(&s.span_names),
            Intrinsic::RootName => strings(&s.root_names),
            Intrinsic::RootServiceName => strings(&s.root_service_names),
            Intrinsic::Status => keywords(&s.statuses, &STATUSES),
            Intrinsic::Kind => keywords(&s.kinds, &KINDS),
            Intrinsic::Duration | Intrinsic::TraceDuration => Vec::new(),
        },
        Field::Attr { scope, key } => {
            let mut all: BTreeSet<&TypedValue> = BTreeSet::new();
            if matches!(scope, Scope::Resource | Scope::Any) {
                all.extend(s.resource.get(key).into_iter().flatten());
            }
            if matches!(scope, Scope::Span | Scope::Any) {
                all.extend(s.span.get(key).into_iter().flatten());
            }
            all.into_iter().cloned().collect()
        }
    }
}

/// The `/api/search/tag/{tag}/values` body: values as text.
pub fn tag_values_v1(o: &TagOutcome, tag: &str, req: &TagRequest) -> SearchTagValuesResponse {
    let texts: BTreeSet<String> = values_of(o, &v1_tag_field(tag))
        .into_iter()
        .map(|v| v.text)
        .collect();
    SearchTagValuesResponse {
        tag_values: limited(texts.into_iter().collect(), req.limit),
        metrics: metadata_metrics(o),
    }
}

/// The `/api/v2/search/tag/{tag}/values` body: typed values.
pub fn tag_values_v2(o: &TagOutcome, field: &Field, req: &TagRequest) -> SearchTagValuesV2Response {
    let values = values_of(o, field)
        .into_iter()
        .map(|v| TagValue {
            r#type: v.kind.as_str().to_owned(),
            value: v.text,
        })
        .collect();
    SearchTagValuesV2Response {
        tag_values: limited(values, req.limit),
        metrics: metadata_metrics(o),
    }
}
