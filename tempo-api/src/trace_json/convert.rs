//! Lossless conversions between the Tempo JSON types and OTLP (prost).

use super::*;
use crate::otlp::common::v1 as otlp_common;
use crate::otlp::resource::v1 as otlp_resource;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use otlp_common::any_value::Value;
use otlp_trace::span::SpanKind;
use otlp_trace::status::StatusCode;

/// Standard base64 with padding, as gogo jsonpb writes `bytes` fields.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64. Standard padded is what Tempo writes; unpadded and
/// URL-safe forms are accepted as well (as protojson does).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

fn b64(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        String::new()
    } else {
        base64_encode(bytes)
    }
}

fn unb64(field: &'static str, text: String) -> Result<Vec<u8>, TraceJsonError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    base64_decode(&text).ok_or(TraceJsonError::InvalidBase64 { field, value: text })
}

fn enum_to_json(value: i32, name: Option<&'static str>) -> Option<EnumValue> {
    match (value, name) {
        (0, _) => None,
        (_, Some(name)) => Some(EnumValue::Name(name.to_string())),
        (n, None) => Some(EnumValue::Number(n)),
    }
}

fn enum_from_json(
    field: &'static str,
    value: Option<EnumValue>,
    lookup: impl Fn(&str) -> Option<i32>,
) -> Result<i32, TraceJsonError> {
    match value {
        None => Ok(0),
        Some(EnumValue::Number(n)) => Ok(n),
        Some(EnumValue::Name(name)) => {
            lookup(&name).ok_or(TraceJsonError::UnknownEnum { field, name })
        }
    }
}

fn kvs_to_json(kvs: &[otlp_common::KeyValue]) -> Vec<KeyValue> {
    kvs.iter().map(KeyValue::from).collect()
}

fn kvs_to_otlp(kvs: Vec<KeyValue>) -> Result<Vec<otlp_common::KeyValue>, TraceJsonError> {
    kvs.into_iter()
        .map(otlp_common::KeyValue::try_from)
        .collect()
}

impl From<&otlp_trace::ResourceSpans> for ResourceSpans {
    fn from(v: &otlp_trace::ResourceSpans) -> Self {
        Self {
            resource: v.resource.as_ref().map(Resource::from),
            scope_spans: v.scope_spans.iter().map(ScopeSpans::from).collect(),
            schema_url: v.schema_url.clone(),
        }
    }
}

impl TryFrom<ResourceSpans> for otlp_trace::ResourceSpans {
    type Error = TraceJsonError;
    fn try_from(v: ResourceSpans) -> Result<Self, TraceJsonError> {
        Ok(Self {
            resource: v
                .resource
                .map(otlp_resource::Resource::try_from)
                .transpose()?,
            scope_spans: v
                .scope_spans
                .into_iter()
                .map(otlp_trace::ScopeSpans::try_from)
                .collect::<Result<_, _>>()?,
            schema_url: v.schema_url,
        })
    }
}

impl From<&otlp_resource::Resource> for Resource {
    fn from(v: &otlp_resource::Resource) -> Self {
        Self {
            attributes: kvs_to_json(&v.attributes),
            dropped_attributes_count: v.dropped_attributes_count,
            entity_refs: v
                .entity_refs
                .iter()
                .map(|e| EntityRef {
                    schema_url: e.schema_url.clone(),
                    r#type: e.r#type.clone(),
                    id_keys: e.id_keys.clone(),
                    description_keys: e.description_keys.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<Resource> for otlp_resource::Resource {
    type Error = TraceJsonError;
    fn try_from(v: Resource) -> Result<Self, TraceJsonError> {
        Ok(Self {
            attributes: kvs_to_otlp(v.attributes)?,
            dropped_attributes_count: v.dropped_attributes_count,
            entity_refs: v
                .entity_refs
                .into_iter()
                .map(|e| otlp_common::EntityRef {
                    schema_url: e.schema_url,
                    r#type: e.r#type,
                    id_keys: e.id_keys,
                    description_keys: e.description_keys,
                })
                .collect(),
        })
    }
}

impl From<&otlp_trace::ScopeSpans> for ScopeSpans {
    fn from(v: &otlp_trace::ScopeSpans) -> Self {
        Self {
            scope: v.scope.as_ref().map(InstrumentationScope::from),
            spans: v.spans.iter().map(Span::from).collect(),
            schema_url: v.schema_url.clone(),
        }
    }
}

impl TryFrom<ScopeSpans> for otlp_trace::ScopeSpans {
    type Error = TraceJsonError;
    fn try_from(v: ScopeSpans) -> Result<Self, TraceJsonError> {
        Ok(Self {
            scope: v
                .scope
                .map(otlp_common::InstrumentationScope::try_from)
                .transpose()?,
            spans: v
                .spans
                .into_iter()
                .map(otlp_trace::Span::try_from)
                .collect::<Result<_, _>>()?,
            schema_url: v.schema_url,
        })
    }
}

impl From<&otlp_common::InstrumentationScope> for InstrumentationScope {
    fn from(v: &otlp_common::InstrumentationScope) -> Self {
        Self {
            name: v.name.clone(),
            version: v.version.clone(),
            attributes: kvs_to_json(&v.attributes),
            dropped_attributes_count: v.dropped_attributes_count,
        }
    }
}

impl TryFrom<InstrumentationScope> for otlp_common::InstrumentationScope {
    type Error = TraceJsonError;
    fn try_from(v: InstrumentationScope) -> Result<Self, TraceJsonError> {
        Ok(Self {
            name: v.name,
            version: v.version,
            attributes: kvs_to_otlp(v.attributes)?,
            dropped_attributes_count: v.dropped_attributes_count,
        })
    }
}

impl From<&otlp_trace::Span> for Span {
    fn from(v: &otlp_trace::Span) -> Self {
        let kind = SpanKind::try_from(v.kind).ok().map(|k| k.as_str_name());
        Self {
            trace_id: b64(&v.trace_id),
            span_id: b64(&v.span_id),
            trace_state: v.trace_state.clone(),
            parent_span_id: b64(&v.parent_span_id),
            flags: v.flags,
            name: v.name.clone(),
            kind: enum_to_json(v.kind, kind),
            start_time_unix_nano: v.start_time_unix_nano,
            end_time_unix_nano: v.end_time_unix_nano,
            attributes: kvs_to_json(&v.attributes),
            dropped_attributes_count: v.dropped_attributes_count,
            events: v.events.iter().map(Event::from).collect(),
            dropped_events_count: v.dropped_events_count,
            links: v.links.iter().map(Link::from).collect(),
            dropped_links_count: v.dropped_links_count,
            status: v.status.as_ref().map(Status::from),
        }
    }
}

impl TryFrom<Span> for otlp_trace::Span {
    type Error = TraceJsonError;
    fn try_from(v: Span) -> Result<Self, TraceJsonError> {
        Ok(Self {
            trace_id: unb64("traceId", v.trace_id)?,
            span_id: unb64("spanId", v.span_id)?,
            trace_state: v.trace_state,
            parent_span_id: unb64("parentSpanId", v.parent_span_id)?,
            flags: v.flags,
            name: v.name,
            kind: enum_from_json("kind", v.kind, |n| {
                SpanKind::from_str_name(n).map(|k| k as i32)
            })?,
            start_time_unix_nano: v.start_time_unix_nano,
            end_time_unix_nano: v.end_time_unix_nano,
            attributes: kvs_to_otlp(v.attributes)?,
            dropped_attributes_count: v.dropped_attributes_count,
            events: v
                .events
                .into_iter()
                .map(otlp_trace::span::Event::try_from)
                .collect::<Result<_, _>>()?,
            dropped_events_count: v.dropped_events_count,
            links: v
                .links
                .into_iter()
                .map(otlp_trace::span::Link::try_from)
                .collect::<Result<_, _>>()?,
            dropped_links_count: v.dropped_links_count,
            status: v.status.map(otlp_trace::Status::try_from).transpose()?,
        })
    }
}

impl From<&otlp_trace::span::Event> for Event {
    fn from(v: &otlp_trace::span::Event) -> Self {
        Self {
            time_unix_nano: v.time_unix_nano,
            name: v.name.clone(),
            attributes: kvs_to_json(&v.attributes),
            dropped_attributes_count: v.dropped_attributes_count,
        }
    }
}

impl TryFrom<Event> for otlp_trace::span::Event {
    type Error = TraceJsonError;
    fn try_from(v: Event) -> Result<Self, TraceJsonError> {
        Ok(Self {
            time_unix_nano: v.time_unix_nano,
            name: v.name,
            attributes: kvs_to_otlp(v.attributes)?,
            dropped_attributes_count: v.dropped_attributes_count,
        })
    }
}

impl From<&otlp_trace::span::Link> for Link {
    fn from(v: &otlp_trace::span::Link) -> Self {
        Self {
            trace_id: b64(&v.trace_id),
            span_id: b64(&v.span_id),
            trace_state: v.trace_state.clone(),
            attributes: kvs_to_json(&v.attributes),
            dropped_attributes_count: v.dropped_attributes_count,
            flags: v.flags,
        }
    }
}

impl TryFrom<Link> for otlp_trace::span::Link {
    type Error = TraceJsonError;
    fn try_from(v: Link) -> Result<Self, TraceJsonError> {
        Ok(Self {
            trace_id: unb64("links.traceId", v.trace_id)?,
            span_id: unb64("links.spanId", v.span_id)?,
            trace_state: v.trace_state,
            attributes: kvs_to_otlp(v.attributes)?,
            dropped_attributes_count: v.dropped_attributes_count,
            flags: v.flags,
        })
    }
}

impl From<&otlp_trace::Status> for Status {
    fn from(v: &otlp_trace::Status) -> Self {
        let name = StatusCode::try_from(v.code).ok().map(|c| c.as_str_name());
        Self {
            message: v.message.clone(),
            code: enum_to_json(v.code, name),
        }
    }
}

impl TryFrom<Status> for otlp_trace::Status {
    type Error = TraceJsonError;
    fn try_from(v: Status) -> Result<Self, TraceJsonError> {
        Ok(Self {
            message: v.message,
            code: enum_from_json("status.code", v.code, |n| {
                StatusCode::from_str_name(n).map(|c| c as i32)
            })?,
        })
    }
}

impl From<&otlp_common::KeyValue> for KeyValue {
    fn from(v: &otlp_common::KeyValue) -> Self {
        Self {
            key: v.key.clone(),
            value: v.value.as_ref().map(AnyValue::from),
            key_strindex: v.key_strindex,
        }
    }
}

impl TryFrom<KeyValue> for otlp_common::KeyValue {
    type Error = TraceJsonError;
    fn try_from(v: KeyValue) -> Result<Self, TraceJsonError> {
        Ok(Self {
            key: v.key,
            value: v.value.map(otlp_common::AnyValue::try_from).transpose()?,
            key_strindex: v.key_strindex,
        })
    }
}

impl From<&otlp_common::AnyValue> for AnyValue {
    fn from(v: &otlp_common::AnyValue) -> Self {
        let mut out = AnyValue::default();
        match &v.value {
            None => {}
            Some(Value::StringValue(s)) => out.string_value = Some(s.clone()),
            Some(Value::BoolValue(b)) => out.bool_value = Some(*b),
            Some(Value::IntValue(i)) => out.int_value = Some(*i),
            Some(Value::DoubleValue(d)) => out.double_value = Some(*d),
            Some(Value::ArrayValue(a)) => {
                out.array_value = Some(ArrayValue {
                    values: a.values.iter().map(AnyValue::from).collect(),
                });
            }
            Some(Value::KvlistValue(l)) => {
                out.kvlist_value = Some(KeyValueList {
                    values: kvs_to_json(&l.values),
                });
            }
            // A set oneof is always written, so empty bytes are `""`.
            Some(Value::BytesValue(b)) => out.bytes_value = Some(base64_encode(b)),
            Some(Value::StringValueStrindex(i)) => out.string_value_strindex = Some(*i),
        }
        out
    }
}

impl TryFrom<AnyValue> for otlp_common::AnyValue {
    type Error = TraceJsonError;
    fn try_from(v: AnyValue) -> Result<Self, TraceJsonError> {
        let set: Vec<&'static str> = [
            ("stringValue", v.string_value.is_some()),
            ("boolValue", v.bool_value.is_some()),
            ("intValue", v.int_value.is_some()),
            ("doubleValue", v.double_value.is_some()),
            ("arrayValue", v.array_value.is_some()),
            ("kvlistValue", v.kvlist_value.is_some()),
            ("bytesValue", v.bytes_value.is_some()),
            ("stringValueStrindex", v.string_value_strindex.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, is_set)| is_set.then_some(name))
        .collect();
        if set.len() > 1 {
            return Err(TraceJsonError::AmbiguousAnyValue { fields: set });
        }
        let value = if let Some(s) = v.string_value {
            Some(Value::StringValue(s))
        } else if let Some(b) = v.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(Value::IntValue(i))
        } else if let Some(d) = v.double_value {
            Some(Value::DoubleValue(d))
        } else if let Some(a) = v.array_value {
            Some(Value::ArrayValue(otlp_common::ArrayValue {
                values: a
                    .values
                    .into_iter()
                    .map(otlp_common::AnyValue::try_from)
                    .collect::<Result<_, _>>()?,
            }))
        } else if let Some(l) = v.kvlist_value {
            Some(Value::KvlistValue(otlp_common::KeyValueList {
                values: kvs_to_otlp(l.values)?,
            }))
        } else if let Some(b) = v.bytes_value {
            Some(Value::BytesValue(unb64("bytesValue", b)?))
        } else {
            v.string_value_strindex.map(Value::StringValueStrindex)
        };
        Ok(Self { value })
    }
}
