#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests over TCP with SigV4-signed requests.
//!
//! The crate has no S3 client dependency, so this file carries a minimal SigV4 signer written
//! from the AWS specification (SHA-256 comes from `s3s::crypto`, HMAC is built on top of it).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use embedded_s3::{EmbeddedS3, S3Config};
use s3s::crypto::{Checksum as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "embedded-s3-it-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::checksum(data)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0_u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&sha256(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(&block_key.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(&block_key.map(|b| b ^ 0x5c));
    outer.update(&inner);
    outer.finalize()
}

/// AWS URI encoding: unreserved characters stay, everything else is `%XX`.
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b'/' if !encode_slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// (`YYYYMMDDTHHMMSSZ`, `YYYYMMDD`) for now, UTC.
fn amz_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap();
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    (format!("{date}T{time}Z"), date)
}

struct Response {
    status: u16,
    body: String,
}

/// A one-request-per-connection HTTP/1.1 client that signs with SigV4.
struct Client {
    port: u16,
    config: S3Config,
}

impl Client {
    /// The signed request head (request line and headers) for `body`.
    fn head(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let host = format!("127.0.0.1:{}", self.port);
        let (amz_date, date) = amz_now();
        let payload_hash = hex(&sha256(body));

        // The query is sent exactly as it is signed (encoded, in the given order).
        let wire_query = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect::<Vec<_>>()
            .join("&");
        let mut canonical_query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect();
        canonical_query.sort();
        let canonical_query = canonical_query.join("&");

        let mut headers: Vec<(String, String)> = vec![
            ("host".to_owned(), host.clone()),
            ("x-amz-content-sha256".to_owned(), payload_hash.clone()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        headers.extend(
            extra_headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())),
        );
        headers.sort();
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed_headers = headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");

        let canonical_path = uri_encode(path, false);
        let canonical_request = format!(
            "{method}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.config.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&sha256(canonical_request.as_bytes()))
        );
        let key = [
            date.as_str(),
            self.config.region.as_str(),
            "s3",
            "aws4_request",
        ]
        .iter()
        .fold(
            format!("AWS4{}", self.config.secret_key).into_bytes(),
            |key, part| hmac_sha256(&key, part.as_bytes()).to_vec(),
        );
        let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.config.access_key
        );

        let target = if wire_query.is_empty() {
            canonical_path
        } else {
            format!("{canonical_path}?{wire_query}")
        };
        let mut request = format!("{method} {target} HTTP/1.1\r\n");
        for (k, v) in &headers {
            let _ = write!(request, "{k}: {v}\r\n");
        }
        let _ = write!(
            request,
            "authorization: {authorization}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        request
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let head = self.head(method, path, query, extra_headers, body);
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad response: {raw}"));
        Response {
            status,
            body: body.to_owned(),
        }
    }
}

#[tokio::test]
async fn signed_requests_work_and_empty_delimiter_means_no_delimiter() {
    let dir = scratch_dir("signed");
    let s3 = EmbeddedS3::start(&dir, 0, S3Config::default())
        .await
        .unwrap();
    s3.create_bucket("traces").unwrap();
    let client = Client {
        port: s3.port(),
        config: s3.config().clone(),
    };

    // ListBuckets.
    let r = client.send("GET", "/", &[], &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<Name>traces</Name>"), "{}", r.body);

    // A wrong secret is rejected.
    let wrong = Client {
        port: s3.port(),
        config: S3Config {
            secret_key: "nope".to_owned(),
            ..S3Config::default()
        },
    };
    let r = wrong.send("GET", "/", &[], &[], b"").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("SignatureDoesNotMatch"), "{}", r.body);

    // PutObject / GetObject.
    for key in [
        "single-tenant/block-1/meta.json",
        "single-tenant/index.json.gz",
        "top.txt",
    ] {
        let r = client
            .send("PUT", &format!("/traces/{key}"), &[], &[], key.as_bytes())
            .await;
        assert_eq!(r.status, 200, "{key}: {}", r.body);
    }
    let r = client
        .send(
            "GET",
            "/traces/single-tenant/block-1/meta.json",
            &[],
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "single-tenant/block-1/meta.json");

    // ListObjectsV2 as minio-go sends it: `delimiter=` empty is signed and must validate, and
    // must list recursively without bogus one-character common prefixes.
    let r = client
        .send(
            "GET",
            "/traces",
            &[
                ("delimiter", ""),
                ("encoding-type", "url"),
                ("fetch-owner", "true"),
                ("list-type", "2"),
                ("prefix", "single-tenant/"),
            ],
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("<Key>single-tenant/block-1/meta.json</Key>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<Key>single-tenant/index.json.gz</Key>"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<CommonPrefixes>"), "{}", r.body);
    assert!(!r.body.contains("top.txt"), "{}", r.body);

    // ListObjects (v1) with an empty delimiter.
    let r = client
        .send(
            "GET",
            "/traces",
            &[("delimiter", ""), ("prefix", "")],
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.matches("<Key>").count(), 3, "{}", r.body);
    assert!(!r.body.contains("<CommonPrefixes>"), "{}", r.body);

    // A real delimiter still groups.
    let r = client
        .send(
            "GET",
            "/traces",
            &[("delimiter", "/"), ("list-type", "2")],
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<Prefix>single-tenant/</Prefix>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<Key>top.txt</Key>"), "{}", r.body);
    assert!(!r.body.contains("meta.json"), "{}", r.body);

    s3.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn conditional_put_if_none_match() {
    let dir = scratch_dir("conditional");
    let s3 = EmbeddedS3::start(&dir, 0, S3Config::default())
        .await
        .unwrap();
    s3.create_bucket("traces").unwrap();
    let client = Client {
        port: s3.port(),
        config: s3.config().clone(),
    };
    let if_none_match = [("If-None-Match", "*")];

    let r = client
        .send("PUT", "/traces/once", &[], &if_none_match, b"first")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = client
        .send("PUT", "/traces/once", &[], &if_none_match, b"second")
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(r.body.contains("PreconditionFailed"), "{}", r.body);

    let r = client.send("GET", "/traces/once", &[], &[], b"").await;
    assert_eq!(r.body, "first");

    s3.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn data_survives_stop_and_start_on_the_same_port() {
    let dir = scratch_dir("outage");
    let s3 = EmbeddedS3::start(&dir, 0, S3Config::default())
        .await
        .unwrap();
    s3.create_bucket("traces").unwrap();
    let client = Client {
        port: s3.port(),
        config: s3.config().clone(),
    };
    let r = client.send("PUT", "/traces/kept", &[], &[], b"kept").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // An upload in flight when the server stops: headers and half of the body are sent.
    let body = vec![b'x'; 64 * 1024];
    let mut in_flight = TcpStream::connect((Ipv4Addr::LOCALHOST, s3.port()))
        .await
        .unwrap();
    let head = client.head("PUT", "/traces/cut-off", &[], &[], &body);
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let (root, port, config) = (s3.root().to_path_buf(), s3.port(), s3.config().clone());
    s3.stop().await;
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_err()
    );
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        in_flight.read_to_end(&mut buf),
    )
    .await
    .expect("in-flight connection was not closed");
    assert!(
        buf.is_empty() || read.is_err(),
        "unexpected response: {}",
        String::from_utf8_lossy(&buf)
    );

    let s3 = EmbeddedS3::start(root, port, config).await.unwrap();
    let r = client.send("GET", "/traces/kept", &[], &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "kept");
    let r = client.send("GET", "/traces/cut-off", &[], &[], b"").await;
    assert_eq!(r.status, 404, "{}", r.body);

    s3.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
