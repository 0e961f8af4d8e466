//! The body sections shared by the markdown and HTML renderings (scenario, summary tables,
//! thresholds, verification, query load, sizing, environment).

use super::format::{bytes, int, ms, num, pct, rate, ratio};
use super::model::{Percentiles, Report};
use super::summary::{Block, Section, Table, accepted_per_s};

fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

pub(crate) fn scenario_section(r: &Report) -> Section {
    let s = &r.scenario;
    let t = &r.target;
    let mut items = vec![kv("Scenario", format!("{} — {}", s.name, s.description))];
    if !s.file.is_empty() {
        items.push(kv("File", s.file.clone()));
    }
    items.push(kv("Seed", s.seed.to_string()));
    items.push(kv("Mix", s.mix.join(", ")));
    items.push(kv(
        "Rate",
        format!("{} (peak {} spans/s)", s.rate, rate(s.peak_spans_per_s)),
    ));
    items.push(kv(
        "Requests",
        format!(
            "{} spans per request, {}, compression {}, {} mode",
            s.batch, s.protocol, s.compression, s.mode
        ),
    ));
    items.push(kv(
        "Target",
        format!("{}: {}", t.kind, t.endpoints.join(", ")),
    ));
    let version = match (&t.version, &t.revision) {
        (Some(v), Some(rev)) => format!("{v} (revision {rev})"),
        (Some(v), None) => v.clone(),
        _ => "unknown (no /api/status/buildinfo answer)".to_owned(),
    };
    items.push(kv("Backend version", version));
    if let Some(q) = &t.query_url {
        items.push(kv("Query API", q.clone()));
    }
    if let Some(tenant) = &t.tenant {
        items.push(kv("Tenant", tenant.clone()));
    }
    items.push(kv(
        "Run",
        format!(
            "started {}, load phase {} s, loadgen {}",
            r.started_at,
            num(r.duration_s, 1),
            r.tool_version
        ),
    ));
    if r.shards.len() > 1 {
        let list: Vec<String> = r
            .shards
            .iter()
            .map(|sh| format!("#{} on {}", sh.index, sh.host))
            .collect();
        items.push(kv(
            "Shards",
            format!("{} merged: {}", r.shards.len(), list.join(", ")),
        ));
    }
    Section {
        id: "scenario",
        title: "Scenario and target".to_owned(),
        blocks: vec![Block::KeyValues(items)],
    }
}

fn row(label: &str, value: String) -> Vec<String> {
    vec![label.to_owned(), value]
}

pub(crate) fn summary_section(r: &Report) -> Section {
    let t = &r.totals;
    let g = &r.generator;
    let refused = t
        .spans_sent
        .saturating_sub(t.spans_accepted)
        .saturating_sub(t.spans_rejected_partial);
    let throughput = Table {
        header: vec!["Throughput".to_owned(), "Value".to_owned()],
        rows: vec![
            row("Offered spans/s", rate(g.offered_spans_per_s)),
            row(
                "Achieved (sent) spans/s",
                format!(
                    "{} ({} of offered)",
                    rate(g.achieved_spans_per_s),
                    pct(ratio(g.achieved_spans_per_s, g.offered_spans_per_s))
                ),
            ),
            row("Accepted spans/s", rate(accepted_per_s(r))),
            row(
                "Requests planned / sent / ok",
                format!(
                    "{} / {} / {}",
                    int(t.requests_planned),
                    int(t.requests_sent),
                    int(t.requests_ok)
                ),
            ),
            row("Spans sent", int(t.spans_sent)),
            row("Spans accepted", int(t.spans_accepted)),
            row(
                "Spans rejected (partial success)",
                int(t.spans_rejected_partial),
            ),
            row("Spans in refused requests", int(refused)),
            row("Traces sent", int(t.traces_sent)),
            row(
                "Bytes sent",
                format!(
                    "{} ({}/s)",
                    bytes(t.bytes_sent as f64),
                    bytes(ratio(t.bytes_sent as f64, r.duration_s))
                ),
            ),
        ],
    };
    let outcomes = Table {
        header: vec![
            "Outcome".to_owned(),
            "Requests".to_owned(),
            "Share".to_owned(),
        ],
        rows: t
            .outcomes
            .iter()
            .map(|(k, n)| {
                vec![
                    k.clone(),
                    int(*n),
                    pct(ratio(*n as f64, t.requests_sent as f64)),
                ]
            })
            .collect(),
    };
    let mut latency_rows = vec![
        lat_row(
            "Export, corrected (from intended send)",
            &r.latency.corrected,
        ),
        lat_row(
            "Export, uncorrected (from actual send)",
            &r.latency.uncorrected,
        ),
        lat_row("Schedule lag (intended → actual send)", &g.schedule_lag),
    ];
    if let Some(v) = &r.verification {
        latency_rows.push(lat_row("Time to queryable", &v.time_to_queryable));
    }
    let latency = Table {
        header: ["Latency", "p50", "p90", "p99", "p99.9", "max", "samples"]
            .map(str::to_owned)
            .to_vec(),
        rows: latency_rows,
    };
    let mut blocks = vec![Block::Table(throughput), Block::Table(outcomes)];
    if !t.error_messages.is_empty() {
        blocks.push(Block::Table(Table {
            header: vec!["Error message".to_owned(), "Requests".to_owned()],
            rows: t
                .error_messages
                .iter()
                .map(|(m, n)| vec![m.clone(), int(*n)])
                .collect(),
        }));
    }
    blocks.push(Block::Table(latency));
    blocks.extend(super::pace::table(g).map(Block::Table));
    blocks.push(Block::Heading(
        "Backend resources — the numbers people size clusters with".to_owned(),
    ));
    match &r.resources {
        Some(res) => {
            let mut rows = vec![
                row("Measured from", res.source.clone()),
                row("CPU cores (average)", num(res.avg_cores, 2)),
                row("CPU seconds", num(res.cpu_seconds, 1)),
                row("Spans per core-second", rate(res.spans_per_core_second)),
                row("RSS (average)", bytes(res.avg_rss_bytes as f64)),
                row("RSS (peak)", bytes(res.peak_rss_bytes as f64)),
                row(
                    "RSS per 1k spans/s",
                    bytes(res.rss_bytes_per_1k_spans_per_s),
                ),
            ];
            if let Some(n) = res.received_spans {
                rows.push(row("Backend spans received (metric)", int(n)));
            }
            if let Some(n) = res.discarded_spans {
                rows.push(row("Backend spans discarded (metric)", int(n)));
            }
            for (reason, n) in &res.discarded_by_reason {
                rows.push(row(&format!("  discarded: {reason}"), int(*n)));
            }
            rows.push(row("Generator CPU cores (average)", num(g.cpu_cores, 2)));
            blocks.push(Block::Table(Table {
                header: vec!["Resource".to_owned(), "Value".to_owned()],
                rows,
            }));
        }
        None => blocks.push(Block::Text(format!(
            "Backend CPU and memory were not measured (give loadgen the backend pid or a \
             metrics URL). The generator used {} cores.",
            num(g.cpu_cores, 2)
        ))),
    }
    Section {
        id: "summary",
        title: "Summary".to_owned(),
        blocks,
    }
}

fn lat_row(label: &str, p: &Percentiles) -> Vec<String> {
    if p.count == 0 {
        let mut v = vec![label.to_owned()];
        v.extend(std::iter::repeat_n("–".to_owned(), 5));
        v.push("0".to_owned());
        return v;
    }
    vec![
        label.to_owned(),
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.max),
        int(p.count),
    ]
}

pub(crate) fn thresholds_section(r: &Report) -> Section {
    let blocks = if r.thresholds.is_empty() {
        vec![Block::Text("No thresholds were set.".to_owned())]
    } else {
        vec![Block::Table(Table {
            header: ["Threshold", "Limit", "Actual", "Result"]
                .map(str::to_owned)
                .to_vec(),
            rows: r
                .thresholds
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.limit.clone(),
                        t.actual.clone(),
                        if t.passed { "pass" } else { "FAIL" }.to_owned(),
                    ]
                })
                .collect(),
        })]
    };
    Section {
        id: "thresholds",
        title: "Thresholds".to_owned(),
        blocks,
    }
}

pub(crate) fn verification_section(r: &Report) -> Section {
    let blocks = match &r.verification {
        None => vec![Block::Text(
            "Read-back verification did not run: loss is unknown.".to_owned(),
        )],
        Some(v) => {
            let mut b = vec![Block::Table(Table {
                header: vec!["Read-back".to_owned(), "Count".to_owned()],
                rows: vec![
                    row("Traces sampled", int(v.sampled_traces)),
                    row("Complete and unaltered", int(v.complete_traces)),
                    row("Traces never found", int(v.missing_traces)),
                    row("Spans missing", int(v.missing_spans)),
                    row("Spans altered", int(v.altered_spans)),
                    row("Spans returned but never sent", int(v.extra_spans)),
                    row(
                        "Estimated spans lost (whole run)",
                        int(v.estimated_lost_spans),
                    ),
                    row(
                        "Found by tag search",
                        format!("{} of {}", int(v.search_found), int(v.search_checked)),
                    ),
                ],
            })];
            if !v.examples.is_empty() {
                b.push(Block::Heading("Examples".to_owned()));
                b.push(Block::CodeList(v.examples.clone()));
            }
            b
        }
    };
    Section {
        id: "verification",
        title: "Verification".to_owned(),
        blocks,
    }
}

pub(crate) fn query_section(r: &Report) -> Section {
    let blocks = match &r.query_load {
        None => vec![Block::Text("No query load was configured.".to_owned())],
        Some(q) => {
            let qrow = |label: &str, p: &Percentiles, errors: u64| {
                let mut row = lat_row(label, p);
                row.push(int(errors));
                row
            };
            let mut b = vec![
                Block::Text(format!(
                    "Offered {} trace-by-id lookups/s (traces acknowledged at least 200 ms earlier) \
                     and {} tag searches/s while ingesting. Latency counts from each query's \
                     intended time (coordinated-omission corrected) and covers the queries \
                     that succeeded; failures are counted apart.",
                    rate(q.trace_by_id_per_second),
                    rate(q.search_per_second)
                )),
                Block::Table(Table {
                    header: [
                        "Query", "p50", "p90", "p99", "p99.9", "max", "samples", "errors",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    rows: vec![
                        qrow("Trace by ID", &q.trace_by_id, q.trace_by_id_errors),
                        qrow("Search", &q.search, q.search_errors),
                    ],
                }),
            ];
            if !q.error_messages.is_empty() {
                b.push(Block::Table(Table {
                    header: vec!["Query error".to_owned(), "Queries".to_owned()],
                    rows: q
                        .error_messages
                        .iter()
                        .map(|(m, n)| vec![m.clone(), int(*n)])
                        .collect(),
                }));
            }
            b.extend(q.notes.iter().map(|n| Block::Text(n.clone())));
            b
        }
    };
    Section {
        id: "query-load",
        title: "Query load".to_owned(),
        blocks,
    }
}

/// The sizing table, when the scenario asked for sizing.
pub(crate) fn sizing_section(r: &Report) -> Option<Section> {
    let z = r.sizing.as_ref()?;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "not measured".to_owned());
    let mut items = vec![kv(
        "Highest rate that held",
        z.highest_held_spans_per_s
            .map_or("none".to_owned(), |h| format!("{} spans/s", rate(h))),
    )];
    if z.highest_held_spans_per_s.is_some() {
        items.push(kv(
            "Backend CPU at that rate",
            opt(z.cpu_cores.map(|c| format!("{} cores", num(c, 2)))),
        ));
        items.push(kv(
            "Backend RSS at that rate",
            opt(z.rss_bytes.map(|b| bytes(b as f64))),
        ));
        items.push(kv(
            "Spans per core-second at that rate",
            opt(z.spans_per_core_second.map(rate)),
        ));
    }
    items.push(kv("Headroom", format!("{} %", num(z.headroom * 100.0, 0))));
    if let Some(t) = z.target_spans_per_s {
        items.push(kv("Target", format!("{} spans/s", rate(t))));
        items.push(kv(
            "Nodes needed",
            z.nodes_needed
                .map_or("unknown (no step held)".to_owned(), |n| {
                    format!(
                        "{n} (each at ≤ {} % of its highest passing rate)",
                        num(100.0 * (1.0 - z.headroom), 0)
                    )
                }),
        ));
    }
    let mut blocks = vec![
        Block::KeyValues(items),
        Block::Text(format!(
            "One row per hold stage, measured over its window (the stage minus its first \
             second, left to settle). A step held when the backend accepted at least 95 % of \
             the spans offered, no request failed{}, and requests left at most {} late. The \
             p99 shown is the largest per-second corrected p99 in the window: an upper bound \
             of the step's p99. CPU and RSS are averaged over the window.",
            z.p99_limit_ms
                .map(|l| format!(", p99 stayed within {}", ms(l)))
                .unwrap_or_default(),
            ms(z.lag_limit_ms)
        )),
        Block::Table(Table {
            header: [
                "Offered spans/s",
                "Window",
                "Accepted spans/s",
                "Failed requests",
                "p99 (upper bound)",
                "Max lag",
                "CPU cores",
                "RSS",
                "Held",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows: z
                .steps
                .iter()
                .map(|s| {
                    vec![
                        rate(s.offered_spans_per_s),
                        format!("{}–{} s", s.window.0, s.window.1),
                        rate(s.accepted_spans_per_s),
                        int(s.failed_requests),
                        ms(s.p99_upper_ms),
                        ms(s.max_lag_ms),
                        s.cpu_cores.map_or("–".to_owned(), |c| num(c, 2)),
                        s.rss_bytes.map_or("–".to_owned(), |b| bytes(b as f64)),
                        if s.held { "held" } else { "FAIL" }.to_owned(),
                    ]
                })
                .collect(),
        }),
    ];
    let failed: Vec<Vec<String>> = z
        .steps
        .iter()
        .filter(|s| !s.held)
        .map(|s| vec![rate(s.offered_spans_per_s), s.reasons.join("; ")])
        .collect();
    if !failed.is_empty() {
        blocks.push(Block::Table(Table {
            header: vec![
                "Step (spans/s)".to_owned(),
                "Why it did not hold".to_owned(),
            ],
            rows: failed,
        }));
    }
    blocks.extend(z.notes.iter().map(|n| Block::Text(format!("Note: {n}."))));
    Some(Section {
        id: "sizing",
        title: "Sizing".to_owned(),
        blocks,
    })
}

pub(crate) fn environment_section(r: &Report) -> Section {
    let e = &r.environment;
    let g = &r.generator;
    let mut blocks = vec![Block::KeyValues(vec![
        kv("Host", e.host.clone()),
        kv("OS", e.os.clone()),
        kv("CPUs", e.cpus.to_string()),
        kv("Memory", bytes(e.memory_bytes as f64)),
        kv(
            "Generator CPU",
            format!(
                "{} s ({} cores on average)",
                num(g.cpu_seconds, 1),
                num(g.cpu_cores, 2)
            ),
        ),
    ])];
    if !r.scenario.yaml.trim().is_empty() {
        blocks.push(Block::Code {
            summary: "Scenario as run (YAML)".to_owned(),
            lang: "yaml",
            text: r.scenario.yaml.clone(),
        });
    }
    Section {
        id: "environment",
        title: "Environment".to_owned(),
        blocks,
    }
}
