//! Which tenant a request belongs to.

use tempo_api::tenant::{ORG_ID_HEADER, SINGLE_TENANT, validate_tenant_id};

use crate::error::{Error, Result};

/// The tenant of a request: `single-tenant` when multitenancy is off (the header is then
/// ignored, as Tempo does), else the validated `X-Scope-OrgID` value.
pub fn resolve(multitenancy: bool, header: Option<&[u8]>) -> Result<String> {
    if !multitenancy {
        return Ok(SINGLE_TENANT.to_owned());
    }
    let Some(raw) = header else {
        return Err(Error::MissingTenant(ORG_ID_HEADER));
    };
    let id = std::str::from_utf8(raw)
        .map_err(|_| Error::InvalidArgument("tenant ID is not valid UTF-8".into()))?
        .trim();
    if id.is_empty() {
        return Err(Error::MissingTenant(ORG_ID_HEADER));
    }
    validate_tenant_id(id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(id.to_owned())
}

/// [`resolve`] with the running config (and the `IgnoreTenant` mutant, which files every
/// request under one tenant).
pub fn resolve_for(config: &crate::config::Config, header: Option<&[u8]>) -> Result<String> {
    let tenant = resolve(config.multitenancy_enabled, header)?;
    if config.mutant == Some(crate::release::Mutant::IgnoreTenant) {
        return Ok(SINGLE_TENANT.to_owned());
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(resolve(false, Some(b"../x")).unwrap(), "single-tenant");
        assert!(matches!(resolve(true, None), Err(Error::MissingTenant(_))));
        assert_eq!(resolve(true, Some(b"team-a")).unwrap(), "team-a");
        for bad in [&b".."[..], b"a/b", &[b'a'; 151]] {
            let e = resolve(true, Some(bad)).unwrap_err();
            assert_eq!(e.http_status(), http::StatusCode::BAD_REQUEST, "{e}");
            assert!(e.to_string().starts_with("tenant ID"), "{e}");
        }
        assert!(resolve(true, Some(&[b'a'; 150])).is_ok());
    }
}
