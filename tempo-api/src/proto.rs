//! Protobuf bodies of the trace-by-ID endpoints (`Accept: application/protobuf`).
//!
//! * v1 `/api/traces/{id}` answers a `tempopb.Trace`
//!   (`repeated ResourceSpans resourceSpans = 1`), which is wire-identical to
//!   OTLP `TracesData`; decode it as such.
//! * v2 `/api/v2/traces/{id}` answers `tempopb.TraceByIDResponse`, mirrored by
//!   [`TraceByIdResponseProto`].

use crate::otlp::trace::v1::TracesData;

/// `tempopb.PartialStatus::COMPLETE`.
pub const PARTIAL_STATUS_COMPLETE: i32 = 0;
/// `tempopb.PartialStatus::PARTIAL`.
pub const PARTIAL_STATUS_PARTIAL: i32 = 1;

/// `tempopb.TraceByIDResponse { Trace trace = 1; TraceByIDMetrics metrics = 2;
/// PartialStatus status = 3; string message = 4; }`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TraceByIdResponseProto {
    /// The trace; `tempopb.Trace` has the same wire shape as `TracesData`.
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TracesData>,
    /// Query metrics.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetricsProto>,
    /// `PartialStatus` (0 complete, 1 partial).
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// Explanation for a partial trace.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.TraceByIDMetrics` (only the long-standing field).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TraceByIdMetricsProto {
    /// Bytes inspected.
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;

    #[test]
    fn v2_wraps_trace_in_field_one() {
        let data = TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "x".into(),
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let inner = data.encode_to_vec();
        let resp = TraceByIdResponseProto {
            trace: Some(data.clone()),
            metrics: None,
            status: PARTIAL_STATUS_COMPLETE,
            message: String::new(),
        };
        let bytes = resp.encode_to_vec();
        // Field 1, wire type 2 (length-delimited), then the TracesData bytes.
        assert_eq!(bytes[0], 0x0a);
        assert!(bytes.ends_with(&inner));
        assert_eq!(
            TraceByIdResponseProto::decode(bytes.as_slice()).unwrap(),
            resp
        );
    }
}
