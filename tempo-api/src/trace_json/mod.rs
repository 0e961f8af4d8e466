//! Tempo's trace-by-ID JSON (`/api/traces/{id}` and `/api/v2/traces/{id}`).
//!
//! Tempo marshals these bodies with gogo `jsonpb` defaults, which is **not**
//! OTLP/JSON:
//!
//! * field names are lowerCamelCase;
//! * 64-bit integers (times, `intValue`, byte counters) are decimal strings,
//!   32-bit integers (`flags`, dropped counts) are numbers;
//! * zero and empty fields are omitted, but a oneof that is set is always
//!   written (`{"stringValue":""}`), and a set message field is written even
//!   when empty (`"status":{}`);
//! * enums are name strings (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`);
//! * `bytes` fields (`traceId`, `spanId`, `parentSpanId`, link IDs,
//!   `bytesValue`) are **standard base64**, not hex (grafana/tempo#5437).
//!
//! The types here mirror OTLP one-to-one. ID and bytes fields hold the
//! base64 text and enum fields hold an [`EnumValue`], so JSON round-trips
//! untouched; converting to OTLP ([`TryFrom`]) decodes them and can fail
//! with [`TraceJsonError`]. Converting from OTLP ([`From`]) never fails.

mod convert;
#[cfg(test)]
mod tests;

use crate::otlp::trace::v1 as otlp_trace;
use crate::serde_util::{is_zero, map_i64_str, opt_f64, opt_i64_str, u64_str};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use convert::{base64_decode, base64_encode};

/// Failure converting Tempo JSON types into OTLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceJsonError {
    /// A bytes field did not hold base64.
    #[error("field {field}: invalid base64 {value:?}")]
    InvalidBase64 {
        /// JSON field name.
        field: &'static str,
        /// The text that failed to decode.
        value: String,
    },
    /// An enum name that OTLP does not define.
    #[error("field {field}: unknown enum value {name:?}")]
    UnknownEnum {
        /// JSON field name.
        field: &'static str,
        /// The unknown name.
        name: String,
    },
    /// An `AnyValue` with more than one of its oneof fields set.
    #[error("AnyValue has more than one value set: {fields:?}")]
    AmbiguousAnyValue {
        /// The JSON field names that were set.
        fields: Vec<&'static str>,
    },
}

/// A protobuf enum in JSON: jsonpb writes the name; numbers are accepted too
/// (and written for values outside the known set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnumValue {
    /// Enum value name, e.g. `SPAN_KIND_SERVER`.
    Name(String),
    /// Raw enum number.
    Number(i32),
}

/// v1 `/api/traces/{id}` JSON body: `{"batches":[…]}` (`resourceSpans`
/// renamed for backward compatibility, Tempo `MarshalToJSONV1`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceV1 {
    /// The resource spans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<ResourceSpans>,
}

/// `tempopb.Trace` in JSON: `{"resourceSpans":[…]}`; `{}` when empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceV2 {
    /// The resource spans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDMetrics`. All counters are omitted when zero.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceByIdMetrics {
    /// Bytes inspected to find the trace (uint64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub inspected_bytes: u64,
    /// Backend read operations (uint64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub backend_reads: u64,
    /// Bytes read from the backend (uint64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub backend_bytes: u64,
    /// Open-ended counters (int64 → string values).
    #[serde(with = "map_i64_str", skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_metrics: BTreeMap<String, i64>,
}

/// `tempopb.PartialStatus` name for a complete trace. jsonpb omits this zero
/// value, so a complete response has no `status` key.
pub const STATUS_COMPLETE: &str = "COMPLETE";
/// `tempopb.PartialStatus` name for a partial (truncated or pruned) trace.
pub const STATUS_PARTIAL: &str = "PARTIAL";

/// v2 `/api/v2/traces/{id}` JSON body (`tempopb.TraceByIDResponse`).
///
/// Tempo answers a v2 lookup of an unknown trace with 200 and an empty
/// trace, which serializes as `"trace":{}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceByIdV2Response {
    /// The trace (empty = not found).
    pub trace: TraceV2,
    /// Query metrics.
    pub metrics: TraceByIdMetrics,
    /// `"PARTIAL"` for partial traces; `None` (omitted) means complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Explanation for a partial trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// [`TraceByIdV2Response`] with the trace converted to OTLP.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceByIdV2Otlp {
    /// The trace's resource spans.
    pub resource_spans: Vec<otlp_trace::ResourceSpans>,
    /// Query metrics.
    pub metrics: TraceByIdMetrics,
    /// `"PARTIAL"` or `None`.
    pub status: Option<String>,
    /// Explanation for a partial trace.
    pub message: Option<String>,
}

impl TraceByIdV2Otlp {
    /// True when Tempo marked the trace as partial.
    pub fn is_partial(&self) -> bool {
        self.status.as_deref() == Some(STATUS_PARTIAL)
    }
}

/// OTLP `ResourceSpans`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceSpans {
    /// The resource (written as `{}` when set but empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Spans grouped by instrumentation scope.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope_spans: Vec<ScopeSpans>,
    /// Schema URL.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schema_url: String,
}

/// OTLP `Resource`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    /// Resource attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
    /// Dropped attribute count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
    /// Entity references (newer OTLP; Tempo does not store them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entity_refs: Vec<EntityRef>,
}

/// OTLP `EntityRef` (kept only so conversions are lossless).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntityRef {
    /// Schema URL.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schema_url: String,
    /// Entity type.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    /// Identifying attribute keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub id_keys: Vec<String>,
    /// Descriptive attribute keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub description_keys: Vec<String>,
}

/// OTLP `ScopeSpans`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeSpans {
    /// Instrumentation scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<InstrumentationScope>,
    /// Spans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
    /// Schema URL.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schema_url: String,
}

/// OTLP `InstrumentationScope`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstrumentationScope {
    /// Scope name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Scope version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Scope attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
    /// Dropped attribute count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
}

/// OTLP `Span`. ID fields hold base64 text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Span {
    /// Trace ID, base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// Span ID, base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    /// W3C trace state.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_state: String,
    /// Parent span ID, base64; omitted for root spans.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent_span_id: String,
    /// Span flags (fixed32 → number).
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
    /// Span name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `SPAN_KIND_*`; omitted when unspecified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<EnumValue>,
    /// Start time, ns since epoch (fixed64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub start_time_unix_nano: u64,
    /// End time, ns since epoch (fixed64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub end_time_unix_nano: u64,
    /// Span attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
    /// Dropped attribute count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
    /// Span events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Dropped event count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_events_count: u32,
    /// Span links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Dropped link count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_links_count: u32,
    /// Status (written as `{}` when set but empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// OTLP `Span.Event`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    /// Event time, ns since epoch (fixed64 → string).
    #[serde(with = "u64_str", skip_serializing_if = "is_zero")]
    pub time_unix_nano: u64,
    /// Event name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Event attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
    /// Dropped attribute count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
}

/// OTLP `Span.Link`. ID fields hold base64 text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Link {
    /// Linked trace ID, base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// Linked span ID, base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    /// W3C trace state.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_state: String,
    /// Link attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
    /// Dropped attribute count.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
    /// Link flags (fixed32 → number).
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
}

/// OTLP `Status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// Status message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `STATUS_CODE_*`; omitted when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<EnumValue>,
}

/// OTLP `KeyValue`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValue {
    /// Attribute key.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Attribute value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<AnyValue>,
    /// Dictionary key index (profiles only; Tempo never sets it).
    #[serde(skip_serializing_if = "is_zero")]
    pub key_strindex: i32,
}

impl KeyValue {
    /// A string attribute.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Some(AnyValue {
                string_value: Some(value.into()),
                ..AnyValue::default()
            }),
            key_strindex: 0,
        }
    }
}

/// OTLP `AnyValue`. At most one field is set (a oneof); a set field is
/// always written, even when it holds a zero value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AnyValue {
    /// String value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// Boolean value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bool_value: Option<bool>,
    /// Integer value (int64 → string; numbers accepted when reading).
    #[serde(with = "opt_i64_str", skip_serializing_if = "Option::is_none")]
    pub int_value: Option<i64>,
    /// Double value (non-finite values as `"NaN"`, `"Infinity"`, `"-Infinity"`).
    #[serde(with = "opt_f64", skip_serializing_if = "Option::is_none")]
    pub double_value: Option<f64>,
    /// Array value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array_value: Option<ArrayValue>,
    /// Key-value list value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvlist_value: Option<KeyValueList>,
    /// Bytes value, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_value: Option<String>,
    /// Dictionary string index (profiles only; Tempo never sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_value_strindex: Option<i32>,
}

/// OTLP `ArrayValue`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArrayValue {
    /// Elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<AnyValue>,
}

/// OTLP `KeyValueList`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyValueList {
    /// Entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<KeyValue>,
}

fn to_json(resource_spans: &[otlp_trace::ResourceSpans]) -> Vec<ResourceSpans> {
    resource_spans.iter().map(ResourceSpans::from).collect()
}

fn to_otlp(
    resource_spans: Vec<ResourceSpans>,
) -> Result<Vec<otlp_trace::ResourceSpans>, TraceJsonError> {
    resource_spans
        .into_iter()
        .map(otlp_trace::ResourceSpans::try_from)
        .collect()
}

/// Builds the v1 body (`{"batches":[…]}`) from OTLP resource spans.
pub fn trace_v1_json(resource_spans: &[otlp_trace::ResourceSpans]) -> TraceV1 {
    TraceV1 {
        batches: to_json(resource_spans),
    }
}

/// Builds `tempopb.Trace` JSON (`{"resourceSpans":[…]}`) from OTLP.
pub fn trace_v2_json(resource_spans: &[otlp_trace::ResourceSpans]) -> TraceV2 {
    TraceV2 {
        resource_spans: to_json(resource_spans),
    }
}

/// Builds a complete (non-partial) v2 body with the given inspected bytes.
pub fn trace_by_id_v2_json(
    resource_spans: &[otlp_trace::ResourceSpans],
    inspected_bytes: u64,
) -> TraceByIdV2Response {
    TraceByIdV2Response {
        trace: trace_v2_json(resource_spans),
        metrics: TraceByIdMetrics {
            inspected_bytes,
            ..TraceByIdMetrics::default()
        },
        status: None,
        message: None,
    }
}

impl TraceV1 {
    /// Converts the batches to OTLP.
    pub fn into_otlp(self) -> Result<Vec<otlp_trace::ResourceSpans>, TraceJsonError> {
        to_otlp(self.batches)
    }
}

impl TraceV2 {
    /// Converts the resource spans to OTLP.
    pub fn into_otlp(self) -> Result<Vec<otlp_trace::ResourceSpans>, TraceJsonError> {
        to_otlp(self.resource_spans)
    }

    /// True when the trace has no resource spans (Tempo's v2 "not found").
    pub fn is_empty(&self) -> bool {
        self.resource_spans.is_empty()
    }
}

impl TraceByIdV2Response {
    /// Converts the trace to OTLP, keeping metrics, status and message.
    pub fn into_otlp(self) -> Result<TraceByIdV2Otlp, TraceJsonError> {
        Ok(TraceByIdV2Otlp {
            resource_spans: self.trace.into_otlp()?,
            metrics: self.metrics,
            status: self.status,
            message: self.message,
        })
    }
}
