//! The case catalog. Every case has a stable id (`ingest.otlp_grpc`), the capabilities it
//! needs, the config profile it runs under, and a one-line description used in the README
//! and in reports.
//!
//! A case is an async function over a [`Ctx`]: it passes by returning `Ok`, fails with the
//! error's message as the reason, and skips by returning [`skip`]`(reason)`.

pub mod durability;
pub mod fidelity;
pub mod ingest;
pub mod limits;
pub mod query;
pub mod search;
pub mod search_tags;
pub mod tenancy;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::future::LocalBoxFuture;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tempo_api::TempoClient;

use crate::fixtures::{self, TraceId};
use crate::otlp::{Ack, Sender, Transport};
use crate::spec::{Capability, TargetFile};
use crate::target::{Running, Target};

/// A case body.
pub type CaseFn = for<'a, 'b> fn(&'a mut Ctx<'b>) -> LocalBoxFuture<'a, anyhow::Result<()>>;

/// How a case runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// Against one running target (`conformance run`).
    Single(CaseFn),
    /// Part of the upgrade flow (`conformance upgrade`); verdicts come from [`crate::upgrade`].
    Upgrade,
}

/// One entry of the catalog.
#[derive(Clone, Copy)]
pub struct Case {
    /// Stable id, `group.name`.
    pub id: &'static str,
    /// Capabilities the target must declare.
    pub needs: &'static [Capability],
    /// Config profile (`multitenant`, `limits`) or the default config.
    pub profile: Option<&'static str>,
    /// One line: what passing means.
    pub description: &'static str,
    /// The body.
    pub run: Run,
}

/// Define a single-target case from an `async fn(&mut Ctx) -> anyhow::Result<()>`.
#[macro_export]
macro_rules! case {
    ($id:literal, $needs:expr, $profile:expr, $desc:literal, $f:path) => {
        $crate::cases::Case {
            id: $id,
            needs: $needs,
            profile: $profile,
            description: $desc,
            run: $crate::cases::Run::Single({
                fn run<'a, 'b>(
                    cx: &'a mut $crate::cases::Ctx<'b>,
                ) -> futures::future::LocalBoxFuture<'a, anyhow::Result<()>> {
                    Box::pin($f(cx))
                }
                run
            }),
        }
    };
}

/// The whole catalog, in report order.
pub fn catalog() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(ingest::cases());
    all.extend(fidelity::cases());
    all.extend(query::cases());
    all.extend(search::cases());
    all.extend(search_tags::cases());
    all.extend(durability::cases());
    all.extend(tenancy::cases());
    all.extend(limits::cases());
    all.extend(crate::upgrade::cases());
    all
}

/// A case that cannot run here, with the reason.
#[derive(Debug)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// Skip the current case with `reason`.
pub fn skip(reason: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Skip(reason.into()))
}

/// What a case sees: the target, its endpoints and helpers to write and read.
pub struct Ctx<'a> {
    /// The target file.
    pub file: &'a TargetFile,
    /// Capabilities in effect.
    pub caps: BTreeSet<Capability>,
    /// The target (for restarts and kills).
    pub target: &'a mut dyn Target,
    /// Current endpoints (updated by restarts).
    pub running: Running,
    /// Tenant sent by default.
    pub tenant: Option<String>,
    /// Unique per run; cases put it in attribute values so runs never see each other's data.
    pub nonce: String,
    /// Scratch directory of this run.
    pub work_dir: PathBuf,
    /// The search corpus, written once per run by the first search case.
    pub corpus: Option<search::Corpus>,
}

impl Ctx<'_> {
    /// Does the target declare `cap`?
    pub fn has(&self, cap: Capability) -> bool {
        self.caps.contains(&cap)
    }

    /// A sender with the default tenant.
    pub fn sender(&self) -> Sender {
        Sender::new(
            self.running.otlp_grpc.clone(),
            self.running.otlp_http.clone(),
            self.tenant.clone(),
        )
    }

    /// The transport used when a case does not care: gRPC, else HTTP protobuf, else JSON.
    pub fn transport(&self) -> Transport {
        if self.has(Capability::OtlpGrpc) {
            Transport::Grpc
        } else if self.has(Capability::OtlpHttpProtobuf) {
            Transport::HttpProtobuf
        } else {
            Transport::HttpJson
        }
    }

    /// Write spans and require a full acceptance.
    pub async fn write(&self, rs: Vec<ResourceSpans>) -> anyhow::Result<Ack> {
        write_with(&self.sender(), self.transport(), rs).await
    }

    /// A query client with the default tenant.
    pub fn client(&self) -> anyhow::Result<TempoClient> {
        self.client_as(self.tenant.as_deref())
    }

    /// A query client with another tenant (`None` sends none).
    pub fn client_as(&self, tenant: Option<&str>) -> anyhow::Result<TempoClient> {
        Ok(TempoClient::new(&self.running.http)?
            .with_tenant(tenant.map(str::to_owned))
            .with_timeout(Duration::from_secs(60)))
    }

    /// Read a trace by id (v2 JSON when declared, else v1 JSON). `None` when not found.
    pub async fn read(&self, id: &TraceId) -> anyhow::Result<Option<Vec<ResourceSpans>>> {
        read_with(&self.client()?, self.has(Capability::TraceByIdV2), id).await
    }

    /// Poll until the trace reads back equal to `sent`, or fail with what still differs.
    pub async fn await_equal(&self, id: &TraceId, sent: &[ResourceSpans]) -> anyhow::Result<()> {
        await_equal_with(
            &self.client()?,
            self.has(Capability::TraceByIdV2),
            id,
            sent,
            self.file,
        )
        .await
    }

    /// Get the traces `ids` into object storage the way the target declares (`flush`: a
    /// call, a wait until a blocks-only read finds them, or both).
    pub async fn flush(&self, ids: &[TraceId]) -> anyhow::Result<()> {
        if self.file.flush.is_none() {
            return Err(skip("the target declares no `flush`"));
        }
        crate::persist::flush(self.file, &self.running, self.tenant.as_deref(), ids).await
    }

    /// Kill the target (no flush) and start it again on the same data and ports.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        let launch = self
            .target
            .last_launch()
            .context("the target was never started")?;
        self.target.kill().await?;
        let launch = crate::target::Launch {
            ports: self.running.ports(),
            ..launch
        };
        self.running = self.target.start(&launch).await?;
        Ok(())
    }

    /// Stop the target gracefully and start it again.
    pub async fn stop_and_restart(&mut self) -> anyhow::Result<()> {
        let policy = self.file.stop.clone();
        let running = self.running.clone();
        self.running = self.target.restart(&policy, Some(&running)).await?;
        Ok(())
    }

    /// Sum of the samples of `metric` on `/metrics` whose labels contain every `labels` pair.
    pub async fn metric(&self, metric: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        crate::persist::metric(&self.running, metric, labels).await
    }
}

/// Write with `sender` over `transport`; anything but a full acceptance is an error.
pub async fn write_with(
    sender: &Sender,
    transport: Transport,
    rs: Vec<ResourceSpans>,
) -> anyhow::Result<Ack> {
    let ack = sender
        .send(transport, &fixtures::request(rs), false)
        .await?;
    if !ack.ok() || ack.rejected_spans > 0 {
        bail!(
            "write over {} refused: {}",
            transport.name(),
            ack.describe()
        );
    }
    Ok(ack)
}

/// Read by id with `client`: v2 when `v2`, else v1.
pub async fn read_with(
    client: &TempoClient,
    v2: bool,
    id: &TraceId,
) -> anyhow::Result<Option<Vec<ResourceSpans>>> {
    Ok(if v2 {
        client.trace_v2(id).await?.map(|t| t.resource_spans)
    } else {
        client.trace_v1(id).await?
    })
}

/// Poll `client` until trace `id` equals `sent`, within the file's `visible_within`.
pub async fn await_equal_with(
    client: &TempoClient,
    v2: bool,
    id: &TraceId,
    sent: &[ResourceSpans],
    file: &TargetFile,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + file.timings.visible_within.get();
    loop {
        let problems = match read_with(client, v2, id).await {
            Ok(Some(got)) => crate::compare::diff(sent, &got),
            Ok(None) => vec!["not found".to_owned()],
            Err(e) => vec![e.to_string().trim_end().to_owned()],
        };
        if problems.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "trace {} after {}s: {}",
                hex::encode(id),
                file.timings.visible_within.get().as_secs(),
                problems.join("; ")
            );
        }
        tokio::time::sleep(file.timings.poll_interval.get()).await;
    }
}

/// Lookups in flight at once while polling many traces.
const READ_CONCURRENCY: usize = 16;

/// Poll `client` until every trace of `traces` (id, what was sent) reads back equal, all
/// within one `visible_within` from now (so a target that lost everything fails after one
/// wait, not one per trace). Returns, per trace, what still differed at the end (`None` when
/// intact).
pub async fn await_all_equal(
    client: &TempoClient,
    v2: bool,
    traces: &[(TraceId, &[ResourceSpans])],
    file: &TargetFile,
) -> Vec<Option<String>> {
    use futures::StreamExt;
    let within = file.timings.visible_within.get();
    let deadline = Instant::now() + within;
    let mut last: Vec<Option<String>> = vec![Some("not read".into()); traces.len()];
    let mut first_round = true;
    loop {
        let pending: Vec<usize> = (0..traces.len()).filter(|k| last[*k].is_some()).collect();
        let answers: Vec<(usize, Option<String>)> = futures::stream::iter(pending)
            // Every trace is read once; after that, nothing new starts past the deadline.
            .take_while(|_| std::future::ready(first_round || Instant::now() < deadline))
            .map(|k| async move {
                let (id, sent) = &traces[k];
                let problems = match read_with(client, v2, id).await {
                    Ok(Some(got)) => crate::compare::diff(sent, &got),
                    Ok(None) => vec!["not found".to_owned()],
                    Err(e) => vec![e.to_string().trim_end().to_owned()],
                };
                let problem = (!problems.is_empty()).then(|| {
                    format!(
                        "trace {} after {}s: {}",
                        hex::encode(id),
                        within.as_secs(),
                        problems.join("; ")
                    )
                });
                (k, problem)
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        for (k, p) in answers {
            last[k] = p;
        }
        first_round = false;
        if last.iter().all(Option::is_none) || Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(file.timings.poll_interval.get()).await;
    }
}

/// Sum the samples of a Prometheus text exposition that match `metric` and `labels`.
pub fn sum_metric(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, label_text) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            if name != metric && name != format!("{metric}_total") {
                return None;
            }
            let ok = labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ids_are_unique_and_dotted() {
        let mut seen = BTreeSet::new();
        for c in catalog() {
            assert!(seen.insert(c.id), "duplicate case id {}", c.id);
            assert!(c.id.contains('.'), "{}", c.id);
            assert!(!c.description.is_empty());
        }
    }

    #[test]
    fn metric_sums_match_labels() {
        let text = "# TYPE tempo_discarded_spans counter\ntempo_discarded_spans_total{reason=\"rate_limited\",tenant=\"a\"} 3\ntempo_discarded_spans_total{reason=\"trace_too_large\",tenant=\"a\"} 4\n";
        assert_eq!(
            sum_metric(
                text,
                "tempo_discarded_spans_total",
                &[("reason", "rate_limited")]
            ),
            3.0
        );
        assert_eq!(sum_metric(text, "tempo_discarded_spans", &[]), 7.0);
    }
}
