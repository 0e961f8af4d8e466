//! Every bundled target file parses, and its config renders (with each profile) into YAML the
//! target would read; reference configs parse as configs of their release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::spec::{TargetFile, TargetKind};
use conformance::store::StoreInfo;
use conformance::target::{Launch, Ports, render_config};
use reference_backend::release::{ReleaseId, config_rules};

#[test]
fn bundled_targets_load_and_render() {
    let dir = common::target_path("x").parent().unwrap().to_path_buf();
    // Nothing is written there: configs are only rendered.
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        seen += 1;
        let file = TargetFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let stores = [
            StoreInfo::Local {
                path: scratch.path().join("store"),
            },
            StoreInfo::S3 {
                url: "http://127.0.0.1:9000".into(),
                bucket: "b".into(),
                access_key: "a".into(),
                secret_key: "s".into(),
                region: "us-east-1".into(),
            },
        ];
        let mut profiles: Vec<Option<String>> = vec![None];
        profiles.extend(file.profiles.keys().cloned().map(Some));
        for (store, profile) in stores
            .iter()
            .flat_map(|s| profiles.iter().map(move |p| (s, p)))
        {
            let launch = Launch {
                store: store.clone(),
                data_dir: scratch.path().join("data"),
                profile: profile.clone(),
                ports: Ports {
                    http: 3200,
                    grpc: 4317,
                    otlp_http: 4318,
                    internal_grpc: 9095,
                },
            };
            let text = render_config(&file, &launch, launch.ports, &scratch.path().join("c.yaml"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if file.kind == TargetKind::Reference {
                let release = ReleaseId::from_number(file.release.unwrap()).unwrap();
                let parsed = config_rules::parse(&text, release)
                    .unwrap_or_else(|e| panic!("{} {profile:?}: {e}\n{text}", path.display()));
                // Each bundled release's config is in that release's own spelling.
                assert!(
                    parsed.warnings.is_empty(),
                    "{}: {:?}",
                    path.display(),
                    parsed.warnings
                );
            } else if file.kind != TargetKind::Remote {
                assert!(
                    text.contains("http_listen_port: 3200"),
                    "{}:\n{text}",
                    path.display()
                );
                if matches!(store, StoreInfo::S3 { .. }) {
                    assert!(text.contains("endpoint: 127.0.0.1:9000"), "{text}");
                }
                // Every path the target writes is inside this run's directories (Tempo's
                // defaults are under /var/tempo, shared between runs).
                let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
                let mut paths = Vec::new();
                absolute_paths(&v, &mut paths);
                for p in &paths {
                    assert!(
                        p.starts_with(&scratch.path().display().to_string()),
                        "{} {profile:?}: {p} is outside the run's directories",
                        path.display()
                    );
                }
                // Each place Tempo keeps state is set (each has a /var/tempo default).
                let keys: &[&str] = match file.config_file.as_deref().and_then(|p| p.to_str()) {
                    Some("configs/tempo-3.0.yaml") => &[
                        "/live_store/wal/path",
                        "/live_store/shutdown_marker_dir",
                        "/backend_scheduler/local_work_path",
                        "/metrics_generator/storage/path",
                        "/storage/trace/wal/path",
                    ],
                    Some("configs/tempo-2.10.yaml") => &[
                        "/backend_scheduler/local_work_path",
                        "/metrics_generator/storage/path",
                        "/metrics_generator/traces_storage/path",
                        "/storage/trace/wal/path",
                    ],
                    _ => &[],
                };
                for k in keys {
                    assert!(
                        v.pointer(k)
                            .and_then(|x| x.as_str())
                            .is_some_and(|x| paths.iter().any(|p| p == x)),
                        "{}: {k} not set inside the run's directories",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(seen >= 9, "only {seen} target files");
}

fn absolute_paths(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if s.starts_with('/') => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| absolute_paths(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| absolute_paths(x, out)),
        _ => {}
    }
}
