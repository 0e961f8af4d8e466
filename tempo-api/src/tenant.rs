//! Tenant IDs (`X-Scope-OrgID`), following dskit `tenant.ValidTenantID`,
//! which Tempo enforces in the frontend and distributor since 2.10, and the
//! cross-tenant form `a|b` that reads accept and writes refuse.

/// The tenant Tempo uses for every request when multitenancy is disabled.
pub const SINGLE_TENANT: &str = "single-tenant";

/// HTTP header carrying the tenant.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";

/// gRPC metadata key carrying the tenant.
pub const ORG_ID_METADATA: &str = "x-scope-orgid";

/// Maximum tenant ID length in **bytes**.
pub const MAX_TENANT_ID_LENGTH: usize = 150;

/// Separates the tenants of a cross-tenant read (`X-Scope-OrgID: a|b`).
pub const TENANT_SEPARATOR: char = '|';

/// Why a tenant ID was rejected. `Display` is dskit's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    /// Empty ID (dskit `user.ErrNoOrgID`).
    #[error("no org id")]
    Empty,
    /// A byte outside `[A-Za-z0-9]` and `! - _ . * ' ( )`.
    ///
    /// `character` is what dskit prints: `'%c'` of the offending **byte**,
    /// so for a multi-byte UTF-8 character it is the first byte read as
    /// Latin-1 (`é` → `Ã`).
    #[error("tenant ID '{id}' contains unsupported character '{character}'")]
    UnsupportedCharacter {
        /// The whole tenant ID as given.
        id: String,
        /// The offending byte, as dskit prints it.
        character: char,
    },
    /// Longer than 150 bytes.
    #[error("tenant ID is too long: max 150 characters")]
    TooLong,
    /// Exactly `.` or `..`.
    #[error("tenant ID is '.' or '..'")]
    DotOrDotDot,
    /// Several different tenants where one is needed (a write with `a|b`; dskit
    /// `user.ErrTooManyOrgIDs`).
    #[error("multiple org IDs present")]
    Multiple,
}

fn is_supported(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'!' | b'-' | b'_' | b'.' | b'*' | b'\'' | b'(' | b')')
}

/// Validates one tenant ID. Checks run in dskit's order: empty, characters,
/// length, then `.`/`..`.
pub fn validate_tenant_id(id: &str) -> Result<(), TenantIdError> {
    if id.is_empty() {
        return Err(TenantIdError::Empty);
    }
    if let Some(&b) = id.as_bytes().iter().find(|b| !is_supported(**b)) {
        return Err(TenantIdError::UnsupportedCharacter {
            id: id.to_string(),
            character: char::from(b),
        });
    }
    if id.len() > MAX_TENANT_ID_LENGTH {
        return Err(TenantIdError::TooLong);
    }
    if id == "." || id == ".." {
        return Err(TenantIdError::DotOrDotDot);
    }
    Ok(())
}

/// The tenants of a read, as Tempo's query-frontend takes them (dskit `tenant.TenantIDs`):
/// `a|b` split on `|`, every part validated (an empty part, as in `|a`, `a|` or `a||b`, is
/// [`TenantIdError::Empty`], "no org id"), then sorted and de-duplicated.
pub fn parse_read_tenants(org_id: &str) -> Result<Vec<String>, TenantIdError> {
    let mut ids = org_id
        .split(TENANT_SEPARATOR)
        .map(|id| validate_tenant_id(id).map(|()| id.to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The one tenant of a write, as Tempo's distributor takes it (dskit `tenant.TenantID`):
/// `a|a` is `a`; parts that differ (`a|b`, `|a`, `a|`) are [`TenantIdError::Multiple`].
pub fn parse_write_tenant(org_id: &str) -> Result<&str, TenantIdError> {
    let mut parts = org_id.split(TENANT_SEPARATOR);
    let first = parts.next().unwrap_or_default();
    if parts.any(|p| p != first) {
        return Err(TenantIdError::Multiple);
    }
    validate_tenant_id(first)?;
    Ok(first)
}

/// The `X-Scope-OrgID` value of a cross-tenant read of `tenants` (`a|b`).
pub fn join_tenants<S: AsRef<str>>(tenants: &[S]) -> String {
    let mut out = String::new();
    for (i, t) in tenants.iter().enumerate() {
        if i > 0 {
            out.push(TENANT_SEPARATOR);
        }
        out.push_str(t.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn accepts_allowed_characters() {
        for id in [
            "a",
            "single-tenant",
            "Tenant_01",
            "a.b",
            "...",
            "!-_.*'()",
            "ABCxyz0189",
        ] {
            assert_eq!(validate_tenant_id(id), Ok(()), "{id}");
        }
        assert_eq!(validate_tenant_id(SINGLE_TENANT), Ok(()));
    }

    #[test]
    fn empty_is_no_org_id() {
        assert_eq!(validate_tenant_id("").unwrap_err().to_string(), "no org id");
    }

    #[test]
    fn dot_and_dot_dot_rejected() {
        for id in [".", ".."] {
            assert_eq!(
                validate_tenant_id(id).unwrap_err().to_string(),
                "tenant ID is '.' or '..'"
            );
        }
    }

    #[test]
    fn unsupported_characters() {
        assert_eq!(
            validate_tenant_id("a/b").unwrap_err().to_string(),
            "tenant ID 'a/b' contains unsupported character '/'"
        );
        for id in ["a b", "a|b", "a:b", "a\\b", "a@b", "a%b"] {
            assert!(
                matches!(
                    validate_tenant_id(id),
                    Err(TenantIdError::UnsupportedCharacter { .. })
                ),
                "{id}"
            );
        }
        // dskit prints the first offending byte as a Latin-1 rune.
        assert_eq!(
            validate_tenant_id("caf\u{e9}").unwrap_err().to_string(),
            "tenant ID 'caf\u{e9}' contains unsupported character '\u{c3}'"
        );
    }

    #[test]
    fn length_limit_is_150_bytes() {
        assert_eq!(validate_tenant_id(&"a".repeat(150)), Ok(()));
        let err = validate_tenant_id(&"a".repeat(151)).unwrap_err();
        assert_eq!(err, TenantIdError::TooLong);
        assert_eq!(err.to_string(), "tenant ID is too long: max 150 characters");
        // Character errors are reported before length errors.
        assert!(matches!(
            validate_tenant_id(&format!("{}/", "a".repeat(200))),
            Err(TenantIdError::UnsupportedCharacter { .. })
        ));
    }

    #[test]
    fn reads_split_sort_dedupe_and_validate_each_tenant() {
        assert_eq!(parse_read_tenants("a").unwrap(), ["a"]);
        assert_eq!(parse_read_tenants("b|a|b").unwrap(), ["a", "b"]);
        for bad in ["|a", "a|", "a||b", "|", ""] {
            assert_eq!(
                parse_read_tenants(bad).unwrap_err().to_string(),
                "no org id",
                "{bad}"
            );
        }
        assert_eq!(
            parse_read_tenants("a|..").unwrap_err(),
            TenantIdError::DotOrDotDot
        );
        assert_eq!(
            parse_read_tenants("a|x/y").unwrap_err().to_string(),
            "tenant ID 'x/y' contains unsupported character '/'"
        );
        assert_eq!(join_tenants(&["a", "b"]), "a|b");
    }

    #[test]
    fn writes_take_exactly_one_tenant() {
        assert_eq!(parse_write_tenant("a"), Ok("a"));
        assert_eq!(parse_write_tenant("a|a"), Ok("a"));
        for bad in ["a|b", "|a", "a|", "a||a"] {
            assert_eq!(
                parse_write_tenant(bad).unwrap_err().to_string(),
                "multiple org IDs present",
                "{bad}"
            );
        }
        assert_eq!(parse_write_tenant("..|.."), Err(TenantIdError::DotOrDotDot));
        assert_eq!(parse_write_tenant(""), Err(TenantIdError::Empty));
    }

    #[test]
    fn header_names() {
        assert_eq!(ORG_ID_HEADER.to_ascii_lowercase(), ORG_ID_METADATA);
    }
}
