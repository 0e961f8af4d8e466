//! Per-tenant ingestion rate limit: a token bucket over request bytes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by tenant.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` bytes/s sustained, `burst` bytes at once.
    pub fn new(rate: u64, burst: u64) -> Self {
        RateLimiter {
            rate: rate as f64,
            burst: burst as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take `size` bytes for `tenant`, or say when to retry.
    pub fn check(&self, tenant: &str, size: u64) -> Result<()> {
        let need = size as f64;
        if need > self.burst {
            return Err(Error::BatchTooLarge {
                tenant: tenant.to_owned(),
                size,
                burst: self.burst as u64,
            });
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let b = match buckets.get_mut(tenant) {
            Some(b) => b,
            None => buckets.entry(tenant.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                last: now,
            }),
        };
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= need {
            b.tokens -= need;
            return Ok(());
        }
        let wait = ((need - b.tokens) / self.rate).ceil().max(1.0);
        Err(Error::RateLimited {
            tenant: tenant.to_owned(),
            size,
            rate: self.rate as u64,
            burst: self.burst as u64,
            retry_after: Duration::from_secs(wait as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn burst_then_refuse_with_retry_after() {
        let l = RateLimiter::new(10, 100);
        l.check("a", 60).unwrap();
        l.check("a", 40).unwrap();
        let e = l.check("a", 50).unwrap_err();
        assert!(e.to_string().starts_with("RATE_LIMITED"), "{e}");
        assert!(e.retry_after().unwrap() >= Duration::from_secs(4));
        // Other tenants have their own bucket.
        l.check("b", 100).unwrap();
        let e = l.check("b", 101).unwrap_err();
        assert!(e.to_string().contains("exceeds ingestion limit"), "{e}");
    }
}
