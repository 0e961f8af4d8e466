//! Tempo's query HTTP API wire contract: trace-ID and tenant-ID rules, the
//! JSON and protobuf bodies of the trace, search and tag endpoints, and an
//! async client.
//!
//! The README below is the crate documentation; its code blocks are
//! compiled as doctests.
#![doc = include_str!("../README.md")]

pub mod buildinfo;
pub mod client;
pub mod proto;
pub mod search;
mod serde_util;
pub mod tenant;
pub mod trace_id;
pub mod trace_json;

/// The OTLP protobuf types (`opentelemetry_proto::tonic`), so dependents can
/// name them as `tempo_api::otlp::trace::v1::ResourceSpans` etc.
pub use opentelemetry_proto::tonic as otlp;

pub use client::{ClientError, RawResponse, TempoClient};
pub use tenant::{
    ORG_ID_HEADER, ORG_ID_METADATA, SINGLE_TENANT, TenantIdError, join_tenants, parse_read_tenants,
    parse_write_tenant, validate_tenant_id,
};
pub use trace_id::{
    TraceId, TraceIdError, parse_trace_id, span_id_to_hex, trace_id_to_hex, trace_id_to_search_hex,
};
