//! Rate limits of callers: per principal (a token's name, a JWT subject, `admin`) and per
//! role (each principal of the role gets its own bucket at the role's rate). Server and
//! tool limits live in the spec (`spec::guards`); nodes enforce both in
//! `mcp_cluster::guards`, as cluster-wide shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::CommandError;
use super::principals::{validate_token_name, Role};
use super::spec::guards::MAX_RATE;
use super::spec::RateLimit;

/// Whom a caller limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum LimitSubject {
    /// One principal, by name.
    Principal(String),
    /// Every principal of a role, each on its own.
    Role(Role),
}

impl std::fmt::Display for LimitSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitSubject::Principal(name) => write!(f, "principal {name:?}"),
            LimitSubject::Role(role) => write!(f, "role {}", role.as_str()),
        }
    }
}

/// The caller limits of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerLimits {
    principals: BTreeMap<String, RateLimit>,
    roles: BTreeMap<Role, RateLimit>,
}

impl CallerLimits {
    /// The limit of principal `name`, if any.
    pub fn principal(&self, name: &str) -> Option<RateLimit> {
        self.principals.get(name).copied()
    }

    /// The limit of role `role`, if any.
    pub fn role(&self, role: Role) -> Option<RateLimit> {
        self.roles.get(&role).copied()
    }

    /// Every limit, principals first.
    pub fn all(&self) -> Vec<(LimitSubject, RateLimit)> {
        self.principals
            .iter()
            .map(|(n, l)| (LimitSubject::Principal(n.clone()), *l))
            .chain(self.roles.iter().map(|(r, l)| (LimitSubject::Role(*r), *l)))
            .collect()
    }

    /// Sets (or with `None` removes) the limit of `subject`.
    pub(super) fn set(
        &mut self,
        subject: &LimitSubject,
        limit: Option<RateLimit>,
    ) -> Result<(), CommandError> {
        let invalid = |reason: String| CommandError::InvalidLimit {
            subject: subject.to_string(),
            reason,
        };
        if let Some(l) = limit {
            let range = 1..=MAX_RATE;
            if !range.contains(&l.per_second) || !range.contains(&l.burst) {
                return Err(invalid(format!(
                    "per_second and burst must be 1 to {MAX_RATE}"
                )));
            }
        }
        match subject {
            LimitSubject::Principal(name) => {
                validate_token_name(name).map_err(invalid)?;
                match limit {
                    Some(l) => {
                        self.principals.insert(name.clone(), l);
                    }
                    None => {
                        self.principals.remove(name);
                    }
                }
            }
            LimitSubject::Role(role) => match limit {
                Some(l) => {
                    self.roles.insert(*role, l);
                }
                None => {
                    self.roles.remove(role);
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Command, Registry};

    #[test]
    fn limits_are_set_and_removed_through_the_registry() {
        let mut r = Registry::default();
        let limit = RateLimit {
            per_second: 2,
            burst: 4,
        };
        r.apply(&Command::SetCallerLimit {
            subject: LimitSubject::Principal("ci-bot".into()),
            limit: Some(limit),
        })
        .unwrap();
        r.apply(&Command::SetCallerLimit {
            subject: LimitSubject::Role(Role::Caller),
            limit: Some(limit),
        })
        .unwrap();
        assert_eq!(r.caller_limits().principal("ci-bot"), Some(limit));
        assert_eq!(r.caller_limits().role(Role::Caller), Some(limit));
        assert_eq!(r.caller_limits().all().len(), 2);
        let before = r.clone();
        assert!(matches!(
            r.apply(&Command::SetCallerLimit {
                subject: LimitSubject::Principal("bad name".into()),
                limit: Some(limit),
            }),
            Err(CommandError::InvalidLimit { .. })
        ));
        assert!(r
            .apply(&Command::SetCallerLimit {
                subject: LimitSubject::Role(Role::Reader),
                limit: Some(RateLimit {
                    per_second: 0,
                    burst: 1
                }),
            })
            .is_err());
        assert_eq!(r, before);
        r.apply(&Command::SetCallerLimit {
            subject: LimitSubject::Principal("ci-bot".into()),
            limit: None,
        })
        .unwrap();
        assert_eq!(r.caller_limits().principal("ci-bot"), None);
        let json = serde_json::to_string(&LimitSubject::Role(Role::Caller)).unwrap();
        assert_eq!(json, r#"{"kind":"role","name":"caller"}"#);
    }
}
