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

/// Every list (`tools/list`, `resources/list`, `resources/templates/list`,
/// `prompts/list`): stale at once, because a list merges every server's and changes with
/// any deploy, scale or undeploy on any node (a subscribed client is told, but a cache in
/// between is not); private, because the listing is only for holders of the gateway's
/// token (and differs per view) and a shared cache must not hand it to anyone else.
pub const LISTS: CacheHint = CacheHint {
    ttl_ms: 0,
    scope: CacheScope::Private,
};

/// `server/discover`: its capabilities say what the deployed servers offer (resources
/// only while some server has them), which changes with any deploy, so it is stale at
/// once; private for the same reason as [`LISTS`]: it describes the cluster to holders
/// of the token.
pub const DISCOVER: CacheHint = CacheHint {
    ttl_ms: 0,
    scope: CacheScope::Private,
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
        apply(&mut list, LISTS);
        assert_eq!(list["ttlMs"], 0);
        assert_eq!(list["cacheScope"], "private");
        let mut discover = json!({});
        apply(&mut discover, DISCOVER);
        assert_eq!(discover["ttlMs"], 0);
        assert_eq!(discover["cacheScope"], "private");
    }
}
