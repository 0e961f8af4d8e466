//! Optional measurements taken beside the load: `query_load` (queries sent while ingesting)
//! and `sizing` (what the hold stages say about cluster size).

use serde::{Deserialize, Serialize};

/// `query_load`: queries per second sent while ingesting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryLoad {
    /// Trace-by-id lookups per second (ids of traces already sent).
    #[serde(default)]
    pub trace_by_id_per_second: f64,
    /// Tag searches per second.
    #[serde(default)]
    pub search_per_second: f64,
}

impl QueryLoad {
    /// Both rates finite and ≥ 0.
    pub fn check(&self) -> Result<(), String> {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if ok(self.trace_by_id_per_second) && ok(self.search_per_second) {
            Ok(())
        } else {
            Err("query_load: trace_by_id_per_second and search_per_second must be ≥ 0".into())
        }
    }
}

/// `sizing`: turn the hold stages of a stepped run into a cluster size.
///
/// Each hold stage (a stage whose start and end rates are equal) becomes one step of the
/// report's sizing table; the highest step that held, with the backend CPU and RSS
/// measured there, gives the nodes needed for `target_spans_per_s`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sizing {
    /// The load the cluster must take, spans/s; without it only the per-node figures are
    /// reported.
    #[serde(default)]
    pub target_spans_per_s: Option<f64>,
    /// Fraction of a node's highest passing rate kept free (0.2: run each node at ≤ 80 %).
    #[serde(default = "default_headroom")]
    pub headroom: f64,
}

fn default_headroom() -> f64 {
    0.2
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing {
            target_spans_per_s: None,
            headroom: default_headroom(),
        }
    }
}

impl Sizing {
    /// Target above 0 when set; headroom in `[0, 1)`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = self.target_spans_per_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err("sizing.target_spans_per_s must be above 0".into());
        }
        if !(self.headroom.is_finite() && (0.0..1.0).contains(&self.headroom)) {
            return Err("sizing.headroom must be at least 0 and below 1 (0.2 = 20 %)".into());
        }
        Ok(())
    }
}
