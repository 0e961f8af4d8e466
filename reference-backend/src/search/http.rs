//! HTTP handlers of the search and tag endpoints (mounted by `api::router`).
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/search` | `{"traces":[…],"metrics":{…}}` |
//! | `GET /api/search/tags` | `{"tagNames":[…],"metrics":{…}}` |
//! | `GET /api/v2/search/tags` | `{"scopes":[{"name","tags"}],"metrics":{…}}` |
//! | `GET /api/search/tag/{tag}/values` | `{"tagValues":["…"],"metrics":{…}}` |
//! | `GET /api/v2/search/tag/{tag}/values` | `{"tagValues":[{"type","value"}],"metrics":{…}}` |
//!
//! Bad parameters answer 400 with a plain-text message naming the parameter. With
//! `X-Scope-OrgID: a|b` every route reads each tenant and merges the answers.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use super::request::{TagRequest, parse_search, parse_tag_request};
use super::response;
use super::traceql::parse_field;
use crate::api::{error_response, json, tenants_of};
use crate::error::Error;
use crate::state::AppState;

type Params = Query<Vec<(String, String)>>;

/// The search and tag routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
}

/// Answer with `f`'s body or its error, and record the query metric under `endpoint`.
async fn answer<F, Fut>(state: &AppState, endpoint: &str, f: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response, Error>>,
{
    let started = Instant::now();
    let resp = f().await.unwrap_or_else(|e| error_response(&e));
    state.metrics.query(
        endpoint,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

async fn search(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "search", || async {
        let tenants = tenants_of(&state, &headers)?;
        let plan = parse_search(&params)?;
        let outcome = state.core()?.searcher.search_in(&tenants, &plan).await?;
        Ok(json(&response::search_response(&outcome)))
    })
    .await
}

async fn tag_outcome(
    state: &AppState,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(super::engine::TagOutcome, TagRequest), Error> {
    let tenants = tenants_of(state, headers)?;
    let req = parse_tag_request(params)?;
    let searcher = &state.core()?.searcher;
    let outcome = searcher
        .tags_in(&tenants, req.range_ns, &req.filter)
        .await?;
    Ok((outcome, req))
}

async fn tags_v1(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "search_tags", || async {
        let (o, req) = tag_outcome(&state, &headers, &params).await?;
        Ok(json(&response::tag_names_v1(&o, &req)))
    })
    .await
}

async fn tags_v2(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "search_tags_v2", || async {
        let (o, req) = tag_outcome(&state, &headers, &params).await?;
        Ok(json(&response::tag_names_v2(&o, &req)))
    })
    .await
}

async fn tag_values_v1(
    State(state): State<Arc<AppState>>,
    Path(tag): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "search_tag_values", || async {
        let (o, req) = tag_outcome(&state, &headers, &params).await?;
        Ok(json(&response::tag_values_v1(&o, &tag, &req)))
    })
    .await
}

async fn tag_values_v2(
    State(state): State<Arc<AppState>>,
    Path(tag): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "search_tag_values_v2", || async {
        tenants_of(&state, &headers)?;
        let field = parse_field(&tag)
            .map_err(|e| Error::InvalidArgument(format!("invalid tag {tag:?}: {e}")))?;
        let (o, req) = tag_outcome(&state, &headers, &params).await?;
        Ok(json(&response::tag_values_v2(&o, &field, &req)))
    })
    .await
}
