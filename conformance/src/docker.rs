//! Is a Docker engine there? A time-bounded ping through the `bollard` client that
//! testcontainers re-exports, so MinIO stores and container targets can skip with a reason.

use std::time::Duration;

use testcontainers_modules::testcontainers::bollard::Docker;

/// How long the ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// `Ok(())` when a Docker engine answers a ping; else why not, in one line.
pub async fn available() -> Result<(), String> {
    let docker = Docker::connect_with_defaults().map_err(|e| format!("docker unavailable: {e}"))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("docker unavailable: {e}")),
        Err(_) => Err(format!(
            "docker unavailable: no answer to a ping within {}s",
            PING_TIMEOUT.as_secs()
        )),
    }
}

/// True when `TRACEBENCH_REQUIRE_DOCKER=1`: a missing engine is then a failure, not a skip.
pub fn required() -> bool {
    std::env::var("TRACEBENCH_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}
