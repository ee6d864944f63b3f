//! Cluster secrets as the registry holds them: sealed (AEAD ciphertext under a cluster key
//! the registry never sees), so the Raft log, snapshots and the sled files on disk carry no
//! value. Sealing and opening happen in the node (`mcp_cluster::guards::secrets`); this
//! module owns the names, the `${secret:NAME}` references specs make, and the rules the
//! state machine applies (a spec may only refer to a secret that exists; a secret in use
//! cannot be removed).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::CommandError;
use super::spec::{Auth, ServerSpec, Transport};

/// Longest secret name.
pub const MAX_SECRET_NAME_LEN: usize = 63;
/// Largest sealed value (base64 of the ciphertext), bounding a log entry.
pub const MAX_SEALED_BYTES: usize = 96 * 1024;
/// What opens a reference in a spec value.
pub const REFERENCE_OPEN: &str = "${secret:";

/// A secret value sealed with the cluster key `key_id`. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Which cluster key sealed it (a fingerprint of the key, never the key).
    pub key_id: String,
    /// The AEAD nonce, base64.
    pub nonce: String,
    /// The ciphertext with its tag, base64.
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// One stored secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The sealed value.
    pub sealed: SealedSecret,
    /// Registry revision of its last change.
    pub mod_revision: u64,
}

/// Every secret, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    entries: BTreeMap<String, SecretRecord>,
}

/// Whether `name` may name a secret: 1-63 of `A-Z a-z 0-9 _ . -`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The secret names `value` refers to with `${secret:NAME}`, in order. Text that only
/// looks like the start of one (no closing brace) is left alone, as literal text.
pub fn references_in(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find(REFERENCE_OPEN) {
        let after = &rest[start + REFERENCE_OPEN.len()..];
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// Replaces every `${secret:NAME}` in `value` by what `lookup` gives for NAME.
pub fn substitute<E>(
    value: &str,
    mut lookup: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(REFERENCE_OPEN) {
        let after = &rest[start + REFERENCE_OPEN.len()..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&lookup(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every value of a spec that may carry a secret reference, with the field it is in: env
/// values, header values, and the auth key, token and password.
pub fn secret_values(spec: &ServerSpec) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    match &spec.transport {
        Transport::Stdio { env, .. } => {
            out.extend(env.iter().map(|(k, v)| (format!("env.{k}"), v.as_str())));
        }
        Transport::Http { headers, auth, .. } => {
            out.extend(
                headers
                    .iter()
                    .map(|(k, v)| (format!("headers.{k}"), v.as_str())),
            );
            match auth {
                Some(Auth::ApiKey { key, .. }) => out.push(("auth.key".into(), key)),
                Some(Auth::Bearer { token }) => out.push(("auth.token".into(), token)),
                Some(Auth::Basic { password, .. }) => out.push(("auth.password".into(), password)),
                None => {}
            }
        }
        Transport::Docker(docker) => {
            out.extend(
                docker
                    .env
                    .iter()
                    .map(|(k, v)| (format!("env.{k}"), v.as_str())),
            );
        }
    }
    out
}

/// The secret names a spec refers to.
pub fn references(spec: &ServerSpec) -> BTreeSet<String> {
    secret_values(spec)
        .into_iter()
        .flat_map(|(_, v)| references_in(v))
        .map(str::to_owned)
        .collect()
}

impl Secrets {
    /// The secret `name`.
    pub fn get(&self, name: &str) -> Option<&SecretRecord> {
        self.entries.get(name)
    }

    /// Every secret, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &SecretRecord)> {
        self.entries.iter()
    }

    /// Creates or replaces `name`.
    pub(super) fn put(
        &mut self,
        name: &str,
        sealed: &SealedSecret,
        revision: u64,
    ) -> Result<(), CommandError> {
        check(name, sealed)?;
        self.entries.insert(
            name.to_owned(),
            SecretRecord {
                sealed: sealed.clone(),
                mod_revision: revision,
            },
        );
        Ok(())
    }

    /// Replaces `name`'s sealed value only if it is still `previous` (a rotation racing a
    /// `secret set` must not overwrite the newer value).
    pub(super) fn reseal(
        &mut self,
        name: &str,
        previous: &SealedSecret,
        sealed: &SealedSecret,
        revision: u64,
    ) -> Result<(), CommandError> {
        check(name, sealed)?;
        match self.entries.get_mut(name) {
            Some(record) if record.sealed == *previous => {
                record.sealed = sealed.clone();
                record.mod_revision = revision;
                Ok(())
            }
            Some(_) => Err(CommandError::SecretChanged {
                name: name.to_owned(),
            }),
            None => Err(CommandError::SecretNotFound {
                name: name.to_owned(),
            }),
        }
    }

    /// Removes `name`, unless a server in `servers` refers to it.
    pub(super) fn remove<'a>(
        &mut self,
        name: &str,
        mut servers: impl Iterator<Item = &'a ServerSpec>,
    ) -> Result<(), CommandError> {
        if !self.entries.contains_key(name) {
            return Err(CommandError::SecretNotFound {
                name: name.to_owned(),
            });
        }
        if let Some(user) = servers.find(|s| references(s).contains(name)) {
            return Err(CommandError::SecretInUse {
                name: name.to_owned(),
                server: user.name.clone(),
            });
        }
        self.entries.remove(name);
        Ok(())
    }

    /// Refuses `spec` if it refers to a secret that does not exist (named in the error,
    /// with the field).
    pub(super) fn check_references(&self, spec: &ServerSpec) -> Result<(), CommandError> {
        for (field, value) in secret_values(spec) {
            for name in references_in(value) {
                if !self.entries.contains_key(name) {
                    return Err(CommandError::MissingSecret {
                        server: spec.name.clone(),
                        field,
                        secret: name.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn check(name: &str, sealed: &SealedSecret) -> Result<(), CommandError> {
    let oversized =
        sealed.ciphertext.len() + sealed.nonce.len() + sealed.key_id.len() > MAX_SEALED_BYTES;
    if !valid_name(name) || oversized {
        return Err(CommandError::InvalidSecret {
            name: name.chars().take(MAX_SECRET_NAME_LEN).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_substituted() {
        assert_eq!(
            references_in("Bearer ${secret:tok} and ${secret:other}"),
            ["tok", "other"]
        );
        assert!(references_in("${secret:unclosed").is_empty());
        assert!(references_in("$HOME {secret:x}").is_empty());
        let out = substitute::<()>("a ${secret:x}-${secret:y} ${secret:", |n| {
            Ok(n.to_uppercase())
        })
        .unwrap();
        assert_eq!(out, "a X-Y ${secret:");
    }

    #[test]
    fn names_are_checked() {
        for ok in ["DB_PASSWORD", "a.b-c", "x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "with space", "a/b", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn specs_need_their_secrets_and_used_secrets_stay() {
        use crate::registry::{spec::parse_json, Command, Registry};
        let spec = parse_json(
            r#"{"name": "s", "url": "http://h/mcp", "headers": {"X": "${secret:hdr}"}, "auth": {"type": "bearer", "token": "${secret:tok}"}}"#,
        )
        .unwrap();
        assert_eq!(
            references(&spec).into_iter().collect::<Vec<_>>(),
            ["hdr", "tok"]
        );
        let put = Command::PutServer {
            spec,
            expected_revision: None,
        };
        let mut r = Registry::default();
        let err = r.apply(&put).unwrap_err();
        assert!(
            matches!(&err, CommandError::MissingSecret { secret, field, .. } if secret == "hdr" && field == "headers.X"),
            "{err}"
        );
        assert!(err.to_string().contains("mcpd secret set hdr"), "{err}");
        let sealed = SealedSecret {
            key_id: "k".into(),
            nonce: "n".into(),
            ciphertext: "c".into(),
        };
        for name in ["hdr", "tok"] {
            r.apply(&Command::PutSecret {
                name: name.into(),
                sealed: sealed.clone(),
            })
            .unwrap();
        }
        r.apply(&put).unwrap();
        let before = r.clone();
        assert!(matches!(
            r.apply(&Command::DeleteSecret { name: "tok".into() }),
            Err(CommandError::SecretInUse { .. })
        ));
        assert_eq!(r, before);
        // A reseal that lost a race to a newer value changes nothing.
        let newer = SealedSecret {
            ciphertext: "c2".into(),
            ..sealed.clone()
        };
        assert!(matches!(
            r.apply(&Command::ResealSecret {
                name: "tok".into(),
                previous: newer.clone(),
                sealed: newer,
            }),
            Err(CommandError::SecretChanged { .. })
        ));
        r.apply(&Command::DeleteServer { name: "s".into() })
            .unwrap();
        r.apply(&Command::DeleteSecret { name: "tok".into() })
            .unwrap();
        assert!(r.secrets().get("tok").is_none());
        // A snapshot written before secrets existed still loads.
        let old: Registry =
            serde_json::from_str(r#"{"revision": 3, "servers": {}, "nodes": {}}"#).unwrap();
        assert!(old.secrets().iter().next().is_none());
    }

    #[test]
    fn debug_shows_no_ciphertext() {
        let sealed = SealedSecret {
            key_id: "k1".into(),
            nonce: "bm9uY2U=".into(),
            ciphertext: "Y2lwaGVy".into(),
        };
        let text = format!("{sealed:?}");
        assert!(text.contains("k1") && !text.contains("Y2lwaGVy") && !text.contains("bm9u"));
    }
}
