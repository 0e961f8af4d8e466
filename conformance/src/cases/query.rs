//! Query by id: both API versions, JSON and protobuf, unknown and malformed ids, short and
//! padded ids, time bounds.

use anyhow::{bail, ensure};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tempo_api::TempoClient;

use super::{Case, Ctx};
use crate::case;
use crate::fixtures::{self, TraceId};
use crate::spec::Capability::*;

/// The query cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "query.by_id_v1_json",
            &[TraceByIdV1],
            None,
            "GET /api/traces/{id} answers the trace as JSON (`batches`, base64 ids)",
            by_id_v1_json
        ),
        case!(
            "query.by_id_v1_protobuf",
            &[TraceByIdV1, ProtobufResponses],
            None,
            "GET /api/traces/{id} with Accept: application/protobuf answers the trace as protobuf",
            by_id_v1_protobuf
        ),
        case!(
            "query.by_id_v2_json",
            &[TraceByIdV2],
            None,
            "GET /api/v2/traces/{id} answers {trace:{resourceSpans}} as JSON",
            by_id_v2_json
        ),
        case!(
            "query.by_id_v2_protobuf",
            &[TraceByIdV2, ProtobufResponses],
            None,
            "GET /api/v2/traces/{id} with Accept: application/protobuf answers a TraceByIDResponse",
            by_id_v2_protobuf
        ),
        case!(
            "query.unknown_id",
            &[],
            None,
            "an unknown id answers 404 on v1, and 404 or 200 with an empty trace on v2",
            unknown_id
        ),
        case!(
            "query.malformed_ids",
            &[],
            None,
            "non-hex ids and ids longer than 128 bits answer 400",
            malformed_ids
        ),
        case!(
            "query.short_and_padded_ids",
            &[],
            None,
            "ids with leading zeros stripped, odd length or upper case find the same trace",
            short_and_padded_ids
        ),
        case!(
            "query.time_bounds",
            &[],
            None,
            "start/end around the trace find it; end before start answers 400",
            time_bounds
        ),
    ]
}

type Reader =
    for<'a> fn(
        &'a TempoClient,
        &'a TraceId,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<Option<Vec<ResourceSpans>>>>;

async fn check_reader(cx: &mut Ctx<'_>, name: &str, reader: Reader) -> anyhow::Result<()> {
    let (id, rs) = fixtures::simple_trace(&format!("query-{name}"), 3);
    cx.write(rs.clone()).await?;
    // Wait with the default reader, then require this one to agree.
    cx.await_equal(&id, &rs).await?;
    let client = cx.client()?;
    match reader(&client, &id).await? {
        None => bail!("{name}: not found, though the trace is readable"),
        Some(got) => {
            let d = crate::compare::diff(&rs, &got);
            ensure!(d.is_empty(), "{name}: {}", d.join("; "));
        }
    }
    Ok(())
}

async fn by_id_v1_json(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    check_reader(cx, "v1 json", |c, id| {
        Box::pin(async move { Ok(c.trace_v1(id).await?) })
    })
    .await
}

async fn by_id_v1_protobuf(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    check_reader(cx, "v1 protobuf", |c, id| {
        Box::pin(async move { Ok(c.trace_v1_proto(id).await?) })
    })
    .await
}

async fn by_id_v2_json(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    check_reader(cx, "v2 json", |c, id| {
        Box::pin(async move { Ok(c.trace_v2(id).await?.map(|t| t.resource_spans)) })
    })
    .await
}

async fn by_id_v2_protobuf(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    check_reader(cx, "v2 protobuf", |c, id| {
        Box::pin(async move { Ok(c.trace_v2_proto(id).await?.map(|t| t.resource_spans)) })
    })
    .await
}

async fn unknown_id(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let client = cx.client()?;
    let id = hex::encode(fixtures::trace_id());
    if cx.has(TraceByIdV1) {
        let r = client.trace_raw(&format!("/api/traces/{id}")).await?;
        ensure!(
            r.status == 404,
            "v1 answered {} for an unknown id: {}",
            r.status,
            r.text()
        );
    }
    if cx.has(TraceByIdV2) {
        let r = client.trace_raw(&format!("/api/v2/traces/{id}")).await?;
        match r.status {
            404 => {}
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&r.body)
                    .map_err(|e| anyhow::anyhow!("v2 200 body is not JSON: {e}"))?;
                let spans = v["trace"]["resourceSpans"].as_array().map_or(0, Vec::len);
                ensure!(
                    spans == 0,
                    "v2 answered an unknown id with {spans} resource spans"
                );
            }
            s => bail!("v2 answered {s} for an unknown id: {}", r.text()),
        }
    }
    Ok(())
}

async fn malformed_ids(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let client = cx.client()?;
    let mut paths = Vec::new();
    for bad in ["xyz", "0123456789abcdefg", &"a".repeat(33), "12-34"] {
        if cx.has(TraceByIdV1) {
            paths.push(format!("/api/traces/{bad}"));
        }
        if cx.has(TraceByIdV2) {
            paths.push(format!("/api/v2/traces/{bad}"));
        }
    }
    for p in paths {
        let r = client.trace_raw(&p).await?;
        ensure!(
            r.status == 400,
            "{p} answered {} (expected 400): {}",
            r.status,
            r.text()
        );
    }
    Ok(())
}

async fn short_and_padded_ids(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let mut id = fixtures::trace_id();
    id[..9].fill(0);
    id[9] = 0x0a;
    let (_, mut rs) = fixtures::simple_trace("query-short-ids", 2);
    for sp in rs[0].scope_spans[0].spans.iter_mut() {
        sp.trace_id = id.to_vec();
    }
    cx.write(rs.clone()).await?;
    cx.await_equal(&id, &rs).await?;
    let full = hex::encode(id);
    let stripped = full.trim_start_matches('0').to_owned();
    ensure!(
        stripped.len() % 2 == 1,
        "test id should strip to an odd length"
    );
    let client = cx.client()?;
    let api = if cx.has(TraceByIdV2) {
        "/api/v2/traces"
    } else {
        "/api/traces"
    };
    for form in [
        stripped.clone(),
        full.to_uppercase(),
        format!("0{stripped}"),
    ] {
        let r = client.trace_raw(&format!("{api}/{form}")).await?;
        ensure!(r.status == 200, "{api}/{form} answered {}", r.status);
        let text = r.text();
        let name = &rs[0].scope_spans[0].spans[0].name;
        ensure!(
            text.contains(&format!("\"{name}\"")),
            "{api}/{form} answered 200 without the trace's spans"
        );
    }
    Ok(())
}

async fn time_bounds(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, rs) = fixtures::simple_trace("query-time-bounds", 2);
    cx.write(rs.clone()).await?;
    cx.await_equal(&id, &rs).await?;
    let start_s = rs[0].scope_spans[0].spans[0].start_time_unix_nano / 1_000_000_000;
    let client = cx.client()?;
    let hexid = hex::encode(id);
    let api = if cx.has(TraceByIdV2) {
        "/api/v2/traces"
    } else {
        "/api/traces"
    };
    let around = format!("{api}/{hexid}?start={}&end={}", start_s - 60, start_s + 60);
    let r = client.trace_raw(&around).await?;
    ensure!(
        r.status == 200,
        "{around} answered {}: {}",
        r.status,
        r.text()
    );
    ensure!(
        r.text().contains("query-time-bounds"),
        "{around} answered without the trace"
    );
    let inverted = format!("{api}/{hexid}?start={}&end={}", start_s + 60, start_s - 60);
    let r = client.trace_raw(&inverted).await?;
    ensure!(
        r.status == 400,
        "{inverted} answered {} (expected 400)",
        r.status
    );
    Ok(())
}
