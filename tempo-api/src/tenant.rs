//! Tenant IDs (`X-Scope-OrgID`), following dskit `tenant.ValidTenantID`,
//! which Tempo enforces in the frontend and distributor since 2.10.

/// The tenant Tempo uses for every request when multitenancy is disabled.
pub const SINGLE_TENANT: &str = "single-tenant";

/// HTTP header carrying the tenant.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";

/// gRPC metadata key carrying the tenant.
pub const ORG_ID_METADATA: &str = "x-scope-orgid";

/// Maximum tenant ID length in **bytes**.
pub const MAX_TENANT_ID_LENGTH: usize = 150;

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
    fn header_names() {
        assert_eq!(ORG_ID_HEADER.to_ascii_lowercase(), ORG_ID_METADATA);
    }
}
