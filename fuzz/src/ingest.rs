//! Ingest decoding: the protobuf wire walker against prost, OTLP/JSON, gzip bodies.

use bytes::Bytes;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use reference_backend::ingest::batch::{SplitBatch, decode_json, decode_protobuf, split};
use reference_backend::ingest::http::gunzip;
use reference_backend::ingest::wire_split::split_protobuf;

use crate::input::Input;

/// Reasons the walker may refuse a request prost decodes: deeper nesting than the walker
/// takes (prost allows 100 levels) and proto2 groups (prost skips them in unknown fields;
/// OTLP has none).
const WALKER_ONLY_REFUSALS: [&str; 2] = ["nesting too deep", "unsupported wire type"];

/// `ingest::wire_split` (what OTLP protobuf ingest runs) against the decoding split
/// (prost decode, validate, truncate, split).
///
/// Input: one byte choosing `max_attribute_bytes` (high bit clear: the default 2048; set:
/// the low 7 bits, so truncation and re-encoding run), then the request body.
///
/// Properties: no panic; what the walker accepts, prost accepts too, and both give the
/// same fragments (same traces in the same order, span counts, times, truncations, and
/// fragment bytes that decode to the same `TracesData`); every accepted fragment decodes
/// (it is stored and read back later); the walker refuses what prost accepts only for
/// the reasons in `WALKER_ONLY_REFUSALS`.
pub fn wire_split(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let max_attr = if mode & 0x80 == 0 {
        2048
    } else {
        usize::from(mode & 0x7f)
    };
    let body = input.rest();
    let fast = split_protobuf(Bytes::copy_from_slice(body), max_attr);
    let slow = decode_protobuf(body).and_then(|req| split(req, max_attr));
    match (fast, slow) {
        (Ok((n, Ok(fast))), Ok(slow)) => {
            assert_eq!(n, slow.spans, "span count of the request");
            same_split(&fast, &slow);
        }
        (Ok((_, Ok(fast))), Err(e)) => {
            for f in &fast.fragments {
                readable(&f.bytes);
            }
            panic!("the walker accepted a request the decoding split refuses: {e}");
        }
        (Ok((_, Err(walker))), Ok(_)) | (Err(walker), Ok(_)) => {
            let m = walker.to_string();
            assert!(
                WALKER_ONLY_REFUSALS.iter().any(|r| m.contains(r)),
                "the walker refused a request prost accepts: {m}"
            );
        }
        _ => {}
    }
}

/// OTLP/JSON decoding (`application/json` ingest): decode, validate and split never panic,
/// and an accepted request, encoded as protobuf, splits through the wire walker into the
/// same fragments.
pub fn otlp_json(data: &[u8]) {
    let Ok(req) = decode_json(data) else {
        return;
    };
    let body = Bytes::from(req.encode_to_vec());
    let Ok(slow) = split(req, 2048) else {
        return;
    };
    match split_protobuf(body, 2048) {
        Ok((n, Ok(fast))) => {
            assert_eq!(n, slow.spans, "span count of the request");
            same_split(&fast, &slow);
        }
        Ok((_, Err(e))) | Err(e) => {
            panic!("a JSON request that splits is refused as protobuf: {e}")
        }
    }
}

/// Gzip request bodies: decompression never panics and never returns more than the limit
/// (a bomb is refused with 413, not inflated).
pub fn otlp_gzip(data: &[u8]) {
    const LIMIT: u64 = 1 << 20;
    if let Ok(plain) = gunzip(data, LIMIT) {
        assert!(
            plain.len() as u64 <= LIMIT,
            "gunzip returned past its limit"
        );
    }
}

/// Both splits agree (see [`wire_split`]).
fn same_split(fast: &SplitBatch, slow: &SplitBatch) {
    assert_eq!(fast.spans, slow.spans, "spans");
    assert_eq!(
        fast.truncated_values, slow.truncated_values,
        "truncated values"
    );
    assert_eq!(fast.fragments.len(), slow.fragments.len(), "fragments");
    for (a, b) in fast.fragments.iter().zip(&slow.fragments) {
        assert_eq!(a.trace_id, b.trace_id, "trace order");
        assert_eq!(a.spans, b.spans, "spans of a fragment");
        assert_eq!((a.start_ns, a.end_ns), (b.start_ns, b.end_ns), "times");
        assert_eq!(
            readable(&a.bytes),
            readable(&b.bytes),
            "fragment contents differ"
        );
    }
}

/// A stored fragment decodes; returns its canonical encoding (compares NaNs bit for bit,
/// unlike `PartialEq` on the decoded message).
fn readable(bytes: &[u8]) -> Vec<u8> {
    match TracesData::decode(bytes) {
        Ok(td) => td.encode_to_vec(),
        Err(e) => panic!("an accepted fragment does not decode: {e}"),
    }
}
