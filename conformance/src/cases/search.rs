//! Search: tag and TraceQL queries over a fixed corpus with known answers, duration and time
//! bounds, limit, result shape, tag names and values, invalid queries. Written against
//! Tempo's documented `/api/search` and tag endpoint shapes.
//!
//! The corpus is six traces of two services whose names, like every attribute value the
//! queries use, carry the run's nonce, so other runs' data never matches.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{bail, ensure};
use tempo_api::search::{SearchRequest, SearchResponse};
use tempo_api::{ClientError, parse_trace_id};

use super::{Case, Ctx};
use crate::case;
use crate::fixtures::{self, TraceId, i, now_ns, s};
use crate::spec::Capability::*;

/// One corpus trace: (service suffix, root name, duration ms, tier, HTTP status, error).
const CORPUS: [(&str, &str, u64, &str, i64, bool); 6] = [
    ("checkout", "checkout", 10, "gold", 200, false),
    ("checkout", "checkout", 250, "silver", 500, true),
    ("cart", "add-item", 50, "gold", 201, false),
    ("cart", "add-item", 1200, "silver", 503, true),
    ("cart", "view", 5, "bronze", 200, false),
    ("checkout", "pay", 300, "gold", 200, false),
];

/// The corpus as written.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Trace ids, in `CORPUS` order.
    pub ids: Vec<TraceId>,
    /// Root span start of each trace (unix ns).
    pub starts: Vec<u64>,
    /// Unix seconds before the first trace.
    pub from_s: u32,
    /// Unix seconds after the last trace.
    pub to_s: u32,
}

/// The search cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "search.tags_logfmt",
            &[SearchTags],
            None,
            "tags=`k=v k2=v2` finds exactly the corpus traces with both tags",
            tags_logfmt
        ),
        case!(
            "search.traceql_attribute",
            &[SearchTraceql],
            None,
            "`{ span.a = \"x\" && span.b = \"y\" }` finds exactly the matching traces",
            traceql_attribute
        ),
        case!(
            "search.traceql_resource",
            &[SearchTraceql],
            None,
            "`{ resource.service.name = \"…\" }` finds exactly that service's traces",
            traceql_resource
        ),
        case!(
            "search.traceql_intrinsics",
            &[SearchTraceql],
            None,
            "`status = error` and `name = \"…\"` find exactly the matching traces",
            traceql_intrinsics
        ),
        case!(
            "search.traceql_numeric",
            &[SearchTraceql],
            None,
            "`span.http.status_code >= 500` compares integers",
            traceql_numeric
        ),
        case!(
            "search.duration_bounds",
            &[SearchTags],
            None,
            "minDuration and maxDuration keep exactly the traces in range",
            duration_bounds
        ),
        case!(
            "search.time_bounds",
            &[SearchTags],
            None,
            "start/end before the corpus find none of it; around it, all of it",
            time_bounds
        ),
        case!(
            "search.limit",
            &[SearchTags],
            None,
            "limit=2 answers exactly two matching traces",
            limit
        ),
        case!(
            "search.result_shape",
            &[SearchTraceql],
            None,
            "hits carry the hex trace id, root service and span name, start time and duration",
            result_shape
        ),
        case!(
            "search.invalid_query",
            &[SearchTraceql, SearchTags],
            None,
            "invalid TraceQL, q with tags, and limit=0 answer 400",
            invalid_query
        ),
    ]
}

/// Write the corpus once per run.
pub(super) async fn corpus(cx: &mut Ctx<'_>) -> anyhow::Result<Corpus> {
    if let Some(c) = &cx.corpus {
        return Ok(c.clone());
    }
    let n = cx.nonce.clone();
    let now = now_ns();
    let mut ids = Vec::new();
    let mut starts = Vec::new();
    for (k, (svc, name, dur, tier, code, error)) in CORPUS.iter().enumerate() {
        let id = fixtures::trace_id();
        let base = now - 20_000_000_000 - k as u64 * 1_000_000_000;
        let mut root = fixtures::span(&id, None, name, base, 0, *dur);
        root.attributes = vec![
            s("conf.run", &n),
            s("conf.tier", tier),
            i("http.status_code", *code),
        ];
        if *error {
            root.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
                code: 2,
                message: "failed".into(),
            });
        }
        let mut child = fixtures::span(&id, Some(&root.span_id), "db", base, 1, 1);
        child.attributes = vec![s("conf.run", &n)];
        starts.push(root.start_time_unix_nano);
        cx.write(vec![fixtures::resource_spans(
            &format!("conf-{n}-{svc}"),
            vec![root, child],
        )])
        .await?;
        ids.push(id);
    }
    let c = Corpus {
        ids,
        starts,
        from_s: ((now / 1_000_000_000) - 600) as u32,
        to_s: ((now / 1_000_000_000) + 60) as u32,
    };
    cx.corpus = Some(c.clone());
    Ok(c)
}

fn expected(c: &Corpus, pick: impl Fn(usize) -> bool) -> BTreeSet<TraceId> {
    (0..CORPUS.len())
        .filter(|k| pick(*k))
        .map(|k| c.ids[k])
        .collect()
}

async fn run(cx: &Ctx<'_>, req: &SearchRequest) -> anyhow::Result<SearchResponse> {
    match cx.client()?.search(req).await {
        Ok(r) => Ok(r),
        Err(e @ ClientError::Status { .. }) => {
            bail!("search {:?} failed: {e}", req.to_query_pairs())
        }
        Err(e) => Err(e.into()),
    }
}

/// Ids of our corpus found in `resp`.
fn found(c: &Corpus, resp: &SearchResponse) -> anyhow::Result<BTreeSet<TraceId>> {
    let mut out = BTreeSet::new();
    for t in &resp.traces {
        let id = parse_trace_id(&t.trace_id)
            .map_err(|e| anyhow::anyhow!("hit with bad traceID {:?}: {e}", t.trace_id))?;
        if c.ids.contains(&id) {
            out.insert(id);
        }
    }
    Ok(out)
}

fn names(c: &Corpus, ids: &BTreeSet<TraceId>) -> String {
    let mut v: Vec<String> = ids
        .iter()
        .filter_map(|id| c.ids.iter().position(|x| x == id))
        .map(|k| format!("#{k} {}/{} {}ms", CORPUS[k].0, CORPUS[k].1, CORPUS[k].2))
        .collect();
    v.sort();
    format!("[{}]", v.join(", "))
}

/// Poll until the corpus hits of `req` are exactly `want`.
async fn expect_exact(
    cx: &Ctx<'_>,
    c: &Corpus,
    req: SearchRequest,
    want: BTreeSet<TraceId>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + cx.file.timings.search_visible_within.get();
    loop {
        let got = found(c, &run(cx, &req).await?)?;
        if got == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{:?}: expected {} got {}",
                req.to_query_pairs(),
                names(c, &want),
                names(c, &got)
            );
        }
        tokio::time::sleep(cx.file.timings.poll_interval.get()).await;
    }
}

fn in_range(c: &Corpus, mut r: SearchRequest) -> SearchRequest {
    r = r.with_range(c.from_s, c.to_s);
    r
}

async fn tags_logfmt(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let req = in_range(
        &c,
        SearchRequest::tags(format!("conf.run={} conf.tier=gold", cx.nonce)),
    );
    expect_exact(cx, &c, req, expected(&c, |k| CORPUS[k].3 == "gold")).await
}

fn traceql(c: &Corpus, nonce: &str, cond: &str) -> SearchRequest {
    in_range(
        c,
        SearchRequest::traceql(format!("{{ span.conf.run = \"{nonce}\" && {cond} }}")),
    )
}

async fn traceql_attribute(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let req = traceql(&c, &cx.nonce, "span.conf.tier = \"silver\"");
    expect_exact(cx, &c, req, expected(&c, |k| CORPUS[k].3 == "silver")).await
}

async fn traceql_resource(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let q = format!("{{ resource.service.name = \"conf-{}-cart\" }}", cx.nonce);
    let req = in_range(&c, SearchRequest::traceql(q));
    expect_exact(cx, &c, req, expected(&c, |k| CORPUS[k].0 == "cart")).await
}

async fn traceql_intrinsics(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let req = traceql(&c, &cx.nonce, "status = error");
    expect_exact(cx, &c, req, expected(&c, |k| CORPUS[k].5)).await?;
    let req = traceql(&c, &cx.nonce, "name = \"pay\"");
    expect_exact(cx, &c, req, expected(&c, |k| CORPUS[k].1 == "pay")).await
}

async fn traceql_numeric(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let req = traceql(&c, &cx.nonce, "span.http.status_code >= 500");
    expect_exact(cx, &c, req, expected(&c, |k| CORPUS[k].4 >= 500)).await
}

async fn duration_bounds(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let mut req = in_range(&c, SearchRequest::tags(format!("conf.run={}", cx.nonce)));
    req.min_duration = Some("100ms".into());
    req.max_duration = Some("1s".into());
    let want = expected(&c, |k| (100..=1000).contains(&CORPUS[k].2));
    expect_exact(cx, &c, req, want).await
}

async fn time_bounds(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let tags = SearchRequest::tags(format!("conf.run={}", cx.nonce));
    expect_exact(cx, &c, in_range(&c, tags.clone()), expected(&c, |_| true)).await?;
    let before = tags.with_range(c.from_s - 7200, c.from_s - 3600);
    let got = found(&c, &run(cx, &before).await?)?;
    ensure!(
        got.is_empty(),
        "a range ending an hour before the corpus found {}",
        names(&c, &got)
    );
    Ok(())
}

async fn limit(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let all = in_range(&c, SearchRequest::tags(format!("conf.run={}", cx.nonce)));
    expect_exact(cx, &c, all.clone(), expected(&c, |_| true)).await?;
    let resp = run(cx, &all.with_limit(2)).await?;
    ensure!(
        resp.traces.len() == 2,
        "limit=2 answered {} traces",
        resp.traces.len()
    );
    let ours = found(&c, &resp)?;
    ensure!(
        ours.len() == 2,
        "limit=2 answered traces outside the query: {:?}",
        resp.traces
    );
    Ok(())
}

async fn result_shape(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let req = traceql(&c, &cx.nonce, "name = \"pay\"");
    let want = expected(&c, |k| CORPUS[k].1 == "pay");
    expect_exact(cx, &c, req.clone(), want).await?;
    let k = 5;
    let resp = run(cx, &req).await?;
    let Some(hit) = resp.traces.first() else {
        bail!("no hit");
    };
    let mut problems = Vec::new();
    let hex_id = tempo_api::trace_id_to_search_hex(&c.ids[k]);
    if hit.trace_id != hex_id && hit.trace_id != hex::encode(c.ids[k]) {
        problems.push(format!("traceID {:?}, expected {hex_id:?}", hit.trace_id));
    }
    let svc = format!("conf-{}-{}", cx.nonce, CORPUS[k].0);
    if hit.root_service_name != svc {
        problems.push(format!(
            "rootServiceName {:?}, expected {svc:?}",
            hit.root_service_name
        ));
    }
    if hit.root_trace_name != CORPUS[k].1 {
        problems.push(format!(
            "rootTraceName {:?}, expected {:?}",
            hit.root_trace_name, CORPUS[k].1
        ));
    }
    if hit.start_time_unix_nano != c.starts[k] {
        problems.push(format!(
            "startTimeUnixNano {}, expected {}",
            hit.start_time_unix_nano, c.starts[k]
        ));
    }
    if u64::from(hit.duration_ms) != CORPUS[k].2 {
        problems.push(format!(
            "durationMs {}, expected {}",
            hit.duration_ms, CORPUS[k].2
        ));
    }
    let matched = hit
        .span_sets
        .first()
        .or(hit.span_set.as_ref())
        .map_or(0, |s| s.matched);
    if matched != 1 {
        problems.push(format!("spanSets[0].matched {matched}, expected 1"));
    }
    ensure!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}

async fn invalid_query(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let client = cx.client()?;
    for (what, query) in [
        (
            "unparsable TraceQL",
            vec![("q", "{ span.conf.run = }".to_owned())],
        ),
        (
            "q together with tags",
            vec![("q", "{}".to_owned()), ("tags", "a=b".to_owned())],
        ),
        (
            "limit=0",
            vec![("tags", "a=b".to_owned()), ("limit", "0".to_owned())],
        ),
    ] {
        let mut url = reqwest::Url::parse(&format!("{}/api/search", cx.running.http))?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        let path = format!("/api/search?{}", url.query().unwrap_or_default());
        let r = client.trace_raw(&path).await?;
        ensure!(
            r.status == 400,
            "{what}: {path} answered {} (expected 400)",
            r.status
        );
    }
    Ok(())
}
