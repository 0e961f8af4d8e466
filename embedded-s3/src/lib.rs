//! An S3 protocol server on `127.0.0.1` for tests, backed by a directory.
//!
//! Storage is the [`s3s_fs`] crate (each bucket is a subdirectory of the root); the protocol
//! layer is [`s3s`] with real SigV4 authentication against one static access key / secret key.
//! The server can be stopped and started again on the same port and directory, which is what
//! object-store outage tests need.
//!
//! ```no_run
//! # async fn demo() -> Result<(), embedded_s3::EmbeddedS3Error> {
//! use embedded_s3::{EmbeddedS3, S3Config};
//!
//! let s3 = EmbeddedS3::start("/tmp/s3-root", 0, S3Config::default()).await?;
//! s3.create_bucket("traces")?;
//! let (root, port, config) = (s3.root().to_path_buf(), s3.port(), s3.config().clone());
//! s3.stop().await; // the port now refuses connections
//! let s3 = EmbeddedS3::start(root, port, config).await?; // same port, same data
//! # s3.stop().await;
//! # Ok(())
//! # }
//! ```

mod store;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::store::DirStore;

/// Listen backlog of the server socket.
const LISTEN_BACKLOG: u32 = 1024;

/// Pause after a failed `accept` (e.g. too many open files) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Credentials and region of an [`EmbeddedS3`] server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The only access key accepted.
    pub access_key: String,
    /// Secret key of `access_key`.
    pub secret_key: String,
    /// Region clients should sign for. s3s verifies signatures with whatever region the
    /// request's credential scope names, so this is informational (for building clients).
    pub region: String,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            access_key: "tracebench".to_owned(),
            secret_key: "tracebench-secret".to_owned(),
            region: "us-east-1".to_owned(),
        }
    }
}

/// Errors of [`EmbeddedS3`].
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedS3Error {
    /// The root directory could not be created or resolved.
    #[error("cannot prepare s3 root directory {path}: {source}")]
    Root {
        /// The root directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `s3s_fs::FileSystem` rejected the root directory.
    #[error("cannot open s3 store at {path}: {message}")]
    Store {
        /// The root directory.
        path: PathBuf,
        /// The store's error, rendered (it implements only `Debug`).
        message: String,
    },
    /// The listening socket could not be set up (port in use, ...).
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The requested port (0 = ephemeral).
        port: u16,
        /// The underlying error.
        source: io::Error,
    },
    /// The name is not a valid S3 bucket name.
    #[error("invalid bucket name {0:?}")]
    InvalidBucketName(String),
    /// The bucket directory could not be created.
    #[error("cannot create bucket {name}: {source}")]
    CreateBucket {
        /// The bucket name.
        name: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// A running S3 server on `127.0.0.1`.
///
/// Dropping it without [`EmbeddedS3::stop`] also shuts the server down, but asynchronously;
/// call `stop` when the port must be closed at a known point.
#[derive(Debug)]
pub struct EmbeddedS3 {
    root: PathBuf,
    port: u16,
    config: S3Config,
    /// Sending (or dropping) tells the accept loop to shut down.
    shutdown: oneshot::Sender<()>,
    /// The accept loop; it owns the listener and every connection task.
    server: JoinHandle<()>,
}

impl EmbeddedS3 {
    /// Serve `root` (a directory; each bucket is a subdirectory) on 127.0.0.1:port (0 = ephemeral).
    ///
    /// The directory is created if missing. The socket uses `SO_REUSEADDR`, so the port of a
    /// stopped server can be bound again immediately. Only one server may use a root at a time.
    pub async fn start(
        root: impl Into<PathBuf>,
        port: u16,
        config: S3Config,
    ) -> Result<Self, EmbeddedS3Error> {
        let root = prepare_root(root.into())?;
        let fs = s3s_fs::FileSystem::new(&root).map_err(|err| EmbeddedS3Error::Store {
            path: root.clone(),
            message: format!("{err:?}"),
        })?;

        let service = {
            let mut builder = S3ServiceBuilder::new(DirStore::new(fs));
            builder.set_auth(SimpleAuth::from_single(
                config.access_key.as_str(),
                config.secret_key.as_str(),
            ));
            builder.build()
        };

        let listener = bind(port).map_err(|source| EmbeddedS3Error::Bind { port, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| EmbeddedS3Error::Bind { port, source })?
            .port();

        let (shutdown, shutdown_rx) = oneshot::channel();
        let server = tokio::spawn(serve(listener, service, shutdown_rx));
        tracing::info!(port, root = %root.display(), "embedded s3 listening");

        Ok(Self {
            root,
            port,
            config,
            shutdown,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", Ipv4Addr::LOCALHOST, self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The root directory (canonicalized); each bucket is a subdirectory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The credentials and region of this server.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Create a bucket (a directory under root). Idempotent.
    pub fn create_bucket(&self, name: &str) -> Result<(), EmbeddedS3Error> {
        if !s3s::path::check_bucket_name(name) {
            return Err(EmbeddedS3Error::InvalidBucketName(name.to_owned()));
        }
        std::fs::create_dir_all(self.root.join(name)).map_err(|source| {
            EmbeddedS3Error::CreateBucket {
                name: name.to_owned(),
                source,
            }
        })?;
        tracing::debug!(bucket = name, "embedded s3 bucket created");
        Ok(())
    }

    /// Stop accepting, close the listener and drop in-flight connections; after this returns the
    /// port refuses connections.
    ///
    /// Requests in flight are cut off (their clients see a reset or EOF); objects are written
    /// to a temporary file and renamed, so no partial object becomes visible.
    pub async fn stop(self) {
        let Self {
            port,
            shutdown,
            server,
            ..
        } = self;
        // An error means the accept loop is already gone, which is what we want.
        let _ = shutdown.send(());
        if let Err(err) = server.await {
            tracing::warn!(port, error = %err, "embedded s3 server task failed");
        }
        tracing::info!(port, "embedded s3 stopped");
    }

    /// Stop the server and start it again on the same port, root and config (for outage tests
    /// that do not need a pause in between; otherwise `stop` then `start` with
    /// [`EmbeddedS3::port`], [`EmbeddedS3::root`] and [`EmbeddedS3::config`]).
    pub async fn restart(self) -> Result<Self, EmbeddedS3Error> {
        let root = self.root.clone();
        let port = self.port;
        let config = self.config.clone();
        self.stop().await;
        Self::start(root, port, config).await
    }
}

/// Create `root` if needed and return it canonicalized.
fn prepare_root(root: PathBuf) -> Result<PathBuf, EmbeddedS3Error> {
    std::fs::create_dir_all(&root)
        .and_then(|()| std::fs::canonicalize(&root))
        .map_err(|source| EmbeddedS3Error::Root { path: root, source })
}

/// Bind 127.0.0.1:port with `SO_REUSEADDR`, so a restart can rebind while old connections of
/// the previous server linger in `TIME_WAIT`.
fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accept connections until `shutdown` fires (or its sender is dropped), then close the
/// listener and abort every connection task.
async fn serve(listener: TcpListener, service: S3Service, mut shutdown: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let service = service.clone();
                    connections.spawn(async move {
                        let served = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(err) = served {
                            tracing::debug!(%peer, error = %err, "embedded s3 connection error");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "embedded s3 accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let in_flight = connections.len();
    connections.shutdown().await;
    tracing::debug!(in_flight, "embedded s3 connections dropped");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A fresh, empty directory under the system temp dir.
    pub(crate) fn scratch_dir(name: &str) -> PathBuf {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "embedded-s3-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    async fn raw_get(port: u16, path: &str) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    #[tokio::test]
    async fn enforces_auth_stops_and_restarts_on_the_same_port() {
        let dir = scratch_dir("lifecycle");
        let s3 = EmbeddedS3::start(&dir, 0, S3Config::default())
            .await
            .unwrap();
        let port = s3.port();
        assert_ne!(port, 0);
        assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{port}"));
        assert_eq!(s3.root(), std::fs::canonicalize(&dir).unwrap());

        s3.create_bucket("traces").unwrap();
        s3.create_bucket("traces").unwrap(); // idempotent
        assert!(dir.join("traces").is_dir());
        assert!(matches!(
            s3.create_bucket("../escape"),
            Err(EmbeddedS3Error::InvalidBucketName(_))
        ));

        // Unsigned requests are refused.
        let response = raw_get(port, "/").await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        let response = raw_get(port, "/traces?list-type=2").await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");

        // A connection that is open (idle, keep-alive) when stop() runs is dropped too.
        let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        let (root, config) = (s3.root().to_path_buf(), s3.config().clone());
        s3.stop().await;
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .is_err()
        );
        let mut buf = [0_u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .expect("idle connection was not closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

        let s3 = EmbeddedS3::start(root, port, config).await.unwrap();
        assert_eq!(s3.port(), port);
        let response = raw_get(port, "/").await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        assert!(dir.join("traces").is_dir());

        let s3 = s3.restart().await.unwrap();
        assert_eq!(s3.port(), port);
        let response = raw_get(port, "/").await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        s3.stop().await;

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_busy_port_is_a_bind_error() {
        let dir = scratch_dir("busy");
        let s3 = EmbeddedS3::start(&dir, 0, S3Config::default())
            .await
            .unwrap();
        let second = EmbeddedS3::start(&dir, s3.port(), S3Config::default()).await;
        assert!(
            matches!(second, Err(EmbeddedS3Error::Bind { .. })),
            "{second:?}"
        );
        s3.stop().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
