//! Principals: the API tokens of the cluster, their roles and what a caller may call.
//!
//! A token is created and revoked through Raft, so every node knows it (or knows it is
//! gone) as soon as it applies the entry. The registry keeps only the SHA-256 of each
//! token, never the token: the secret is shown once, by the node that made it. A plain
//! (unsalted, fast) hash is enough here because tokens are 256-bit random strings, not
//! passwords: there is no dictionary to try, so salting or key stretching would buy
//! nothing while costing every request a slow hash.
//!
//! Pure data and rules: the node hashes presented tokens and reads them here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CommandError;

/// Longest token name.
pub const MAX_TOKEN_NAME_LEN: usize = 63;
/// Most allow rules one token may carry.
pub const MAX_ALLOW_RULES: usize = 64;
/// Longest allow rule.
pub const MAX_ALLOW_RULE_LEN: usize = 200;
/// Length of a token hash in hex digits (SHA-256).
pub const TOKEN_HASH_HEX_LEN: usize = 64;

/// What a principal may do. Each role includes the ones below it in this list, except
/// that a caller's tool calls are limited by its allow rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the registry, membership, status and metrics.
    Reader,
    /// A reader that also calls the tools its allow rules name.
    Caller,
    /// Deploys, scales, undeploys and drains, and calls every tool (a deploy can run any
    /// program, so limiting an operator's calls would protect nothing). No token or
    /// membership management.
    Operator,
    /// Everything, tokens and membership included.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Reader, Role::Caller, Role::Operator, Role::Admin];

    /// The word used on the command line, in listings and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Caller => "caller",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`]'s word.
    pub fn parse(word: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == word)
    }

    /// True if the role may call every tool whatever its allow rules.
    pub fn calls_everything(self) -> bool {
        self >= Role::Operator
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True if `name` matches the glob `pattern`: `*` stands for any run of characters
/// (empty included), `?` for one character; everything else matches itself.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The allow rules of a caller: globs over `SERVER__TOOL`, the names the MCP gateway
/// exposes (`time__*` allows every tool of server `time`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllowRules(Vec<String>);

impl AllowRules {
    /// Rules from their globs, checked: each is non-empty, bounded and printable.
    pub fn new(globs: Vec<String>) -> Result<Self, String> {
        if globs.len() > MAX_ALLOW_RULES {
            return Err(format!("at most {MAX_ALLOW_RULES} allow rules"));
        }
        for glob in &globs {
            if glob.is_empty() || glob.len() > MAX_ALLOW_RULE_LEN {
                return Err(format!(
                    "allow rule {glob:?} must be 1 to {MAX_ALLOW_RULE_LEN} characters"
                ));
            }
            if glob.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!(
                    "allow rule {glob:?} has whitespace or control characters"
                ));
            }
        }
        Ok(Self(globs))
    }

    /// The globs.
    pub fn globs(&self) -> &[String] {
        &self.0
    }

    /// True if tool `tool` of server `server` is allowed.
    pub fn allows_tool(&self, server: &str, tool: &str) -> bool {
        let name = format!("{server}__{tool}");
        self.0.iter().any(|g| glob_matches(g, &name))
    }

    /// True if some tool of `server` may be allowed: a rule whose part before the first
    /// `__` (the whole rule if it has none) matches `server`. Non-tool requests to a
    /// server (resources, prompts, `tools/list`) need this much.
    pub fn allows_server(&self, server: &str) -> bool {
        self.0.iter().any(|g| {
            let head = g.split_once("__").map_or(g.as_str(), |(head, _)| head);
            glob_matches(head, server)
        })
    }
}

/// One token as the registry keeps it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Unique name (what logs, audit lines and listings show).
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// For a caller: the tools it may call.
    #[serde(default)]
    pub allow: AllowRules,
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// When it was created (ms since the Unix epoch, the proposer's clock).
    pub created_at_ms: u64,
    /// When it stops working (ms since the Unix epoch); `None`: never.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

impl TokenRecord {
    /// True if the token has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|e| now_ms >= e)
    }
}

/// Checks a token name: 1-63 characters of `[A-Za-z0-9._-]`.
pub fn validate_token_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TOKEN_NAME_LEN {
        return Err(format!(
            "token name must be 1 to {MAX_TOKEN_NAME_LEN} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "token name {name:?} may only hold letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The tokens of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principals {
    /// Token name -> record.
    tokens: BTreeMap<String, TokenRecord>,
    /// Token hash -> name: the lookup every authenticated request makes.
    by_hash: BTreeMap<String, String>,
}

impl Principals {
    /// The token whose hash is `hash`, if any (expired ones included: the caller decides).
    pub fn by_hash(&self, hash: &str) -> Option<&TokenRecord> {
        self.by_hash
            .get(hash)
            .and_then(|name| self.tokens.get(name))
    }

    /// A token by name.
    pub fn get(&self, name: &str) -> Option<&TokenRecord> {
        self.tokens.get(name)
    }

    /// Every token, by name.
    pub fn tokens(&self) -> impl Iterator<Item = &TokenRecord> {
        self.tokens.values()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when there is no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Adds `record`; its name and hash must be new.
    pub(super) fn put(&mut self, record: &TokenRecord) -> Result<(), CommandError> {
        validate_token_name(&record.name).map_err(|_| CommandError::InvalidToken {
            name: record.name.clone(),
        })?;
        if record.hash.len() != TOKEN_HASH_HEX_LEN
            || !record.hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(CommandError::InvalidToken {
                name: record.name.clone(),
            });
        }
        if self.tokens.contains_key(&record.name) || self.by_hash.contains_key(&record.hash) {
            return Err(CommandError::TokenExists {
                name: record.name.clone(),
            });
        }
        self.by_hash
            .insert(record.hash.clone(), record.name.clone());
        self.tokens.insert(record.name.clone(), record.clone());
        Ok(())
    }

    /// Removes the token named `name`.
    pub(super) fn revoke(&mut self, name: &str) -> Result<(), CommandError> {
        let Some(record) = self.tokens.remove(name) else {
            return Err(CommandError::TokenNotFound {
                name: name.to_owned(),
            });
        };
        self.by_hash.remove(&record.hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, hash_digit: char) -> TokenRecord {
        TokenRecord {
            name: name.into(),
            role: Role::Caller,
            allow: AllowRules::new(vec!["time__*".into()]).unwrap(),
            hash: hash_digit.to_string().repeat(TOKEN_HASH_HEX_LEN),
            created_at_ms: 1,
            expires_at_ms: Some(10),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_matches("time__*", "time__get_current_time"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*__get_*", "time__get_current_time"));
        assert!(glob_matches("t?me__x", "time__x"));
        assert!(!glob_matches("time__*", "notes__add"));
        assert!(!glob_matches("time__get", "time__get_current_time"));
        assert!(!glob_matches("time", "timer"));
        assert!(glob_matches("a*b*c", "aXbYbZc"));
        assert!(!glob_matches("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn allow_rules() {
        let rules = AllowRules::new(vec!["time__*".into(), "notes__read".into()]).unwrap();
        assert!(rules.allows_tool("time", "convert_time"));
        assert!(rules.allows_tool("notes", "read"));
        assert!(!rules.allows_tool("notes", "write"));
        assert!(!rules.allows_tool("timex", "a"));
        assert!(rules.allows_server("time") && rules.allows_server("notes"));
        assert!(!rules.allows_server("timex") && !rules.allows_server("sh"));
        let any = AllowRules::new(vec!["*".into()]).unwrap();
        assert!(any.allows_server("sh") && any.allows_tool("sh", "run"));
        let prefix = AllowRules::new(vec!["db-*__query".into()]).unwrap();
        assert!(prefix.allows_server("db-eu") && !prefix.allows_server("cache"));
        assert!(AllowRules::new(vec![String::new()]).is_err());
        assert!(AllowRules::new(vec!["a b".into()]).is_err());
        assert!(AllowRules::default().globs().is_empty());
    }

    #[test]
    fn roles_order_and_words() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(Role::Admin > Role::Operator && Role::Caller > Role::Reader);
        assert!(Role::Operator.calls_everything() && !Role::Caller.calls_everything());
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn put_lookup_revoke() {
        let mut p = Principals::default();
        p.put(&record("ci", 'a')).unwrap();
        assert_eq!(p.by_hash(&"a".repeat(64)).unwrap().name, "ci");
        assert!(matches!(
            p.put(&record("ci", 'b')),
            Err(CommandError::TokenExists { .. })
        ));
        assert!(matches!(
            p.put(&record("other", 'a')),
            Err(CommandError::TokenExists { .. })
        ));
        let mut bad = record("bad", 'c');
        bad.hash = "zz".into();
        assert!(matches!(
            p.put(&bad),
            Err(CommandError::InvalidToken { .. })
        ));
        assert!(matches!(
            p.put(&record("no spaces", 'd')),
            Err(CommandError::InvalidToken { .. })
        ));
        assert!(p.get("ci").unwrap().expired(10) && !p.get("ci").unwrap().expired(9));
        p.revoke("ci").unwrap();
        assert!(p.by_hash(&"a".repeat(64)).is_none() && p.is_empty());
        assert!(matches!(
            p.revoke("ci"),
            Err(CommandError::TokenNotFound { .. })
        ));
    }
}
