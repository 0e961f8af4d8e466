//! Tag names and values of a set of traces, for the tag endpoints.
//!
//! Every source (live traces, each block) summarizes its traces into a [`TagSummary`]; the
//! summaries merge. Attribute values keep their type (string, int, float, bool) so the v2
//! endpoint can answer typed values; intrinsics (span names, statuses, kinds, root names)
//! are kept apart. Span events, links and instrumentation scopes are not summarized.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tempo_api::trace_id::TraceId;

use super::ast::{Expr, ValueRef};
use super::generic::{DecodedTrace, decode, eval, value_ref};
use crate::error::Result;

/// Type of a tag value, named as Tempo's v2 tag-values endpoint names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueType {
    /// `string`
    String,
    /// `int`
    Int,
    /// `float`
    Float,
    /// `bool`
    Bool,
    /// `keyword` (status and kind values)
    Keyword,
    /// `duration`
    Duration,
}

impl ValueType {
    /// The `type` field text.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Bool => "bool",
            ValueType::Keyword => "keyword",
            ValueType::Duration => "duration",
        }
    }
}

/// A tag value: its type and its text as Tempo prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypedValue {
    /// Type.
    pub kind: ValueType,
    /// Text (`200`, `1.5`, `true`, `cart`).
    pub text: String,
}

impl TypedValue {
    /// The summary form of an attribute value; `None` for values tags cannot show (bytes,
    /// arrays, maps).
    pub fn of(v: ValueRef<'_>) -> Option<Self> {
        let (kind, text) = match v {
            ValueRef::Str(s) => (ValueType::String, s.to_owned()),
            ValueRef::Int(i) => (ValueType::Int, i.to_string()),
            ValueRef::Float(f) => (ValueType::Float, go_float(f)),
            ValueRef::Bool(b) => (ValueType::Bool, b.to_string()),
            ValueRef::Duration(_) | ValueRef::Other => return None,
        };
        Some(TypedValue { kind, text })
    }
}

/// Distinct tag names and values of some traces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagSummary {
    /// Resource attribute key → values.
    pub resource: BTreeMap<String, BTreeSet<TypedValue>>,
    /// Span attribute key → values.
    pub span: BTreeMap<String, BTreeSet<TypedValue>>,
    /// Span names.
    pub span_names: BTreeSet<String>,
    /// Span status codes.
    pub statuses: BTreeSet<i32>,
    /// Span kinds.
    pub kinds: BTreeSet<i32>,
    /// Service names of root spans.
    pub root_service_names: BTreeSet<String>,
    /// Names of root spans.
    pub root_names: BTreeSet<String>,
    /// Bytes of encoded trace data read to build this.
    pub inspected_bytes: u64,
}

impl TagSummary {
    /// Summarize encoded traces; `keep(start_ns, end_ns)` chooses which traces count, and
    /// of those only spans matching `filter` (with their resources, and the root facts of
    /// their traces) contribute.
    pub fn from_encoded<'a>(
        traces: impl Iterator<Item = (TraceId, &'a [u8])>,
        keep: impl Fn(u64, u64) -> bool,
        filter: &Expr,
    ) -> Result<Self> {
        let mut out = TagSummary::default();
        for (id, bytes) in traces {
            out.inspected_bytes += bytes.len() as u64;
            let td = decode(&id, bytes)?;
            let trace = DecodedTrace::new(&td);
            if !trace.spans.is_empty() && keep(trace.start_ns, trace.end_ns) {
                out.add(&trace, filter);
            }
        }
        Ok(out)
    }

    fn add(&mut self, trace: &DecodedTrace<'_>, filter: &Expr) {
        let mut last_resource: Option<*const KeyValue> = None;
        let mut any = false;
        for (res, span) in &trace.spans {
            if !eval(filter, trace, res, span) {
                continue;
            }
            any = true;
            // Spans of one resource come together; add each resource's attributes once.
            if last_resource != Some(res.as_ptr()) {
                last_resource = Some(res.as_ptr());
                add_attributes(&mut self.resource, res);
            }
            add_attributes(&mut self.span, &span.attributes);
            if !self.span_names.contains(&span.name) {
                self.span_names.insert(span.name.clone());
            }
            self.statuses
                .insert(span.status.as_ref().map_or(0, |s| s.code));
            self.kinds.insert(span.kind);
        }
        if !any {
            return;
        }
        if let Some(s) = trace.root_service {
            self.root_service_names.insert(s.to_owned());
        }
        if let Some(n) = trace.root_name {
            self.root_names.insert(n.to_owned());
        }
    }

    /// Fold in another source's summary.
    pub fn merge(&mut self, other: TagSummary) {
        for (k, v) in other.resource {
            self.resource.entry(k).or_default().extend(v);
        }
        for (k, v) in other.span {
            self.span.entry(k).or_default().extend(v);
        }
        self.span_names.extend(other.span_names);
        self.statuses.extend(other.statuses);
        self.kinds.extend(other.kinds);
        self.root_service_names.extend(other.root_service_names);
        self.root_names.extend(other.root_names);
        self.inspected_bytes += other.inspected_bytes;
    }
}

fn add_attributes(into: &mut BTreeMap<String, BTreeSet<TypedValue>>, attrs: &[KeyValue]) {
    for kv in attrs {
        let values = match into.get_mut(&kv.key) {
            Some(v) => v,
            None => into.entry(kv.key.clone()).or_default(),
        };
        if let Some(v) = TypedValue::of(value_ref(kv.value.as_ref())) {
            values.insert(v);
        }
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` prints it (`1.5`, `100`,
/// `1e+06`, `1e-05`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn floats_print_like_go() {
        let cases = [
            (1.5, "1.5"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (1e21, "1e+21"),
        ];
        for (f, text) in cases {
            assert_eq!(go_float(f), text, "{f}");
        }
    }
}
