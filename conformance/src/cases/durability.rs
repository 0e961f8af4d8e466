//! Durability: what was acknowledged survives a kill (WAL replay), a flush and restart
//! (blocks), and a kill in the middle of ingest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::ensure;

use super::{Case, Ctx, write_with};
use crate::case;
use crate::fixtures;
use crate::spec::Capability::*;

/// A written trace: its id and what was sent.
type Written = (
    fixtures::TraceId,
    Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
);

/// How long writers run before the kill.
const INGEST_BEFORE_KILL: Duration = Duration::from_millis(1500);
/// Concurrent writers during the kill.
const WRITERS: usize = 4;
/// Each writer starts a write at most this often, so the kill lands in the middle of ingest
/// on any target while the traces to read back stay a few hundred (each is read after the
/// restart, and a trace that is not there can take a slow target a while to answer).
const WRITE_EVERY: Duration = Duration::from_millis(10);

/// The durability cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "durability.restart_before_flush",
            &[Lifecycle, Wal],
            None,
            "traces acknowledged but not flushed are readable after a kill and restart (WAL replay)",
            restart_before_flush
        ),
        case!(
            "durability.restart_after_flush",
            &[Lifecycle, Flush],
            None,
            "traces flushed to blocks are readable after a graceful restart",
            restart_after_flush
        ),
        case!(
            "durability.sigkill_during_ingest",
            &[Lifecycle, Wal],
            None,
            "a kill during concurrent ingest loses no acknowledged trace",
            sigkill_during_ingest
        ),
    ]
}

async fn write_some(cx: &Ctx<'_>, n: usize, what: &str) -> anyhow::Result<Vec<Written>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (id, rs) = fixtures::simple_trace(what, 3);
        cx.write(rs.clone()).await?;
        out.push((id, rs));
    }
    Ok(out)
}

async fn read_all(cx: &Ctx<'_>, traces: &[Written], after: &str) -> anyhow::Result<()> {
    let pairs: Vec<_> = traces.iter().map(|(id, rs)| (*id, rs.as_slice())).collect();
    let v2 = cx.has(TraceByIdV2);
    let failures: Vec<String> = super::await_all_equal(&cx.client()?, v2, &pairs, cx.file)
        .await
        .into_iter()
        .flatten()
        .collect();
    ensure!(
        failures.is_empty(),
        "{} of {} acknowledged traces not intact {after}: {}",
        failures.len(),
        traces.len(),
        failures.first().cloned().unwrap_or_default()
    );
    Ok(())
}

async fn restart_before_flush(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let traces = write_some(cx, 5, "durability-wal").await?;
    cx.kill_and_restart().await?;
    read_all(cx, &traces, "after a kill and restart").await
}

async fn restart_after_flush(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let traces = write_some(cx, 5, "durability-blocks").await?;
    read_all(cx, &traces, "before the flush").await?;
    let ids: Vec<_> = traces.iter().map(|(id, _)| *id).collect();
    cx.flush(&ids).await?;
    cx.stop_and_restart().await?;
    read_all(cx, &traces, "after a flush and graceful restart").await
}

async fn sigkill_during_ingest(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let acked: Arc<Mutex<Vec<Written>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (sender, transport) = (cx.sender(), cx.transport());
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(WRITE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Acquire) && n < 10_000 {
                tick.tick().await;
                let (id, rs) = fixtures::simple_trace(&format!("durability-kill-{w}"), 4);
                match write_with(&sender, transport, rs.clone()).await {
                    Ok(_) => {
                        if let Ok(mut v) = acked.lock() {
                            v.push((id, rs));
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(INGEST_BEFORE_KILL).await;
    let launch = cx.target.last_launch();
    cx.target.kill().await?;
    stop.store(true, Ordering::Release);
    for w in writers {
        let _ = w.await;
    }
    let traces = acked
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    ensure!(
        !traces.is_empty(),
        "no write was acknowledged before the kill"
    );
    if let Some(l) = launch {
        let l = crate::target::Launch {
            ports: cx.running.ports(),
            ..l
        };
        cx.running = cx.target.start(&l).await?;
    }
    read_all(cx, &traces, "after a kill during ingest").await
}
