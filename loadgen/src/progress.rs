//! The live progress line: elapsed, rate, p99 and errors, once a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use crate::stats::recorder::Recorder;

/// A running progress line (hidden when stderr is not a terminal or when disabled).
pub struct Progress {
    bar: ProgressBar,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Start updating every 500 ms.
    pub fn start(enabled: bool, duration_s: f64, recorder: Arc<Recorder>) -> Self {
        let total = (duration_s.ceil() as u64).max(1);
        let bar = if enabled {
            ProgressBar::new(total)
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let b = bar.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut last = (Instant::now(), 0u64);
            loop {
                tick.tick().await;
                let t = recorder.totals();
                let now = Instant::now();
                let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let rate = (t.spans_sent.saturating_sub(last.1)) as f64 / dt;
                last = (now, t.spans_sent);
                let errors = t.requests_sent - t.requests_ok;
                b.set_position(started.elapsed().as_secs().min(total));
                b.set_message(format!(
                    "{rate:>9.0} spans/s  p99 {:>7.1} ms  sent {}  errors {errors}",
                    recorder.p99_ms(),
                    t.spans_sent
                ));
            }
        });
        Progress {
            bar,
            task: Some(task),
        }
    }

    /// Stop and clear the line.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
