//! Verdicts: what became of one case (pass, fail, skip, known deviation), one target's (or
//! one upgrade pair's) results, and how a declared deviation turns a verdict.

use serde::{Deserialize, Serialize};

use crate::cases::Skip;
use crate::spec::Deviation;

/// What became of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with why.
    Fail(String),
    /// Not run, with why.
    Skip(String),
    /// Failed the way the target file declares it does: not a failure of the run.
    KnownDeviation(KnownDeviation),
}

/// A declared deviation that occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDeviation {
    /// The declared reason.
    pub reason: String,
    /// What the case found this time.
    pub observed: String,
}

impl Outcome {
    /// Short label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Skip(_) => "skip",
            Outcome::KnownDeviation(_) => "known deviation",
        }
    }

    /// The reason of a failure, skip or known deviation.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(r) | Outcome::Skip(r) => Some(r),
            Outcome::KnownDeviation(d) => Some(&d.reason),
        }
    }
}

/// One case's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Case description.
    pub description: String,
    /// Verdict.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Time taken.
    pub seconds: f64,
}

/// The verdicts of one target (or one upgrade pair) on one store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetRun {
    /// Column title: target name, or `from → to`.
    pub target: String,
    /// Store spec.
    pub store: String,
    /// `run` or `upgrade`.
    pub command: String,
    /// Things worth knowing (versions, forced stops, availability gap).
    pub notes: Vec<String>,
    /// One entry per selected case.
    pub results: Vec<CaseResult>,
}

impl TargetRun {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.results
            .iter()
            .all(|r| !matches!(r.outcome, Outcome::Fail(_)))
    }

    /// The verdict of case `id`, if selected.
    pub fn outcome(&self, id: &str) -> Option<&Outcome> {
        self.results.iter().find(|r| r.id == id).map(|r| &r.outcome)
    }
}

/// How many cases ended which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Failed as declared.
    pub known_deviations: usize,
}

impl Counts {
    /// Count `results`.
    pub fn of<'a>(results: impl IntoIterator<Item = &'a CaseResult>) -> Self {
        let mut c = Counts::default();
        for r in results {
            match r.outcome {
                Outcome::Pass => c.passed += 1,
                Outcome::Fail(_) => c.failed += 1,
                Outcome::Skip(_) => c.skipped += 1,
                Outcome::KnownDeviation(_) => c.known_deviations += 1,
            }
        }
        c
    }

    /// `38 passed, 0 failed, 7 known deviations, 3 skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} known deviation{}, {} skipped",
            self.passed,
            self.failed,
            self.known_deviations,
            if self.known_deviations == 1 { "" } else { "s" },
            self.skipped
        )
    }
}

/// A case verdict from a case body's result.
pub fn verdict(r: anyhow::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Pass,
        Err(e) => match e.downcast_ref::<Skip>() {
            Some(s) => Outcome::Skip(s.0.clone()),
            None => Outcome::Fail(format!("{e:#}")),
        },
    }
}

/// `outcome` of a case for which the target declares `deviation` (if any): a failure matching
/// the declaration becomes a known deviation; a pass, or a failure that looks different, fails
/// and says so. Skips stay skips.
pub fn judge(outcome: Outcome, deviation: Option<&Deviation>) -> Outcome {
    let Some(d) = deviation else {
        return outcome;
    };
    match outcome {
        Outcome::Fail(observed) if d.matches_failure(&observed) => {
            Outcome::KnownDeviation(KnownDeviation {
                reason: d.reason.clone(),
                observed,
            })
        }
        Outcome::Fail(observed) => Outcome::Fail(format!(
            "{observed} (a deviation is declared, but its failure should match /{}/: {})",
            d.matches, d.reason
        )),
        Outcome::Pass => Outcome::Fail(format!(
            "passed, but a deviation is declared (remove it from the target file if the target changed): {}",
            d.reason
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn declared_deviations_turn_verdicts() {
        let d = Deviation {
            reason: "gzip over gRPC is refused".into(),
            matches: "gRPC code 12".into(),
        };
        let known = judge(
            Outcome::Fail("grpc gzip refused: gRPC code 12: no".into()),
            Some(&d),
        );
        assert_eq!(
            known,
            Outcome::KnownDeviation(KnownDeviation {
                reason: d.reason.clone(),
                observed: "grpc gzip refused: gRPC code 12: no".into()
            })
        );
        assert_eq!(known.label(), "known deviation");
        let Outcome::Fail(why) = judge(Outcome::Pass, Some(&d)) else {
            panic!("a declared deviation that passes must fail");
        };
        assert!(why.contains("passed, but a deviation is declared"), "{why}");
        let Outcome::Fail(why) = judge(Outcome::Fail("not found".into()), Some(&d)) else {
            panic!("another failure must stay a failure");
        };
        assert!(
            why.starts_with("not found") && why.contains("gRPC code 12"),
            "{why}"
        );
        assert_eq!(judge(Outcome::Pass, None), Outcome::Pass);
        assert_eq!(
            judge(Outcome::Skip("s".into()), Some(&d)),
            Outcome::Skip("s".into())
        );
        let json = serde_json::to_value(&known).unwrap();
        assert_eq!(json["outcome"], "known_deviation");
        assert_eq!(
            json["reason"]["observed"],
            "grpc gzip refused: gRPC code 12: no"
        );
    }
}
