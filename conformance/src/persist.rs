//! Getting acknowledged data where a case needs it, the way the target declares: into object
//! storage (`flush`: a call, a wait until a blocks-only read finds each trace, or both) and
//! into the write-ahead log (`wal_append`: a counter that grows when traces are appended).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;

use crate::fixtures::TraceId;
use crate::spec::TargetFile;
use crate::target::{self, Running};

/// Requests in flight while polling a blocks-only read.
const POLL_CONCURRENCY: usize = 8;

/// Make sure every trace of `ids` is in object storage: the declared call (2xx), then the
/// declared blocks-only read polled until it finds each one. `Err` says which are missing.
pub async fn flush(
    file: &TargetFile,
    running: &Running,
    tenant: Option<&str>,
    ids: &[TraceId],
) -> anyhow::Result<()> {
    let Some(flush) = &file.flush else {
        bail!("{} declares no way to flush (`flush`)", file.name);
    };
    if let Some(call) = &flush.call {
        let status = target::call(&running.http, call)
            .await
            .map_err(anyhow::Error::msg)?;
        if !(200..300).contains(&status) {
            bail!(
                "{} flush call {} {} answered {status}",
                file.name,
                call.method,
                call.path
            );
        }
    }
    let Some(path) = &flush.until_found else {
        return Ok(());
    };
    let client = tempo_api::TempoClient::new(&running.http)?
        .with_tenant(tenant.map(str::to_owned))
        .with_timeout(Duration::from_secs(30));
    let deadline = Instant::now() + flush.within.get();
    let mut pending: Vec<TraceId> = ids.to_vec();
    loop {
        let found: Vec<bool> = futures::stream::iter(pending.iter())
            .map(|id| in_blocks_with(&client, path, id))
            .buffered(POLL_CONCURRENCY)
            .map(|r| r.unwrap_or(false))
            .collect()
            .await;
        let mut k = 0;
        pending.retain(|_| {
            k += 1;
            !found[k - 1]
        });
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} traces not found by {} within {}s (first {})",
                pending.len(),
                ids.len(),
                path,
                flush.within.get().as_secs(),
                hex::encode(pending[0])
            );
        }
        tokio::time::sleep(file.timings.poll_interval.get()).await;
    }
}

/// Is `id` found by the declared blocks-only read? `None` when the target declares none.
pub async fn in_blocks(
    file: &TargetFile,
    running: &Running,
    tenant: Option<&str>,
    id: &TraceId,
) -> anyhow::Result<Option<bool>> {
    let Some(path) = file.flush.as_ref().and_then(|f| f.until_found.as_ref()) else {
        return Ok(None);
    };
    let client = tempo_api::TempoClient::new(&running.http)?
        .with_tenant(tenant.map(str::to_owned))
        .with_timeout(Duration::from_secs(30));
    in_blocks_with(&client, path, id).await.map(Some)
}

/// How many of `ids` the declared blocks-only read finds (`None` without one).
pub async fn count_in_blocks(
    file: &TargetFile,
    running: &Running,
    tenant: Option<&str>,
    ids: &[TraceId],
) -> anyhow::Result<Option<usize>> {
    let mut n = 0;
    for id in ids {
        match in_blocks(file, running, tenant, id).await? {
            None => return Ok(None),
            Some(true) => n += 1,
            Some(false) => {}
        }
    }
    Ok(Some(n))
}

async fn in_blocks_with(
    client: &tempo_api::TempoClient,
    path: &str,
    id: &TraceId,
) -> anyhow::Result<bool> {
    let path = path.replace("{trace_id}", &hex::encode(id));
    let r = client.get_raw(&path, Some("application/json")).await?;
    if r.status == 404 {
        return Ok(false);
    }
    if r.status != 200 {
        bail!("{path} answered {}: {}", r.status, r.text().trim());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).with_context(|| format!("{path}: not JSON"))?;
    let non_empty = |v: &serde_json::Value| v.as_array().is_some_and(|a| !a.is_empty());
    Ok(non_empty(&v["batches"])
        || non_empty(&v["resourceSpans"])
        || non_empty(&v["trace"]["resourceSpans"]))
}

/// The current value of the declared WAL-append counter (`None` without one).
pub async fn wal_mark(file: &TargetFile, running: &Running) -> anyhow::Result<Option<f64>> {
    match &file.wal_append {
        Some(w) => Ok(Some(metric(running, &w.metric, &[]).await?)),
        None => Ok(None),
    }
}

/// Wait until the WAL-append counter has grown by `n` since `mark` (from [`wal_mark`]), then
/// one poll interval more (the append is followed by a flush of the WAL file). Without a
/// declared counter an acknowledged trace is in the WAL already.
pub async fn await_wal(
    file: &TargetFile,
    running: &Running,
    mark: Option<f64>,
    n: usize,
) -> anyhow::Result<Duration> {
    let (Some(w), Some(mark)) = (&file.wal_append, mark) else {
        return Ok(Duration::ZERO);
    };
    let started = Instant::now();
    let deadline = started + w.within.get();
    loop {
        let now = metric(running, &w.metric, &[]).await?;
        if now - mark >= n as f64 {
            tokio::time::sleep(file.timings.poll_interval.get()).await;
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} grew by {} of {n} within {}s: the traces may not be in {}'s WAL",
                w.metric,
                now - mark,
                w.within.get().as_secs(),
                file.name
            );
        }
        tokio::time::sleep(file.timings.poll_interval.get()).await;
    }
}

/// Sum of the samples of `name` on `/metrics` whose labels contain every `labels` pair.
pub async fn metric(running: &Running, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", running.http))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .text()
        .await?;
    Ok(crate::cases::sum_metric(&text, name, labels))
}
