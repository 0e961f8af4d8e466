//! Create an S3 bucket with one SigV4-signed `PUT /{bucket}` (path style). Tempo creates no
//! buckets, so the harness does it for every S3 store (embedded, MinIO, any endpoint).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Where and as whom to create the bucket.
#[derive(Debug, Clone)]
pub struct S3Access {
    /// `http://host:port`.
    pub url: String,
    /// Bucket name.
    pub bucket: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Region signed for.
    pub region: String,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `20261125T165803Z` for now.
fn amz_date() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "")
}

/// The `Authorization` header of a request with an empty body.
fn authorization(a: &S3Access, method: &str, host: &str, path: &str, date: &str) -> String {
    let day = &date[..8];
    let payload = sha256_hex(b"");
    let canonical = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}"
    );
    let scope = format!("{day}/{}/s3/aws4_request", a.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k = hmac(format!("AWS4{}", a.secret_key).as_bytes(), day);
    let k = hmac(&k, &a.region);
    let k = hmac(&k, "s3");
    let k = hmac(&k, "aws4_request");
    let signature = hex::encode(hmac(&k, &to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
        a.access_key
    )
}

/// Create the bucket; an existing bucket of ours is fine.
pub async fn create_bucket(a: &S3Access) -> Result<(), String> {
    let url = reqwest::Url::parse(&a.url).map_err(|e| format!("bad S3 URL {:?}: {e}", a.url))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => return Err(format!("S3 URL {:?} has no host", a.url)),
    };
    let path = format!("/{}", a.bucket);
    let date = amz_date();
    let resp = reqwest::Client::new()
        .put(format!("{}{path}", a.url.trim_end_matches('/')))
        .header("host", &host)
        .header("x-amz-date", &date)
        .header("x-amz-content-sha256", sha256_hex(b""))
        .header(
            "authorization",
            authorization(a, "PUT", &host, &path, &date),
        )
        .send()
        .await
        .map_err(|e| format!("create bucket {}: {e}", a.bucket))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    // An existing bucket is fine: BucketAlreadyOwnedByYou (AWS, MinIO) or BucketAlreadyExists
    // (s3s). A bucket we cannot use shows up at the first write with a clear error.
    if (200..300).contains(&status)
        || (status == 409
            && (body.contains("BucketAlreadyOwnedByYou") || body.contains("BucketAlreadyExists")))
    {
        Ok(())
    } else {
        Err(format!(
            "create bucket {}: HTTP {status}: {}",
            a.bucket,
            body.chars().take(300).collect::<String>()
        ))
    }
}
