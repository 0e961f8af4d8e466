//! Cluster sizing from a stepped run: every hold stage is measured over its window (the
//! stage minus its first second, left to settle) from the per-second series and the
//! backend resource samples; the highest step that held, with its CPU and RSS, gives the
//! per-node capacity and the nodes needed for a target load.
//!
//! Pure functions of report data, so `merge` recomputes the sizing of sharded runs from
//! the merged series exactly as a single run computes it.

use super::format::int;
use super::model::{Report, ResourceSample, Resources, SecondPoint, SizingResult, SizingStep};

/// Largest schedule lag a step may show, ms. Lag counts from a request's intended time to
/// its actual send, so it grows when every in-flight slot is busy waiting on the backend
/// (backend saturated) or the generator runs out of CPU; either way the offered rate was
/// not applied on time, and the step's reason says which.
pub const LAG_LIMIT_MS: f64 = 250.0;

/// Smallest accepted/offered ratio of a step that held.
pub const MIN_ACCEPTED: f64 = 0.95;

/// Unmeasured steps for the hold stages `(start_s, end_s, spans_per_s)`.
pub fn plan(
    holds: &[(f64, f64, f64)],
    target_spans_per_s: Option<f64>,
    headroom: f64,
    p99_limit_ms: Option<f64>,
) -> SizingResult {
    SizingResult {
        target_spans_per_s,
        headroom,
        p99_limit_ms,
        lag_limit_ms: LAG_LIMIT_MS,
        steps: holds
            .iter()
            .map(|&(start, end, rate)| SizingStep {
                stage_start_s: start,
                stage_end_s: end,
                window: window(start, end),
                offered_spans_per_s: rate,
                ..SizingStep::default()
            })
            .collect(),
        ..SizingResult::default()
    }
}

/// The whole seconds `[from, to)` measured for a hold stage: after its first second.
fn window(start: f64, end: f64) -> (u32, u32) {
    let from = (start + 1.0 - 1e-6).ceil().max(0.0) as u32;
    let to = (end + 1e-6).floor().max(0.0) as u32;
    (from, to.max(from))
}

/// Measure every step of `s` from `series` and `resources`, then derive the verdicts, the
/// highest step that held and the nodes needed. Replaces earlier measurements and notes.
pub fn measure(s: &mut SizingResult, series: &[SecondPoint], resources: Option<&Resources>) {
    for step in &mut s.steps {
        measure_step(step, s.p99_limit_ms, s.lag_limit_ms, series, resources);
    }
    s.notes.clear();
    s.highest_held_spans_per_s = None;
    s.cpu_cores = None;
    s.rss_bytes = None;
    s.spans_per_core_second = None;
    s.nodes_needed = None;
    if s.steps.is_empty() {
        s.notes.push(
            "the rate has no hold stages (stages whose start and end rates are equal): \
             nothing to size from"
                .to_owned(),
        );
        return;
    }
    let best = s
        .steps
        .iter()
        .filter(|x| x.held)
        .max_by(|a, b| a.offered_spans_per_s.total_cmp(&b.offered_spans_per_s))
        .cloned();
    let Some(best) = best else {
        let generator = s
            .steps
            .iter()
            .all(|x| x.limited_by == Some(super::model::Limiter::Generator));
        s.notes.push(if generator {
            "no step held: the generator could not apply even the lowest step, so these steps \
             measure loadgen, not the backend; give loadgen more CPU or shard it"
                .to_owned()
        } else {
            "no step held: the backend did not take even the lowest step; start lower".to_owned()
        });
        return;
    };
    let highest = best.offered_spans_per_s;
    s.highest_held_spans_per_s = Some(highest);
    s.cpu_cores = best.cpu_cores;
    s.rss_bytes = best.rss_bytes;
    s.spans_per_core_second = best
        .cpu_cores
        .filter(|c| *c > 0.0)
        .map(|c| best.accepted_spans_per_s / c);
    let per_node = highest * (1.0 - s.headroom);
    s.nodes_needed = s
        .target_spans_per_s
        .filter(|_| per_node > 0.0)
        .map(|t| (t / per_node - 1e-9).ceil().max(1.0) as u64);
    let failed_below: Vec<String> = s
        .steps
        .iter()
        .filter(|x| !x.held && x.offered_spans_per_s < highest)
        .map(|x| format!("{:.0}", x.offered_spans_per_s))
        .collect();
    if !failed_below.is_empty() {
        s.notes.push(format!(
            "steps at {} spans/s did not hold although a higher one did: the result is noisy; \
             rerun or lengthen the holds",
            failed_below.join(", ")
        ));
    }
    let top = s
        .steps
        .iter()
        .map(|x| x.offered_spans_per_s)
        .fold(0.0, f64::max);
    if highest >= top {
        s.notes.push(
            "the highest step held, so the backend's limit was not reached: it may take more \
             (add higher steps to find it); the node count is conservative"
                .to_owned(),
        );
    }
    if best.cpu_cores.is_none() {
        s.notes.push(
            "backend CPU and RSS were not measured (give loadgen the backend pid or a metrics \
             URL): the per-core figures are missing"
                .to_owned(),
        );
    } else if resources.is_some_and(|r| r.source == "embedded") {
        s.notes.push(
            "embedded backend: CPU is the backend's own threads, RSS the whole loadgen process"
                .to_owned(),
        );
    }
}

fn measure_step(
    step: &mut SizingStep,
    p99_limit_ms: Option<f64>,
    lag_limit_ms: f64,
    series: &[SecondPoint],
    resources: Option<&Resources>,
) {
    step.window = window(step.stage_start_s, step.stage_end_s);
    let (from, to) = step.window;
    let seconds = f64::from(to - from);
    let points: Vec<&SecondPoint> = series.iter().filter(|p| p.t >= from && p.t < to).collect();
    let offered: u64 = points.iter().map(|p| p.spans_offered).sum();
    let accepted: u64 = points.iter().map(|p| p.spans_accepted).sum();
    step.accepted_spans_per_s = if seconds > 0.0 {
        accepted as f64 / seconds
    } else {
        0.0
    };
    step.failed_requests = points.iter().map(|p| p.errors).sum();
    step.p99_upper_ms = points.iter().map(|p| p.p99_ms).fold(0.0, f64::max);
    step.max_lag_ms = points.iter().map(|p| p.max_lag_ms).fold(0.0, f64::max);
    // A sample at `t` covers the second `(t − 1, t]`. The sampler's last reading covers
    // only the tail of the run and may share its (rounded) second with the last full one:
    // only the first sample of each second counts.
    let mut samples: Vec<&ResourceSample> = resources
        .map(|r| {
            r.samples
                .iter()
                .filter(|x| x.t > from && x.t <= to)
                .collect()
        })
        .unwrap_or_default();
    samples.dedup_by_key(|x| x.t);
    let n = samples.len();
    step.cpu_cores = (n > 0).then(|| samples.iter().map(|x| x.cpu_cores).sum::<f64>() / n as f64);
    step.rss_bytes = (n > 0).then(|| samples.iter().map(|x| x.rss_bytes).sum::<u64>() / n as u64);

    let mut reasons = Vec::new();
    if seconds == 0.0 {
        reasons.push(
            "too short to measure: a hold needs more than 1 s (its first second settles)"
                .to_owned(),
        );
    } else if offered == 0 {
        reasons.push("no requests were offered in its window".to_owned());
    } else if (accepted as f64) < MIN_ACCEPTED * offered as f64 {
        reasons.push(format!(
            "accepted {} of {} spans offered ({:.1} %)",
            int(accepted),
            int(offered),
            100.0 * accepted as f64 / offered as f64
        ));
    }
    if step.failed_requests > 0 {
        reasons.push(format!("{} requests failed", int(step.failed_requests)));
    }
    if let Some(limit) = p99_limit_ms
        && step.p99_upper_ms > limit
    {
        reasons.push(format!(
            "p99 up to {:.1} ms (limit {limit:.1} ms)",
            step.p99_upper_ms
        ));
    }
    step.limited_by = None;
    if step.max_lag_ms > lag_limit_ms {
        let slots_full: f64 = points.iter().map(|p| p.slots_full_ms).sum();
        let behind: f64 = points.iter().map(|p| p.generator_behind_ms).sum();
        let (limiter, why) =
            super::pace::step_reason(step.max_lag_ms, lag_limit_ms, slots_full, behind);
        step.limited_by = limiter;
        reasons.push(why);
    }
    step.held = reasons.is_empty();
    step.reasons = reasons;
}

/// Sizing of the merged run: each step offered the sum of the shards' shares; everything
/// else is measured again from the merged series and resources.
pub fn merge(
    reports: &[Report],
    series: &[SecondPoint],
    resources: Option<&Resources>,
) -> Option<SizingResult> {
    let mut s = reports.iter().find_map(|r| r.sizing.clone())?;
    for (i, step) in s.steps.iter_mut().enumerate() {
        step.offered_spans_per_s = reports
            .iter()
            .filter_map(|r| r.sizing.as_ref()?.steps.get(i))
            .map(|x| x.offered_spans_per_s)
            .sum();
    }
    measure(&mut s, series, resources);
    let with = reports.iter().filter(|r| r.sizing.is_some()).count();
    if with < reports.len() {
        s.notes.push(format!(
            "only {with} of {} shards asked for sizing: offered rates cover those",
            reports.len()
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::report::model::Limiter;

    fn point(t: u32, offered: u64, accepted: u64, p99: f64) -> SecondPoint {
        SecondPoint {
            t,
            spans_offered: offered,
            spans_sent: offered,
            spans_accepted: accepted,
            p99_ms: p99,
            max_lag_ms: 1.0,
            ..SecondPoint::default()
        }
    }

    /// Ramp 0→1000 over 1 s, hold 1000 for 3 s, ramp to 2000 over 1 s, hold 3 s, ramp to
    /// 4000, hold 3 s where the backend falls over.
    fn synthetic() -> (Vec<SecondPoint>, Resources) {
        let mut series = Vec::new();
        let rates = [
            500, 1000, 1000, 1000, 1500, 2000, 2000, 2000, 3000, 4000, 4000, 4000,
        ];
        for (t, &r) in rates.iter().enumerate() {
            let t = t as u32;
            let (accepted, p99) = if t >= 10 { (r / 2, 900.0) } else { (r, 20.0) };
            // The settle second of each hold is bad on purpose: it must be skipped.
            let p99 = if t == 5 { 5000.0 } else { p99 };
            series.push(point(t, r, accepted, p99));
        }
        let mut samples: Vec<ResourceSample> = (1..=12u32)
            .map(|t| ResourceSample {
                t,
                cpu_cores: if t <= 4 { 0.5 } else { 1.0 },
                rss_bytes: 100 << 20,
            })
            .collect();
        // The sampler's short final reading, rounded into the last second.
        samples.insert(
            8,
            ResourceSample {
                t: 8,
                cpu_cores: 0.0,
                rss_bytes: 100 << 20,
            },
        );
        let res = Resources {
            source: "process".into(),
            samples,
            ..Resources::default()
        };
        (series, res)
    }

    #[test]
    fn highest_held_step_gives_the_node_count() {
        let (series, res) = synthetic();
        let holds = [(1.0, 4.0, 1000.0), (5.0, 8.0, 2000.0), (9.0, 12.0, 4000.0)];
        let mut s = plan(&holds, Some(100_000.0), 0.2, Some(200.0));
        measure(&mut s, &series, Some(&res));
        let held: Vec<bool> = s.steps.iter().map(|x| x.held).collect();
        assert_eq!(held, [true, true, false]);
        assert_eq!(s.steps[1].window, (6, 8));
        assert_eq!(s.steps[1].p99_upper_ms, 20.0, "settle second skipped");
        assert_eq!(s.steps[1].accepted_spans_per_s, 2000.0);
        assert_eq!(s.steps[0].cpu_cores, Some(0.5));
        assert_eq!(s.steps[1].cpu_cores, Some(1.0));
        let bad = &s.steps[2];
        assert!(
            bad.reasons.iter().any(|r| r.contains("accepted")),
            "{bad:?}"
        );
        assert!(bad.reasons.iter().any(|r| r.contains("p99")), "{bad:?}");
        assert_eq!(s.highest_held_spans_per_s, Some(2000.0));
        assert_eq!(s.cpu_cores, Some(1.0));
        assert_eq!(s.spans_per_core_second, Some(2000.0));
        // 100,000 / (2,000 × 0.8) = 62.5 → 63.
        assert_eq!(s.nodes_needed, Some(63));
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }

    #[test]
    fn lag_failures_and_short_holds_do_not_hold() {
        let (mut series, _) = synthetic();
        series[2].max_lag_ms = 900.0;
        series[2].errors = 3;
        let holds = [(1.0, 4.0, 1000.0), (5.0, 5.5, 2000.0), (5.5, 8.0, 2000.0)];
        let mut s = plan(&holds, None, 0.2, None);
        measure(&mut s, &series, None);
        let first = &s.steps[0];
        assert!(!first.held);
        assert_eq!(first.failed_requests, 3);
        assert!(
            first.reasons.iter().any(|r| r.contains("late")),
            "{first:?}"
        );
        assert!(s.steps[1].reasons[0].contains("too short"));
        assert!(s.steps[2].held, "{:?}", s.steps[2]);
        assert_eq!(s.highest_held_spans_per_s, Some(2000.0));
        assert_eq!(s.nodes_needed, None);
        assert_eq!(s.cpu_cores, None);
        assert_eq!(s.notes.len(), 3, "{:?}", s.notes);
    }

    #[test]
    fn late_steps_name_who_set_the_pace() {
        let (mut series, _) = synthetic();
        for p in &mut series {
            p.max_lag_ms = 900.0;
            p.generator_behind_ms = 400.0;
            p.slots_full_ms = 5.0;
        }
        let holds = [(1.0, 4.0, 1000.0)];
        let mut s = plan(&holds, None, 0.2, None);
        measure(&mut s, &series, None);
        assert_eq!(s.steps[0].limited_by, Some(Limiter::Generator));
        assert!(s.notes[0].contains("measure loadgen"), "{:?}", s.notes);
        for p in &mut series {
            p.slots_full_ms = 2000.0;
        }
        measure(&mut s, &series, None);
        let step = &s.steps[0];
        assert_eq!(step.limited_by, Some(Limiter::BackendSaturated));
        assert!(
            step.reasons.iter().any(|r| r.contains("backend saturated")),
            "{step:?}"
        );
        assert!(s.notes[0].contains("backend did not take"), "{:?}", s.notes);
    }
}
