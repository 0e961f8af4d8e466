//! Tenancy: with multitenancy on, tenants never see each other's data, and invalid or
//! missing tenant ids are refused (the `multitenant` profile).

use std::time::Instant;

use anyhow::{bail, ensure};
use tempo_api::parse_trace_id;
use tempo_api::search::SearchRequest;

use super::{Case, Ctx, read_with, write_with};
use crate::case;
use crate::fixtures;
use crate::otlp::Transport;
use crate::spec::Capability::*;

/// The tenancy cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "tenancy.isolation",
            &[Multitenancy],
            Some("multitenant"),
            "a trace written as tenant A is readable by A and not by B, and the other way round",
            isolation
        ),
        case!(
            "tenancy.invalid_tenant_refused",
            &[Multitenancy],
            Some("multitenant"),
            "tenant ids with `/`, `..` or over 150 bytes are refused on ingest and query",
            invalid_tenant_refused
        ),
        case!(
            "tenancy.missing_tenant",
            &[Multitenancy],
            Some("multitenant"),
            "with multitenancy on, requests without X-Scope-OrgID are refused (401)",
            missing_tenant
        ),
        case!(
            "tenancy.cross_tenant_read",
            &[Multitenancy, SearchTags],
            Some("multitenant"),
            "`X-Scope-OrgID: a|b` reads by id, search and tag names from both tenants and merges \
             them; writes with `|` and malformed lists (`|a`, `a|`, `a||b`) are refused",
            cross_tenant_read
        ),
    ]
}

async fn isolation(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (a, b) = (
        format!("conf-a-{}", cx.nonce),
        format!("conf-b-{}", cx.nonce),
    );
    let (ida, rsa) = fixtures::simple_trace("tenant-a", 2);
    let (idb, rsb) = fixtures::simple_trace("tenant-b", 2);
    let t = cx.transport();
    write_with(&cx.sender().as_tenant(Some(&a)), t, rsa.clone()).await?;
    write_with(&cx.sender().as_tenant(Some(&b)), t, rsb.clone()).await?;
    let v2 = cx.has(TraceByIdV2);
    let (ca, cb) = (cx.client_as(Some(&a))?, cx.client_as(Some(&b))?);
    super::await_equal_with(&ca, v2, &ida, &rsa, cx.file).await?;
    super::await_equal_with(&cb, v2, &idb, &rsb, cx.file).await?;
    if let Some(got) = read_with(&cb, v2, &ida).await? {
        bail!(
            "tenant B read tenant A's trace ({} spans)",
            fixtures::span_count(&got)
        );
    }
    if let Some(got) = read_with(&ca, v2, &idb).await? {
        bail!(
            "tenant A read tenant B's trace ({} spans)",
            fixtures::span_count(&got)
        );
    }
    Ok(())
}

async fn invalid_tenant_refused(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let long = "t".repeat(151);
    for bad in ["a/b", "..", long.as_str()] {
        expect_ingest_refused(cx, bad, "tenant-invalid").await?;
        let id = hex::encode(fixtures::trace_id());
        let r = cx
            .client_as(Some(bad))?
            .trace_raw(&format!("/api/traces/{id}"))
            .await?;
        ensure!(
            (400..500).contains(&r.status) && r.status != 404,
            "query as tenant {:?}: expected 400 or 401, got {}",
            shorten(bad),
            r.status
        );
    }
    Ok(())
}

/// A write as `tenant` over each declared transport must be refused with a 4xx.
async fn expect_ingest_refused(cx: &Ctx<'_>, tenant: &str, service: &str) -> anyhow::Result<()> {
    let (_, rs) = fixtures::simple_trace(service, 1);
    for (cap, t) in [
        (OtlpHttpProtobuf, Transport::HttpProtobuf),
        (OtlpGrpc, Transport::Grpc),
    ] {
        if !cx.has(cap) {
            continue;
        }
        let ack = cx
            .sender()
            .as_tenant(Some(tenant))
            .send(t, &fixtures::request(rs.clone()), false)
            .await?;
        ensure!(
            !ack.ok() && (400..500).contains(&ack.http_status),
            "ingest as tenant {:?} over {}: expected a 4xx refusal, got {}",
            shorten(tenant),
            t.name(),
            ack.describe()
        );
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    if s.len() > 20 {
        format!("{}…({} bytes)", &s[..12], s.len())
    } else {
        s.to_owned()
    }
}

async fn missing_tenant(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (_, rs) = fixtures::simple_trace("tenant-missing", 1);
    let mut wrong = Vec::new();
    for (cap, t) in [
        (OtlpGrpc, Transport::Grpc),
        (OtlpHttpProtobuf, Transport::HttpProtobuf),
    ] {
        if !cx.has(cap) {
            continue;
        }
        let ack = cx
            .sender()
            .as_tenant(None)
            .send(t, &fixtures::request(rs.clone()), false)
            .await?;
        if ack.http_status != 401 {
            wrong.push(format!("ingest over {}: {}", t.name(), ack.describe()));
        }
    }
    let id = hex::encode(fixtures::trace_id());
    let r = cx
        .client_as(None)?
        .trace_raw(&format!("/api/traces/{id}"))
        .await?;
    if r.status != 401 {
        wrong.push(format!("query: HTTP {}", r.status));
    }
    ensure!(
        wrong.is_empty(),
        "without a tenant, expected 401 / UNAUTHENTICATED; {}",
        wrong.join("; ")
    );
    Ok(())
}

/// Tempo's query-frontend reads every tenant of `a|b` and merges the answers; writes name one
/// tenant.
async fn cross_tenant_read(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let nonce = cx.nonce.clone();
    let (a, b) = (format!("conf-xa-{nonce}"), format!("conf-xb-{nonce}"));
    let both = format!("{a}|{b}");
    let tag_of = |t: &str| format!("conf_cross_{t}_{}", nonce.replace('-', "_"));
    let mut written = Vec::new();
    for (tenant, which) in [(&a, "a"), (&b, "b")] {
        let (id, mut rs) = fixtures::simple_trace(&format!("cross-{which}-{nonce}"), 2);
        for span in &mut rs[0].scope_spans[0].spans {
            span.attributes.push(fixtures::s("conf.run", &nonce));
            span.attributes.push(fixtures::s(&tag_of(which), "x"));
        }
        write_with(
            &cx.sender().as_tenant(Some(tenant)),
            cx.transport(),
            rs.clone(),
        )
        .await?;
        written.push((id, rs));
    }
    let v2 = cx.has(TraceByIdV2);
    let merged = cx.client_as(Some(&both))?;
    for (id, rs) in &written {
        super::await_equal_with(&merged, v2, id, rs, cx.file)
            .await
            .map_err(|e| anyhow::anyhow!("read by id as {both:?}: {e}"))?;
    }

    // Search and tag names as `a|b` hold both tenants' traces; as `a`, only a's.
    let now = (fixtures::now_ns() / 1_000_000_000) as u32;
    let req = SearchRequest::tags(format!("conf.run={nonce}")).with_range(now - 600, now + 60);
    let want: Vec<_> = written.iter().map(|(id, _)| *id).collect();
    let deadline = Instant::now() + cx.file.timings.search_visible_within.get();
    loop {
        let hits = merged.search(&req).await?;
        let mut got = Vec::new();
        for t in &hits.traces {
            if let Ok(id) = parse_trace_id(&t.trace_id) {
                got.push(id);
            }
        }
        let tags = merged.search_tags().await?.tag_names;
        let missing_tags: Vec<String> = ["a", "b"]
            .iter()
            .map(|w| tag_of(w))
            .filter(|t| !tags.contains(t))
            .collect();
        let missing_hits = want.iter().filter(|id| !got.contains(id)).count();
        if missing_hits == 0 && missing_tags.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "as {both:?}: search found {} of the 2 traces (one per tenant); tag names \
                 missing: {missing_tags:?}",
                2 - missing_hits
            );
        }
        tokio::time::sleep(cx.file.timings.poll_interval.get()).await;
    }
    let only_a = cx.client_as(Some(&a))?.search(&req).await?;
    ensure!(
        only_a
            .traces
            .iter()
            .all(|t| parse_trace_id(&t.trace_id).ok() != Some(written[1].0)),
        "search as {a:?} alone found tenant {b:?}'s trace"
    );

    // A write names one tenant.
    expect_ingest_refused(cx, &both, "cross-write").await?;

    // Malformed tenant lists are refused on reads.
    let id = hex::encode(written[0].0);
    for bad in [format!("|{a}"), format!("{a}|"), format!("{a}||{b}")] {
        let r = cx
            .client_as(Some(&bad))?
            .trace_raw(&format!("/api/traces/{id}"))
            .await?;
        ensure!(
            r.status == 400 || r.status == 401,
            "read by id as {bad:?}: expected 400 or 401, got {}",
            r.status
        );
    }
    Ok(())
}
