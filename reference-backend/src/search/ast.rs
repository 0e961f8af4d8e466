//! The parsed form of a search: a spanset filter over span and trace fields.
//!
//! Both search inputs end here: TraceQL (`q`) and logfmt tags (`tags`). Every block format
//! evaluates the same tree, so a query answers the same over live data, rb1 and rb2.
//!
//! Semantics (shared by every evaluator):
//! - a span matches when the expression is true for it; a trace matches when at least one
//!   of its spans does (`{}` matches every span);
//! - a condition on an attribute the span does not have is false, whatever the operator;
//! - `.x` (scope [`Scope::Any`]) reads the span attribute `x` when the span has it, else the
//!   resource attribute `x`;
//! - integers, floats and durations compare numerically with each other; strings only with
//!   strings, booleans only with booleans (`=`/`!=`); any other pairing is false;
//! - `=~` and `!~` are fully anchored regular expressions over string values.

use regex::Regex;

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `resource.x`
    Resource,
    /// `span.x`
    Span,
    /// `.x`: span first, then resource.
    Any,
}

/// Intrinsic fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// Span name.
    Name,
    /// Span status code (0 unset, 1 ok, 2 error).
    Status,
    /// Span kind (OTLP numbering: 0 unspecified … 5 consumer).
    Kind,
    /// Span duration in nanoseconds.
    Duration,
    /// Service name of the trace's root span.
    RootServiceName,
    /// Name of the trace's root span.
    RootName,
    /// Trace duration (latest end − earliest start) in nanoseconds.
    TraceDuration,
}

impl Intrinsic {
    /// True for fields of the whole trace rather than of one span.
    pub fn is_trace_level(self) -> bool {
        matches!(
            self,
            Intrinsic::RootServiceName | Intrinsic::RootName | Intrinsic::TraceDuration
        )
    }
}

/// What a condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// An intrinsic.
    Intrinsic(Intrinsic),
    /// An attribute by scope and key.
    Attr {
        /// Scope.
        scope: Scope,
        /// Attribute key.
        key: String,
    },
}

/// A literal on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// String.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Duration in nanoseconds.
    Duration(u64),
    /// `error` / `ok` / `unset` as the OTLP status code.
    Status(i32),
    /// `server`, `client`, … as the OTLP span kind.
    Kind(i32),
}

/// A value read from a span, borrowed where possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// String.
    Str(&'a str),
    /// Integer (also status codes and kinds).
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Duration in nanoseconds.
    Duration(u64),
    /// A value no condition can compare (bytes, arrays, maps).
    Other,
}

/// `field op value`.
#[derive(Debug, Clone)]
pub struct Cond {
    /// Left side.
    pub field: Field,
    /// Operator.
    pub op: Op,
    /// Right side.
    pub value: Static,
    /// Compiled, anchored pattern for `=~` / `!~`.
    pub regex: Option<Regex>,
}

/// A spanset filter expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Matches every span (`{}`).
    All,
    /// One condition.
    Cond(Cond),
    /// Both sides.
    And(Box<Expr>, Box<Expr>),
    /// Either side.
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Every condition in the tree, left to right.
    pub fn conditions(&self) -> Vec<&Cond> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    /// The attributes the expression reads, as `(scope, key)`, each once, in order of first
    /// use. Search hits show these attributes of each matched span.
    pub fn referenced_attributes(&self) -> Vec<(Scope, &str)> {
        let mut out: Vec<(Scope, &str)> = Vec::new();
        for c in self.conditions() {
            if let Field::Attr { scope, key } = &c.field
                && !out.iter().any(|(s, k)| s == scope && k == key)
            {
                out.push((*scope, key.as_str()));
            }
        }
        out
    }

    /// `a && b && …` as a balanced tree (so evaluation and drop stay shallow); `All` when
    /// `items` is empty.
    pub fn all_of(items: Vec<Expr>) -> Expr {
        balanced(items, Expr::And).unwrap_or(Expr::All)
    }

    /// `a || b || …` as a balanced tree; `None` when `items` is empty.
    pub fn any_of(items: Vec<Expr>) -> Option<Expr> {
        balanced(items, Expr::Or)
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Cond>) {
        match self {
            Expr::All => {}
            Expr::Cond(c) => out.push(c),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

fn balanced(mut items: Vec<Expr>, join: fn(Box<Expr>, Box<Expr>) -> Expr) -> Option<Expr> {
    if items.len() <= 1 {
        return items.pop();
    }
    let right = items.split_off(items.len() / 2);
    let (l, r) = (balanced(items, join)?, balanced(right, join)?);
    Some(join(Box::new(l), Box::new(r)))
}

impl Cond {
    /// `field op value`; for `=~` / `!~` the string is compiled as a fully anchored pattern
    /// (`^(?:…)$`).
    pub fn new(field: Field, op: Op, value: Static) -> Result<Cond, regex::Error> {
        let regex = match (&value, op) {
            (Static::Str(s), Op::Re | Op::NotRe) => Some(Regex::new(&format!("^(?:{s})$"))?),
            _ => None,
        };
        Ok(Cond {
            field,
            op,
            value,
            regex,
        })
    }

    /// Does `value` satisfy this condition? `None` (attribute absent) never does.
    pub fn matches(&self, value: Option<ValueRef<'_>>) -> bool {
        let Some(v) = value else { return false };
        match (&self.value, v) {
            (Static::Str(s), ValueRef::Str(x)) => match self.op {
                Op::Re => self.regex.as_ref().is_some_and(|r| r.is_match(x)),
                Op::NotRe => self.regex.as_ref().is_some_and(|r| !r.is_match(x)),
                op => ordered(op, x.cmp(s.as_str())),
            },
            (Static::Bool(b), ValueRef::Bool(x)) => match self.op {
                Op::Eq => x == *b,
                Op::Ne => x != *b,
                _ => false,
            },
            (Static::Status(s), ValueRef::Int(x)) | (Static::Kind(s), ValueRef::Int(x)) => {
                match self.op {
                    Op::Eq => x == i64::from(*s),
                    Op::Ne => x != i64::from(*s),
                    _ => false,
                }
            }
            (Static::Int(i), ValueRef::Int(x)) => ordered(self.op, x.cmp(i)),
            (lit, v) => match (number(lit), number_ref(v)) {
                (Some(a), Some(x)) => x.partial_cmp(&a).is_some_and(|o| ordered(self.op, o)),
                _ => false,
            },
        }
    }
}

fn ordered(op: Op, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => o == Equal,
        Op::Ne => o != Equal,
        Op::Gt => o == Greater,
        Op::Ge => o != Less,
        Op::Lt => o == Less,
        Op::Le => o != Greater,
        Op::Re | Op::NotRe => false,
    }
}

fn number(s: &Static) -> Option<f64> {
    match s {
        Static::Int(i) => Some(*i as f64),
        Static::Float(f) => Some(*f),
        Static::Duration(d) => Some(*d as f64),
        _ => None,
    }
}

fn number_ref(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Int(i) => Some(i as f64),
        ValueRef::Float(f) => Some(f),
        ValueRef::Duration(d) => Some(d as f64),
        _ => None,
    }
}
