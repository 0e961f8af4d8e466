//! Tag-name and tag-value assertions on the corpus.

use tempo_api::TempoClient;
use tempo_api::search::{SearchTagsV2Scope, TagValue, TagsRequest};

use super::corpus::BASE_S;

const RESOURCE: [&str; 3] = ["deployment.environment", "service.name", "team"];
const SPAN: [&str; 14] = [
    "cache.hit",
    "cart.items",
    "db.rows",
    "db.system",
    "http.method",
    "http.status_code",
    "http.url",
    "messaging.system",
    "payment.amount",
    "payment.currency",
    "ratio",
    "retry.count",
    "team",
    "user id",
];
const INTRINSIC: [&str; 14] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:kind",
    "span:name",
    "span:status",
    "status",
    "trace:duration",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];
const SPAN_NAMES: [&str; 15] = [
    "Charge",
    "GET /cart",
    "GET /health",
    "GET /search",
    "GetCart",
    "POST /checkout",
    "SELECT accounts",
    "SELECT carts",
    "process cart-updated",
    "publish cart-updated",
    "search",
    "shard-0",
    "shard-1",
    "shard-2",
    "shard-3",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn typed(v: &[(&str, &str)]) -> Vec<TagValue> {
    v.iter()
        .map(|(t, v)| TagValue {
            r#type: t.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn scope(name: &str, tags: &[&str]) -> SearchTagsV2Scope {
    SearchTagsV2Scope {
        name: name.into(),
        tags: strings(tags),
    }
}

/// Tag names (v1, v2, scopes, limit, range) and values (v1 text, v2 typed).
pub async fn check_tags(c: &TempoClient, phase: &str) {
    let mut all: Vec<&str> = RESOURCE.iter().chain(SPAN.iter()).copied().collect();
    all.sort();
    all.dedup();
    let names = |req: TagsRequest| async move {
        c.search_tags_with(&req)
            .await
            .unwrap_or_else(|e| panic!("[{phase}] tags {req:?}: {e}"))
            .tag_names
    };
    assert_eq!(
        names(TagsRequest::default()).await,
        strings(&all),
        "[{phase}] all"
    );
    assert_eq!(
        names(TagsRequest::scope("resource")).await,
        strings(&RESOURCE),
        "[{phase}]"
    );
    assert_eq!(
        names(TagsRequest::scope("span")).await,
        strings(&SPAN),
        "[{phase}]"
    );
    assert_eq!(
        names(TagsRequest::scope("intrinsic")).await,
        strings(&INTRINSIC),
        "[{phase}]"
    );
    assert!(
        names(TagsRequest::scope("event")).await.is_empty(),
        "[{phase}]"
    );
    assert_eq!(
        names(TagsRequest::scope("span").with_limit(3)).await,
        strings(&SPAN[..3]),
        "[{phase}] limit"
    );
    let only_4 = (BASE_S as u32 + 170, BASE_S as u32 + 190);
    assert_eq!(
        names(TagsRequest::default().with_range(only_4.0, only_4.1)).await,
        strings(&[
            "deployment.environment",
            "messaging.system",
            "ratio",
            "retry.count",
            "service.name"
        ]),
        "[{phase}] range"
    );
    let far = TagsRequest::default().with_range(BASE_S as u32 + 1000, BASE_S as u32 + 2000);
    assert!(names(far).await.is_empty(), "[{phase}] nothing in range");

    let v2 = c.search_tags_v2().await.unwrap();
    assert_eq!(
        v2.scopes,
        [
            scope("resource", &RESOURCE),
            scope("span", &SPAN),
            scope("intrinsic", &INTRINSIC)
        ],
        "[{phase}] v2"
    );
    let v2 = c
        .search_tags_v2_with(&TagsRequest::scope("resource"))
        .await
        .unwrap();
    assert_eq!(
        v2.scopes,
        [scope("resource", &RESOURCE)],
        "[{phase}] v2 scope"
    );

    let values = |tag: &'static str, req: TagsRequest| async move {
        c.search_tag_values_with(tag, &req)
            .await
            .unwrap_or_else(|e| panic!("[{phase}] values of {tag}: {e}"))
            .tag_values
    };
    let cases: [(&str, &[&str]); 7] = [
        (
            "service.name",
            &["cart", "db", "frontend", "payment", "search", "worker"],
        ),
        ("http.method", &["GET", "POST", "get"]),
        ("http.status_code", &["200", "500"]),
        ("name", &SPAN_NAMES),
        ("status.code", &["error", "ok", "unset"]),
        ("team", &["discovery", "override"]),
        ("rootServiceName", &["cart", "frontend"]),
    ];
    for (tag, want) in cases {
        assert_eq!(
            values(tag, TagsRequest::default()).await,
            strings(want),
            "[{phase}] {tag}"
        );
    }
    assert_eq!(
        values(
            "service.name",
            TagsRequest::default().with_range(only_4.0, only_4.1)
        )
        .await,
        strings(&["cart", "worker"]),
        "[{phase}] values in range"
    );
    assert_eq!(
        values("service.name", TagsRequest::default().with_limit(2)).await,
        strings(&["cart", "db"]),
        "[{phase}] values limit"
    );

    let values_v2 = |tag: &'static str, req: TagsRequest| async move {
        c.search_tag_values_v2_with(tag, &req)
            .await
            .unwrap_or_else(|e| panic!("[{phase}] v2 values of {tag}: {e}"))
            .tag_values
    };
    let services: Vec<(&str, &str)> = ["cart", "db", "frontend", "payment", "search", "worker"]
        .iter()
        .map(|s| ("string", *s))
        .collect();
    let names: Vec<(&str, &str)> = SPAN_NAMES.iter().map(|s| ("string", *s)).collect();
    let cases: [(&str, Vec<(&str, &str)>); 12] = [
        ("resource.service.name", services),
        (
            ".http.status_code",
            vec![("string", "200"), ("int", "200"), ("int", "500")],
        ),
        ("span.payment.amount", vec![("float", "42.5")]),
        (".ratio", vec![("float", "0.75")]),
        (".cache.hit", vec![("bool", "false"), ("bool", "true")]),
        (".retry.count", vec![("int", "0")]),
        ("span.\"user id\"", vec![("string", "u-1")]),
        (
            "status",
            vec![
                ("keyword", "unset"),
                ("keyword", "ok"),
                ("keyword", "error"),
            ],
        ),
        (
            "kind",
            ["internal", "server", "client", "producer", "consumer"]
                .iter()
                .map(|k| ("keyword", *k))
                .collect(),
        ),
        ("name", names),
        (
            "rootName",
            [
                "GET /cart",
                "GET /health",
                "GET /search",
                "POST /checkout",
                "publish cart-updated",
            ]
            .iter()
            .map(|k| ("string", *k))
            .collect(),
        ),
        ("resource.team", vec![("string", "discovery")]),
    ];
    for (tag, want) in cases {
        assert_eq!(
            values_v2(tag, TagsRequest::default()).await,
            typed(&want),
            "[{phase}] v2 {tag}"
        );
    }
    assert!(
        values_v2("duration", TagsRequest::default())
            .await
            .is_empty()
    );
    assert_eq!(
        values_v2(".http.method", TagsRequest::default().with_limit(1)).await,
        typed(&[("string", "GET")]),
        "[{phase}] v2 limit"
    );

    // `q` keeps the values and names of matching spans only; a partial `q` filters nothing.
    let by_cart = TagsRequest::default().with_query(r#"{ resource.service.name = "cart" }"#);
    assert_eq!(
        values_v2(".http.method", by_cart).await,
        typed(&[("string", "GET")]),
        "[{phase}] v2 values with q"
    );
    let errors = TagsRequest::default().with_query("{ status = error }");
    assert_eq!(
        values_v2("resource.service.name", errors).await,
        typed(&[("string", "frontend"), ("string", "payment")]),
        "[{phase}] v2 resource values with q"
    );
    let partial = TagsRequest::default().with_query("{ .http.method = ");
    assert_eq!(
        values_v2(".http.method", partial).await,
        values_v2(".http.method", TagsRequest::default()).await,
        "[{phase}] a partial q filters nothing"
    );
    let producers = TagsRequest::scope("span").with_query("{ kind = producer }");
    let v2 = c.search_tags_v2_with(&producers).await.unwrap();
    assert_eq!(
        v2.scopes,
        [scope("span", &["messaging.system"])],
        "[{phase}] v2 names with q"
    );
}
