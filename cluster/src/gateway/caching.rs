//! The caching hints (`ttlMs`, `cacheScope`) of the stateless era (2026-07-28), which
//! `server/discover` and list results must carry when complete.
//!
//! The values are chosen per result, with the reason next to each: a client (or a cache
//! in between) keeps a result as long as `ttlMs` says, shared as widely as `cacheScope`
//! allows, so a hint that is too generous shows stale tools or leaks a listing to callers
//! without the token.

use serde_json::Value;

/// Who may reuse a cached result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Any caller, through any shared cache.
    Public,
    /// Only callers with the same credentials.
    Private,
}

impl CacheScope {
    fn as_str(self) -> &'static str {
        match self {
            CacheScope::Public => "public",
            CacheScope::Private => "private",
        }
    }
}

/// How long, and for whom, a result stays fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHint {
    /// Milliseconds the result may be considered fresh (never negative).
    pub ttl_ms: u64,
    /// Who may reuse it.
    pub scope: CacheScope,
}

/// `tools/list`: stale at once, because the list merges every server's and changes with
/// any deploy, scale or undeploy on any node, and the gateway pushes no
/// `tools/list_changed` to tell a client; private, because the listing is only for
/// holders of the gateway's token and a shared cache must not hand it to anyone else.
pub const TOOLS_LIST: CacheHint = CacheHint {
    ttl_ms: 0,
    scope: CacheScope::Private,
};

/// `server/discover`: fixed for a given mcpd binary (versions, capabilities, name and
/// version), the same for every caller and holding nothing about the cluster, so any
/// cache may keep it for an hour; after an upgrade the worst a client sees is the previous
/// build's version string, and a version it no longer may use is refused with the list
/// of supported ones, which corrects it.
pub const DISCOVER: CacheHint = CacheHint {
    ttl_ms: 3_600_000,
    scope: CacheScope::Public,
};

/// Puts `hint` on a result object (left alone if `result` is not an object).
pub fn apply(result: &mut Value, hint: CacheHint) {
    if let Some(object) = result.as_object_mut() {
        object.insert("ttlMs".into(), hint.ttl_ms.into());
        object.insert("cacheScope".into(), hint.scope.as_str().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hints_are_written_as_the_spec_names_them() {
        let mut list = json!({"tools": []});
        apply(&mut list, TOOLS_LIST);
        assert_eq!(list["ttlMs"], 0);
        assert_eq!(list["cacheScope"], "private");
        let mut discover = json!({});
        apply(&mut discover, DISCOVER);
        assert_eq!(discover["ttlMs"], 3_600_000);
        assert_eq!(discover["cacheScope"], "public");
    }
}
