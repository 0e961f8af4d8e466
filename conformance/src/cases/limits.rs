//! Limits (the `limits` profile): rate limiting answers 429 / RESOURCE_EXHAUSTED with a retry
//! hint, and every discard is visible, through the answer or `/metrics`.

use std::time::Duration;

use anyhow::ensure;

use super::{Case, Ctx, skip};
use crate::case;
use crate::fixtures;
use crate::otlp::Transport;
use crate::spec::Capability::*;

/// The limits cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "limits.rate_limited",
            &[RateLimits],
            Some("limits"),
            "past the burst, ingest answers 429 / RESOURCE_EXHAUSTED with Retry-After; refused traces are not stored, accepted ones are",
            rate_limited
        ),
        case!(
            "limits.discards_visible",
            &[RateLimits, DiscardMetrics],
            Some("limits"),
            "spans over max_bytes_per_trace are discarded visibly: partial success or tempo_discarded_spans_total",
            discards_visible
        ),
    ]
}

/// A request of about `bytes` bytes holding one trace.
fn sized_trace(
    bytes: usize,
    what: &str,
) -> (
    fixtures::TraceId,
    Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
) {
    let (id, mut rs) = fixtures::simple_trace(what, 1);
    fixtures::pad(
        &mut rs[0].scope_spans[0].spans[0],
        bytes.saturating_sub(300),
    );
    (id, rs)
}

async fn rate_limited(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let Some(burst) = cx.file.limits.burst_size_bytes else {
        return Err(skip("the target declares no limits.burst_size_bytes"));
    };
    let size = (burst as usize / 4).max(400);
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let transport = cx.transport();
    for k in 0..12 {
        let (id, rs) = sized_trace(size, &format!("limits-rate-{k}"));
        let ack = cx
            .sender()
            .send(transport, &fixtures::request(rs.clone()), false)
            .await?;
        if ack.ok() {
            accepted.push((id, rs));
        } else {
            refused.push((id, ack));
        }
    }
    let Some((_, first)) = refused.first() else {
        anyhow::bail!("12 requests of {size} bytes against a {burst}-byte burst were all accepted");
    };
    let exhausted = first.grpc_code == Some(tonic::Code::ResourceExhausted as i32);
    ensure!(
        first.http_status == 429 || exhausted,
        "refused with {} (expected 429 / RESOURCE_EXHAUSTED)",
        first.describe()
    );
    if transport != Transport::Grpc || first.retry_after.is_some() {
        ensure!(
            first
                .retry_after
                .as_deref()
                .is_some_and(|v| v.trim().parse::<u64>().is_ok()),
            "429 without a Retry-After in seconds: {:?}",
            first.retry_after
        );
    }
    for (id, rs) in &accepted {
        cx.await_equal(id, rs).await?;
    }
    for (id, _) in &refused {
        if let Some(got) = cx.read(id).await? {
            anyhow::bail!(
                "a refused trace was stored anyway ({} spans readable)",
                fixtures::span_count(&got)
            );
        }
    }
    if cx.has(DiscardMetrics) {
        let n = cx
            .metric("tempo_discarded_spans_total", &[("reason", "rate_limited")])
            .await?;
        ensure!(
            n > 0.0,
            "refused spans are not counted in tempo_discarded_spans_total{{reason=\"rate_limited\"}}"
        );
    }
    Ok(())
}

async fn discards_visible(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let Some(max) = cx.file.limits.max_bytes_per_trace else {
        return Err(skip("the target declares no limits.max_bytes_per_trace"));
    };
    let before = cx
        .metric(
            "tempo_discarded_spans_total",
            &[("reason", "trace_too_large")],
        )
        .await?;
    let id = fixtures::trace_id();
    let base = fixtures::now_ns() - 5_000_000_000;
    let per_span = (max as usize / 4).max(200);
    let mut sent = 0usize;
    let mut rejected = 0i64;
    for k in 0..8 {
        let mut sp = fixtures::span(&id, None, &format!("big-{k}"), base, k, 1);
        fixtures::pad(&mut sp, per_span);
        let req = fixtures::request(vec![fixtures::resource_spans("limits-big", vec![sp])]);
        // This case is about the trace size: wait out rate limiting when it answers.
        for _attempt in 0..10 {
            let ack = cx.sender().send(cx.transport(), &req, false).await?;
            if ack.ok() {
                sent += 1;
                rejected += ack.rejected_spans;
                break;
            }
            ensure!(ack.http_status == 429, "refused: {}", ack.describe());
            let wait = ack
                .retry_after
                .as_deref()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
        }
    }
    let got = cx
        .read(&id)
        .await?
        .map_or(0, |rs| fixtures::span_count(&rs));
    let deadline = std::time::Instant::now() + cx.file.timings.visible_within.get();
    let mut counted = 0.0;
    while std::time::Instant::now() < deadline {
        counted = cx
            .metric(
                "tempo_discarded_spans_total",
                &[("reason", "trace_too_large")],
            )
            .await?
            - before;
        if counted > 0.0 || rejected > 0 {
            break;
        }
        tokio::time::sleep(cx.file.timings.poll_interval.get()).await;
    }
    ensure!(
        got < sent,
        "all {sent} acknowledged spans of a trace over max_bytes_per_trace ({max}) read back"
    );
    ensure!(
        rejected > 0 || counted > 0.0,
        "{} of {sent} acknowledged spans are missing, with no partial success and no trace_too_large discard counted",
        sent - got
    );
    Ok(())
}
