//! `tags` (logfmt `k=v k2="v w"`) → [`Expr`].
//!
//! Every tag is a condition and all must hold on the same span (they are ANDed). Values
//! match as Tempo's tag search does: case-insensitive substrings. Mapping of keys:
//!
//! | key | condition |
//! |---|---|
//! | `name` | span name contains the value |
//! | `root.name`, `rootName` | root span name contains the value |
//! | `root.service.name`, `rootServiceName` | root span's service contains the value |
//! | `status.code` | span status is `unset`, `ok` or `error` (or `0`, `1`, `2`); anything else is a 400 |
//! | any other key `k` | attribute `.k` (span first, then resource) contains the value as a string; a value that reads as an integer (`200`) or boolean (`true`) also matches an attribute of that type equal to it |
//!
//! `error=true` is therefore the attribute `error` (Tempo's tag search has no special case
//! for it); use `status.code=error` for the span status.

use super::ast::{Cond, Expr, Field, Intrinsic, Op, Scope, Static};
use super::vocabulary::STATUSES;
use crate::error::Error;

/// Parse logfmt `text` the way Tempo's decoder (go-logfmt) does. A key given twice, or a
/// syntax error, is a 400 with Tempo's message.
pub fn parse_logfmt(text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let mut pos = 0;
        while let Some((key, value)) =
            scan_keyval(line.as_bytes(), &mut pos).map_err(|(msg, at)| {
                Error::InvalidArgument(format!("invalid tags: {msg} at pos {at}"))
            })?
        {
            if out.iter().any(|(k, _)| *k == key) {
                return Err(Error::InvalidArgument(format!(
                    "invalid tags: tag {key} has been set twice"
                )));
            }
            out.push((key, value));
        }
    }
    Ok(out)
}

type ScanResult = Result<Option<(String, String)>, (String, usize)>;

fn unexpected(c: u8, at: usize) -> (String, usize) {
    (format!("unexpected '{}'", char::from(c)), at + 1)
}

/// One `key[=value]` from `line` starting at `*pos`; `None` at the end of the line.
fn scan_keyval(line: &[u8], pos: &mut usize) -> ScanResult {
    while *pos < line.len() && line[*pos] <= b' ' {
        *pos += 1;
    }
    if *pos >= line.len() {
        return Ok(None);
    }
    let start = *pos;
    while *pos < line.len() {
        match line[*pos] {
            b'=' => break,
            b'"' => return Err(unexpected(b'"', *pos)),
            c if c <= b' ' => return Ok(Some((text(&line[start..*pos], *pos)?, String::new()))),
            _ => *pos += 1,
        }
    }
    let key = text(&line[start..*pos], *pos)?;
    if *pos >= line.len() {
        return Ok(Some((key, String::new())));
    }
    if key.is_empty() {
        return Err(unexpected(b'=', *pos));
    }
    *pos += 1;
    match line.get(*pos) {
        None => return Ok(Some((key, String::new()))),
        Some(c) if *c <= b' ' => return Ok(Some((key, String::new()))),
        Some(b'"') => return quoted_value(line, pos).map(|v| Some((key, v))),
        Some(_) => {}
    }
    let vstart = *pos;
    while *pos < line.len() {
        match line[*pos] {
            c @ (b'=' | b'"') => return Err(unexpected(c, *pos)),
            c if c <= b' ' => break,
            _ => *pos += 1,
        }
    }
    Ok(Some((key, text(&line[vstart..*pos], *pos)?)))
}

fn text(bytes: &[u8], pos: usize) -> Result<String, (String, usize)> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ("invalid key".to_owned(), pos + 1))
}

/// A `"…"` value with JSON-style escapes, starting at the opening quote.
fn quoted_value(line: &[u8], pos: &mut usize) -> Result<String, (String, usize)> {
    let start = *pos + 1;
    let mut escaped = false;
    let mut i = start;
    while i < line.len() {
        match line[i] {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => {
                *pos = i + 1;
                return unescape(&line[start..i]).ok_or(("invalid quoted value".into(), *pos + 1));
            }
            _ => {}
        }
        i += 1;
    }
    *pos = line.len();
    Err(("unterminated quoted value".into(), *pos + 1))
}

fn unescape(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            c @ ('"' | '\\' | '/') => c,
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                if hex.len() != 4 {
                    return None;
                }
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

/// The search expression of tag pairs: every tag must hold on the same span.
pub fn tags_to_expr(tags: &[(String, String)]) -> Result<Expr, Error> {
    let items = tags
        .iter()
        .map(|(k, v)| tag_expr(k, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Expr::all_of(items))
}

fn tag_expr(key: &str, value: &str) -> Result<Expr, Error> {
    let intrinsic = match key {
        "name" => Some(Intrinsic::Name),
        "root.name" | "rootName" => Some(Intrinsic::RootName),
        "root.service.name" | "rootServiceName" => Some(Intrinsic::RootServiceName),
        "status.code" => return status_expr(value),
        _ => None,
    };
    if let Some(i) = intrinsic {
        return substring(Field::Intrinsic(i), value).map(Expr::Cond);
    }
    let field = Field::Attr {
        scope: Scope::Any,
        key: key.to_owned(),
    };
    let mut alternatives = vec![Expr::Cond(substring(field.clone(), value)?)];
    let typed = if let Ok(i) = value.parse::<i64>() {
        Some(Static::Int(i))
    } else {
        match value {
            "true" => Some(Static::Bool(true)),
            "false" => Some(Static::Bool(false)),
            _ => None,
        }
    };
    if let Some(v) = typed {
        alternatives.push(Expr::Cond(cond(field, Op::Eq, v)?));
    }
    Ok(Expr::any_of(alternatives).unwrap_or(Expr::All))
}

fn status_expr(value: &str) -> Result<Expr, Error> {
    let lower = value.to_ascii_lowercase();
    let code = STATUSES
        .iter()
        .find(|(n, c)| *n == lower || c.to_string() == lower)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid tags: status.code must be unset, ok or error, got {value:?}"
            ))
        })?;
    cond(
        Field::Intrinsic(Intrinsic::Status),
        Op::Eq,
        Static::Status(code),
    )
    .map(Expr::Cond)
}

/// `field` contains `value`, ignoring case: an anchored `(?is).*<value>.*` pattern.
fn substring(field: Field, value: &str) -> Result<Cond, Error> {
    let pattern = format!("(?is).*{}.*", regex::escape(value));
    cond(field, Op::Re, Static::Str(pattern))
}

fn cond(field: Field, op: Op, value: Static) -> Result<Cond, Error> {
    Cond::new(field, op, value)
        .map_err(|e| Error::InvalidArgument(format!("invalid tags: tag value too large: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::search::ast::ValueRef;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn logfmt_like_go() {
        assert_eq!(
            parse_logfmt(r#"a=1 b="x y" c c2= d="q\"\u00e9""#).unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "x y"),
                ("c", ""),
                ("c2", ""),
                ("d", "q\"é")
            ])
        );
        assert_eq!(
            parse_logfmt("  service.name=cart\nhttp.method=GET ").unwrap(),
            pairs(&[("service.name", "cart"), ("http.method", "GET")])
        );
        assert!(parse_logfmt("").unwrap().is_empty());
        let msg = |s: &str| parse_logfmt(s).unwrap_err().to_string();
        assert_eq!(msg("a=1 a=2"), "invalid tags: tag a has been set twice");
        assert_eq!(msg("=x"), "invalid tags: unexpected '=' at pos 1");
        assert_eq!(msg("a=b=c"), "invalid tags: unexpected '=' at pos 4");
        assert_eq!(msg("a\"b=c"), "invalid tags: unexpected '\"' at pos 2");
        assert_eq!(
            msg("a=\"bc"),
            "invalid tags: unterminated quoted value at pos 6"
        );
        assert_eq!(
            msg(r#"a="\q""#),
            "invalid tags: invalid quoted value at pos 7"
        );
    }

    #[test]
    fn tag_values_match_case_insensitive_substrings() {
        let e = tags_to_expr(&pairs(&[("http.url", "API/v1")])).unwrap();
        let c = e.conditions()[0].clone();
        assert!(c.matches(Some(ValueRef::Str("https://x/api/V1/users"))));
        assert!(!c.matches(Some(ValueRef::Str("/api/v2"))));
        let c = tags_to_expr(&pairs(&[("k", "a.b*")])).unwrap().conditions()[0].clone();
        assert!(c.matches(Some(ValueRef::Str("xxA.B*yy"))));
        assert!(!c.matches(Some(ValueRef::Str("aXb"))));
        assert!(c.matches(Some(ValueRef::Str("line\na.b*"))));
    }

    #[test]
    fn typed_values_and_special_keys() {
        let e = tags_to_expr(&pairs(&[("http.status_code", "200")])).unwrap();
        let conds = e.conditions();
        assert_eq!(conds.len(), 2);
        assert!(conds[1].matches(Some(ValueRef::Int(200))));
        let e = tags_to_expr(&pairs(&[("status.code", "Error")])).unwrap();
        assert!(e.conditions()[0].matches(Some(ValueRef::Int(2))));
        assert!(tags_to_expr(&pairs(&[("status.code", "bad")])).is_err());
        let e = tags_to_expr(&pairs(&[("name", "GET"), ("root.service.name", "x")])).unwrap();
        let fields: Vec<_> = e.conditions().iter().map(|c| c.field.clone()).collect();
        assert_eq!(
            fields,
            [
                Field::Intrinsic(Intrinsic::Name),
                Field::Intrinsic(Intrinsic::RootServiceName)
            ]
        );
    }
}
