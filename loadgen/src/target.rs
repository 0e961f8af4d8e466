//! The system under test: an embedded reference backend or any OTLP endpoint.
//!
//! The embedded backend runs in this process on its own tokio runtime, whose threads are
//! named `rb-worker`, so its CPU can be told apart from the generator's.

use std::time::Duration;

use tempo_api::TempoClient;
use tracing::info;

use crate::error::{Error, Result};
use crate::exporter::ExporterConfig;
use crate::report::model::TargetInfo;
use crate::resources::Source;
use crate::scenario::{Compression, Protocol, Rate, Target};

/// Thread-name prefixes of the embedded backend.
pub const EMBEDDED_THREADS: &[&str] = &["rb-worker", "wal-writer"];

/// A target ready to receive load.
pub struct RunningTarget {
    /// How to send.
    pub exporter: ExporterConfig,
    /// Query client for read-back, when the target has Tempo's API.
    pub query: Option<TempoClient>,
    /// Where resource figures come from.
    pub resources: Option<Source>,
    /// Report summary.
    pub info: TargetInfo,
    embedded: Option<Embedded>,
}

struct Embedded {
    runtime: Option<tokio::runtime::Runtime>,
    backend: Option<reference_backend::Backend>,
    _dir: tempfile::TempDir,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // Dropping a runtime inside async code panics; shutting it down in the background
        // does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct TargetOverrides {
    /// OTLP endpoint instead of the scenario's target.
    pub otlp: Option<String>,
    /// Query URL.
    pub query: Option<String>,
    /// Backend process id for CPU and RSS sampling.
    pub pid: Option<u32>,
    /// Backend `/metrics` URL for CPU and RSS sampling (when no pid is given).
    pub metrics: Option<String>,
    /// Protocol.
    pub protocol: Option<Protocol>,
    /// Tenant.
    pub tenant: Option<String>,
}

fn query_client(url: &str, tenant: Option<&String>) -> Result<TempoClient> {
    Ok(TempoClient::new(url)?
        .with_tenant(tenant.cloned())
        .with_timeout(Duration::from_secs(10)))
}

impl RunningTarget {
    /// Start (embedded) or describe (remote) the target.
    pub async fn start(target: &Target, rate: &Rate, o: &TargetOverrides) -> Result<Self> {
        let (protocol, compression) = match target {
            Target::Otlp {
                protocol,
                compression,
                ..
            } => (*protocol, *compression),
            Target::Embedded { .. } => (Protocol::Grpc, Compression::None),
        };
        let protocol = o.protocol.unwrap_or(protocol);
        let base = |endpoints: Vec<String>, tenant: Option<String>, headers| ExporterConfig {
            endpoints,
            protocol,
            compression,
            headers,
            tenant,
            connections: rate.connections,
            timeout: rate.timeout.0,
        };
        if let Some(otlp) = &o.otlp {
            let tenant = o.tenant.clone();
            let query = o
                .query
                .as_deref()
                .map(|q| query_client(q, tenant.as_ref()))
                .transpose()?;
            return Ok(RunningTarget {
                info: TargetInfo {
                    kind: "otlp".into(),
                    endpoints: vec![otlp.clone()],
                    query_url: o.query.clone(),
                    tenant: tenant.clone(),
                    version: None,
                    revision: None,
                },
                exporter: base(vec![otlp.clone()], tenant, Default::default()),
                query,
                resources: match (o.pid, &o.metrics) {
                    (Some(p), _) => Some(Source::Pid(p)),
                    (None, Some(m)) => Some(Source::Metrics(m.clone())),
                    _ => None,
                },
                embedded: None,
            }
            .with_buildinfo()
            .await);
        }
        match target {
            Target::Otlp {
                endpoints,
                headers,
                tenant,
                query,
                metrics,
                pid,
                ..
            } => {
                let tenant = o.tenant.clone().or_else(|| tenant.clone());
                let query_url = o.query.clone().or_else(|| query.clone());
                let client = query_url
                    .as_deref()
                    .map(|q| query_client(q, tenant.as_ref()))
                    .transpose()?;
                let resources = match (o.pid.or(*pid), o.metrics.as_ref().or(metrics.as_ref())) {
                    (Some(p), _) => Some(Source::Pid(p)),
                    (None, Some(m)) => Some(Source::Metrics(m.clone())),
                    _ => None,
                };
                Ok(RunningTarget {
                    info: TargetInfo {
                        kind: "otlp".into(),
                        endpoints: endpoints.clone(),
                        query_url,
                        tenant: tenant.clone(),
                        version: None,
                        revision: None,
                    },
                    exporter: base(endpoints.clone(), tenant, headers.clone()),
                    query: client,
                    resources,
                    embedded: None,
                }
                .with_buildinfo()
                .await)
            }
            Target::Embedded {
                backend_config,
                tenant,
                release,
            } => {
                let tenant = o.tenant.clone().or_else(|| tenant.clone());
                let release = match release {
                    None => reference_backend::release::ReleaseId::default(),
                    Some(n) => reference_backend::release::ReleaseId::from_number(*n)
                        .ok_or_else(|| {
                            Error::Target(format!(
                                "target.release: reference-backend has no release {n} (see `reference-backend releases`)"
                            ))
                        })?,
                };
                let (embedded, addrs) = start_embedded(backend_config.as_deref(), release).await?;
                let endpoint = match protocol {
                    Protocol::Grpc => format!("http://{}", addrs.otlp_grpc),
                    _ => format!("http://{}", addrs.otlp_http),
                };
                let query_url = format!("http://{}", addrs.http);
                Ok(RunningTarget {
                    info: TargetInfo {
                        kind: "embedded".into(),
                        endpoints: vec![endpoint.clone()],
                        query_url: Some(query_url.clone()),
                        tenant: tenant.clone(),
                        version: None,
                        revision: None,
                    },
                    exporter: base(vec![endpoint], tenant.clone(), Default::default()),
                    query: Some(query_client(&query_url, tenant.as_ref())?),
                    resources: Some(Source::Threads(EMBEDDED_THREADS.to_vec())),
                    embedded: Some(embedded),
                }
                .with_buildinfo()
                .await)
            }
        }
    }

    async fn with_buildinfo(mut self) -> Self {
        if let Some(q) = &self.query
            && let Ok(b) = q.buildinfo().await
        {
            self.info.version = Some(b.version).filter(|v| !v.is_empty());
            self.info.revision = Some(b.revision).filter(|v| !v.is_empty());
        }
        self
    }

    /// Stop the embedded backend (graceful: it flushes); remote targets are left alone.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(mut e) = self.embedded.take()
            && let (Some(b), Some(rt)) = (e.backend.take(), e.runtime.as_ref())
        {
            let r = rt
                .spawn(async move { b.shutdown().await })
                .await
                .map_err(|err| Error::Target(format!("embedded backend stop: {err}")))?;
            r?;
        }
        Ok(())
    }
}

async fn start_embedded(
    extra: Option<&str>,
    release: reference_backend::release::ReleaseId,
) -> Result<(Embedded, reference_backend::ListenAddrs)> {
    let dir = tempfile::tempdir().map_err(|e| Error::Target(format!("temp dir: {e}")))?;
    let mut cfg = match extra {
        Some(text) => {
            let parsed = reference_backend::release::config_rules::parse(text, release)?;
            for w in &parsed.warnings {
                tracing::warn!(%release, "embedded backend config: {w}");
            }
            parsed.config
        }
        None => {
            // Cut blocks as Tempo 3.0's live-store does (30 s), so a run exercises block
            // writes and the backend's memory stays flat instead of growing for 30 minutes.
            let mut c = reference_backend::Config {
                release,
                ..Default::default()
            };
            c.ingester.max_block_duration.0 = Duration::from_secs(30);
            c.ingester.flush_check_period.0 = Duration::from_secs(1);
            c
        }
    };
    cfg.server.http_listen_address = "127.0.0.1".into();
    cfg.server.http_listen_port = 0;
    let p = &mut cfg.distributor.receivers.otlp.protocols;
    p.grpc.endpoint = "127.0.0.1:0".into();
    p.http.endpoint = "127.0.0.1:0".into();
    cfg.storage.trace.local.path = dir.path().join("blocks");
    cfg.storage.trace.wal.path = dir.path().join("wal");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rb-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::Target(format!("embedded backend runtime: {e}")))?;
    let backend = runtime
        .spawn(async move {
            let b = reference_backend::Backend::start(cfg).await?;
            b.wait_ready().await?;
            Ok::<_, reference_backend::Error>(b)
        })
        .await
        .map_err(|e| Error::Target(format!("embedded backend start: {e}")))??;
    let addrs = backend.addrs;
    info!(otlp_grpc = %addrs.otlp_grpc, otlp_http = %addrs.otlp_http, query = %addrs.http, "embedded backend ready");
    Ok((
        Embedded {
            runtime: Some(runtime),
            backend: Some(backend),
            _dir: dir,
        },
        addrs,
    ))
}
