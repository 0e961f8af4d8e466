//! A container image through testcontainers, on the host network so the rendered config's
//! ports and the store's loopback endpoint mean the same inside and outside. The data dir and
//! a local store are bind-mounted at the same paths. Skipped with a one-line reason when no
//! Docker engine answers a ping.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use testcontainers_modules::testcontainers::core::Mount;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::process::write_file;
use super::{
    ConfigVerdict, Launch, Running, StopReport, Target, local_url, pre_stop, render_args,
    render_config, wait_ready,
};
use crate::error::{Error, Result};
use crate::spec::{StopPolicy, TargetFile};
use crate::store::StoreInfo;

/// A container target.
pub struct ContainerTarget {
    file: TargetFile,
    container: Option<ContainerAsync<GenericImage>>,
    launch: Option<Launch>,
    running: Option<Running>,
}

impl ContainerTarget {
    /// A target for `file` (kind `container`).
    pub fn new(file: TargetFile) -> Self {
        Self {
            file,
            container: None,
            launch: None,
            running: None,
        }
    }

    fn image(&self) -> (String, String) {
        let image = self.file.image.clone().unwrap_or_default();
        match image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
            _ => (image, "latest".to_owned()),
        }
    }

    fn config_path(&self, launch: &Launch) -> PathBuf {
        launch.data_dir.join(format!("{}.yaml", self.file.name))
    }
}

#[async_trait]
impl Target for ContainerTarget {
    fn name(&self) -> &str {
        &self.file.name
    }

    async fn start(&mut self, launch: &Launch) -> Result<Running> {
        let name = self.file.name.clone();
        if let Err(reason) = crate::docker::available().await {
            return Err(Error::target(&name, reason));
        }
        let ports = launch
            .ports
            .allocate()
            .map_err(|e| Error::target(&name, format!("no free port: {e}")))?;
        let config_path = self.config_path(launch);
        write_file(
            &config_path,
            &render_config(&self.file, launch, ports, &config_path)?,
        )?;
        let args = render_args(&self.file, launch, ports, &config_path, &self.file.args)?;
        let (repo, tag) = self.image();
        let data = launch.data_dir.display().to_string();
        let mut request = GenericImage::new(repo, tag)
            .with_network("host")
            .with_mount(Mount::bind_mount(data.clone(), data))
            .with_cmd(args);
        if let StoreInfo::Local { path } = &launch.store {
            let p = path.display().to_string();
            request = request.with_mount(Mount::bind_mount(p.clone(), p));
        }
        for (k, v) in &self.file.env {
            let v = render_args(
                &self.file,
                launch,
                ports,
                &config_path,
                std::slice::from_ref(v),
            )?;
            request = request.with_env_var(k.clone(), v.concat());
        }
        let container = request
            .start()
            .await
            .map_err(|e| Error::target(&name, format!("start container: {e}")))?;
        let running = Running {
            http: local_url(ports.http),
            otlp_grpc: Some(local_url(ports.grpc)),
            otlp_http: Some(local_url(ports.otlp_http)),
        };
        if let Err(why) = wait_ready(&running.http, &self.file.readiness, || None).await {
            let logs = container.stderr_to_vec().await.unwrap_or_default();
            let _ = container.rm().await;
            let text = String::from_utf8_lossy(&logs);
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            return Err(Error::target(
                &name,
                format!(
                    "{why}\nlog tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            ));
        }
        self.container = Some(container);
        self.launch = Some(Launch {
            ports,
            ..launch.clone()
        });
        self.running = Some(running.clone());
        Ok(running)
    }

    async fn stop(&mut self, policy: &StopPolicy) -> Result<StopReport> {
        let mut report = StopReport::default();
        if let Some(r) = self.running.take() {
            report.notes = pre_stop(&r.http, &self.file.pre_stop).await;
        }
        if let Some(c) = self.container.take() {
            let grace = policy.grace.get().as_secs().max(1) as i32;
            if let Err(e) = c.stop_with_timeout(Some(grace)).await {
                report.notes.push(format!("stop: {e}"));
            }
            let _ = c.rm().await;
        }
        Ok(report)
    }

    async fn kill(&mut self) -> Result<()> {
        if let Some(c) = self.container.take() {
            let _ = c.stop_with_timeout(Some(0)).await;
            let _ = c.rm().await;
        }
        self.running = None;
        Ok(())
    }

    fn last_launch(&self) -> Option<Launch> {
        self.launch.clone()
    }

    async fn check_config(&self, _config: &str, _work_dir: &Path) -> Result<ConfigVerdict> {
        Err(Error::target(
            &self.file.name,
            "config checks of container targets are not supported; use a process target",
        ))
    }

    fn rendered_config(&self, launch: &Launch) -> Result<String> {
        render_config(&self.file, launch, launch.ports, &self.config_path(launch))
    }
}
