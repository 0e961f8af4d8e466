//! `/api/search` and tag endpoint types (Tempo `tempopb` messages in jsonpb
//! JSON).
//!
//! Response types never deny unknown fields: Tempo keeps adding them. All
//! fields default when absent (jsonpb omits zero values, e.g. `traces` with
//! no results). 64-bit counters are written as strings and read from either
//! strings or numbers.

use crate::serde_util::{is_zero, map_i64_str, u64_str};
use crate::trace_json::KeyValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Query parameters of `GET /api/search`.
///
/// Send either `q` (TraceQL) or `tags` (logfmt `k=v k2="v w"`), not both.
/// Durations are Go duration strings (`100ms`, `1.5s`); `start`/`end` are
/// epoch seconds (Tempo parses them as uint32).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchRequest {
    /// TraceQL query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// logfmt tag filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// `minDuration` (Go duration).
    #[serde(rename = "minDuration", skip_serializing_if = "Option::is_none")]
    pub min_duration: Option<String>,
    /// `maxDuration` (Go duration).
    #[serde(rename = "maxDuration", skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// Maximum traces (Tempo default 20; 0 is a 400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Range start, epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    /// Range end, epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<u32>,
    /// Spans per span set (Tempo default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spss: Option<u32>,
}

impl SearchRequest {
    /// A TraceQL search.
    pub fn traceql(q: impl Into<String>) -> Self {
        Self {
            q: Some(q.into()),
            ..Self::default()
        }
    }

    /// A logfmt tag search.
    pub fn tags(tags: impl Into<String>) -> Self {
        Self {
            tags: Some(tags.into()),
            ..Self::default()
        }
    }

    /// Sets `start` and `end` (epoch seconds).
    pub fn with_range(mut self, start: u32, end: u32) -> Self {
        self.start = Some(start);
        self.end = Some(end);
        self
    }

    /// Sets `limit`.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sets `q`.
    pub fn with_query(mut self, q: impl Into<String>) -> Self {
        self.q = Some(q.into());
        self
    }

    /// Sets `spss`.
    pub fn with_spss(mut self, spss: u32) -> Self {
        self.spss = Some(spss);
        self
    }

    /// The set parameters as URL query pairs, using Tempo's names
    /// (`minDuration`, `maxDuration`), in a fixed order. Values are not
    /// percent-encoded; the URL builder does that.
    pub fn to_query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let strings = [
            ("q", &self.q),
            ("tags", &self.tags),
            ("minDuration", &self.min_duration),
            ("maxDuration", &self.max_duration),
        ];
        for (name, value) in strings {
            if let Some(v) = value {
                pairs.push((name, v.clone()));
            }
        }
        let numbers = [
            ("limit", self.limit),
            ("start", self.start),
            ("end", self.end),
            ("spss", self.spss),
        ];
        for (name, value) in numbers {
            if let Some(v) = value {
                pairs.push((name, v.to_string()));
            }
        }
        pairs
    }
}

/// Query parameters of the tag endpoints (`/api/search/tags`, `/api/v2/search/tags`,
/// `/api/search/tag/{tag}/values`, `/api/v2/search/tag/{tag}/values`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagsRequest {
    /// `scope`: `resource`, `span`, `intrinsic`, … (names endpoints; default all).
    pub scope: Option<String>,
    /// Range start, epoch seconds.
    pub start: Option<u32>,
    /// Range end, epoch seconds.
    pub end: Option<u32>,
    /// Most names or values to return.
    pub limit: Option<u32>,
    /// `q`: a TraceQL filter; only matching spans contribute (v2 endpoints in Tempo).
    pub q: Option<String>,
}

impl TagsRequest {
    /// Names of one scope.
    pub fn scope(scope: impl Into<String>) -> Self {
        Self {
            scope: Some(scope.into()),
            ..Self::default()
        }
    }

    /// Sets `start` and `end` (epoch seconds).
    pub fn with_range(mut self, start: u32, end: u32) -> Self {
        self.start = Some(start);
        self.end = Some(end);
        self
    }

    /// Sets `limit`.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sets `q`.
    pub fn with_query(mut self, q: impl Into<String>) -> Self {
        self.q = Some(q.into());
        self
    }

    /// The set parameters as URL query pairs, in a fixed order.
    pub fn to_query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(s) = &self.scope {
            pairs.push(("scope", s.clone()));
        }
        for (name, value) in [
            ("start", self.start),
            ("end", self.end),
            ("limit", self.limit),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.to_string()));
            }
        }
        if let Some(q) = &self.q {
            pairs.push(("q", q.clone()));
        }
        pairs
    }
}

/// `GET /api/search` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchResponse {
    /// Matching traces (omitted by Tempo when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<TraceSearchMetadata>,
    /// Search metrics.
    pub metrics: SearchMetrics,
}

/// One search hit (`tempopb.TraceSearchMetadata`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceSearchMetadata {
    /// Hex trace ID with leading zeros stripped (see
    /// [`crate::trace_id::trace_id_to_search_hex`]).
    #[serde(rename = "traceID", skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// Root span's service, or `<root span not yet received>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_service_name: String,
    /// Root span's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_trace_name: String,
    /// Trace start, ns since epoch (uint64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub start_time_unix_nano: u64,
    /// Trace duration in ms (uint32 → number).
    #[serde(skip_serializing_if = "is_zero")]
    pub duration_ms: u32,
    /// Deprecated; equals `spanSets[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_set: Option<SpanSet>,
    /// Matching span sets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub span_sets: Vec<SpanSet>,
    /// Per-service span and error counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// A matched span set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanSet {
    /// Up to `spss` spans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SearchSpan>,
    /// Number of spans that matched.
    #[serde(skip_serializing_if = "is_zero")]
    pub matched: u32,
    /// Span-set attributes (e.g. TraceQL `select`/aggregates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// A span inside a search span set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchSpan {
    /// 16-character zero-padded hex span ID.
    #[serde(rename = "spanID", skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    /// Span name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Span start, ns since epoch (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub start_time_unix_nano: u64,
    /// Span duration in ns (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub duration_nanos: u64,
    /// Selected attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// `serviceStats` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceStats {
    /// Spans of this service in the trace.
    #[serde(skip_serializing_if = "is_zero")]
    pub span_count: u32,
    /// Error spans of this service in the trace.
    #[serde(skip_serializing_if = "is_zero")]
    pub error_count: u32,
}

/// `tempopb.SearchMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchMetrics {
    /// Traces inspected.
    #[serde(skip_serializing_if = "is_zero")]
    pub inspected_traces: u32,
    /// Bytes inspected (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub inspected_bytes: u64,
    /// Blocks in range.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blocks: u32,
    /// Jobs finished.
    #[serde(skip_serializing_if = "is_zero")]
    pub completed_jobs: u32,
    /// Jobs created.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_jobs: u32,
    /// Bytes of the blocks in range (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub total_block_bytes: u64,
    /// Spans inspected (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub inspected_spans: u64,
    /// Backend read operations (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub backend_reads: u64,
    /// Backend bytes read (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub backend_bytes: u64,
    /// Open-ended counters (int64 → string values).
    #[serde(with = "map_i64_str", skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_metrics: BTreeMap<String, i64>,
}

/// `tempopb.MetadataMetrics` (tag and tag-value endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetadataMetrics {
    /// Bytes inspected (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub inspected_bytes: u64,
    /// Jobs created.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_jobs: u32,
    /// Jobs finished.
    #[serde(skip_serializing_if = "is_zero")]
    pub completed_jobs: u32,
    /// Blocks in range.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blocks: u32,
    /// Bytes of the blocks in range (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub total_block_bytes: u64,
    /// Backend read operations (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub backend_reads: u64,
    /// Backend bytes read (string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub backend_bytes: u64,
    /// Open-ended counters (int64 → string values).
    #[serde(with = "map_i64_str", skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_metrics: BTreeMap<String, i64>,
}

/// `GET /api/search/tags` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchTagsResponse {
    /// Tag names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tag_names: Vec<String>,
    /// Query metrics.
    pub metrics: MetadataMetrics,
}

/// `GET /api/v2/search/tags` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchTagsV2Response {
    /// One entry per scope that has tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<SearchTagsV2Scope>,
    /// Query metrics.
    pub metrics: MetadataMetrics,
}

/// A scope (`resource`, `span`, `intrinsic`, …) and its tag names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchTagsV2Scope {
    /// Scope name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Tag names in the scope.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// `GET /api/search/tag/{tag}/values` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchTagValuesResponse {
    /// Values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tag_values: Vec<String>,
    /// Query metrics.
    pub metrics: MetadataMetrics,
}

/// `GET /api/v2/search/tag/{tag}/values` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchTagValuesV2Response {
    /// Typed values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tag_values: Vec<TagValue>,
    /// Query metrics.
    pub metrics: MetadataMetrics,
}

/// A typed tag value (`type` is e.g. `string`, `int`, `keyword`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TagValue {
    /// Value type.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    /// Value text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::trace_id::{parse_trace_id, trace_id_to_search_hex};
    use serde_json::json;

    #[test]
    fn query_pairs_use_tempo_names() {
        let req = SearchRequest {
            q: Some("{ .a = \"b\" }".into()),
            min_duration: Some("100ms".into()),
            max_duration: Some("1s".into()),
            ..SearchRequest::default()
        }
        .with_limit(5)
        .with_range(10, 20)
        .with_spss(2);
        assert_eq!(
            req.to_query_pairs(),
            vec![
                ("q", "{ .a = \"b\" }".to_string()),
                ("minDuration", "100ms".to_string()),
                ("maxDuration", "1s".to_string()),
                ("limit", "5".to_string()),
                ("start", "10".to_string()),
                ("end", "20".to_string()),
                ("spss", "2".to_string()),
            ]
        );
        assert!(SearchRequest::default().to_query_pairs().is_empty());
        assert_eq!(
            SearchRequest::tags("service.name=cart").to_query_pairs(),
            vec![("tags", "service.name=cart".to_string())]
        );
    }

    #[test]
    fn search_response_parses_with_unknown_fields() {
        let body = json!({
            "traces": [{
                "traceID": "2f3e0cee77ae5dc9c17ade3689eb2e54",
                "rootServiceName": "shop-backend",
                "rootTraceName": "update-billing",
                "startTimeUnixNano": "1684778327699392724",
                "durationMs": 557,
                "spanSet": {"spans": [{"spanID": "563d623c76514f8e", "startTimeUnixNano": "1684778327735077898",
                    "durationNanos": "446979497", "attributes": [{"key": "status", "value": {"stringValue": "error"}}]}],
                    "matched": 1},
                "spanSets": [{"spans": [{"spanID": "563d623c76514f8e", "durationNanos": 446979497}], "matched": 1,
                    "newSpanSetField": []}],
                "serviceStats": {"shop-backend": {"spanCount": 3, "errorCount": 1}},
                "someFutureField": {"x": 1}
            }],
            "metrics": {"inspectedTraces": 1, "inspectedBytes": "1024", "totalBlocks": 2, "completedJobs": 4,
                "totalJobs": 4, "totalBlockBytes": "999", "inspectedSpans": "7",
                "additionalMetrics": {"cacheHits": "2"}, "unknownMetric": "1"},
            "extra": null
        });
        let r: SearchResponse = serde_json::from_value(body).unwrap();
        let t = &r.traces[0];
        assert_eq!(t.trace_id, "2f3e0cee77ae5dc9c17ade3689eb2e54");
        assert_eq!(t.start_time_unix_nano, 1_684_778_327_699_392_724);
        assert_eq!(t.duration_ms, 557);
        assert_eq!(
            t.span_set.as_ref().unwrap().spans[0].duration_nanos,
            446_979_497
        );
        assert_eq!(t.span_sets[0].spans[0].duration_nanos, 446_979_497);
        assert_eq!(t.span_sets[0].matched, 1);
        assert_eq!(t.service_stats["shop-backend"].error_count, 1);
        assert_eq!(r.metrics.inspected_bytes, 1024);
        assert_eq!(r.metrics.inspected_spans, 7);
        assert_eq!(r.metrics.total_block_bytes, 999);
        assert_eq!(r.metrics.additional_metrics["cacheHits"], 2);
    }

    #[test]
    fn empty_search_omits_traces_and_64bit_are_strings() {
        let r: SearchResponse = serde_json::from_value(json!({"metrics": {}})).unwrap();
        assert!(r.traces.is_empty());
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"metrics": {}}));
        let r = SearchResponse {
            traces: vec![TraceSearchMetadata {
                trace_id: "abc".into(),
                start_time_unix_nano: 5,
                duration_ms: 1,
                ..TraceSearchMetadata::default()
            }],
            metrics: SearchMetrics {
                inspected_bytes: 10,
                inspected_traces: 1,
                ..SearchMetrics::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "traces": [{"traceID": "abc", "startTimeUnixNano": "5", "durationMs": 1}],
                "metrics": {"inspectedTraces": 1, "inspectedBytes": "10"}
            })
        );
    }

    #[test]
    fn search_trace_ids_strip_leading_zeros() {
        let id = parse_trace_id("00000000000000000abcdef012345678").unwrap();
        assert_eq!(trace_id_to_search_hex(&id), "abcdef012345678");
    }

    #[test]
    fn tags_request_pairs() {
        assert!(TagsRequest::default().to_query_pairs().is_empty());
        assert_eq!(
            TagsRequest::scope("span")
                .with_range(1, 2)
                .with_limit(3)
                .to_query_pairs(),
            vec![
                ("scope", "span".to_string()),
                ("start", "1".to_string()),
                ("end", "2".to_string()),
                ("limit", "3".to_string()),
            ]
        );
    }

    #[test]
    fn tag_responses() {
        let v1: SearchTagsResponse = serde_json::from_value(json!({
            "tagNames": ["http.method", "service.name"], "metrics": {"inspectedBytes": "12"}
        }))
        .unwrap();
        assert_eq!(v1.tag_names, ["http.method", "service.name"]);
        assert_eq!(v1.metrics.inspected_bytes, 12);

        let v2: SearchTagsV2Response = serde_json::from_value(json!({
            "scopes": [{"name": "resource", "tags": ["service.name"]}, {"name": "intrinsic", "tags": ["duration"]}],
            "metrics": {"totalJobs": 1}
        }))
        .unwrap();
        assert_eq!(v2.scopes[1].name, "intrinsic");
        assert_eq!(v2.metrics.total_jobs, 1);

        let vals: SearchTagValuesResponse =
            serde_json::from_value(json!({"tagValues": ["a", "b"]})).unwrap();
        assert_eq!(vals.tag_values, ["a", "b"]);

        let vals2: SearchTagValuesV2Response = serde_json::from_value(json!({
            "tagValues": [{"type": "string", "value": "cart"}, {"type": "int", "value": "200"}],
            "metrics": {}
        }))
        .unwrap();
        assert_eq!(vals2.tag_values[1].r#type, "int");
        assert_eq!(
            serde_json::to_value(&vals2.tag_values[0]).unwrap(),
            json!({"type": "string", "value": "cart"})
        );
        // Empty results: Tempo omits the list entirely.
        let none: SearchTagValuesV2Response =
            serde_json::from_value(json!({"metrics": {}})).unwrap();
        assert!(none.tag_values.is_empty());
    }
}
