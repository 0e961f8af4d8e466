//! TraceQL (`q`) → [`Expr`], for the subset this backend evaluates exactly.
//!
//! Accepted: one spanset filter `{ … }` (also `{}`), optionally in parentheses; inside it
//! `&&`, `||` (`&&` binds tighter) and parentheses over conditions `field op value`, where
//! field is an intrinsic (`name`, `status`, `kind`, `duration`, `rootServiceName`,
//! `rootName`, `traceDuration`, or their `span:`/`trace:` spellings) or an attribute
//! (`resource.x`, `span.x`, `.x`, `span."x y"`), op is one of `= != > >= < <= =~ !~` and
//! value a string (`"…"` or `` `…` ``), integer, float, boolean, duration, status keyword
//! (`error`, `ok`, `unset`) or kind keyword (`server`, `client`, …).
//!
//! Everything else is rejected with `invalid TraceQL query: …` naming the construct, never
//! answered approximately: pipelines, aggregates, `select`, spanset operators between
//! filters, structural operators, other scopes and intrinsics, `nil`, negation, arithmetic,
//! and comparisons whose types can never match.

use super::ast::{Cond, Expr, Field, Op, Scope, Static};
use super::lexer::{AttrScope, SyntaxError, Tok, Token, tokenize};
use super::vocabulary::{INTRINSICS, OTHER_INTRINSICS, check_types, function, keyword};
use crate::error::Error;

/// Deepest parenthesis nesting accepted (keeps parsing and evaluation shallow).
pub const MAX_NESTING: usize = 64;

/// Parse a TraceQL query of the supported subset.
pub fn parse_traceql(query: &str) -> Result<Expr, Error> {
    let result = tokenize(query).and_then(|toks| {
        let mut p = Parser {
            toks,
            i: 0,
            depth: 0,
        };
        p.query()
    });
    result.map_err(|e| {
        Error::InvalidArgument(format!(
            "invalid TraceQL query: {} (at col {})",
            e.message,
            e.column(query)
        ))
    })
}

/// Parse one TraceQL identifier (`resource.service.name`, `.http.method`, `name`,
/// `status`), as the v2 tag-values endpoint takes it.
pub fn parse_field(text: &str) -> Result<Field, String> {
    let toks = tokenize(text).map_err(|e| e.message)?;
    match toks.as_slice() {
        [t, Token { tok: Tok::End, .. }] => field_of(t).map_err(|e| e.message),
        _ => Err("expected one attribute or intrinsic".into()),
    }
}

/// The text of an operator.
pub fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Re => "=~",
        Op::NotRe => "!~",
    }
}

/// A token as an error message shows it.
fn describe(t: &Tok) -> String {
    match t {
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::And => "'&&'".into(),
        Tok::Or => "'||'".into(),
        Tok::Op(op) => format!("'{}'", op_text(*op)),
        Tok::Minus => "'-'".into(),
        Tok::Other(p) => format!("'{p}'"),
        Tok::Ident(w) => format!("'{w}'"),
        Tok::Attr { key, .. } => format!("attribute '{key}'"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Duration(_) => "a duration".into(),
        Tok::End => "end of query".into(),
    }
}

fn err<T>(message: impl Into<String>, at: usize) -> Result<T, SyntaxError> {
    Err(SyntaxError::new(message, at))
}

/// A field from an attribute or intrinsic token.
fn field_of(t: &Token) -> Result<Field, SyntaxError> {
    match &t.tok {
        Tok::Attr { scope, key } => {
            let scope = match scope {
                AttrScope::Resource => Scope::Resource,
                AttrScope::Span => Scope::Span,
                AttrScope::Any => Scope::Any,
                AttrScope::Unsupported(s) => {
                    return err(format!("'{s}' attributes are not supported"), t.at);
                }
            };
            Ok(Field::Attr {
                scope,
                key: key.clone(),
            })
        }
        Tok::Ident(w) => {
            if let Some((_, i)) = INTRINSICS.iter().find(|(n, _)| n == w) {
                return Ok(Field::Intrinsic(*i));
            }
            if OTHER_INTRINSICS.contains(&w.as_str()) || w.contains(':') {
                return err(format!("intrinsic '{w}' is not supported"), t.at);
            }
            if w == "nil" {
                return err("nil is not supported", t.at);
            }
            err(
                format!(
                    "unknown intrinsic '{w}' (attributes need a scope: .{w}, span.{w} or resource.{w})"
                ),
                t.at,
            )
        }
        other => err(
            format!(
                "expected an attribute or intrinsic, found {}",
                describe(other)
            ),
            t.at,
        ),
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }

    fn enter(&mut self, at: usize) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(format!("parentheses nested deeper than {MAX_NESTING}"), at);
        }
        Ok(())
    }

    fn query(&mut self) -> Result<Expr, SyntaxError> {
        if self.peek().tok == Tok::End {
            return err("empty query", 0);
        }
        let e = self.spanset()?;
        let t = self.peek().clone();
        match &t.tok {
            Tok::End => Ok(e),
            tok => err(self.after_spanset(tok), t.at),
        }
    }

    /// Why a token cannot follow a complete spanset filter.
    fn after_spanset(&self, tok: &Tok) -> String {
        match tok {
            Tok::Other("|") => {
                let stage = match (self.peek_at(1), self.peek_at(2)) {
                    (Tok::Ident(f), Tok::LParen) => format!("{} in a ", function(f)),
                    _ => String::new(),
                };
                format!("{stage}pipeline: pipelines ('|') are not supported")
            }
            Tok::And | Tok::Or => format!(
                "{} between spansets is not supported (combine conditions inside one {{ }})",
                describe(tok)
            ),
            Tok::Other(p @ (">>" | "<<" | "!>>" | "!<<" | "&>>" | "&<<")) => {
                format!("structural operator '{p}' is not supported")
            }
            Tok::Op(op @ (Op::Gt | Op::Lt)) => {
                format!("structural operator '{}' is not supported", op_text(*op))
            }
            Tok::Other(p @ ("~" | "&~")) => format!("sibling operator '{p}' is not supported"),
            Tok::Op(Op::NotRe) => "sibling operator '!~' is not supported".into(),
            Tok::Other(p) => format!("operator '{p}' between spansets is not supported"),
            Tok::Minus => "arithmetic ('-') is not supported".into(),
            other => format!("unexpected {} after the spanset filter", describe(other)),
        }
    }

    fn spanset(&mut self) -> Result<Expr, SyntaxError> {
        let t = self.bump();
        match &t.tok {
            Tok::LBrace => {
                if self.peek().tok == Tok::RBrace {
                    self.bump();
                    return Ok(Expr::All);
                }
                let e = self.or_expr()?;
                self.expect_close(Tok::RBrace)?;
                Ok(e)
            }
            Tok::LParen => {
                self.enter(t.at)?;
                let e = self.spanset()?;
                let next = self.peek().clone();
                if next.tok != Tok::RParen {
                    return err(self.after_spanset(&next.tok), next.at);
                }
                self.bump();
                self.depth -= 1;
                Ok(e)
            }
            Tok::Ident(f) if *self.peek_at(0) == Tok::LParen => {
                err(format!("{} is not supported", function(f)), t.at)
            }
            Tok::Attr { .. } | Tok::Ident(_) => {
                err("conditions must be inside a spanset filter { … }", t.at)
            }
            other => err(
                format!(
                    "expected a spanset filter {{ … }}, found {}",
                    describe(other)
                ),
                t.at,
            ),
        }
    }

    /// After a complete expression, expect `close` (`}` or `)`), naming what is there instead.
    fn expect_close(&mut self, close: Tok) -> Result<(), SyntaxError> {
        let t = self.bump();
        if t.tok == close {
            return Ok(());
        }
        let msg = match &t.tok {
            Tok::Other(p @ ("+" | "*" | "/" | "%" | "^")) => {
                format!("arithmetic ('{p}') is not supported")
            }
            Tok::Minus => "arithmetic ('-') is not supported".into(),
            Tok::Op(op) => format!(
                "chained comparison with '{}' is not supported",
                op_text(*op)
            ),
            Tok::Other("|") => "pipelines ('|') are not supported".into(),
            Tok::Other(p) => format!("operator '{p}' is not supported inside a spanset filter"),
            other => format!("expected {}, found {}", describe(&close), describe(other)),
        };
        err(msg, t.at)
    }

    fn or_expr(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and_expr()?];
        while self.peek().tok == Tok::Or {
            self.bump();
            items.push(self.and_expr()?);
        }
        Ok(Expr::any_of(items).unwrap_or(Expr::All))
    }

    fn and_expr(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.unary()?];
        while self.peek().tok == Tok::And {
            self.bump();
            items.push(self.unary()?);
        }
        Ok(Expr::all_of(items))
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::LParen => {
                self.bump();
                self.enter(t.at)?;
                let e = self.or_expr()?;
                self.expect_close(Tok::RParen)?;
                self.depth -= 1;
                Ok(e)
            }
            Tok::Other("!") => err("negation ('!') is not supported", t.at),
            Tok::LBrace => err("nested spanset filters are not supported", t.at),
            Tok::Ident(w) if *self.peek_at(1) == Tok::LParen => {
                err(format!("{} is not supported", function(w)), t.at)
            }
            Tok::Ident(w) if w == "true" || w == "false" => err(
                format!("a bare boolean ({{ {w} }}) is not supported; compare a field"),
                t.at,
            ),
            Tok::Ident(w) if keyword(w).is_some() => err(
                format!(
                    "the left side of a comparison must be an attribute or intrinsic, found '{w}'"
                ),
                t.at,
            ),
            Tok::Attr { .. } | Tok::Ident(_) => {
                self.bump();
                let field = field_of(&t)?;
                self.condition(field, &t)
            }
            Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Minus => err(
                "the left side of a comparison must be an attribute or intrinsic",
                t.at,
            ),
            other => err(
                format!("expected a condition, found {}", describe(other)),
                t.at,
            ),
        }
    }

    fn condition(&mut self, field: Field, field_tok: &Token) -> Result<Expr, SyntaxError> {
        let t = self.bump();
        let op = match &t.tok {
            Tok::Op(op) => *op,
            Tok::Other(p @ ("+" | "*" | "/" | "%" | "^")) => {
                return err(format!("arithmetic ('{p}') is not supported"), t.at);
            }
            Tok::Minus => return err("arithmetic ('-') is not supported", t.at),
            Tok::RBrace | Tok::RParen | Tok::And | Tok::Or | Tok::End => {
                return err(
                    format!(
                        "{} alone is not a condition; compare it with a value",
                        describe(&field_tok.tok)
                    ),
                    field_tok.at,
                );
            }
            Tok::Other(p) => return err(format!("operator '{p}' is not supported"), t.at),
            other => {
                return err(
                    format!("expected a comparison operator, found {}", describe(other)),
                    t.at,
                );
            }
        };
        let v = self.bump();
        let value = self.value(&v)?;
        check_types(&field, op, &value).map_err(|m| SyntaxError::new(m, field_tok.at))?;
        let cond = Cond::new(field, op, value)
            .map_err(|e| SyntaxError::new(format!("invalid regular expression: {e}"), v.at))?;
        Ok(Expr::Cond(cond))
    }

    fn value(&mut self, t: &Token) -> Result<Static, SyntaxError> {
        match &t.tok {
            Tok::Str(s) => Ok(Static::Str(s.clone())),
            Tok::Int(n) => Ok(Static::Int(*n)),
            Tok::Float(f) => Ok(Static::Float(*f)),
            Tok::Duration(d) => duration(*d, t.at),
            Tok::Minus => {
                let n = self.bump();
                match n.tok {
                    Tok::Int(i) => Ok(Static::Int(-i)),
                    Tok::Float(f) => Ok(Static::Float(-f)),
                    Tok::Duration(d) => duration(-d, t.at),
                    other => err(
                        format!("expected a number after '-', found {}", describe(&other)),
                        n.at,
                    ),
                }
            }
            Tok::Ident(w) if w == "nil" => err("nil is not supported", t.at),
            Tok::Ident(w) => match keyword(w) {
                Some(s) => Ok(s),
                None if *self.peek_at(0) == Tok::LParen => {
                    err(format!("{} is not supported", function(w)), t.at)
                }
                None => err(
                    "comparing two fields is not supported; compare with a literal value",
                    t.at,
                ),
            },
            Tok::Attr { .. } => err(
                "comparing two fields is not supported; compare with a literal value",
                t.at,
            ),
            other => err(format!("expected a value, found {}", describe(other)), t.at),
        }
    }
}

fn duration(ns: i64, at: usize) -> Result<Static, SyntaxError> {
    u64::try_from(ns)
        .map(Static::Duration)
        .or_else(|_| err("negative durations are not supported", at))
}
