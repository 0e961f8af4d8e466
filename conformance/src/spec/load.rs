//! Reading target files: plain YAML, or a file that `extends` another (maps merged key by
//! key, `null` removing an inherited key).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::TargetFile;
use crate::error::{Error, Result};

/// How deep `extends` may chain (a loop is an error long before this).
const MAX_DEPTH: usize = 8;

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::TargetFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Parse one file's text (errors name the key, line and column).
pub fn parse_text(text: &str, path: &Path) -> Result<TargetFile> {
    serde_saphyr::from_str(text).map_err(|e| err(path, e.to_string()))
}

/// Read `path`, following `extends`.
pub fn load(path: &Path) -> Result<TargetFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value = yaml_value(&text, path)?;
    if value.get("extends").is_none() {
        return parse_text(&text, path);
    }
    let merged = resolve(value, path, &mut vec![path.to_path_buf()])?;
    let text = serde_saphyr::to_string(&merged)
        .map_err(|e| err(path, format!("cannot write the merged file: {e}")))?;
    let mut file: TargetFile = serde_saphyr::from_str(&text).map_err(|e| {
        err(
            path,
            format!("{e} (in the file merged with what it extends)"),
        )
    })?;
    file.extends = None;
    Ok(file)
}

fn yaml_value(text: &str, path: &Path) -> Result<Value> {
    match serde_saphyr::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(err(path, "a target file is a YAML map")),
        Err(e) => Err(err(path, e.to_string())),
    }
}

/// `value` (read from `path`) with everything it extends merged under it.
fn resolve(mut value: Value, path: &Path, chain: &mut Vec<PathBuf>) -> Result<Value> {
    let Some(Value::Object(map)) = Some(&mut value) else {
        return Ok(value);
    };
    let Some(extends) = map.remove("extends") else {
        return Ok(value);
    };
    let Value::String(rel) = extends else {
        return Err(err(path, "`extends` is a path to another target file"));
    };
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&rel);
    if chain.iter().any(|p| p == &base_path) || chain.len() >= MAX_DEPTH {
        return Err(err(
            path,
            format!(
                "`extends` loops or chains too deep at {}",
                base_path.display()
            ),
        ));
    }
    chain.push(base_path.clone());
    let text = std::fs::read_to_string(&base_path).map_err(|e| Error::io(&base_path, e))?;
    let mut base = resolve(yaml_value(&text, &base_path)?, &base_path, chain)?;
    merge(&mut base, value);
    Ok(base)
}

/// `overlay` over `base`: maps key by key, `null` removes the key, anything else replaces.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const BASE: &str = "name: base\nkind: remote\nurls: {query: 'http://a'}\n\
        capabilities: [otlp_grpc, gzip]\nopt_outs: {ingest.gzip: no gzip, search: none}\n\
        config: |\n  a: 1\n  b: 2\n";

    #[test]
    fn extends_merges_maps_replaces_lists_and_null_removes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
        let child = dir.path().join("child.yaml");
        std::fs::write(
            &child,
            "extends: base.yaml\nname: child\ncapabilities: [otlp_grpc]\nopt_outs: {search: null, query: later}\n",
        )
        .unwrap();
        let f = TargetFile::load(&child).unwrap();
        assert_eq!(f.name, "child");
        assert_eq!(f.capabilities.len(), 1);
        assert_eq!(f.opt_outs.len(), 2, "{:?}", f.opt_outs);
        assert_eq!(f.opt_out("ingest.gzip"), Some("no gzip"));
        assert_eq!(f.opt_out("search.limit"), None);
        assert_eq!(f.config.as_deref(), Some("a: 1\nb: 2\n"));
        assert!(f.extends.is_none());
    }

    #[test]
    fn unknown_keys_and_loops_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
        let child = dir.path().join("child.yaml");
        std::fs::write(&child, "extends: base.yaml\nrelase: 1\n").unwrap();
        let e = TargetFile::load(&child).unwrap_err().to_string();
        assert!(e.contains("relase") && e.contains("merged"), "{e}");
        let a = dir.path().join("a.yaml");
        std::fs::write(&a, "extends: b.yaml\nname: a\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "extends: a.yaml\nname: b\n").unwrap();
        let e = TargetFile::load(&a).unwrap_err().to_string();
        assert!(e.contains("loops"), "{e}");
        assert!(
            TargetFile::parse(
                "extends: x.yaml\nname: x\nkind: remote\nurls: {query: 'http://a'}\n"
            )
            .is_err()
        );
    }
}
