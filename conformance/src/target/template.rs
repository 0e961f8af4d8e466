//! Config templates: `{{placeholder}}` substitution, YAML deep merge (store and profile
//! overlays), free ports.

use std::collections::BTreeMap;
use std::net::TcpListener;

use serde_json::Value;

use crate::store::StoreInfo;

/// Ports a target listens on; 0 lets the harness (or the reference backend) choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    /// Query API.
    pub http: u16,
    /// OTLP gRPC.
    pub grpc: u16,
    /// OTLP HTTP.
    pub otlp_http: u16,
    /// A port for the target's own use, e.g. Tempo's internal gRPC server
    /// (`server.grpc_listen_port`); allocated again at every start.
    pub internal_grpc: u16,
}

impl Ports {
    /// Every 0 replaced by a port that is free right now.
    pub fn allocate(self) -> std::io::Result<Ports> {
        // Hold every listener until all are chosen, so no two ports are the same.
        let mut held = Vec::new();
        let mut pick = |p: u16| -> std::io::Result<u16> {
            if p != 0 {
                return Ok(p);
            }
            let l = TcpListener::bind("127.0.0.1:0")?;
            let port = l.local_addr()?.port();
            held.push(l);
            Ok(port)
        };
        Ok(Ports {
            http: pick(self.http)?,
            grpc: pick(self.grpc)?,
            otlp_http: pick(self.otlp_http)?,
            internal_grpc: pick(self.internal_grpc)?,
        })
    }
}

/// A port on 127.0.0.1 that was free when asked.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The placeholder names and values for one start.
pub fn variables(
    store: &StoreInfo,
    data_dir: &std::path::Path,
    ports: Ports,
    config_file: &std::path::Path,
    tenant: Option<&str>,
) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    v.insert("http_port", ports.http.to_string());
    v.insert("grpc_port", ports.grpc.to_string());
    v.insert("otlp_http_port", ports.otlp_http.to_string());
    v.insert("internal_grpc_port", ports.internal_grpc.to_string());
    v.insert("data_dir", data_dir.display().to_string());
    v.insert("config_file", config_file.display().to_string());
    v.insert("tenant", tenant.unwrap_or_default().to_owned());
    let (mut url, mut bucket, mut ak, mut sk, mut region, mut local) = Default::default();
    match store {
        StoreInfo::Local { path } => local = path.display().to_string(),
        StoreInfo::S3 {
            url: u,
            bucket: b,
            access_key,
            secret_key,
            region: r,
        } => {
            (url, bucket, ak, sk, region) = (
                u.clone(),
                b.clone(),
                access_key.clone(),
                secret_key.clone(),
                r.clone(),
            )
        }
    }
    v.insert("s3_endpoint", store.s3_host_port().unwrap_or_default());
    v.insert("s3_url", url);
    v.insert("s3_bucket", bucket);
    v.insert("s3_access_key", ak);
    v.insert("s3_secret_key", sk);
    v.insert("s3_region", region);
    v.insert("store_path", local);
    v
}

/// Replace every `{{name}}`; an unknown name is an error that lists the known ones.
pub fn render(text: &str, vars: &BTreeMap<&'static str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("unclosed `{{`".into());
        };
        let name = after[..close].trim();
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                let known: Vec<&str> = vars.keys().copied().collect();
                return Err(format!(
                    "unknown placeholder {{{{{name}}}}}; known: {}",
                    known.join(", ")
                ));
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(Value::Object(Default::default())),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("not YAML: {e}")),
    }
}

fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// `overlay` deep-merged over `base` (maps merge key by key; anything else replaces).
pub fn merge_yaml(base: &str, overlay: &str) -> Result<String, String> {
    let mut b = parse(base)?;
    let o = parse(overlay)?;
    merge(&mut b, o);
    serde_saphyr::to_string(&b).map_err(|e| format!("cannot write merged YAML: {e}"))
}

/// The `storage.trace` section that points a target at `store`.
pub fn storage_overlay(store: &StoreInfo) -> Value {
    let trace = match store {
        StoreInfo::Local { path } => serde_json::json!({
            "backend": "local",
            "local": { "path": path.display().to_string() },
        }),
        StoreInfo::S3 {
            bucket,
            access_key,
            secret_key,
            region,
            ..
        } => serde_json::json!({
            "backend": "s3",
            "s3": {
                "bucket": bucket,
                "endpoint": store.s3_host_port().unwrap_or_default(),
                "access_key": access_key,
                "secret_key": secret_key,
                "region": region,
                "insecure": true,
                "forcepathstyle": true,
            },
        }),
    };
    serde_json::json!({ "storage": { "trace": trace } })
}

/// `overlay` (a JSON value) deep-merged over YAML text.
pub fn merge_value(base: &str, overlay: Value) -> Result<String, String> {
    let mut b = parse(base)?;
    merge(&mut b, overlay);
    serde_saphyr::to_string(&b).map_err(|e| format!("cannot write merged YAML: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn placeholders_render_and_unknown_ones_are_named() {
        let mut v = BTreeMap::new();
        v.insert("http_port", "3200".to_string());
        assert_eq!(
            render("port: {{http_port}} {{ http_port }}", &v).unwrap(),
            "port: 3200 3200"
        );
        let e = render("x: {{nope}}", &v).unwrap_err();
        assert!(e.contains("nope") && e.contains("http_port"), "{e}");
    }

    #[test]
    fn overlays_merge_deeply() {
        let base = "server:\n  http_listen_port: 1\n  keep: kept\nlist: [1, 2]\nd: 5s\n";
        let merged = merge_yaml(base, "server:\n  http_listen_port: 2\nlist: [3]\n").unwrap();
        let v: Value = serde_saphyr::from_str(&merged).unwrap();
        assert_eq!(v["server"]["http_listen_port"], 2);
        assert_eq!(v["server"]["keep"], "kept");
        assert_eq!(v["list"], serde_json::json!([3]));
        assert_eq!(v["d"], "5s");
        let s = storage_overlay(&StoreInfo::S3 {
            url: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
            region: "r".into(),
        });
        let merged = merge_value("storage:\n  trace:\n    wal:\n      path: /w\n", s).unwrap();
        let c = reference_backend::Config::parse(&merged).unwrap();
        assert_eq!(c.storage.trace.s3.endpoint, "127.0.0.1:9000");
        assert_eq!(c.storage.trace.wal.path, std::path::PathBuf::from("/w"));
    }
}
