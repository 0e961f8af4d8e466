//! Who set the pace: a backend too slow for `max_in_flight` ("backend saturated") or the
//! generator itself ("the generator was the bottleneck"). The verdict is data in the report
//! ([`Pace`], [`Limiter`]); this module draws it from the scheduler's evidence and words it
//! once for the console, the markdown and HTML reports, sizing and `compare`.

use super::format::{int, ms, num, pct, rate, ratio};
use super::model::{GeneratorHealth, Limiter, Pace, Percentiles, Report};
use super::summary::Table;

/// Smallest achieved/offered ratio of a run that kept up.
pub const MIN_ACHIEVED: f64 = 0.95;

/// Largest schedule lag p99 (ms) of a run that kept up.
pub const MAX_LATE_P99_MS: f64 = 100.0;

/// Slot-wait p99 (ms) above which a run that kept up still gets a note.
const SLOT_WAIT_NOTE_MS: f64 = 10.0;

/// The scheduler's evidence for a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// `rate.max_in_flight` (0 when the SDK sends).
    pub max_in_flight: u64,
    /// Load-phase wall time, seconds.
    pub elapsed_s: f64,
    /// Seconds due requests waited because every slot was busy.
    pub slots_full_s: f64,
    /// Seconds the generator was behind with a slot free.
    pub generator_behind_s: f64,
    /// Per-request slot wait, ms.
    pub slot_wait: Percentiles,
    /// Achieved / offered.
    pub achieved_ratio: f64,
    /// Schedule lag p99 (intended → actual send), ms.
    pub late_p99_ms: f64,
}

/// The verdict on `e`: kept up, or which of the two causes of lateness dominated. Time
/// lost waiting for a slot is the backend's; a run with no slot wait at all that still fell
/// behind (sdk mode, or a CPU-bound scheduler) is the generator's.
pub fn classify(e: &Evidence) -> Pace {
    let share = |s: f64| (s / e.elapsed_s.max(1e-9)).clamp(0.0, 1.0);
    let slots_full_share = share(e.slots_full_s);
    let generator_behind_share = share(e.generator_behind_s);
    let late = e.achieved_ratio < MIN_ACHIEVED || e.late_p99_ms > MAX_LATE_P99_MS;
    let limited_by = if !late {
        Limiter::KeptUp
    } else {
        dominant(e.slots_full_s, e.generator_behind_s)
    };
    Pace {
        limited_by,
        max_in_flight: e.max_in_flight,
        slots_full_share,
        generator_behind_share,
        slot_wait: e.slot_wait.clone(),
        achieved_ratio: e.achieved_ratio,
    }
}

/// `BackendSaturated` when more time went to waiting for slots than to the generator being
/// late with a slot free; `Generator` otherwise.
pub fn dominant(slots_full: f64, generator_behind: f64) -> Limiter {
    if slots_full > generator_behind {
        Limiter::BackendSaturated
    } else {
        Limiter::Generator
    }
}

/// How a verdict should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The figures need a second look.
    Warn,
    /// For information.
    Info,
}

/// A worded verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Severity.
    pub severity: Severity,
    /// Short title: `Backend saturated`, `The generator was the bottleneck`.
    pub title: String,
    /// The evidence, in a sentence or two.
    pub text: String,
}

/// The pace verdict of a run, when there is something to say.
pub fn verdict(g: &GeneratorHealth) -> Option<Verdict> {
    let Some(p) = &g.pace else {
        return g.bottleneck.then(|| Verdict {
            severity: Severity::Warn,
            title: "The generator fell behind".to_owned(),
            text: format!(
                "achieved {} of {} offered spans/s ({}); this report was written by a loadgen \
                 that did not tell a saturated backend from a slow generator, so the cause is \
                 unknown (re-run with this version to know)",
                rate(g.achieved_spans_per_s),
                rate(g.offered_spans_per_s),
                pct(ratio(g.achieved_spans_per_s, g.offered_spans_per_s)),
            ),
        });
    };
    let achieved = format!(
        "achieved {} of {} offered spans/s ({})",
        rate(g.achieved_spans_per_s),
        rate(g.offered_spans_per_s),
        pct(p.achieved_ratio)
    );
    match p.limited_by {
        Limiter::BackendSaturated => Some(Verdict {
            severity: Severity::Warn,
            title: "Backend saturated".to_owned(),
            text: format!(
                "{}, requests left late (schedule lag p99 {}); {achieved}. The backend's \
                 answers set the pace, not loadgen: the generator was behind with a slot free \
                 {} of the time, using {} cores. Latency counts from the intended send time, so \
                 it includes the wait",
                slots_sentence(p),
                ms(g.schedule_lag.p99),
                pct(p.generator_behind_share),
                num(g.cpu_cores, 2),
            ),
        }),
        Limiter::Generator => Some(Verdict {
            severity: Severity::Warn,
            title: "The generator was the bottleneck".to_owned(),
            text: format!(
                "the generator was behind its schedule with in-flight slots free {} of the load \
                 phase (schedule lag p99 {}), using {} cores; {achieved}; all slots were busy \
                 {} of the time. These numbers describe loadgen, not the backend",
                pct(p.generator_behind_share),
                ms(g.schedule_lag.p99),
                num(g.cpu_cores, 2),
                pct(p.slots_full_share),
            ),
        }),
        Limiter::KeptUp if p.slot_wait.p99 > SLOT_WAIT_NOTE_MS => Some(Verdict {
            severity: Severity::Info,
            title: "In-flight slots filled up at times".to_owned(),
            text: format!(
                "{}, yet the schedule held ({achieved}); the backend is close to what \
                 max_in_flight {} can carry",
                slots_sentence(p),
                p.max_in_flight
            ),
        }),
        Limiter::KeptUp => None,
    }
}

/// `all 64 in-flight slots were busy waiting on the backend 87 % of the load phase (a due
/// request waited up to 2.1 s p99 for one)`.
fn slots_sentence(p: &Pace) -> String {
    format!(
        "all {} in-flight slots were busy waiting on the backend {} of the load phase (a due \
         request waited {} p99, {} max, for a free slot)",
        int(p.max_in_flight),
        pct(p.slots_full_share),
        ms(p.slot_wait.p99),
        ms(p.slot_wait.max)
    )
}

/// The evidence as a table for the report's summary, when the run recorded it.
pub(crate) fn table(g: &GeneratorHealth) -> Option<Table> {
    let p = g.pace.as_ref()?;
    let who = match p.limited_by {
        Limiter::KeptUp => "nobody: the schedule held",
        Limiter::BackendSaturated => "backend saturated",
        Limiter::Generator => "the generator",
    };
    let slots = if p.max_in_flight == 0 {
        "– (sdk mode: the SDK's batch processor sends)".to_owned()
    } else {
        int(p.max_in_flight)
    };
    let row = |k: &str, v: String| vec![k.to_owned(), v];
    Some(Table {
        header: vec!["Pace".to_owned(), "Value".to_owned()],
        rows: vec![
            row("Set by", who.to_owned()),
            row("In-flight slots (max_in_flight)", slots),
            row(
                "Time all slots were busy while a request was due",
                pct(p.slots_full_share),
            ),
            row(
                "Time the generator was behind with a slot free",
                pct(p.generator_behind_share),
            ),
            row(
                "Wait for a free slot (p50 / p99 / max)",
                format!(
                    "{} / {} / {}",
                    ms(p.slot_wait.p50),
                    ms(p.slot_wait.p99),
                    ms(p.slot_wait.max)
                ),
            ),
            row("Schedule lag p99", ms(g.schedule_lag.p99)),
            row("Achieved / offered", pct(p.achieved_ratio)),
            row("Generator CPU cores", num(g.cpu_cores, 2)),
        ],
    })
}

/// One line for `compare`'s caveats, naming the run.
pub fn compare_note(name: &str, g: &GeneratorHealth) -> Option<String> {
    match g.pace.as_ref().map(|p| p.limited_by) {
        Some(Limiter::BackendSaturated) => Some(format!(
            "{name}: backend saturated (every in-flight slot busy waiting on it); its latency \
             and throughput describe the backend at saturation, not loadgen"
        )),
        Some(Limiter::Generator) => Some(format!(
            "{name}: the generator was the bottleneck; its numbers describe loadgen, not the \
             backend"
        )),
        Some(Limiter::KeptUp) => None,
        None => g.bottleneck.then(|| {
            format!(
                "{name}: fell behind its schedule; written by a loadgen that did not tell a \
                 saturated backend from a slow generator, so the cause is unknown"
            )
        }),
    }
}

/// The reason a sizing step's requests left late, from the time its requests waited for
/// slots and the time the generator was behind with slots free (both ms, summed over the
/// step's requests). `None` for the limiter when neither was recorded (older reports).
pub fn step_reason(
    max_lag_ms: f64,
    lag_limit_ms: f64,
    slots_full_ms: f64,
    behind_ms: f64,
) -> (Option<Limiter>, String) {
    let late = format!("requests left up to {max_lag_ms:.0} ms late (limit {lag_limit_ms:.0} ms)");
    if slots_full_ms <= 0.0 && behind_ms <= 0.0 {
        return (
            None,
            format!(
                "{late}: the generator or max_in_flight set the pace (this report does not say \
                 which)"
            ),
        );
    }
    let spent = format!(
        "its requests waited {} in all for a free slot, the generator was behind with a slot \
         free for {}",
        ms(slots_full_ms),
        ms(behind_ms)
    );
    match dominant(slots_full_ms, behind_ms) {
        Limiter::BackendSaturated => (
            Some(Limiter::BackendSaturated),
            format!("{late}: backend saturated, every in-flight slot busy waiting on it ({spent})"),
        ),
        _ => (
            Some(Limiter::Generator),
            format!(
                "{late}: the generator fell behind with slots free, so this step measures \
                 loadgen, not the backend ({spent})"
            ),
        ),
    }
}

/// The shards' pace: the worst verdict (a generator-bound shard did not apply its share of
/// the load, so neither did the whole run), shares averaged over the shards that recorded
/// them (they ran side by side), slots and slot waits from the busiest shard.
pub(crate) fn merge(reports: &[Report], achieved: f64, offered: f64) -> Option<Pace> {
    let paces: Vec<&Pace> = reports
        .iter()
        .filter_map(|r| r.generator.pace.as_ref())
        .collect();
    if paces.len() < reports.len() {
        // A shard from a loadgen that did not record the cause: the merged run cannot
        // claim one either.
        return None;
    }
    let n = paces.len().max(1) as f64;
    let busiest = paces
        .iter()
        .max_by(|a, b| a.slot_wait.p99.total_cmp(&b.slot_wait.p99))?;
    Some(Pace {
        limited_by: paces.iter().map(|p| p.limited_by).max().unwrap_or_default(),
        max_in_flight: paces.iter().map(|p| p.max_in_flight).sum(),
        slots_full_share: paces.iter().map(|p| p.slots_full_share).sum::<f64>() / n,
        generator_behind_share: paces.iter().map(|p| p.generator_behind_share).sum::<f64>() / n,
        slot_wait: busiest.slot_wait.clone(),
        achieved_ratio: achieved / offered.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn evidence(slots_full_s: f64, generator_behind_s: f64, achieved: f64, late: f64) -> Evidence {
        Evidence {
            max_in_flight: 64,
            elapsed_s: 30.0,
            slots_full_s,
            generator_behind_s,
            slot_wait: Percentiles {
                p99: 2100.0,
                max: 4000.0,
                ..Percentiles::default()
            },
            achieved_ratio: achieved,
            late_p99_ms: late,
        }
    }

    fn health(p: Pace) -> GeneratorHealth {
        GeneratorHealth {
            offered_spans_per_s: 60_000.0,
            achieved_spans_per_s: 60_000.0 * p.achieved_ratio,
            cpu_cores: 0.11,
            bottleneck: p.limited_by == Limiter::Generator,
            pace: Some(p),
            ..GeneratorHealth::default()
        }
    }

    /// Recorded from the Tempo run: answers seconds late, all 128 slots busy,
    /// loadgen at 0.11 cores.
    #[test]
    fn slow_answers_filling_every_slot_are_a_saturated_backend() {
        let p = classify(&evidence(26.0, 0.05, 0.71, 7000.0));
        assert_eq!(p.limited_by, Limiter::BackendSaturated);
        assert!((p.slots_full_share - 26.0 / 30.0).abs() < 1e-9);
        let v = verdict(&health(p)).unwrap();
        assert_eq!(v.title, "Backend saturated");
        assert!(
            v.text.contains("all 64 in-flight slots were busy"),
            "{}",
            v.text
        );
        assert!(!v.text.contains("bottleneck"), "{}", v.text);
        let note = compare_note(
            "B#1",
            &health(classify(&evidence(26.0, 0.05, 0.71, 7000.0))),
        );
        assert!(note.unwrap().contains("backend saturated"));
    }

    #[test]
    fn a_late_generator_with_free_slots_is_the_bottleneck() {
        let p = classify(&evidence(0.2, 12.0, 0.6, 900.0));
        assert_eq!(p.limited_by, Limiter::Generator);
        let v = verdict(&health(p.clone())).unwrap();
        assert_eq!(v.title, "The generator was the bottleneck");
        assert!(v.text.contains("describe loadgen"), "{}", v.text);
        assert!(
            compare_note("A#1", &health(p))
                .unwrap()
                .contains("generator was the bottleneck")
        );
        // No slot wait at all (sdk mode): falling behind is the generator's.
        assert_eq!(
            classify(&evidence(0.0, 0.0, 0.5, 0.0)).limited_by,
            Limiter::Generator
        );
    }

    #[test]
    fn a_run_that_kept_up_gets_no_blame() {
        let p = classify(&evidence(3.0, 0.1, 0.99, 40.0));
        assert_eq!(p.limited_by, Limiter::KeptUp);
        // Slots filled at times (slot wait p99 2.1 s in the evidence): a note, not a warning.
        let v = verdict(&health(p.clone())).unwrap();
        assert_eq!(v.severity, Severity::Info);
        let mut quiet = p;
        quiet.slot_wait.p99 = 1.0;
        assert_eq!(verdict(&health(quiet.clone())), None);
        assert_eq!(compare_note("A#1", &health(quiet)), None);
    }

    #[test]
    fn lag_alone_makes_a_run_late() {
        // Achieved the rate on average, but requests left a second late.
        let p = classify(&evidence(5.0, 0.5, 0.99, 1000.0));
        assert_eq!(p.limited_by, Limiter::BackendSaturated);
    }

    #[test]
    fn reports_without_pace_keep_their_flag_but_name_no_cause() {
        let g = GeneratorHealth {
            offered_spans_per_s: 100.0,
            achieved_spans_per_s: 50.0,
            bottleneck: true,
            ..GeneratorHealth::default()
        };
        let v = verdict(&g).unwrap();
        assert_eq!(v.title, "The generator fell behind");
        assert!(v.text.contains("cause is unknown"), "{}", v.text);
        assert!(
            compare_note("A#1", &g)
                .unwrap()
                .contains("cause is unknown")
        );
        assert_eq!(verdict(&GeneratorHealth::default()), None);
    }

    #[test]
    fn sizing_steps_name_their_limiter() {
        let (l, why) = step_reason(900.0, 250.0, 4200.0, 3.0);
        assert_eq!(l, Some(Limiter::BackendSaturated));
        assert!(why.contains("backend saturated"), "{why}");
        let (l, why) = step_reason(900.0, 250.0, 0.0, 800.0);
        assert_eq!(l, Some(Limiter::Generator));
        assert!(why.contains("measures loadgen"), "{why}");
        let (l, why) = step_reason(900.0, 250.0, 0.0, 0.0);
        assert_eq!(l, None);
        assert!(why.contains("does not say which"), "{why}");
    }
}
