//! HTTP parameters of the search and tag endpoints → plans, with Tempo's 400s.
//!
//! Search (`GET /api/search`) validates in Tempo's order: query size, `start`, `end`, `q`,
//! `tags` (not both), legacy tags, `minDuration`, `maxDuration`, `limit`, `spss`, then the
//! range (`end` after `start`, at most 168 h) and `spss` ≤ 100. Every message names the
//! parameter. An empty value counts as absent, as in Tempo.

use super::SearchPlan;
use super::ast::Expr;
use super::duration::parse_go_duration;
use super::tags::{parse_logfmt, tags_to_expr};
use super::traceql::parse_traceql;
use crate::error::Error;

/// Tempo's default `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// Tempo's default `spss`.
pub const DEFAULT_SPANS_PER_SPANSET: usize = 3;
/// Tempo's default `max_spans_per_span_set`.
pub const MAX_SPANS_PER_SPANSET: u64 = 100;
/// Tempo's default `max_query_expression_size_bytes`.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;
/// Tempo's default `query_frontend.search.max_duration` (168 h), in seconds.
pub const MAX_RANGE_SECS: u64 = 168 * 3600;

const RESERVED: [&str; 8] = [
    "q",
    "tags",
    "minDuration",
    "maxDuration",
    "limit",
    "spss",
    "start",
    "end",
];

fn bad<T>(message: String) -> Result<T, Error> {
    Err(Error::InvalidArgument(message))
}

/// The first non-empty value of `name`.
fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// An unsigned integer parameter, with Go's `strconv` wording on failure.
fn parse_uint(params: &[(String, String)], name: &str, max: u64) -> Result<Option<u64>, Error> {
    let Some(v) = get(params, name) else {
        return Ok(None);
    };
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => {
            let why = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            bad(format!(
                "invalid {name}: strconv.ParseUint: parsing {v:?}: {why}"
            ))
        }
    }
}

/// A positive count (`limit`, `spss`), with Go's `strconv.Atoi` wording on failure.
fn parse_count(params: &[(String, String)], name: &str) -> Result<Option<u64>, Error> {
    let Some(v) = get(params, name) else {
        return Ok(None);
    };
    match v.parse::<i64>() {
        Ok(n) if n > 0 => Ok(Some(n as u64)),
        Ok(_) => bad(format!("invalid {name}: must be a positive number")),
        Err(e) => {
            let why = if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            bad(format!(
                "invalid {name}: strconv.Atoi: parsing {v:?}: {why}"
            ))
        }
    }
}

/// A Go duration parameter truncated to whole milliseconds, as Tempo keeps it (`0` = unset).
fn parse_duration_ms(params: &[(String, String)], name: &str) -> Result<Option<u64>, Error> {
    let Some(v) = get(params, name) else {
        return Ok(None);
    };
    match parse_go_duration(v) {
        Ok(ns) if ns < 0 => bad(format!("invalid {name}: must not be negative")),
        Ok(ns) => Ok(Some(ns as u64 / 1_000_000)),
        Err(e) => bad(format!("invalid {name}: {e}")),
    }
}

/// `start`/`end` (epoch seconds, uint32), checked as Tempo checks them.
fn parse_range(params: &[(String, String)]) -> Result<(u64, u64), Error> {
    let start = parse_uint(params, "start", u64::from(u32::MAX))?.unwrap_or(0);
    let end = parse_uint(params, "end", u64::from(u32::MAX))?.unwrap_or(0);
    Ok((start, end))
}

fn check_range(start: u64, end: u64) -> Result<(), Error> {
    if (start != 0 || end != 0) && end <= start {
        return bad(format!(
            "http parameter start must be before end. received start={start} end={end}"
        ));
    }
    Ok(())
}

/// Parse `GET /api/search` parameters into a plan.
pub fn parse_search(params: &[(String, String)]) -> Result<SearchPlan, Error> {
    let query = get(params, "q");
    if let Some(q) = query
        && q.len() > MAX_QUERY_BYTES
    {
        return bad(format!(
            "TraceQL expression exceeds the configured maximum size of {MAX_QUERY_BYTES} bytes, reduce the query expression size or contact your system administrator"
        ));
    }
    let (start, end) = parse_range(params)?;
    let mut filter = match query {
        Some(q) => Some(parse_traceql(q)?),
        None => None,
    };
    let tags = get(params, "tags");
    if let Some(t) = tags {
        if query.is_some() {
            return bad("invalid request: can't specify tags and q in the same query".into());
        }
        if t.len() > MAX_QUERY_BYTES {
            return bad(format!(
                "invalid tags: longer than the maximum of {MAX_QUERY_BYTES} bytes"
            ));
        }
        filter = Some(tags_to_expr(&parse_logfmt(t)?)?);
    }
    if query.is_none() && tags.is_none() && start == 0 && end == 0 {
        let mut legacy: Vec<(String, String)> = Vec::new();
        for (k, v) in params {
            if !RESERVED.contains(&k.as_str())
                && !v.is_empty()
                && !legacy.iter().any(|(lk, _)| lk == k)
            {
                legacy.push((k.clone(), v.clone()));
            }
        }
        if !legacy.is_empty() {
            filter = Some(tags_to_expr(&legacy)?);
        }
    }
    let min_ms = parse_duration_ms(params, "minDuration")?;
    let max_ms = parse_duration_ms(params, "maxDuration")?;
    if let (Some(min), Some(max)) = (min_ms, max_ms)
        && min != 0
        && min > max
    {
        return bad("invalid maxDuration: must be greater than minDuration".into());
    }
    let limit = parse_count(params, "limit")?;
    let spss = parse_count(params, "spss")?;
    check_range(start, end)?;
    if end.saturating_sub(start) > MAX_RANGE_SECS {
        return bad(format!(
            "range specified by start and end exceeds 168h0m0s. received start={start} end={end}"
        ));
    }
    if let Some(n) = spss
        && n > MAX_SPANS_PER_SPANSET
    {
        return bad(format!(
            "spans per span set exceeds {MAX_SPANS_PER_SPANSET}. received {n}"
        ));
    }
    let ms_to_ns = |ms: Option<u64>| ms.filter(|m| *m > 0).map(|m| m * 1_000_000);
    let ranged = start > 0 && end > 0;
    Ok(SearchPlan {
        filter: filter.unwrap_or(Expr::All),
        min_duration_ns: ms_to_ns(min_ms),
        max_duration_ns: ms_to_ns(max_ms),
        start_ns: ranged.then(|| start * 1_000_000_000),
        end_ns: ranged.then(|| end * 1_000_000_000),
        limit: limit.map_or(DEFAULT_LIMIT, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        spans_per_spanset: spss.map_or(DEFAULT_SPANS_PER_SPANSET, |n| n as usize),
    })
}

/// Which attributes a tag-names request lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagScope {
    /// `resource`
    Resource,
    /// `span`
    Span,
    /// `intrinsic`
    Intrinsic,
    /// `event`, `link` or `instrumentation`: valid in Tempo, never summarized here.
    NotSummarized,
}

/// Parameters of the tag endpoints.
#[derive(Debug, Clone)]
pub struct TagRequest {
    /// `scope` (names endpoints only); `None` = every scope.
    pub scope: Option<TagScope>,
    /// Only data overlapping `[start, end]` (unix ns), when both are given.
    pub range_ns: Option<(u64, u64)>,
    /// Most names or values to return (`None`: all).
    pub limit: Option<usize>,
    /// `q`: only spans matching this TraceQL filter contribute names and values. A `q`
    /// that does not parse (Grafana sends partial queries while the user types) filters
    /// nothing, as in Tempo.
    pub filter: Expr,
}

/// Parse the parameters of the tag-name and tag-value endpoints.
pub fn parse_tag_request(params: &[(String, String)]) -> Result<TagRequest, Error> {
    let scope = match get(params, "scope") {
        None => None,
        Some("resource") => Some(TagScope::Resource),
        Some("span") => Some(TagScope::Span),
        Some("intrinsic") => Some(TagScope::Intrinsic),
        Some("event" | "link" | "instrumentation") => Some(TagScope::NotSummarized),
        Some(other) => return bad(format!("invalid scope: {other}")),
    };
    let (start, end) = parse_range(params)?;
    check_range(start, end)?;
    let limit = match get(params, "limit") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(0) => None,
            Ok(n) if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Ok(_) => return bad("invalid limit: must be a positive number".into()),
            Err(_) => {
                return bad(format!(
                    "invalid limit: strconv.Atoi: parsing {v:?}: invalid syntax"
                ));
            }
        },
    };
    let filter = match get(params, "q").map(parse_traceql) {
        None => Expr::All,
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "tag request q does not parse; not filtering");
            Expr::All
        }
    };
    Ok(TagRequest {
        scope,
        range_ns: (start > 0 && end > 0).then(|| (start * 1_000_000_000, end * 1_000_000_000)),
        limit,
        filter,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn params(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn plan(v: &[(&str, &str)]) -> SearchPlan {
        parse_search(&params(v)).unwrap()
    }

    fn error(v: &[(&str, &str)]) -> String {
        parse_search(&params(v)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_values() {
        let p = plan(&[]);
        assert!(matches!(p.filter, Expr::All));
        assert_eq!((p.limit, p.spans_per_spanset), (20, 3));
        assert_eq!((p.start_ns, p.end_ns), (None, None));
        let p = plan(&[
            ("q", "{ .a = 1 }"),
            ("limit", "5"),
            ("spss", "100"),
            ("start", "10"),
            ("end", "20"),
            ("minDuration", "1500us"),
            ("maxDuration", "2s"),
        ]);
        assert_eq!(p.filter.conditions().len(), 1);
        assert_eq!((p.limit, p.spans_per_spanset), (5, 100));
        assert_eq!(
            (p.start_ns, p.end_ns),
            (Some(10_000_000_000), Some(20_000_000_000))
        );
        // Tempo keeps whole milliseconds.
        assert_eq!(p.min_duration_ns, Some(1_000_000));
        assert_eq!(p.max_duration_ns, Some(2_000_000_000));
        // Below a millisecond is no bound at all.
        assert_eq!(plan(&[("maxDuration", "500us")]).max_duration_ns, None);
        // Empty values are absent.
        assert_eq!(plan(&[("limit", ""), ("q", "")]).limit, 20);
    }

    #[test]
    fn legacy_parameters_are_tags_only_without_q_tags_and_range() {
        let p = plan(&[("service.name", "cart"), ("limit", "2"), ("x", "")]);
        assert_eq!(p.filter.conditions().len(), 1);
        assert_eq!(p.limit, 2);
        let p = plan(&[("service.name", "cart"), ("start", "10"), ("end", "20")]);
        assert!(matches!(p.filter, Expr::All));
        let p = plan(&[("service.name", "cart"), ("q", "{}")]);
        assert!(matches!(p.filter, Expr::All));
    }

    #[test]
    fn query_size_limit() {
        let at = format!(r#"{{ .a = "{}" }}"#, "x".repeat(MAX_QUERY_BYTES - 11));
        assert_eq!(at.len(), MAX_QUERY_BYTES);
        assert!(parse_search(&params(&[("q", &at)])).is_ok());
        let over = format!("{at} ");
        assert!(
            error(&[("q", &over)]).starts_with(
                "TraceQL expression exceeds the configured maximum size of 131072 bytes"
            )
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (
                &[("q", "{}"), ("tags", "a=b")],
                "invalid request: can't specify tags and q",
            ),
            (
                &[("minDuration", "-1s")],
                "invalid minDuration: must not be negative",
            ),
            (
                &[("minDuration", "1s"), ("maxDuration", "0s")],
                "invalid maxDuration: must be greater",
            ),
            (&[("limit", "1.5")], "invalid limit: strconv.Atoi"),
            (&[("spss", "x")], "invalid spss: strconv.Atoi"),
            (
                &[("end", "1700000000")],
                "range specified by start and end exceeds 168h0m0s",
            ),
            (
                &[("start", "-1"), ("end", "10")],
                "invalid start: strconv.ParseUint",
            ),
            (
                &[("tags", "a=b c=\"d")],
                "invalid tags: unterminated quoted value at pos 9",
            ),
        ];
        for (p, want) in cases {
            let e = error(p);
            assert!(e.starts_with(want), "{p:?}: {e}");
        }
    }

    #[test]
    fn tag_requests() {
        let r = parse_tag_request(&params(&[("scope", "span"), ("limit", "0")])).unwrap();
        assert_eq!(
            (r.scope, r.limit, r.range_ns),
            (Some(TagScope::Span), None, None)
        );
        let r =
            parse_tag_request(&params(&[("start", "1"), ("end", "2"), ("limit", "7")])).unwrap();
        assert_eq!(r.range_ns, Some((1_000_000_000, 2_000_000_000)));
        assert_eq!(r.limit, Some(7));
        for bad in [
            &[("scope", "x")][..],
            &[("limit", "-1")],
            &[("start", "3"), ("end", "2")],
        ] {
            assert!(parse_tag_request(&params(bad)).is_err(), "{bad:?}");
        }
    }
}
