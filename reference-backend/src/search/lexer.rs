//! TraceQL tokens: punctuation, identifiers, scoped attributes, literals.
//!
//! Attribute names follow Tempo's lexer: after `.`, `span.` or `resource.` (or another
//! scope word) the name runs until whitespace or one of `{ } ( ) = ~ ! < > & | ^ ,`, so
//! `.http.status_code` and `span.foo-bar/baz` are single names; `span."foo bar"` quotes one.

use super::ast::Op;
use super::duration::parse_go_duration;

/// Where a scoped attribute token points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrScope {
    /// `resource.`
    Resource,
    /// `span.`
    Span,
    /// `.`
    Any,
    /// A scope TraceQL has but this backend does not search (`event.`, `link.`,
    /// `instrumentation.`, `parent.`).
    Unsupported(&'static str),
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `&&`
    And,
    /// `||`
    Or,
    /// A comparison operator.
    Op(Op),
    /// `-` (a negative literal when a number follows).
    Minus,
    /// Punctuation outside the subset (`|`, `>>`, `~`, `!`, `+`, …), as written.
    Other(&'static str),
    /// A bare word (`name`, `true`, `error`, `count`) or a colon intrinsic (`span:name`).
    Ident(String),
    /// A scoped attribute.
    Attr {
        /// Its scope.
        scope: AttrScope,
        /// Attribute key.
        key: String,
    },
    /// A string literal.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A duration literal in nanoseconds.
    Duration(i64),
    /// End of input.
    End,
}

/// A token and the byte offset it starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Byte offset in the query.
    pub at: usize,
}

/// A lexing or parsing failure: what is wrong and where (byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong, naming the construct.
    pub message: String,
    /// Byte offset in the query.
    pub at: usize,
}

impl SyntaxError {
    /// An error at byte offset `at`.
    pub fn new(message: impl Into<String>, at: usize) -> Self {
        SyntaxError {
            message: message.into(),
            at,
        }
    }

    /// 1-based column (in characters) of the error in `src`.
    pub fn column(&self, src: &str) -> usize {
        src.get(..self.at).map_or(1, |s| s.chars().count() + 1)
    }
}

/// Punctuation, longest first so that `>>` wins over `>`.
const PUNCT: [(&str, Option<Tok>); 28] = [
    ("!>>", None),
    ("!<<", None),
    ("&>>", None),
    ("&<<", None),
    (">>", None),
    ("<<", None),
    ("&~", None),
    ("&&", Some(Tok::And)),
    ("||", Some(Tok::Or)),
    ("=~", Some(Tok::Op(Op::Re))),
    ("!~", Some(Tok::Op(Op::NotRe))),
    ("!=", Some(Tok::Op(Op::Ne))),
    (">=", Some(Tok::Op(Op::Ge))),
    ("<=", Some(Tok::Op(Op::Le))),
    ("=", Some(Tok::Op(Op::Eq))),
    (">", Some(Tok::Op(Op::Gt))),
    ("<", Some(Tok::Op(Op::Lt))),
    ("-", Some(Tok::Minus)),
    ("~", None),
    ("!", None),
    ("|", None),
    ("&", None),
    ("+", None),
    ("*", None),
    ("/", None),
    ("%", None),
    ("^", None),
    (",", None),
];

const SCOPES: [(&str, AttrScope); 7] = [
    ("resource", AttrScope::Resource),
    ("span", AttrScope::Span),
    ("event", AttrScope::Unsupported("event.")),
    ("link", AttrScope::Unsupported("link.")),
    (
        "instrumentation",
        AttrScope::Unsupported("instrumentation."),
    ),
    ("parent", AttrScope::Unsupported("parent.")),
    ("trace", AttrScope::Unsupported("trace.")),
];

const COLON_SCOPES: [&str; 5] = ["span", "trace", "event", "link", "instrumentation"];

/// Split a query into tokens, ending with [`Tok::End`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let at = i;
        let rest = &src[i..];
        let (tok, len) = match c {
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '"' => {
                let (s, len) = quoted(rest, at)?;
                (Tok::Str(s), len)
            }
            '`' => match rest[1..].find('`') {
                Some(end) => (Tok::Str(rest[1..=end].to_owned()), end + 2),
                None => return Err(SyntaxError::new("unterminated string", at)),
            },
            '.' => {
                let (key, len) = attribute_name(&rest[1..], at + 1)?;
                (
                    Tok::Attr {
                        scope: AttrScope::Any,
                        key,
                    },
                    len + 1,
                )
            }
            c if c.is_ascii_digit() => number(rest, at)?,
            c if c.is_alphabetic() || c == '_' => word(rest, at)?,
            _ => match PUNCT.iter().find(|(p, _)| rest.starts_with(p)) {
                Some((p, Some(t))) => (t.clone(), p.len()),
                Some((p, None)) => (Tok::Other(p), p.len()),
                None => {
                    return Err(SyntaxError::new(format!("unexpected character {c:?}"), at));
                }
            },
        };
        out.push(Token { tok, at });
        i += len;
    }
    out.push(Token {
        tok: Tok::End,
        at: src.len(),
    });
    Ok(out)
}

fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace() && !"{}()=~!<>&|^,".contains(c)
}

/// An attribute name after its scope's dot: quoted, or a run of attribute characters.
fn attribute_name(rest: &str, at: usize) -> Result<(String, usize), SyntaxError> {
    if rest.starts_with('"') {
        return quoted(rest, at);
    }
    let len = rest
        .char_indices()
        .find(|(_, c)| !is_attribute_char(*c))
        .map_or(rest.len(), |(i, _)| i);
    if len == 0 {
        return Err(SyntaxError::new("attribute name missing after '.'", at));
    }
    Ok((rest[..len].to_owned(), len))
}

/// A bare word, a scoped attribute (`span.x`) or a colon intrinsic (`span:name`).
fn word(rest: &str, at: usize) -> Result<(Tok, usize), SyntaxError> {
    let len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    let w = &rest[..len];
    let after = &rest[len..];
    if let Some(name) = after.strip_prefix('.') {
        let Some((_, scope)) = SCOPES.iter().find(|(s, _)| *s == w) else {
            let (key, _) = attribute_name(name, at + len + 1).unwrap_or_default();
            return Err(SyntaxError::new(
                format!(
                    "unknown attribute scope '{w}.': write .{w}.{key}, span.{w}.{key} or resource.{w}.{key}"
                ),
                at,
            ));
        };
        let (key, klen) = attribute_name(name, at + len + 1)?;
        let tok = Tok::Attr {
            scope: scope.clone(),
            key,
        };
        return Ok((tok, len + 1 + klen));
    }
    if let Some(name) = after.strip_prefix(':')
        && COLON_SCOPES.contains(&w)
    {
        let nlen = name
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(name.len(), |(i, _)| i);
        if nlen == 0 {
            return Err(SyntaxError::new(format!("name missing after '{w}:'"), at));
        }
        return Ok((Tok::Ident(format!("{w}:{}", &name[..nlen])), len + 1 + nlen));
    }
    Ok((Tok::Ident(w.to_owned()), len))
}

/// An integer, float (`1.5`, `2e3`) or duration (`100ms`, `1.5s`, `2h45m`).
fn number(rest: &str, at: usize) -> Result<(Tok, usize), SyntaxError> {
    let b = rest.as_bytes();
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end = digits(0);
    let mut float = false;
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
        float = true;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        if b.get(end + 1 + sign).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1 + sign);
            let text = &rest[..end];
            return text
                .parse::<f64>()
                .map(|f| (Tok::Float(f), end))
                .map_err(|_| SyntaxError::new(format!("invalid number {text:?}"), at));
        }
    }
    if rest[end..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic())
    {
        let len = end
            + rest[end..]
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '.'))
                .map_or(rest.len() - end, |(i, _)| i);
        let text = &rest[..len];
        return parse_go_duration(text)
            .map(|d| (Tok::Duration(d), len))
            .map_err(|e| SyntaxError::new(format!("invalid duration {text:?}: {e}"), at));
    }
    let text = &rest[..end];
    if float {
        text.parse::<f64>()
            .map(|f| (Tok::Float(f), end))
            .map_err(|_| SyntaxError::new(format!("invalid number {text:?}"), at))
    } else {
        text.parse::<i64>()
            .map(|n| (Tok::Int(n), end))
            .map_err(|_| SyntaxError::new(format!("integer {text} is out of range"), at))
    }
}

/// A double-quoted string with Go escapes; returns the value and the bytes consumed.
fn quoted(rest: &str, at: usize) -> Result<(String, usize), SyntaxError> {
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let Some((j, e)) = chars.next() else { break };
                let simple = match e {
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'v' => Some('\u{b}'),
                    '\\' | '"' | '\'' => Some(e),
                    _ => None,
                };
                if let Some(s) = simple {
                    out.push(s);
                    continue;
                }
                let width = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    _ => {
                        return Err(SyntaxError::new(
                            format!("invalid escape '\\{e}' in string"),
                            at + j,
                        ));
                    }
                };
                let hex = rest.get(j + 1..j + 1 + width).unwrap_or("");
                let ch = u32::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| hex.len() == width)
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        SyntaxError::new(format!("invalid escape '\\{e}{hex}' in string"), at + j)
                    })?;
                out.push(ch);
                for _ in 0..width {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Err(SyntaxError::new("unterminated string", at))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn attr(scope: AttrScope, key: &str) -> Tok {
        Tok::Attr {
            scope,
            key: key.into(),
        }
    }

    #[test]
    fn attributes_and_scopes() {
        assert_eq!(
            toks(r#"{.http.status_code>=200&&span."foo bar"!=resource.service.name}"#),
            vec![
                Tok::LBrace,
                attr(AttrScope::Any, "http.status_code"),
                Tok::Op(Op::Ge),
                Tok::Int(200),
                Tok::And,
                attr(AttrScope::Span, "foo bar"),
                Tok::Op(Op::Ne),
                attr(AttrScope::Resource, "service.name"),
                Tok::RBrace,
                Tok::End,
            ]
        );
        assert_eq!(
            toks("span.a-b/c:d event.x span:name"),
            vec![
                attr(AttrScope::Span, "a-b/c:d"),
                attr(AttrScope::Unsupported("event."), "x"),
                Tok::Ident("span:name".into()),
                Tok::End,
            ]
        );
        let e = tokenize("{ service.name = 1 }").unwrap_err();
        assert!(
            e.message.contains("unknown attribute scope 'service.'"),
            "{e:?}"
        );
        assert_eq!(e.column("{ service.name = 1 }"), 3);
        assert!(tokenize("{ . = 1 }").is_err());
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks(r#"1 -2 1.5 2e3 100ms 1.5s 2h45m "a\"b\n\u00e9" `raw\`"#),
            vec![
                Tok::Int(1),
                Tok::Minus,
                Tok::Int(2),
                Tok::Float(1.5),
                Tok::Float(2000.0),
                Tok::Duration(100_000_000),
                Tok::Duration(1_500_000_000),
                Tok::Duration(9_900_000_000_000),
                Tok::Str("a\"b\né".into()),
                Tok::Str("raw\\".into()),
                Tok::End,
            ]
        );
        assert!(
            tokenize("1xs")
                .unwrap_err()
                .message
                .contains("unknown unit")
        );
        assert!(tokenize("99999999999999999999").is_err());
        assert!(tokenize("\"abc").is_err());
        assert!(tokenize("\"a\\qb\"").is_err());
    }

    #[test]
    fn punctuation_is_longest_first() {
        assert_eq!(
            toks("> >> >= !~ !>> ~ | || & &&"),
            vec![
                Tok::Op(Op::Gt),
                Tok::Other(">>"),
                Tok::Op(Op::Ge),
                Tok::Op(Op::NotRe),
                Tok::Other("!>>"),
                Tok::Other("~"),
                Tok::Other("|"),
                Tok::Or,
                Tok::Other("&"),
                Tok::And,
                Tok::End,
            ]
        );
    }
}
