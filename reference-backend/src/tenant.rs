//! Which tenant a request belongs to: one for a write, one or more for a read
//! (`X-Scope-OrgID: a|b` reads from each tenant and merges, as Tempo's query-frontend does).

use tempo_api::tenant::{
    ORG_ID_HEADER, SINGLE_TENANT, TenantIdError, parse_read_tenants, parse_write_tenant,
};

use crate::error::{Error, Result};

/// The header value, or `None` when it is absent or blank (multitenancy on needs it).
fn org_id(multitenancy: bool, header: Option<&[u8]>) -> Result<Option<&str>> {
    if !multitenancy {
        return Ok(None);
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
    Ok(Some(id))
}

fn invalid(id: &str, e: TenantIdError) -> Error {
    match e {
        TenantIdError::Multiple => Error::InvalidArgument(format!(
            "{e}: {ORG_ID_HEADER} {id:?} names several tenants; a write goes to exactly one"
        )),
        e => Error::InvalidArgument(e.to_string()),
    }
}

/// The tenant of a write: `single-tenant` when multitenancy is off (the header is then
/// ignored, as Tempo does), else the validated `X-Scope-OrgID` value. `a|b` is refused
/// (`multiple org IDs present`); `a|a` is `a`, as in Tempo.
pub fn resolve(multitenancy: bool, header: Option<&[u8]>) -> Result<String> {
    match org_id(multitenancy, header)? {
        None => Ok(SINGLE_TENANT.to_owned()),
        Some(id) => parse_write_tenant(id)
            .map(str::to_owned)
            .map_err(|e| invalid(id, e)),
    }
}

/// The tenants of a read, sorted and de-duplicated: `[single-tenant]` when multitenancy is
/// off, else every tenant of `X-Scope-OrgID` (`a|b`), each validated; an empty part
/// (`|a`, `a|`, `a||b`) is a 400 `no org id`.
pub fn resolve_reads(multitenancy: bool, header: Option<&[u8]>) -> Result<Vec<String>> {
    match org_id(multitenancy, header)? {
        None => Ok(vec![SINGLE_TENANT.to_owned()]),
        Some(id) => parse_read_tenants(id).map_err(|e| invalid(id, e)),
    }
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

/// [`resolve_reads`] with the running config (and the `IgnoreTenant` mutant).
pub fn resolve_reads_for(
    config: &crate::config::Config,
    header: Option<&[u8]>,
) -> Result<Vec<String>> {
    let tenants = resolve_reads(config.multitenancy_enabled, header)?;
    if config.mutant == Some(crate::release::Mutant::IgnoreTenant) {
        return Ok(vec![SINGLE_TENANT.to_owned()]);
    }
    Ok(tenants)
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

    #[test]
    fn writes_refuse_several_tenants() {
        assert_eq!(resolve(true, Some(b"a|a")).unwrap(), "a");
        for bad in [&b"a|b"[..], b"|a", b"a|"] {
            let e = resolve(true, Some(bad)).unwrap_err();
            assert_eq!(e.http_status(), http::StatusCode::BAD_REQUEST, "{e}");
            assert_eq!(e.grpc_code(), tonic::Code::InvalidArgument, "{e}");
            assert!(e.to_string().starts_with("multiple org IDs present"), "{e}");
        }
        // With multitenancy off the header is ignored, `|` included.
        assert_eq!(resolve(false, Some(b"a|b")).unwrap(), "single-tenant");
    }

    #[test]
    fn reads_take_every_tenant_sorted_once() {
        assert_eq!(resolve_reads(true, Some(b"b|a|b")).unwrap(), ["a", "b"]);
        assert_eq!(
            resolve_reads(false, Some(b"b|a")).unwrap(),
            ["single-tenant"]
        );
        assert!(matches!(
            resolve_reads(true, None),
            Err(Error::MissingTenant(_))
        ));
        for bad in [&b"|a"[..], b"a|", b"a||b"] {
            let e = resolve_reads(true, Some(bad)).unwrap_err();
            assert_eq!(e.http_status(), http::StatusCode::BAD_REQUEST, "{e}");
            assert_eq!(e.to_string(), "no org id");
        }
        let e = resolve_reads(true, Some(b"a|..")).unwrap_err();
        assert_eq!(e.to_string(), "tenant ID is '.' or '..'");
    }
}
