//! Tenancy: with multitenancy on, tenants never see each other's data, and invalid or
//! missing tenant ids are refused (the `multitenant` profile).

use anyhow::{bail, ensure};

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
        let (_, rs) = fixtures::simple_trace("tenant-invalid", 1);
        for (cap, t) in [
            (OtlpHttpProtobuf, Transport::HttpProtobuf),
            (OtlpGrpc, Transport::Grpc),
        ] {
            if !cx.has(cap) {
                continue;
            }
            let ack = cx
                .sender()
                .as_tenant(Some(bad))
                .send(t, &fixtures::request(rs.clone()), false)
                .await?;
            ensure!(
                !ack.ok() && (400..500).contains(&ack.http_status),
                "ingest as tenant {:?} over {}: expected a 4xx refusal, got {}",
                shorten(bad),
                t.name(),
                ack.describe()
            );
        }
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
