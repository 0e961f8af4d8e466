//! A backend already running at fixed URLs. No lifecycle: cases that stop, kill or restart
//! a target are skipped for it.

use std::path::Path;

use async_trait::async_trait;

use super::{ConfigVerdict, Launch, Running, StopReport, Target};
use crate::error::{Error, Result};
use crate::spec::{StopPolicy, TargetFile};

/// A remote backend.
pub struct RemoteTarget {
    file: TargetFile,
}

impl RemoteTarget {
    /// A target for `file` (kind `remote`).
    pub fn new(file: TargetFile) -> Self {
        Self { file }
    }
}

#[async_trait]
impl Target for RemoteTarget {
    fn name(&self) -> &str {
        &self.file.name
    }

    async fn start(&mut self, _launch: &Launch) -> Result<Running> {
        let Some(urls) = &self.file.urls else {
            return Err(Error::target(&self.file.name, "no `urls`"));
        };
        let running = Running {
            http: urls.query.trim_end_matches('/').to_owned(),
            otlp_grpc: urls.otlp_grpc.clone(),
            otlp_http: urls.otlp_http.clone(),
        };
        super::wait_ready(&running.http, &self.file.readiness, || None)
            .await
            .map_err(|e| Error::target(&self.file.name, e))?;
        Ok(running)
    }

    async fn stop(&mut self, _policy: &StopPolicy) -> Result<StopReport> {
        Ok(StopReport::default())
    }

    async fn kill(&mut self) -> Result<()> {
        Err(Error::target(
            &self.file.name,
            "a remote target cannot be killed",
        ))
    }

    fn last_launch(&self) -> Option<Launch> {
        None
    }

    async fn check_config(&self, _config: &str, _work_dir: &Path) -> Result<ConfigVerdict> {
        Err(Error::target(
            &self.file.name,
            "a remote target has no config to check",
        ))
    }

    fn rendered_config(&self, _launch: &Launch) -> Result<String> {
        Ok(String::new())
    }
}
