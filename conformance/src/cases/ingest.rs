//! Ingest: every OTLP transport and encoding, partial success, id validation, size limits.

use anyhow::{bail, ensure};

use super::{Case, Ctx, skip};
use crate::case;
use crate::fixtures::{self, request};
use crate::otlp::Transport;
use crate::spec::Capability::*;

/// The ingest cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "ingest.otlp_grpc",
            &[OtlpGrpc],
            None,
            "a trace sent over OTLP/gRPC is acknowledged and reads back unchanged",
            otlp_grpc
        ),
        case!(
            "ingest.otlp_http_protobuf",
            &[OtlpHttpProtobuf],
            None,
            "a trace sent as OTLP/HTTP protobuf is acknowledged and reads back unchanged",
            otlp_http_protobuf
        ),
        case!(
            "ingest.otlp_http_json",
            &[OtlpHttpJson],
            None,
            "a trace sent as OTLP/HTTP JSON (hex ids) is acknowledged and reads back unchanged",
            otlp_http_json
        ),
        case!(
            "ingest.gzip",
            &[Gzip],
            None,
            "gzip-compressed requests (HTTP Content-Encoding, gRPC compression) are accepted and read back",
            gzip
        ),
        case!(
            "ingest.partial_success",
            &[PartialSuccess],
            Some("limits"),
            "spans dropped inside an accepted request are reported as OTLP partial success; the rest is stored",
            partial_success
        ),
        case!(
            "ingest.invalid_trace_id",
            &[IdValidation],
            None,
            "a span whose trace id is not 16 bytes, or is all zero, is refused (HTTP 400 / INVALID_ARGUMENT)",
            invalid_trace_id
        ),
        case!(
            "ingest.invalid_span_id",
            &[IdValidation],
            None,
            "a span id that is not 8 bytes, or all zero, is refused (HTTP 400 / INVALID_ARGUMENT)",
            invalid_span_id
        ),
        case!(
            "ingest.oversized_request",
            &[RequestSizeLimit],
            None,
            "a request over the declared size cap is refused without harm; the next request succeeds",
            oversized_request
        ),
    ]
}

async fn round_trip(cx: &mut Ctx<'_>, transport: Transport, gzip: bool) -> anyhow::Result<()> {
    let (id, rs) = fixtures::simple_trace(&format!("ingest-{}", transport.name()), 4);
    let ack = cx
        .sender()
        .send(transport, &request(rs.clone()), gzip)
        .await?;
    ensure!(
        ack.ok() && ack.rejected_spans == 0,
        "{}{} refused: {}",
        transport.name(),
        if gzip { " gzip" } else { "" },
        ack.describe()
    );
    cx.await_equal(&id, &rs).await
}

async fn otlp_grpc(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    round_trip(cx, Transport::Grpc, false).await
}

async fn otlp_http_protobuf(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    round_trip(cx, Transport::HttpProtobuf, false).await
}

async fn otlp_http_json(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    round_trip(cx, Transport::HttpJson, false).await
}

async fn gzip(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let mut ran = false;
    for (cap, t) in [
        (OtlpHttpProtobuf, Transport::HttpProtobuf),
        (OtlpHttpJson, Transport::HttpJson),
        (OtlpGrpc, Transport::Grpc),
    ] {
        if cx.has(cap) {
            round_trip(cx, t, true).await?;
            ran = true;
        }
    }
    if !ran {
        return Err(skip("the target declares no OTLP transport"));
    }
    Ok(())
}

async fn partial_success(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let Some(max) = cx.file.limits.max_bytes_per_trace else {
        return Err(skip("the target declares no limits.max_bytes_per_trace"));
    };
    let (small_id, small) = fixtures::simple_trace("partial-small", 2);
    let (big_id, mut big) = fixtures::simple_trace("partial-big", 4);
    // Four spans of a third of the limit each: the trace outgrows it, the request does not
    // outgrow a burst of twice the limit.
    for span in &mut big[0].scope_spans[0].spans {
        fixtures::pad(span, max as usize / 3);
    }
    let sent_big = fixtures::span_count(&big) as i64;
    let mut all = small.clone();
    all.extend(big);
    let ack = cx
        .sender()
        .send(cx.transport(), &request(all), false)
        .await?;
    ensure!(ack.ok(), "request refused as a whole: {}", ack.describe());
    ensure!(
        ack.rejected_spans > 0 && ack.rejected_spans <= sent_big,
        "expected partial success rejecting between 1 and {sent_big} spans of the oversized trace, got {}",
        ack.describe()
    );
    ensure!(
        !ack.message.is_empty(),
        "partial success without an error message"
    );
    cx.await_equal(&small_id, &small).await?;
    if let Some(got) = cx.read(&big_id).await? {
        let n = fixtures::span_count(&got) as i64;
        ensure!(
            n <= sent_big - ack.rejected_spans,
            "{} spans reported rejected but {n} of {sent_big} read back",
            ack.rejected_spans
        );
    }
    Ok(())
}

/// Send `rs` over every declared transport and require a refusal with status 400; the
/// failure names every transport that answered otherwise.
async fn expect_refused(
    cx: &mut Ctx<'_>,
    what: &str,
    rs: Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
) -> anyhow::Result<()> {
    let mut ran = false;
    let mut wrong = Vec::new();
    for (cap, t) in [
        (OtlpGrpc, Transport::Grpc),
        (OtlpHttpProtobuf, Transport::HttpProtobuf),
        (OtlpHttpJson, Transport::HttpJson),
    ] {
        if !cx.has(cap) {
            continue;
        }
        ran = true;
        let ack = cx.sender().send(t, &request(rs.clone()), false).await?;
        let invalid_argument = ack.grpc_code == Some(tonic::Code::InvalidArgument as i32);
        if !(ack.http_status == 400 || invalid_argument) {
            wrong.push(format!("over {}: {}", t.name(), ack.describe()));
        }
    }
    if !ran {
        bail!("the target declares no OTLP transport");
    }
    ensure!(
        wrong.is_empty(),
        "{what}: expected 400 / INVALID_ARGUMENT; {}",
        wrong.join("; ")
    );
    Ok(())
}

async fn invalid_trace_id(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for (what, id) in [
        ("an 8-byte trace id", vec![0xab; 8]),
        ("a 15-byte trace id", vec![0xab; 15]),
        ("a 17-byte trace id", vec![0xab; 17]),
        ("an all-zero trace id", vec![0u8; 16]),
    ] {
        let (_, mut rs) = fixtures::simple_trace("bad-trace-id", 1);
        rs[0].scope_spans[0].spans[0].trace_id = id;
        if let Err(e) = expect_refused(cx, what, rs).await {
            wrong.push(e.to_string());
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join(" | "));
    let (good_id, good) = fixtures::simple_trace("after-bad-trace-id", 1);
    cx.write(good.clone()).await?;
    cx.await_equal(&good_id, &good).await
}

async fn invalid_span_id(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for (what, id) in [
        ("a 4-byte span id", vec![1u8; 4]),
        ("an all-zero span id", vec![0u8; 8]),
        ("a 9-byte span id", vec![1u8; 9]),
    ] {
        let (_, mut rs) = fixtures::simple_trace("bad-span-id", 1);
        rs[0].scope_spans[0].spans[0].span_id = id;
        if let Err(e) = expect_refused(cx, what, rs).await {
            wrong.push(e.to_string());
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join(" | "));
    Ok(())
}

async fn oversized_request(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let Some(max) = cx.file.limits.max_request_bytes else {
        return Err(skip("the target declares no limits.max_request_bytes"));
    };
    let (_, mut rs) = fixtures::simple_trace("oversized", 1);
    // Many attributes well under any per-value limit, adding up past the request cap.
    let value = "v".repeat(1000);
    let n = (max as usize / 1000) + 64;
    rs[0].scope_spans[0].spans[0].attributes = (0..n)
        .map(|k| fixtures::s(&format!("k{k}"), &value))
        .collect();
    let t = cx.transport();
    let ack = cx.sender().send(t, &request(rs), false).await;
    match ack {
        Ok(a) if a.ok() => bail!(
            "a request of about {} bytes over a {max}-byte cap was accepted: {}",
            n * 1010,
            a.describe()
        ),
        Ok(a) if a.http_status >= 500 && a.http_status != 503 => {
            bail!("refused with a server error: {}", a.describe())
        }
        // A refusal (413, 400, 429, RESOURCE_EXHAUSTED, OUT_OF_RANGE) or a reset connection.
        _ => {}
    }
    let (id, rs) = fixtures::simple_trace("after-oversized", 2);
    cx.write(rs.clone()).await?;
    cx.await_equal(&id, &rs).await
}
