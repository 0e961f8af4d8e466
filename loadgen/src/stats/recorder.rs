//! The run recorder: every finished request lands here.
//!
//! Latency is recorded twice: from the request's intended send time (coordinated-omission
//! corrected, as wrk2 does) and from its actual send time. The gap between the two is the
//! schedule lag. The scheduler also reports, per request, how that lag arose
//! ([`Recorder::pace`]): waiting for a free in-flight slot while every slot was busy on the
//! backend, or the generator itself running late with a slot free.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::hist;
use crate::exporter::{OutcomeClass, SendResult};
use crate::report::model::{LatencyPair, SecondPoint, Totals};

/// Per-second accumulators.
struct Second {
    offered: u64,
    sent: u64,
    accepted: u64,
    errors: u64,
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    max_lag_us: u64,
    slots_full_us: u64,
    behind_us: u64,
}

impl Second {
    fn new() -> Self {
        Second {
            offered: 0,
            sent: 0,
            accepted: 0,
            errors: 0,
            corrected: hist::new_with_max_sigfig(3_600_000_000, 2),
            uncorrected: hist::new_with_max_sigfig(3_600_000_000, 2),
            max_lag_us: 0,
            slots_full_us: 0,
            behind_us: 0,
        }
    }
}

struct Inner {
    totals: Totals,
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    lag: Histogram<u64>,
    seconds: BTreeMap<u32, Second>,
    pace: PaceTotals,
}

/// Where the schedule lost time over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceTotals {
    /// Due requests waiting for a free in-flight slot (every slot busy on the backend).
    pub slots_full: Duration,
    /// The generator behind its schedule with a slot free.
    pub generator_behind: Duration,
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Second of the run its intended time falls in.
    pub second: u32,
    /// Spans in the request.
    pub spans: u64,
    /// Body bytes.
    pub bytes: u64,
    /// Intended send → answer.
    pub corrected: Duration,
    /// Actual send → answer.
    pub uncorrected: Duration,
    /// Intended → actual send.
    pub lag: Duration,
    /// Classified answer.
    pub result: SendResult,
}

/// Thread-safe run statistics.
pub struct Recorder {
    inner: Mutex<Inner>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl Recorder {
    /// Empty.
    pub fn new() -> Self {
        Recorder {
            inner: Mutex::new(Inner {
                totals: Totals::default(),
                corrected: hist::new_us(),
                uncorrected: hist::new_us(),
                lag: hist::new_us(),
                seconds: BTreeMap::new(),
                pace: PaceTotals::default(),
            }),
        }
    }

    /// Count spans the schedule offered in `second` (whether or not they were sent).
    pub fn offered(&self, second: u32, spans: u64, traces: u64) {
        let mut g = self.inner.lock();
        g.totals.requests_planned += 1;
        g.totals.traces_sent += traces;
        g.seconds.entry(second).or_insert_with(Second::new).offered += spans;
    }

    /// Record a finished request.
    pub fn observe(&self, o: &Observation) {
        let mut g = self.inner.lock();
        let accepted = o.result.class.accepted();
        let accepted_spans = if accepted {
            o.spans.saturating_sub(o.result.rejected_spans)
        } else {
            0
        };
        {
            let t = &mut g.totals;
            t.requests_sent += 1;
            t.spans_sent += o.spans;
            t.bytes_sent += o.bytes;
            t.spans_accepted += accepted_spans;
            if accepted {
                t.requests_ok += 1;
            }
            if o.result.class == OutcomeClass::Partial {
                t.spans_rejected_partial += o.result.rejected_spans;
            }
            *t.outcomes
                .entry(o.result.class.as_str().to_owned())
                .or_insert(0) += 1;
            if let Some(m) = &o.result.message {
                let key: String = m.chars().take(160).collect();
                if t.error_messages.contains_key(&key) || t.error_messages.len() < 10 {
                    *t.error_messages.entry(key).or_insert(0) += 1;
                }
            }
        }
        hist::record(&mut g.corrected, us(o.corrected));
        hist::record(&mut g.uncorrected, us(o.uncorrected));
        hist::record(&mut g.lag, us(o.lag));
        let s = g.seconds.entry(o.second).or_insert_with(Second::new);
        s.sent += o.spans;
        s.accepted += accepted_spans;
        if !accepted {
            s.errors += 1;
        }
        hist::record(&mut s.corrected, us(o.corrected));
        hist::record(&mut s.uncorrected, us(o.uncorrected));
        s.max_lag_us = s.max_lag_us.max(us(o.lag));
    }

    /// How the request due in `second` came to leave late: `slots_full` waiting for a
    /// free in-flight slot, `generator_behind` produced late while a slot was free.
    pub fn pace(&self, second: u32, slots_full: Duration, generator_behind: Duration) {
        if slots_full.is_zero() && generator_behind.is_zero() {
            return;
        }
        let mut g = self.inner.lock();
        g.pace.slots_full += slots_full;
        g.pace.generator_behind += generator_behind;
        let s = g.seconds.entry(second).or_insert_with(Second::new);
        s.slots_full_us += us(slots_full);
        s.behind_us += us(generator_behind);
    }

    /// Where the schedule lost time so far.
    pub fn pace_totals(&self) -> PaceTotals {
        self.inner.lock().pace
    }

    /// Totals so far.
    pub fn totals(&self) -> Totals {
        self.inner.lock().totals.clone()
    }

    /// Corrected p99 so far, ms (for the progress line).
    pub fn p99_ms(&self) -> f64 {
        let g = self.inner.lock();
        if g.corrected.is_empty() {
            0.0
        } else {
            g.corrected.value_at_quantile(0.99) as f64 / 1000.0
        }
    }

    /// Export latency summaries.
    pub fn latency(&self) -> LatencyPair {
        let g = self.inner.lock();
        LatencyPair {
            corrected: hist::percentiles(&g.corrected, 1000.0),
            uncorrected: hist::percentiles(&g.uncorrected, 1000.0),
        }
    }

    /// Schedule lag histogram (µs).
    pub fn lag(&self) -> Histogram<u64> {
        self.inner.lock().lag.clone()
    }

    /// Serialized histograms by report name.
    pub fn histograms(&self) -> BTreeMap<String, String> {
        let g = self.inner.lock();
        BTreeMap::from([
            ("export_corrected_us".to_owned(), hist::encode(&g.corrected)),
            (
                "export_uncorrected_us".to_owned(),
                hist::encode(&g.uncorrected),
            ),
            ("schedule_lag_us".to_owned(), hist::encode(&g.lag)),
        ])
    }

    /// The per-second series.
    pub fn series(&self) -> Vec<SecondPoint> {
        let g = self.inner.lock();
        let q = |h: &Histogram<u64>, p: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(p) as f64 / 1000.0
            }
        };
        g.seconds
            .iter()
            .map(|(t, s)| SecondPoint {
                t: *t,
                spans_offered: s.offered,
                spans_sent: s.sent,
                spans_accepted: s.accepted,
                errors: s.errors,
                p50_ms: q(&s.corrected, 0.5),
                p99_ms: q(&s.corrected, 0.99),
                p99_uncorrected_ms: q(&s.uncorrected, 0.99),
                max_lag_ms: s.max_lag_us as f64 / 1000.0,
                slots_full_ms: s.slots_full_us as f64 / 1000.0,
                generator_behind_ms: s.behind_us as f64 / 1000.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn obs(second: u32, class: OutcomeClass, ms: u64, lag_ms: u64) -> Observation {
        Observation {
            second,
            spans: 100,
            bytes: 1000,
            corrected: Duration::from_millis(ms + lag_ms),
            uncorrected: Duration::from_millis(ms),
            lag: Duration::from_millis(lag_ms),
            result: SendResult {
                class,
                rejected_spans: if class == OutcomeClass::Partial {
                    10
                } else {
                    0
                },
                retry_after: None,
                message: (class != OutcomeClass::Ok).then(|| "boom".to_owned()),
            },
        }
    }

    #[test]
    fn totals_series_and_both_latencies() {
        let r = Recorder::new();
        r.offered(0, 100, 100);
        r.observe(&obs(0, OutcomeClass::Ok, 2, 0));
        r.observe(&obs(0, OutcomeClass::Partial, 2, 0));
        r.observe(&obs(1, OutcomeClass::RateLimited, 2, 1000));
        let t = r.totals();
        assert_eq!((t.requests_sent, t.requests_ok, t.spans_sent), (3, 2, 300));
        assert_eq!(t.spans_accepted, 190);
        assert_eq!(t.spans_rejected_partial, 10);
        assert_eq!(t.outcomes["rate_limited"], 1);
        assert_eq!(t.error_messages["boom"], 2);
        let l = r.latency();
        assert!(
            l.corrected.max >= 1000.0 && l.uncorrected.max < 3.0,
            "{l:?}"
        );
        let s = r.series();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].spans_offered, s[0].spans_accepted, s[1].errors),
            (100, 190, 1)
        );
        assert!(s[1].max_lag_ms >= 1000.0);
    }

    #[test]
    fn pace_is_kept_per_second_and_in_total() {
        let r = Recorder::new();
        r.pace(0, Duration::from_millis(30), Duration::ZERO);
        r.pace(0, Duration::from_millis(20), Duration::from_millis(1));
        r.pace(2, Duration::ZERO, Duration::from_millis(5));
        r.pace(3, Duration::ZERO, Duration::ZERO);
        let t = r.pace_totals();
        assert_eq!(t.slots_full, Duration::from_millis(50));
        assert_eq!(t.generator_behind, Duration::from_millis(6));
        let s = r.series();
        assert_eq!(s.len(), 2, "a request on time adds no second: {s:?}");
        assert_eq!((s[0].slots_full_ms, s[0].generator_behind_ms), (50.0, 1.0));
        assert_eq!((s[1].t, s[1].generator_behind_ms), (2, 5.0));
    }
}
