//! Files users write: the backend's config for each release, loadgen scenarios.

use loadgen::run::grace;
use loadgen::scenario::Scenario;
use loadgen::scenario::rate::RatePlan;
use loadgen::workload::Mix;
use reference_backend::release::ReleaseId;
use reference_backend::release::config_rules::{parse, render};

use crate::input::Input;

/// Config loading for each release: the first byte picks the release (`1 + b % 3`), the
/// rest is the file. Never a panic; an accepted config renders (`/status/config`) into a
/// file the same release accepts again and renders identically.
pub fn config(data: &[u8]) {
    let mut input = Input::new(data);
    let release = match ReleaseId::from_number(u32::from(input.byte() % 3) + 1) {
        Some(r) => r,
        None => return,
    };
    let Ok(text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    let Ok(parsed) = parse(text, release) else {
        return;
    };
    let rendered = match render(&parsed.config) {
        Ok(r) => r,
        Err(e) => panic!("an accepted config does not render: {e}"),
    };
    let again = match parse(&rendered, release) {
        Ok(p) => p,
        Err(e) => {
            panic!("{release} refuses its own rendering of an accepted config: {e}\n{rendered}")
        }
    };
    match render(&again.config) {
        Ok(r) => assert_eq!(r, rendered, "rendering is not stable"),
        Err(e) => panic!("a re-parsed config does not render: {e}"),
    }
}

/// loadgen's scenario loader and what `loadgen run` computes from a scenario before it
/// starts sending (workload mix, rate plan, grace period, the report's copy of the
/// scenario). Never a panic; an accepted scenario serializes to JSON.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = Scenario::parse(text) else {
        return;
    };
    if let Err(e) = serde_json::to_string(&s) {
        panic!("an accepted scenario does not serialize: {e}");
    }
    let _ = grace(&s);
    let Ok(mix) = Mix::new(&s.workload) else {
        return;
    };
    let plan = RatePlan::new(&s.rate, s.duration().as_secs_f64(), mix.mean_spans()).scaled(0.5);
    let _ = plan.describe();
    let _ = plan.holds();
    let total = plan.total_spans();
    for n in [0.0, 1.0, total / 2.0, total] {
        let _ = plan.due(n);
    }
}
