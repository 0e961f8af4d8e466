//! Search tag endpoints: tag names by scope and tag values with their types, over the
//! search corpus (see `search`).

use std::time::Instant;

use anyhow::bail;
use tempo_api::search::{
    SearchTagValuesResponse, SearchTagValuesV2Response, SearchTagsResponse, SearchTagsV2Response,
};

use super::search::corpus;
use super::{Case, Ctx};
use crate::case;
use crate::spec::Capability::*;

/// The tag endpoint cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "search.tag_names",
            &[TagNames],
            None,
            "/api/search/tags and /api/v2/search/tags list the corpus attributes in their scopes",
            tag_names
        ),
        case!(
            "search.tag_values",
            &[TagValues],
            None,
            "/api/search/tag/{t}/values and the v2 form list the corpus values with their types",
            tag_values
        ),
        case!(
            "search.tag_values_filtered",
            &[FilteredTagValues],
            None,
            "`q` on the v2 values endpoint keeps only values of spans matching it (what Grafana's query builder offers in its drop-downs)",
            tag_values_filtered
        ),
    ]
}

async fn poll_until(
    cx: &Ctx<'_>,
    what: &str,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<String>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + cx.file.timings.search_visible_within.get();
    loop {
        match check().await? {
            None => return Ok(()),
            Some(missing) if Instant::now() >= deadline => bail!("{what}: {missing}"),
            Some(_) => tokio::time::sleep(cx.file.timings.poll_interval.get()).await,
        }
    }
}

async fn tag_names(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let client = cx.client()?;
    let range = [("start", c.from_s.to_string()), ("end", c.to_s.to_string())];
    poll_until(cx, "/api/search/tags", async || {
        let r: SearchTagsResponse = client.get_json(&["api", "search", "tags"], &range).await?;
        Ok((!r.tag_names.iter().any(|t| t == "conf.tier"))
            .then(|| format!("`conf.tier` not among {} tag names", r.tag_names.len())))
    })
    .await?;
    poll_until(cx, "/api/v2/search/tags", async || {
        let r: SearchTagsV2Response = client
            .get_json(&["api", "v2", "search", "tags"], &range)
            .await?;
        let has = |scope: &str, tag: &str| {
            r.scopes
                .iter()
                .any(|s| s.name == scope && s.tags.iter().any(|t| t == tag))
        };
        Ok(if !has("span", "conf.tier") {
            Some("`conf.tier` not in scope `span`".into())
        } else if !has("resource", "service.name") {
            Some("`service.name` not in scope `resource`".into())
        } else {
            None
        })
    })
    .await
}

async fn tag_values(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let client = cx.client()?;
    let range = [("start", c.from_s.to_string()), ("end", c.to_s.to_string())];
    let want = ["gold", "silver", "bronze"];
    poll_until(cx, "/api/search/tag/conf.tier/values", async || {
        let r: SearchTagValuesResponse = client
            .get_json(&["api", "search", "tag", "conf.tier", "values"], &range)
            .await?;
        let missing: Vec<&str> = want
            .iter()
            .copied()
            .filter(|w| !r.tag_values.iter().any(|v| v == w))
            .collect();
        Ok((!missing.is_empty()).then(|| format!("missing {missing:?} in {:?}", r.tag_values)))
    })
    .await?;
    let svc = format!("conf-{}-cart", cx.nonce);
    poll_until(
        cx,
        "/api/v2/search/tag/resource.service.name/values",
        async || {
            let r: SearchTagValuesV2Response = client
                .get_json(
                    &[
                        "api",
                        "v2",
                        "search",
                        "tag",
                        "resource.service.name",
                        "values",
                    ],
                    &range,
                )
                .await?;
            let ok = r
                .tag_values
                .iter()
                .any(|v| v.value == svc && v.r#type == "string");
            Ok((!ok).then(|| {
                format!(
                    "no {{type: string, value: {svc:?}}} among {} values",
                    r.tag_values.len()
                )
            }))
        },
    )
    .await
}

async fn tag_values_filtered(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let c = corpus(cx).await?;
    let client = cx.client()?;
    // The corpus's checkout traces are gold and silver; cart also has bronze.
    let q = format!(
        "{{ resource.service.name = \"conf-{}-checkout\" }}",
        cx.nonce
    );
    let params = [
        ("start", c.from_s.to_string()),
        ("end", c.to_s.to_string()),
        ("q", q.clone()),
    ];
    let want = ["gold", "silver"];
    poll_until(
        cx,
        "/api/v2/search/tag/span.conf.tier/values?q=",
        async || {
            let r: SearchTagValuesV2Response = client
                .get_json(
                    &["api", "v2", "search", "tag", "span.conf.tier", "values"],
                    &params,
                )
                .await?;
            let mut got: Vec<&str> = r.tag_values.iter().map(|v| v.value.as_str()).collect();
            got.sort_unstable();
            Ok((got != want).then(|| format!("values {got:?} for {q}, expected {want:?}")))
        },
    )
    .await
}
