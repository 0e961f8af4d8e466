//! Object storage for blocks, through `object_store`: local directory, S3, GCS, Azure or memory.
//!
//! On the local backend every put is followed by an fsync of the file and its directory,
//! so a block the flusher calls durable survives power loss, not only a process crash.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};

use crate::config::{Backend, TraceStorageConfig};
use crate::error::{Error, Result};

/// A cheap-to-clone handle to the block store.
#[derive(Clone)]
pub struct BlockStore {
    inner: Arc<dyn ObjectStore>,
    /// Root directory when the backend is `local` (for fsync).
    local_root: Option<PathBuf>,
    /// Human description (`local:/path`, `s3://bucket/prefix`).
    describe: String,
    /// Crash injection for tests: writes allowed before every write fails.
    write_limit: Option<Arc<WriteLimit>>,
}

/// Counts writes (puts and deletes) and fails every write past a limit, as if the process
/// had died there (tests of crash safety).
#[derive(Debug)]
struct WriteLimit {
    done: AtomicU64,
    limit: u64,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

fn store_err<'a>(op: &'static str, key: &'a str) -> impl FnOnce(object_store::Error) -> Error + 'a {
    move |source| Error::Store {
        op,
        key: key.to_owned(),
        source,
    }
}

/// Client retries stay short: the flusher retries a failed block itself, with backoff,
/// and must notice an outage rather than wait minutes inside one request.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    }
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60))
}

impl BlockStore {
    /// Build the store named by the config.
    pub fn from_config(cfg: &TraceStorageConfig) -> Result<Self> {
        let invalid = |e: object_store::Error| Error::ConfigInvalid(format!("storage.trace: {e}"));
        let (inner, local_root, describe): (Arc<dyn ObjectStore>, _, _) = match cfg.backend {
            Backend::Local => {
                let root = &cfg.local.path;
                std::fs::create_dir_all(root).map_err(|e| {
                    Error::ConfigInvalid(format!(
                        "storage.trace.local.path {}: {e}",
                        root.display()
                    ))
                })?;
                let root = root.canonicalize().map_err(|e| {
                    Error::ConfigInvalid(format!(
                        "storage.trace.local.path {}: {e}",
                        root.display()
                    ))
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)
                    .map_err(invalid)?
                    .with_automatic_cleanup(true);
                let d = format!("local:{}", root.display());
                (Arc::new(fs), Some(root), d)
            }
            Backend::S3 => {
                let s3 = &cfg.s3;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(if s3.region.is_empty() {
                        "us-east-1"
                    } else {
                        &s3.region
                    })
                    .with_virtual_hosted_style_request(!s3.forcepathstyle)
                    .with_retry(retry_config())
                    // `with_client_options` replaces every client option, `allow_http`
                    // included, so it must come first.
                    .with_client_options(client_options())
                    .with_allow_http(s3.insecure);
                if !s3.endpoint.is_empty() {
                    let scheme = if s3.insecure { "http" } else { "https" };
                    let url = if s3.endpoint.contains("://") {
                        s3.endpoint.clone()
                    } else {
                        format!("{scheme}://{}", s3.endpoint)
                    };
                    b = b.with_endpoint(url);
                }
                if !s3.access_key.is_empty() {
                    b = b
                        .with_access_key_id(&s3.access_key)
                        .with_secret_access_key(&s3.secret_key);
                }
                let store = b.build().map_err(invalid)?;
                let d = format!("s3://{}/{}", s3.bucket, s3.prefix);
                (with_prefix(store, &s3.prefix), None, d)
            }
            Backend::Gcs => {
                let g = &cfg.gcs;
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&g.bucket_name)
                    .with_retry(retry_config())
                    .with_client_options(client_options());
                if !g.service_account_path.is_empty() {
                    b = b.with_service_account_path(&g.service_account_path);
                }
                let store = b.build().map_err(invalid)?;
                let d = format!("gcs://{}/{}", g.bucket_name, g.prefix);
                (with_prefix(store, &g.prefix), None, d)
            }
            Backend::Azure => {
                let a = &cfg.azure;
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(&a.storage_account_name)
                    .with_container_name(&a.container_name)
                    .with_retry(retry_config())
                    .with_client_options(client_options());
                if !a.storage_account_key.is_empty() {
                    b = b.with_access_key(&a.storage_account_key);
                }
                if !a.endpoint.is_empty() {
                    b = b
                        .with_endpoint(a.endpoint.clone())
                        .with_allow_http(a.endpoint.starts_with("http://"));
                }
                let store = b.build().map_err(invalid)?;
                let d = format!("azure://{}/{}", a.container_name, a.prefix);
                (with_prefix(store, &a.prefix), None, d)
            }
            Backend::Memory => (
                Arc::new(object_store::memory::InMemory::new()),
                None,
                "memory".to_owned(),
            ),
        };
        Ok(BlockStore {
            inner,
            local_root,
            describe,
            write_limit: None,
        })
    }

    /// An in-memory store (tests, benchmarks).
    pub fn memory() -> Self {
        BlockStore {
            inner: Arc::new(object_store::memory::InMemory::new()),
            local_root: None,
            describe: "memory".into(),
            write_limit: None,
        }
    }

    /// A handle on the same objects whose writes (puts and deletes) fail once `n` writes
    /// went through it: a crash between any two writes, for crash-safety tests.
    #[doc(hidden)]
    pub fn with_crash_after(&self, n: u64) -> Self {
        BlockStore {
            write_limit: Some(Arc::new(WriteLimit {
                done: AtomicU64::new(0),
                limit: n,
            })),
            ..self.clone()
        }
    }

    /// Writes made through a handle from [`BlockStore::with_crash_after`] (0 otherwise).
    #[doc(hidden)]
    pub fn writes_done(&self) -> u64 {
        self.write_limit
            .as_ref()
            .map_or(0, |w| w.done.load(Ordering::Acquire).min(w.limit))
    }

    fn charge_write(&self, op: &'static str, key: &str) -> Result<()> {
        let Some(w) = &self.write_limit else {
            return Ok(());
        };
        if w.done.fetch_add(1, Ordering::AcqRel) < w.limit {
            return Ok(());
        }
        Err(Error::Store {
            op,
            key: key.to_owned(),
            source: object_store::Error::Generic {
                store: "crash-injection",
                source: "injected crash: no further writes".into(),
            },
        })
    }

    /// What this store is, for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Write an object; durable on return.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.charge_write("put", key)?;
        self.inner
            .put(&ObjPath::from(key), PutPayload::from(bytes))
            .await
            .map_err(store_err("put", key))?;
        self.sync_local(key).await
    }

    /// Write an object from a local file of `len` bytes; durable on return. Files of at
    /// least `multipart_min` bytes go up as a multipart upload in parts of `part_bytes`
    /// (two in flight), so memory holds a few parts, never the whole file.
    pub async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        len: u64,
        multipart_min: u64,
        part_bytes: usize,
    ) -> Result<()> {
        let spool_err = |source| Error::Spool {
            path: path.to_path_buf(),
            source,
        };
        if len < multipart_min {
            let bytes = tokio::fs::read(path).await.map_err(spool_err)?;
            return self.put(key, Bytes::from(bytes)).await;
        }
        self.charge_write("put", key)?;
        let upload = self
            .inner
            .put_multipart(&ObjPath::from(key))
            .await
            .map_err(store_err("put", key))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, part_bytes.max(1));
        let sent: Result<()> = async {
            use tokio::io::AsyncReadExt;
            let mut f = tokio::fs::File::open(path).await.map_err(spool_err)?;
            let mut buf = vec![0u8; part_bytes.max(1)];
            loop {
                let mut n = 0;
                while n < buf.len() {
                    match f.read(&mut buf[n..]).await.map_err(spool_err)? {
                        0 => break,
                        k => n += k,
                    }
                }
                if n == 0 {
                    return Ok(());
                }
                w.wait_for_capacity(2)
                    .await
                    .map_err(store_err("put", key))?;
                w.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                w.finish().await.map_err(store_err("put", key))?;
            }
            Err(e) => {
                let _ = w.abort().await;
                return Err(e);
            }
        }
        self.sync_local(key).await
    }

    /// On the local backend, fsync an object just written and its directory.
    async fn sync_local(&self, key: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            let path = root.join(key);
            let dir = path.parent().map(|p| p.to_path_buf());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&path)?.sync_all()?;
                if let Some(dir) = dir {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Internal(format!("fsync task: {e}")))?
            .map_err(|e| Error::Store {
                op: "fsync",
                key: key.to_owned(),
                source: object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                },
            })?;
        }
        Ok(())
    }

    /// Read a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let r = self
            .inner
            .get(&ObjPath::from(key))
            .await
            .map_err(store_err("get", key))?;
        r.bytes().await.map_err(store_err("get", key))
    }

    /// Read a byte range of an object.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner
            .get_range(&ObjPath::from(key), range)
            .await
            .map_err(store_err("get_range", key))
    }

    /// Read a whole object, `None` when it does not exist.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete an object (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.charge_write("delete", key)?;
        match self.inner.delete(&ObjPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err("delete", key)(e)),
        }
    }

    /// Every key in the store (recursively).
    pub async fn list_keys(&self) -> Result<Vec<String>> {
        self.inner
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(store_err("list", ""))
    }

    /// Every key under `prefix/` (recursively).
    pub async fn list_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let p = ObjPath::from(prefix);
        self.inner
            .list(Some(&p))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(store_err("list", prefix))
    }

    /// The top-level "directories" of the store (tenants), one request without recursion.
    pub async fn list_top_dirs(&self) -> Result<Vec<String>> {
        let r = self
            .inner
            .list_with_delimiter(None)
            .await
            .map_err(store_err("list", ""))?;
        Ok(r.common_prefixes.iter().map(|p| p.to_string()).collect())
    }
}

fn with_prefix<S: ObjectStore>(store: S, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    }
}
