//! Comparing a trace read back with what was sent, span by span, naming every difference.
//!
//! Order carries no meaning in OTLP: resources, scopes and spans are matched by span id, and
//! attributes (including those inside key-value lists) are compared as maps. An unset status
//! equals a missing one. Schema URLs are not compared.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

/// Most differences listed.
const MAX_DIFFS: usize = 8;

fn show(v: &Option<AnyValue>) -> String {
    let text = match v.as_ref().and_then(|a| a.value.as_ref()) {
        None => "<empty>".to_owned(),
        Some(Value::StringValue(s)) => format!("{s:?}"),
        Some(Value::StringValueStrindex(k)) => format!("string table entry {k}"),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format!("{d:?} (double)"),
        Some(Value::BytesValue(b)) => format!("bytes {}", hex::encode(b)),
        Some(Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(|v| show(&Some(v.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Value::KvlistValue(l)) => format!(
            "{{{}}}",
            l.values
                .iter()
                .map(|kv| format!("{}: {}", kv.key, show(&kv.value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if text.len() > 80 {
        format!(
            "{}… ({} chars)",
            text.chars().take(60).collect::<String>(),
            text.len()
        )
    } else {
        text
    }
}

/// Canonical form of a value: key-value lists sorted by key, recursively.
fn canon(v: &Option<AnyValue>) -> Option<AnyValue> {
    let mut v = v.clone()?;
    match v.value.as_mut() {
        Some(Value::KvlistValue(l)) => {
            for kv in &mut l.values {
                kv.value = canon(&kv.value);
            }
            l.values.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Some(Value::ArrayValue(a)) => {
            for x in &mut a.values {
                *x = canon(&Some(x.clone())).unwrap_or_default();
            }
        }
        _ => {}
    }
    Some(v)
}

/// Differences between two attribute lists, each prefixed with `what`.
pub fn attributes(what: &str, sent: &[KeyValue], got: &[KeyValue]) -> Vec<String> {
    let map = |kvs: &[KeyValue]| -> BTreeMap<String, Option<AnyValue>> {
        kvs.iter()
            .map(|kv| (kv.key.clone(), canon(&kv.value)))
            .collect()
    };
    let (s, g) = (map(sent), map(got));
    let mut out = Vec::new();
    for (k, v) in &s {
        match g.get(k) {
            None => out.push(format!(
                "{what}: attribute `{k}` missing (sent {})",
                show(v)
            )),
            Some(w) if w != v => out.push(format!(
                "{what}: attribute `{k}` sent {} got {}",
                show(v),
                show(w)
            )),
            _ => {}
        }
    }
    for (k, w) in &g {
        if !s.contains_key(k) {
            out.push(format!("{what}: unexpected attribute `{k}` = {}", show(w)));
        }
    }
    out
}

struct Flat<'a> {
    resource: Vec<KeyValue>,
    resource_dropped: u32,
    scope: (String, String, Vec<KeyValue>, u32),
    span: &'a Span,
}

fn flatten(rs: &[ResourceSpans]) -> Vec<Flat<'_>> {
    let mut out = Vec::new();
    for r in rs {
        let (resource, resource_dropped) = r
            .resource
            .as_ref()
            .map(|x| (x.attributes.clone(), x.dropped_attributes_count))
            .unwrap_or_default();
        for ss in &r.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|x| {
                    (
                        x.name.clone(),
                        x.version.clone(),
                        x.attributes.clone(),
                        x.dropped_attributes_count,
                    )
                })
                .unwrap_or_default();
            for span in &ss.spans {
                out.push(Flat {
                    resource: resource.clone(),
                    resource_dropped,
                    scope: scope.clone(),
                    span,
                });
            }
        }
    }
    out
}

fn status_of(s: &Span) -> (i32, String) {
    s.status
        .as_ref()
        .map(|st| (st.code, st.message.clone()))
        .unwrap_or_default()
}

fn span_diffs(w: &Flat<'_>, h: &Flat<'_>, out: &mut Vec<String>) {
    let (ws, hs) = (w.span, h.span);
    let id = format!("span {} ({:?})", hex::encode(&ws.span_id), ws.name);
    let mut check = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{id}: {name} sent {a} got {b}"));
        }
    };
    check(
        "trace id",
        hex::encode(&ws.trace_id),
        hex::encode(&hs.trace_id),
    );
    check(
        "parent span id",
        hex::encode(&ws.parent_span_id),
        hex::encode(&hs.parent_span_id),
    );
    check("name", format!("{:?}", ws.name), format!("{:?}", hs.name));
    check("kind", ws.kind.to_string(), hs.kind.to_string());
    check(
        "start",
        ws.start_time_unix_nano.to_string(),
        hs.start_time_unix_nano.to_string(),
    );
    check(
        "end",
        ws.end_time_unix_nano.to_string(),
        hs.end_time_unix_nano.to_string(),
    );
    check(
        "trace state",
        format!("{:?}", ws.trace_state),
        format!("{:?}", hs.trace_state),
    );
    check(
        "status",
        format!("{:?}", status_of(ws)),
        format!("{:?}", status_of(hs)),
    );
    check(
        "dropped attributes",
        ws.dropped_attributes_count.to_string(),
        hs.dropped_attributes_count.to_string(),
    );
    check(
        "dropped events",
        ws.dropped_events_count.to_string(),
        hs.dropped_events_count.to_string(),
    );
    check(
        "dropped links",
        ws.dropped_links_count.to_string(),
        hs.dropped_links_count.to_string(),
    );
    check(
        "resource dropped attributes",
        w.resource_dropped.to_string(),
        h.resource_dropped.to_string(),
    );
    check(
        "scope",
        format!("{:?} {:?} dropped {}", w.scope.0, w.scope.1, w.scope.3),
        format!("{:?} {:?} dropped {}", h.scope.0, h.scope.1, h.scope.3),
    );
    check(
        "event count",
        ws.events.len().to_string(),
        hs.events.len().to_string(),
    );
    check(
        "link count",
        ws.links.len().to_string(),
        hs.links.len().to_string(),
    );
    out.extend(attributes(
        &format!("{id} resource"),
        &w.resource,
        &h.resource,
    ));
    out.extend(attributes(&format!("{id} scope"), &w.scope.2, &h.scope.2));
    out.extend(attributes(&id, &ws.attributes, &hs.attributes));
    let mut events: Vec<_> = hs.events.iter().collect();
    events.sort_by_key(|e| (e.time_unix_nano, e.name.clone()));
    let mut sent_events: Vec<_> = ws.events.iter().collect();
    sent_events.sort_by_key(|e| (e.time_unix_nano, e.name.clone()));
    for (a, b) in sent_events.iter().zip(&events) {
        let what = format!("{id} event {:?}", a.name);
        if (
            a.name.as_str(),
            a.time_unix_nano,
            a.dropped_attributes_count,
        ) != (
            b.name.as_str(),
            b.time_unix_nano,
            b.dropped_attributes_count,
        ) {
            out.push(format!(
                "{what}: sent name/time/dropped {:?}/{}/{} got {:?}/{}/{}",
                a.name,
                a.time_unix_nano,
                a.dropped_attributes_count,
                b.name,
                b.time_unix_nano,
                b.dropped_attributes_count
            ));
        }
        out.extend(attributes(&what, &a.attributes, &b.attributes));
    }
    let key = |l: &&opentelemetry_proto::tonic::trace::v1::span::Link| {
        (l.trace_id.clone(), l.span_id.clone())
    };
    let mut links: Vec<_> = hs.links.iter().collect();
    links.sort_by_key(key);
    let mut sent_links: Vec<_> = ws.links.iter().collect();
    sent_links.sort_by_key(key);
    for (a, b) in sent_links.iter().zip(&links) {
        let what = format!("{id} link to {}", hex::encode(&a.span_id));
        let fields = |l: &opentelemetry_proto::tonic::trace::v1::span::Link| {
            format!(
                "ids {}/{} state {:?} dropped {}",
                hex::encode(&l.trace_id),
                hex::encode(&l.span_id),
                l.trace_state,
                l.dropped_attributes_count
            )
        };
        if fields(a) != fields(b) {
            out.push(format!("{what}: sent {} got {}", fields(a), fields(b)));
        }
        out.extend(attributes(&what, &a.attributes, &b.attributes));
    }
}

/// Every difference between the spans sent and the spans read back (empty when equal).
pub fn diff(sent: &[ResourceSpans], got: &[ResourceSpans]) -> Vec<String> {
    let sent_flat = flatten(sent);
    let got_flat = flatten(got);
    let mut by_id: BTreeMap<&[u8], Vec<&Flat<'_>>> = BTreeMap::new();
    for g in &got_flat {
        by_id.entry(g.span.span_id.as_slice()).or_default().push(g);
    }
    let mut out = Vec::new();
    let mut missing = 0usize;
    for w in &sent_flat {
        match by_id.get(w.span.span_id.as_slice()).and_then(|v| v.first()) {
            None => missing += 1,
            Some(h) => span_diffs(w, h, &mut out),
        }
    }
    if missing > 0 {
        out.insert(0, format!("{missing} of {} spans missing", sent_flat.len()));
    }
    let sent_ids: std::collections::BTreeSet<&[u8]> = sent_flat
        .iter()
        .map(|f| f.span.span_id.as_slice())
        .collect();
    let extra = got_flat
        .iter()
        .filter(|g| !sent_ids.contains(g.span.span_id.as_slice()))
        .count();
    let duplicates =
        got_flat.len() - extra - by_id.keys().filter(|k| sent_ids.contains(*k)).count();
    if extra > 0 {
        out.push(format!("{extra} spans returned that were not sent"));
    }
    if duplicates > 0 {
        out.push(format!("{duplicates} spans returned more than once"));
    }
    if out.len() > MAX_DIFFS {
        let more = out.len() - MAX_DIFFS;
        out.truncate(MAX_DIFFS);
        out.push(format!("… and {more} more differences"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fixtures;

    #[test]
    fn equal_traces_in_another_order_have_no_diff() {
        let (_, rs) = fixtures::simple_trace("svc", 3);
        let mut shuffled = rs.clone();
        shuffled[0].scope_spans[0].spans.reverse();
        shuffled[0].scope_spans[0].spans[0].attributes.reverse();
        assert!(diff(&rs, &shuffled).is_empty());
    }

    #[test]
    fn differences_are_named() {
        let (_, rs) = fixtures::simple_trace("svc", 3);
        let mut got = rs.clone();
        got[0].scope_spans[0].spans[1].attributes.clear();
        got[0].scope_spans[0].spans.pop();
        let d = diff(&rs, &got).join("\n");
        assert!(d.contains("1 of 3 spans missing"), "{d}");
        assert!(d.contains("attribute `child.index` missing"), "{d}");
    }
}
