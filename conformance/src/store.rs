//! Object stores a target writes its blocks to: a local directory, the embedded S3 server on
//! loopback, MinIO in a container (when a Docker engine answers), or any S3 endpoint from the
//! environment. The harness creates the bucket; targets never do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use embedded_s3::{EmbeddedS3, S3Config};
use testcontainers_modules::minio::MinIO;
use testcontainers_modules::testcontainers::ContainerAsync;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use tracing::info;

use crate::error::{Error, Result};
use crate::s3_bucket::{S3Access, create_bucket};

/// Bucket name used by every store the harness creates.
pub const BUCKET: &str = "tracebench-conformance";

/// Which store to use (`--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSpec {
    /// A directory under the work dir.
    Local,
    /// The embedded S3 server on 127.0.0.1, port 0.
    EmbeddedS3,
    /// MinIO through testcontainers (skipped with the reason when Docker does not answer).
    Minio,
    /// Any S3 endpoint: `TRACEBENCH_S3_ENDPOINT`, `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY`,
    /// `_REGION`.
    S3Env,
}

impl StoreSpec {
    /// Every spec, in the order `--help` lists them.
    pub const ALL: [StoreSpec; 4] = [
        StoreSpec::Local,
        StoreSpec::EmbeddedS3,
        StoreSpec::Minio,
        StoreSpec::S3Env,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            StoreSpec::Local => "local",
            StoreSpec::EmbeddedS3 => "embedded-s3",
            StoreSpec::Minio => "minio",
            StoreSpec::S3Env => "s3-env",
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        StoreSpec::ALL
            .into_iter()
            .find(|spec| spec.name() == s)
            .ok_or_else(|| format!("unknown store {s:?}: use local, embedded-s3, minio or s3-env"))
    }
}

/// What a target needs to know to write to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreInfo {
    /// Blocks in a local directory.
    Local {
        /// The directory.
        path: PathBuf,
    },
    /// An S3-compatible endpoint.
    S3 {
        /// `http://host:port`.
        url: String,
        /// Bucket (already created).
        bucket: String,
        /// Access key.
        access_key: String,
        /// Secret key.
        secret_key: String,
        /// Region.
        region: String,
    },
}

impl StoreInfo {
    /// `host:port` of an S3 endpoint (Tempo's `storage.trace.s3.endpoint` form).
    pub fn s3_host_port(&self) -> Option<String> {
        match self {
            StoreInfo::S3 { url, .. } => Some(
                url.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_owned(),
            ),
            StoreInfo::Local { .. } => None,
        }
    }
}

enum Handle {
    None,
    Embedded(EmbeddedS3),
    Minio(Box<ContainerAsync<MinIO>>),
}

/// A running store.
pub struct Store {
    /// Which spec started it.
    pub spec: StoreSpec,
    /// How targets reach it.
    pub info: StoreInfo,
    handle: Handle,
}

/// Either a store, or why this spec cannot run here.
pub enum Started {
    /// Ready to use.
    Ready(Box<Store>),
    /// Not available here, with the one-line reason (e.g. no Docker engine).
    Skipped(String),
}

impl Store {
    /// Start (or describe) a store of `spec` with its files under `work_dir`.
    pub async fn start(spec: StoreSpec, work_dir: &Path) -> Result<Started> {
        let err = |m: String| Error::store(spec.name(), m);
        let store = match spec {
            StoreSpec::Local => {
                let path = work_dir.join("store");
                std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                Store {
                    spec,
                    info: StoreInfo::Local { path },
                    handle: Handle::None,
                }
            }
            StoreSpec::EmbeddedS3 => {
                let config = S3Config::default();
                let s3 = EmbeddedS3::start(work_dir.join("s3"), 0, config.clone())
                    .await
                    .map_err(|e| err(e.to_string()))?;
                s3.create_bucket(BUCKET).map_err(|e| err(e.to_string()))?;
                Store {
                    spec,
                    info: StoreInfo::S3 {
                        url: s3.endpoint(),
                        bucket: BUCKET.into(),
                        access_key: config.access_key,
                        secret_key: config.secret_key,
                        region: config.region,
                    },
                    handle: Handle::Embedded(s3),
                }
            }
            StoreSpec::Minio => {
                if let Err(reason) = crate::docker::available().await {
                    if crate::docker::required() {
                        return Err(err(format!("{reason} (TRACEBENCH_REQUIRE_DOCKER=1)")));
                    }
                    return Ok(Started::Skipped(reason));
                }
                let container = MinIO::default()
                    .start()
                    .await
                    .map_err(|e| err(format!("start minio: {e}")))?;
                let port = container
                    .get_host_port_ipv4(9000)
                    .await
                    .map_err(|e| err(format!("minio port: {e}")))?;
                let info = StoreInfo::S3 {
                    url: format!("http://127.0.0.1:{port}"),
                    bucket: BUCKET.into(),
                    access_key: "minioadmin".into(),
                    secret_key: "minioadmin".into(),
                    region: "us-east-1".into(),
                };
                Store {
                    spec,
                    info,
                    handle: Handle::Minio(Box::new(container)),
                }
            }
            StoreSpec::S3Env => {
                let var = |name: &str| std::env::var(format!("TRACEBENCH_S3_{name}")).ok();
                let Some(url) = var("ENDPOINT") else {
                    return Ok(Started::Skipped("TRACEBENCH_S3_ENDPOINT is not set".into()));
                };
                let url = if url.contains("://") {
                    url
                } else {
                    format!("http://{url}")
                };
                Store {
                    spec,
                    info: StoreInfo::S3 {
                        url,
                        bucket: var("BUCKET").unwrap_or_else(|| BUCKET.into()),
                        access_key: var("ACCESS_KEY").unwrap_or_default(),
                        secret_key: var("SECRET_KEY").unwrap_or_default(),
                        region: var("REGION").unwrap_or_else(|| "us-east-1".into()),
                    },
                    handle: Handle::None,
                }
            }
        };
        if let StoreInfo::S3 {
            url,
            bucket,
            access_key,
            secret_key,
            region,
        } = &store.info
            && spec != StoreSpec::EmbeddedS3
        {
            create_bucket(&S3Access {
                url: url.clone(),
                bucket: bucket.clone(),
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                region: region.clone(),
            })
            .await
            .map_err(err)?;
        }
        info!(store = spec.name(), "store ready");
        Ok(Started::Ready(Box::new(store)))
    }

    /// Stop the store (the embedded server closes its port; MinIO's container is removed).
    pub async fn stop(self) {
        match self.handle {
            Handle::None => {}
            Handle::Embedded(s3) => s3.stop().await,
            Handle::Minio(c) => {
                let _ = c.rm().await;
            }
        }
    }

    /// The S3 access of this store, if it is one (tests use it to look at objects).
    pub fn s3_access(&self) -> Option<S3Access> {
        match &self.info {
            StoreInfo::S3 {
                url,
                bucket,
                access_key,
                secret_key,
                region,
            } => Some(S3Access {
                url: url.clone(),
                bucket: bucket.clone(),
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                region: region.clone(),
            }),
            StoreInfo::Local { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn specs_round_trip() {
        for s in StoreSpec::ALL {
            assert_eq!(s.name().parse::<StoreSpec>().unwrap(), s);
        }
        assert!(
            "s3".parse::<StoreSpec>()
                .unwrap_err()
                .contains("embedded-s3")
        );
    }

    #[tokio::test]
    async fn bucket_creation_is_signed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = EmbeddedS3::start(dir.path().join("s3"), 0, S3Config::default())
            .await
            .unwrap();
        let c = S3Config::default();
        let mut access = S3Access {
            url: s3.endpoint(),
            bucket: "made-by-sigv4".into(),
            access_key: c.access_key.clone(),
            secret_key: c.secret_key.clone(),
            region: c.region.clone(),
        };
        create_bucket(&access).await.unwrap();
        create_bucket(&access).await.unwrap();
        assert!(s3.root().join("made-by-sigv4").is_dir());
        access.secret_key = "wrong".into();
        access.bucket = "refused".into();
        let e = create_bucket(&access).await.unwrap_err();
        assert!(e.contains("403") || e.contains("Signature"), "{e}");
        s3.stop().await;
    }
}
