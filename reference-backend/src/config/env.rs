//! `--config.expand-env`: environment variables in a config file, expanded the way Tempo's
//! `-config.expand-env=true` expands them, so one file serves many data dirs or ports.
//!
//! Tempo runs drone/envsubst over the whole file text before parsing the YAML. What it does
//! with each form (checked against Tempo 3.0.3 with `-config.verify`), and what happens here:
//!
//! | text | Tempo | here |
//! |---|---|---|
//! | `${VAR}` | the value; unset or empty → empty text | same |
//! | `${VAR:-word}`, `${VAR:=word}` | the value when set and not empty, else `word` (which may hold `${…}`) | same |
//! | `$${`, `$$` | a literal `${`, `$` (outside `${…}`) | same |
//! | `$VAR`, a `$` before anything else | left as written | same |
//! | `${}`, `${ VAR}`, `${VAR-word}`, unclosed `${` | error | error naming line and column |
//! | `${VAR:?w}`, `${VAR:+w}`, `${VAR:1}`, `${#VAR}`, `${VAR^^}`, `${VAR/a/b}`, … | bash-like string functions | refused: an error naming the form (never approximated) |
//!
//! Comments are text like any other (a `${` in a comment must be valid or written `$${`),
//! and a value is inserted as is, so it can hold YAML of its own, as in Tempo.

/// Expand `text`. `lookup` answers a variable's value (`None` when unset); its error is
/// reported as is.
pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Result<Option<String>, String>,
) -> Result<String, String> {
    let mut p = Parser {
        src: text,
        pos: 0,
        lookup,
    };
    let mut out = String::with_capacity(text.len());
    while let Some(c) = p.peek() {
        match (c, p.peek_at(1)) {
            ('$', Some('$')) => {
                out.push('$');
                p.pos += 2;
            }
            ('$', Some('{')) => {
                let start = p.pos;
                p.pos += 2;
                let v = p.expression(start)?;
                out.push_str(&v);
            }
            _ => {
                out.push(c);
                p.pos += c.len_utf8();
            }
        }
    }
    Ok(out)
}

/// [`expand`] from the process environment. A variable whose value is not UTF-8 is an
/// error naming it.
pub fn expand_from_process(text: &str) -> Result<String, String> {
    expand(text, &|name| match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    })
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Result<Option<String>, String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    /// "line L column C: " of byte offset `at` (1-based, columns in characters).
    fn at(&self, at: usize) -> String {
        let before = &self.src[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line} column {column}: ")
    }

    /// The form starting at `start` as written, for messages (up to its `}` or 40 chars).
    fn snippet(&self, start: usize) -> String {
        let rest = &self.src[start..];
        let end = rest.find('}').map_or(rest.len(), |i| i + 1);
        let form: String = rest[..end].chars().take(40).collect();
        form.replace('\n', "\\n")
    }

    /// After `${` (which began at `start`): the variable, an optional `:-`/`:=` default,
    /// and the closing `}`.
    fn expression(&mut self, start: usize) -> Result<String, String> {
        let name_start = self.pos;
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            self.pos += c.len_utf8();
        }
        let name = &self.src[name_start..self.pos];
        let unclosed = || {
            format!(
                "{}{}: missing closing brace",
                self.at(start),
                self.snippet(start)
            )
        };
        let unsupported = |what: &str| {
            format!(
                "{}{}: {what}; the forms expanded are ${{VAR}}, ${{VAR:-default}} and \
                 ${{VAR:=default}} (write $${{ for a literal ${{)",
                self.at(start),
                self.snippet(start)
            )
        };
        match (self.peek(), self.peek_at(1)) {
            (None, _) => Err(unclosed()),
            _ if name.is_empty() => Err(unsupported("no variable name")),
            (Some('}'), _) => {
                self.pos += 1;
                Ok(self.value(name)?.unwrap_or_default())
            }
            (Some(':'), Some('-' | '=')) => {
                self.pos += 2;
                let default = self.word(start)?;
                Ok(self
                    .value(name)?
                    .filter(|v| !v.is_empty())
                    .unwrap_or(default))
            }
            (Some(c), _) if c.is_whitespace() => {
                Err(unsupported("a variable name ends at the closing brace"))
            }
            (Some(_), _) => Err(unsupported("not supported")),
        }
    }

    /// A default word up to the `}` closing the expression that began at `start`; `${…}`
    /// inside is expanded, everything else (a lone `$`, `$$`) is kept as written.
    fn word(&mut self, start: usize) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match (self.peek(), self.peek_at(1)) {
                (None, _) => {
                    return Err(format!(
                        "{}{}: missing closing brace",
                        self.at(start),
                        self.snippet(start)
                    ));
                }
                (Some('}'), _) => {
                    self.pos += 1;
                    return Ok(out);
                }
                (Some('$'), Some('{')) => {
                    let inner = self.pos;
                    self.pos += 2;
                    out.push_str(&self.expression(inner)?);
                }
                (Some(c), _) => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn value(&self, name: &str) -> Result<Option<String>, String> {
        (self.lookup)(name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(name: &str) -> Result<Option<String>, String> {
        Ok(match name {
            "SETV" => Some("val".into()),
            "EMPTY" => Some(String::new()),
            "B" => Some("bee".into()),
            "DIR" => Some("/data/one".into()),
            _ => None,
        })
    }

    fn x(text: &str) -> Result<String, String> {
        expand(text, &env)
    }

    /// Each row was checked against Tempo 3.0.3 (`-config.expand-env=true -config.verify`,
    /// the expanded text read back from its YAML error).
    #[test]
    fn expands_as_tempo_does() {
        for (text, want) in [
            ("${SETV}", "val"),
            ("${UNSET}", ""),
            ("${EMPTY:-14}", "14"),
            ("${UNSET:-d}", "d"),
            ("${SETV:-d}", "val"),
            ("${SETV:=d}", "val"),
            ("${UNSET:=d}", "d"),
            ("${EMPTY:-}", ""),
            ("${EMPTY:-x y}", "x y"),
            ("${EMPTY:-${B}}", "bee"),
            ("${EMPTY:-${UNSET:-z}}", "z"),
            ("${EMPTY:-a:b}", "a:b"),
            ("${EMPTY:-@#}", "@#"),
            ("${EMPTY:-$B}", "$B"),
            ("${EMPTY:-$$}", "$$"),
            ("${EMPTY:-a}b}", "ab}"),
            ("${EMPTY:-x}${SETV}", "xval"),
            ("${_x1}", ""),
            ("${1}", ""),
            ("a$b", "a$b"),
            ("$", "$"),
            ("a$$", "a$"),
            ("a$$$$b", "a$$b"),
            ("$PORTV", "$PORTV"),
            ("$$PORTV", "$PORTV"),
            ("x$${Y}", "x${Y}"),
            ("$${SETV}", "${SETV}"),
            (
                "# ${UNSET} in a comment\npath: ${DIR}/wal\n",
                "#  in a comment\npath: /data/one/wal\n",
            ),
            ("héllo ${SETV} wörld", "héllo val wörld"),
        ] {
            assert_eq!(x(text).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn malformed_and_unsupported_forms_are_errors_naming_line_column_and_form() {
        for (text, want) in [
            ("a: 1\nb: ${}", "line 2 column 4: ${}: no variable name"),
            ("${ SETV}", "line 1 column 1: ${ SETV}: no variable name"),
            ("${SETV", "line 1 column 1: ${SETV: missing closing brace"),
            (
                "${SETV:-x",
                "line 1 column 1: ${SETV:-x: missing closing brace",
            ),
            ("${SETV-12}", "${SETV-12}: not supported"),
            ("${my-var}", "${my-var}: not supported"),
            ("${A.B}", "${A.B}: not supported"),
            ("${SETV :-x}", "${SETV :-x}: a variable name ends"),
            ("${SETV:?m}", "${SETV:?m}: not supported"),
            ("${SETV:+m}", "${SETV:+m}: not supported"),
            ("${SETV:1}", "${SETV:1}: not supported"),
            ("${SETV^^}", "${SETV^^}: not supported"),
            ("${#SETV}", "${#SETV}: no variable name"),
            ("${SETV/a/b}", "${SETV/a/b}: not supported"),
            (
                "ok ${EMPTY:-${BAD^}}",
                "line 1 column 13: ${BAD^}: not supported",
            ),
        ] {
            let e = x(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = x("${SETV-12}").unwrap_err();
        assert!(e.contains("${VAR:-default}"), "{e}");
    }

    #[test]
    fn lookup_errors_are_reported() {
        let e = expand("${X}", &|n| Err(format!("{n} is broken"))).unwrap_err();
        assert_eq!(e, "X is broken");
    }
}
