//! Parser tests for the TraceQL subset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::ast::{Expr, Field, Intrinsic, Op, Scope, Static, ValueRef};
use super::traceql::{parse_field, parse_traceql};

fn parse(q: &str) -> Expr {
    parse_traceql(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn reject(q: &str) -> String {
    match parse_traceql(q) {
        Ok(e) => panic!("{q} parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

/// The tree as text: `(a && b)`, `(a || b)`, `field op value`.
fn show(e: &Expr) -> String {
    match e {
        Expr::All => "all".into(),
        Expr::Cond(c) => {
            let f = match &c.field {
                Field::Intrinsic(i) => format!("{i:?}"),
                Field::Attr { scope, key } => format!("{scope:?}:{key}"),
            };
            format!("{f} {:?} {:?}", c.op, c.value)
        }
        Expr::And(a, b) => format!("({} && {})", show(a), show(b)),
        Expr::Or(a, b) => format!("({} || {})", show(a), show(b)),
    }
}

#[test]
fn empty_filters_match_everything() {
    for q in ["{}", "{ }", "({})", " ( { } ) "] {
        assert!(matches!(parse(q), Expr::All), "{q}");
    }
}

#[test]
fn intrinsics_and_keywords() {
    let cases = [
        (r#"{ name = "GET /" }"#, r#"Name Eq Str("GET /")"#),
        ("{ status = error }", "Status Eq Status(2)"),
        ("{ status != ok }", "Status Ne Status(1)"),
        ("{ status = unset }", "Status Eq Status(0)"),
        ("{ kind = server }", "Kind Eq Kind(2)"),
        ("{ kind = consumer }", "Kind Eq Kind(5)"),
        ("{ kind != unspecified }", "Kind Ne Kind(0)"),
        ("{ duration > 100ms }", "Duration Gt Duration(100000000)"),
        ("{ duration >= 1.5s }", "Duration Ge Duration(1500000000)"),
        ("{ duration < 2m }", "Duration Lt Duration(120000000000)"),
        ("{ duration <= 1h }", "Duration Le Duration(3600000000000)"),
        ("{ duration > 500us }", "Duration Gt Duration(500000)"),
        ("{ duration > 10ns }", "Duration Gt Duration(10)"),
        ("{ duration > 100 }", "Duration Gt Int(100)"),
        (
            r#"{ rootServiceName = "api" }"#,
            r#"RootServiceName Eq Str("api")"#,
        ),
        (r#"{ rootName =~ "GET.*" }"#, r#"RootName Re Str("GET.*")"#),
        (
            "{ traceDuration > 1s }",
            "TraceDuration Gt Duration(1000000000)",
        ),
        ("{ span:name = `x` }", r#"Name Eq Str("x")"#),
        (
            "{ trace:rootService = \"a\" }",
            r#"RootServiceName Eq Str("a")"#,
        ),
    ];
    for (q, want) in cases {
        assert_eq!(show(&parse(q)), want, "{q}");
    }
}

#[test]
fn attributes_scopes_and_literals() {
    let cases = [
        (
            r#"{ resource.service.name = "cart" }"#,
            r#"Resource:service.name Eq Str("cart")"#,
        ),
        (
            "{ span.http.status_code >= 500 }",
            "Span:http.status_code Ge Int(500)",
        ),
        (
            "{ .http.status_code != -1 }",
            "Any:http.status_code Ne Int(-1)",
        ),
        ("{ .ratio > 0.5 }", "Any:ratio Gt Float(0.5)"),
        ("{ .ratio < -2.5 }", "Any:ratio Lt Float(-2.5)"),
        ("{ .flag = true }", "Any:flag Eq Bool(true)"),
        ("{ .flag != false }", "Any:flag Ne Bool(false)"),
        (r#"{ span."foo bar" = "x" }"#, r#"Span:foo bar Eq Str("x")"#),
        (r#"{ .a !~ "b+" }"#, r#"Any:a NotRe Str("b+")"#),
        ("{ .a = `raw\\d` }", r#"Any:a Eq Str("raw\\d")"#),
        (r#"{ .a = "q\"s" }"#, r#"Any:a Eq Str("q\"s")"#),
        (r#"{ .a > "m" }"#, r#"Any:a Gt Str("m")"#),
        ("{ .latency > 1s }", "Any:latency Gt Duration(1000000000)"),
    ];
    for (q, want) in cases {
        assert_eq!(show(&parse(q)), want, "{q}");
    }
}

#[test]
fn and_binds_tighter_than_or_and_parens_group() {
    assert_eq!(
        show(&parse("{ .a = 1 || .b = 2 && .c = 3 }")),
        "(Any:a Eq Int(1) || (Any:b Eq Int(2) && Any:c Eq Int(3)))"
    );
    assert_eq!(
        show(&parse("{ (.a = 1 || .b = 2) && .c = 3 }")),
        "((Any:a Eq Int(1) || Any:b Eq Int(2)) && Any:c Eq Int(3))"
    );
    assert_eq!(show(&parse("{ ((.a = 1)) }")), "Any:a Eq Int(1)");
}

#[test]
fn long_chains_are_balanced_and_keep_order() {
    let q = format!(
        "{{ {} }}",
        (0..1000)
            .map(|i| format!(".a = {i}"))
            .collect::<Vec<_>>()
            .join(" && ")
    );
    let e = parse(&q);
    fn depth(e: &Expr) -> usize {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => 1 + depth(a).max(depth(b)),
            _ => 1,
        }
    }
    assert!(depth(&e) <= 12, "depth {}", depth(&e));
    let values: Vec<_> = e.conditions().iter().map(|c| c.value.clone()).collect();
    assert_eq!(values, (0..1000).map(Static::Int).collect::<Vec<_>>());
}

#[test]
fn regexes_are_fully_anchored() {
    let e = parse(r#"{ .a =~ "ab|cd" }"#);
    let c = e.conditions()[0];
    assert!(c.matches(Some(ValueRef::Str("ab"))));
    assert!(c.matches(Some(ValueRef::Str("cd"))));
    assert!(!c.matches(Some(ValueRef::Str("abcd"))));
    assert!(!c.matches(Some(ValueRef::Str("xab"))));
    let e = parse(r#"{ .a !~ "a.*" }"#);
    let c = e.conditions()[0];
    assert!(c.matches(Some(ValueRef::Str("ba"))));
    assert!(!c.matches(Some(ValueRef::Str("abc"))));
    assert!(reject(r#"{ .a =~ "(" }"#).contains("invalid regular expression"));
}

#[test]
fn unsupported_constructs_are_named() {
    let cases = [
        ("{ } | count() > 1", "aggregate count()"),
        ("{ .a = 1 } | avg(duration) > 1s", "aggregate avg()"),
        ("{ } | select(.a)", "select(...)"),
        ("{ } | { .a = 1 }", "pipelines ('|')"),
        ("{ } | by(.a)", "function by()"),
        ("{ .a = 1 } | rate()", "function rate()"),
        ("{ .a = 1 } && { .b = 2 }", "'&&' between spansets"),
        ("{ .a = 1 } || { .b = 2 }", "'||' between spansets"),
        ("{ .a = 1 } >> { .b = 2 }", "structural operator '>>'"),
        ("{ .a = 1 } << { .b = 2 }", "structural operator '<<'"),
        ("{ .a = 1 } > { .b = 2 }", "structural operator '>'"),
        ("{ .a = 1 } !>> { .b = 2 }", "structural operator '!>>'"),
        ("{ .a = 1 } &>> { .b = 2 }", "structural operator '&>>'"),
        ("{ .a = 1 } ~ { .b = 2 }", "sibling operator '~'"),
        ("{ .a = 1 } !~ { .b = 2 }", "sibling operator '!~'"),
        ("{ event.a = 1 }", "'event.' attributes"),
        ("{ link.a = 1 }", "'link.' attributes"),
        ("{ instrumentation.a = 1 }", "'instrumentation.' attributes"),
        ("{ parent.a = 1 }", "'parent.' attributes"),
        ("{ event:name = \"x\" }", "intrinsic 'event:name'"),
        ("{ statusMessage = \"x\" }", "intrinsic 'statusMessage'"),
        ("{ childCount > 1 }", "intrinsic 'childCount'"),
        ("{ foo = 1 }", "unknown intrinsic 'foo'"),
        (
            "{ service.name = \"x\" }",
            "unknown attribute scope 'service.'",
        ),
        ("{ .a = nil }", "nil"),
        ("{ .a != nil }", "nil"),
        ("{ .a + 1 = 2 }", "arithmetic ('+')"),
        ("{ .a = 1 + 2 }", "arithmetic ('+')"),
        ("{ .a = 1 - 2 }", "arithmetic ('-')"),
        ("{ duration * 2 > 1s }", "arithmetic ('*')"),
        ("{ !(.a = 1) }", "negation ('!')"),
        ("{ .a }", "attribute 'a' alone is not a condition"),
        ("{ true }", "bare boolean"),
        ("{ 1 = .a }", "left side of a comparison"),
        ("{ .a = .b }", "comparing two fields"),
        ("{ .a = 1 = 2 }", "chained comparison"),
        ("{ { .a = 1 } }", "nested spanset filters"),
        ("count() > 1", "aggregate count()"),
        (".a = 1", "inside a spanset filter"),
        ("", "empty query"),
        ("{ .a = 1", "expected '}'"),
        ("{ .a = 1 } {}", "unexpected '{' after the spanset filter"),
        ("{ status = 200 }", "status compares only"),
        ("{ status > error }", "status compares only"),
        ("{ kind = error }", "kind compares only"),
        ("{ name = 1 }", "compares only with strings"),
        ("{ duration =~ \"1\" }", "durations compare only"),
        ("{ .a =~ 1 }", "needs a string pattern"),
        ("{ duration = \"1s\" }", "durations compare only"),
        ("{ .a > true }", "booleans compare only"),
        ("{ .a = error }", "status and kind keywords"),
        ("{ duration > -1s }", "negative durations"),
        ("{ .a = 99999999999999999999 }", "out of range"),
        ("{ .a = \"x }", "unterminated string"),
        ("{ .a = 1 } , { }", "operator ','"),
    ];
    for (q, want) in cases {
        let msg = reject(q);
        assert!(msg.starts_with("invalid TraceQL query: "), "{q}: {msg}");
        assert!(msg.contains(want), "{q}: {msg} lacks {want}");
    }
}

#[test]
fn errors_give_the_column() {
    assert_eq!(
        reject("{ .a = 1 } | count()"),
        "invalid TraceQL query: aggregate count() in a pipeline: pipelines ('|') are not supported (at col 12)"
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{{ {}.a = 1{} }}", "(".repeat(65), ")".repeat(65));
    assert!(reject(&deep).contains("nested deeper than 64"));
    let ok = format!("{{ {}.a = 1{} }}", "(".repeat(63), ")".repeat(63));
    parse(&ok);
}

#[test]
fn fields_for_tag_values() {
    assert_eq!(
        parse_field("resource.service.name"),
        Ok(Field::Attr {
            scope: Scope::Resource,
            key: "service.name".into()
        })
    );
    assert_eq!(
        parse_field(".http.method"),
        Ok(Field::Attr {
            scope: Scope::Any,
            key: "http.method".into()
        })
    );
    assert_eq!(
        parse_field("status"),
        Ok(Field::Intrinsic(Intrinsic::Status))
    );
    assert_eq!(parse_field("name"), Ok(Field::Intrinsic(Intrinsic::Name)));
    for bad in ["foo", "event.x", "", ".a = 1", "{", "service.name"] {
        assert!(parse_field(bad).is_err(), "{bad}");
    }
    let _ = Op::Eq;
}
