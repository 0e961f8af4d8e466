//! Declared deviations: a case a target is known to fail, why, and what the failure looks
//! like. The case still runs; a failure matching the declaration is reported as a known
//! deviation, a pass or any other failure fails the run.

use serde::{Deserialize, Serialize};

/// A case the target is known to fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// Why: what the target does instead, and where that was seen or documented.
    pub reason: String,
    /// A regular expression the failure reason must match (so a different failure of the same
    /// case is not taken for the known one).
    pub matches: String,
}

impl Deviation {
    /// Does `failure` (a case's failure reason) look like this deviation?
    pub fn matches_failure(&self, failure: &str) -> bool {
        regex::Regex::new(&self.matches).is_ok_and(|re| re.is_match(failure))
    }

    /// `Err(message)` when `matches` is not a regular expression.
    pub fn check(&self) -> Result<(), String> {
        regex::Regex::new(&self.matches)
            .map(|_| ())
            .map_err(|e| format!("`matches` is not a regular expression: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn matching_is_a_regex_search() {
        let d = Deviation {
            reason: "r".into(),
            matches: "gRPC code (12|13)".into(),
        };
        assert!(d.matches_failure("write over grpc refused: gRPC code 13: invalid"));
        assert!(!d.matches_failure("not found"));
        assert!(d.check().is_ok());
        let bad = Deviation {
            reason: "r".into(),
            matches: "(".into(),
        };
        assert!(bad.check().unwrap_err().contains("regular expression"));
        assert!(!bad.matches_failure("("));
    }
}
