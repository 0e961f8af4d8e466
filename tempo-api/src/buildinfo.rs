//! `GET /api/status/buildinfo` (note: not `/status/buildinfo`).

use serde::{Deserialize, Serialize};

/// Build information as Tempo reports it. All fields default to empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BuildInfo {
    /// Release version, e.g. `2.10.1`.
    pub version: String,
    /// Git revision.
    pub revision: String,
    /// Git branch.
    pub branch: String,
    /// Build date.
    pub build_date: String,
    /// Build user.
    pub build_user: String,
    /// Go toolchain version.
    pub go_version: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn field_names() {
        let b = BuildInfo {
            version: "2.10.1".into(),
            revision: "abc".into(),
            branch: "HEAD".into(),
            build_date: "2026-01-26".into(),
            build_user: "ci".into(),
            go_version: "go1.25".into(),
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            json!({"version": "2.10.1", "revision": "abc", "branch": "HEAD",
                "buildDate": "2026-01-26", "buildUser": "ci", "goVersion": "go1.25"})
        );
        let partial: BuildInfo =
            serde_json::from_value(json!({"version": "3.0.0", "extra": 1})).unwrap();
        assert_eq!(partial.version, "3.0.0");
        assert_eq!(partial.go_version, "");
    }
}
