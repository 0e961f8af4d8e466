//! TraceQL words: intrinsic spellings, keyword values, and which comparisons type-check.

use super::ast::{Field, Intrinsic, Op, Static};
use super::traceql::op_text;

/// Intrinsic spellings and what they read.
pub const INTRINSICS: [(&str, Intrinsic); 14] = [
    ("name", Intrinsic::Name),
    ("status", Intrinsic::Status),
    ("kind", Intrinsic::Kind),
    ("duration", Intrinsic::Duration),
    ("rootServiceName", Intrinsic::RootServiceName),
    ("rootName", Intrinsic::RootName),
    ("traceDuration", Intrinsic::TraceDuration),
    ("span:name", Intrinsic::Name),
    ("span:status", Intrinsic::Status),
    ("span:kind", Intrinsic::Kind),
    ("span:duration", Intrinsic::Duration),
    ("trace:rootService", Intrinsic::RootServiceName),
    ("trace:rootName", Intrinsic::RootName),
    ("trace:duration", Intrinsic::TraceDuration),
];

/// Intrinsics TraceQL has that this backend does not search.
pub const OTHER_INTRINSICS: [&str; 13] = [
    "statusMessage",
    "span:statusMessage",
    "childCount",
    "span:childCount",
    "parent",
    "span:parentID",
    "span:id",
    "trace:id",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
    "traceID",
    "spanID",
];

/// Aggregate functions.
pub const AGGREGATES: [&str; 5] = ["count", "avg", "min", "max", "sum"];

/// Status keywords and their OTLP codes.
pub const STATUSES: [(&str, i32); 3] = [("unset", 0), ("ok", 1), ("error", 2)];

/// Kind keywords and their OTLP numbers.
pub const KINDS: [(&str, i32); 6] = [
    ("unspecified", 0),
    ("internal", 1),
    ("server", 2),
    ("client", 3),
    ("producer", 4),
    ("consumer", 5),
];

/// `true`, `false`, status and kind keywords as values.
pub fn keyword(w: &str) -> Option<Static> {
    match w {
        "true" => Some(Static::Bool(true)),
        "false" => Some(Static::Bool(false)),
        _ => STATUSES
            .iter()
            .find(|(n, _)| *n == w)
            .map(|(_, c)| Static::Status(*c))
            .or_else(|| {
                KINDS
                    .iter()
                    .find(|(n, _)| *n == w)
                    .map(|(_, k)| Static::Kind(*k))
            }),
    }
}

/// How an unsupported function call is named in errors.
pub fn function(name: &str) -> String {
    if AGGREGATES.contains(&name) {
        format!("aggregate {name}()")
    } else if name == "select" {
        "select(...)".into()
    } else {
        format!("function {name}()")
    }
}

/// Reject comparisons Tempo rejects, or that could never be true.
pub fn check_types(field: &Field, op: Op, value: &Static) -> Result<(), String> {
    let regex = matches!(op, Op::Re | Op::NotRe);
    let equality = matches!(op, Op::Eq | Op::Ne);
    if regex && !matches!(value, Static::Str(_)) {
        return Err(format!("'{}' needs a string pattern", op_text(op)));
    }
    let numeric = matches!(
        value,
        Static::Int(_) | Static::Float(_) | Static::Duration(_)
    );
    let ok = match field {
        Field::Intrinsic(Intrinsic::Status) => matches!(value, Static::Status(_)) && equality,
        Field::Intrinsic(Intrinsic::Kind) => matches!(value, Static::Kind(_)) && equality,
        Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => numeric && !regex,
        Field::Intrinsic(Intrinsic::Name | Intrinsic::RootName | Intrinsic::RootServiceName) => {
            matches!(value, Static::Str(_))
        }
        Field::Attr { .. } => match value {
            Static::Status(_) | Static::Kind(_) => false,
            Static::Bool(_) => equality,
            _ => true,
        },
    };
    if ok {
        return Ok(());
    }
    Err(match field {
        Field::Intrinsic(Intrinsic::Status) => {
            "status compares only with = or != to error, ok or unset".into()
        }
        Field::Intrinsic(Intrinsic::Kind) => {
            "kind compares only with = or != to unspecified, internal, server, client, producer or consumer".into()
        }
        Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => {
            "durations compare only with durations or numbers (=, !=, >, >=, <, <=)".into()
        }
        Field::Intrinsic(_) => "this intrinsic compares only with strings".into(),
        Field::Attr { .. } => match value {
            Static::Bool(_) => "booleans compare only with = or !=".into(),
            _ => "status and kind keywords compare only with the status and kind intrinsics"
                .into(),
        },
    })
}
