//! The `sandbox` object of a stdio spec: what a node takes away from the process it
//! starts, so a server (someone else's code) runs with least privilege: another user and
//! group, limits on address space, open files and processes, and `no_new_privs` (on
//! unless the spec turns it off: a setuid program cannot gain privileges).
//!
//! The node applies it between fork and exec (see the stdio upstream).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::fields;
use super::model::SpecError;
use super::parse::SpecReader;

/// What a stdio server's process runs with. Absent from entries written before it
/// existed, which therefore read as the default (`no_new_privs` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sandbox {
    /// Run as this user id (the node must be able to switch: root, or CAP_SETUID).
    pub uid: Option<u32>,
    /// Run as this group id, with no supplementary groups.
    pub gid: Option<u32>,
    /// Address-space limit (`RLIMIT_AS`), in MiB.
    pub max_memory_mb: Option<u64>,
    /// Open file descriptor limit (`RLIMIT_NOFILE`).
    pub max_open_files: Option<u64>,
    /// Process limit of the server's user (`RLIMIT_NPROC`: counts every process of that
    /// uid, so give the server a uid of its own).
    pub max_processes: Option<u64>,
    /// Set `PR_SET_NO_NEW_PRIVS`: execve can never grant more privileges (setuid bits and
    /// file capabilities are ignored).
    pub no_new_privs: bool,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            uid: None,
            gid: None,
            max_memory_mb: None,
            max_open_files: None,
            max_processes: None,
            no_new_privs: true,
        }
    }
}

impl Sandbox {
    /// True for the default (so it is left out of stored entries and listings).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn invalid(field: &'static str, reason: String) -> SpecError {
    SpecError::InvalidField {
        field: field.to_owned(),
        reason,
    }
}

/// An integer of the nested object, bounded by the table row `full`.
fn integer(
    reader: &mut SpecReader,
    key: &str,
    full: &'static str,
) -> Result<Option<u64>, SpecError> {
    let (min, max) = fields::integer_bounds(full)
        .ok_or_else(|| invalid(full, "is not an integer field of the spec table".to_owned()))?;
    match reader.fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(full, format!("must be an integer from {min} to {max}"))),
    }
}

/// Reads the `sandbox` object of a stdio spec.
pub(super) fn read(reader: Option<SpecReader>) -> Result<Sandbox, SpecError> {
    let Some(mut reader) = reader else {
        return Ok(Sandbox::default());
    };
    let id = |n: Option<u64>, field: &'static str| {
        n.map(|n| u32::try_from(n).map_err(|_| invalid(field, "is out of range".to_owned())))
            .transpose()
    };
    let uid = id(integer(&mut reader, "uid", "sandbox.uid")?, "sandbox.uid")?;
    let gid = id(integer(&mut reader, "gid", "sandbox.gid")?, "sandbox.gid")?;
    let no_new_privs = match reader.fields.remove("no_new_privs") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(invalid(
                "sandbox.no_new_privs",
                "must be true or false".to_owned(),
            ))
        }
    };
    Ok(Sandbox {
        uid,
        gid,
        max_memory_mb: integer(&mut reader, "max_memory_mb", "sandbox.max_memory_mb")?,
        max_open_files: integer(&mut reader, "max_open_files", "sandbox.max_open_files")?,
        max_processes: integer(&mut reader, "max_processes", "sandbox.max_processes")?,
        no_new_privs,
    })
}

/// Writes `sandbox` into a flat spec, unless it is the default.
pub(super) fn render(sandbox: &Sandbox, out: &mut Map<String, Value>) {
    if sandbox.is_default() {
        return;
    }
    let mut object = Map::new();
    for (key, value) in [
        ("uid", sandbox.uid.map(u64::from)),
        ("gid", sandbox.gid.map(u64::from)),
        ("max_memory_mb", sandbox.max_memory_mb),
        ("max_open_files", sandbox.max_open_files),
        ("max_processes", sandbox.max_processes),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), json!(value));
        }
    }
    object.insert("no_new_privs".into(), sandbox.no_new_privs.into());
    out.insert("sandbox".into(), Value::Object(object));
}

#[cfg(test)]
mod tests {
    use super::super::{from_value, Transport};
    use super::*;

    fn sandbox_of(spec: Value) -> Result<Sandbox, SpecError> {
        from_value(spec).map(|s| match s.transport {
            Transport::Stdio { sandbox, .. } => sandbox,
            _ => panic!("not stdio"),
        })
    }

    #[test]
    fn parsed_checked_and_rendered_back() {
        let plain = sandbox_of(json!({"name": "a", "command": "x"})).unwrap();
        assert!(plain.is_default() && plain.no_new_privs);
        let full = json!({"name": "a", "command": "x", "sandbox": {
            "uid": 65534, "gid": 65534, "max_memory_mb": 512, "max_open_files": 64,
            "max_processes": 32, "no_new_privs": false}});
        let sandbox = sandbox_of(full.clone()).unwrap();
        assert_eq!(
            sandbox,
            Sandbox {
                uid: Some(65534),
                gid: Some(65534),
                max_memory_mb: Some(512),
                max_open_files: Some(64),
                max_processes: Some(32),
                no_new_privs: false,
            }
        );
        let spec = from_value(full).unwrap();
        assert_eq!(from_value(spec.to_flat_json()).unwrap(), spec);
        for (bad, field) in [
            (json!({"uid": -1}), "sandbox.uid"),
            (json!({"max_open_files": 0}), "sandbox.max_open_files"),
            (json!({"no_new_privs": "yes"}), "sandbox.no_new_privs"),
            (json!({"root": true}), "sandbox.root"),
            (json!("strict"), "sandbox"),
        ] {
            let e =
                sandbox_of(json!({"name": "a", "command": "x", "sandbox": bad})).expect_err(field);
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        let http = from_value(json!({"name": "a", "url": "http://h", "sandbox": {"uid": 1}}));
        assert!(http.expect_err("http").to_string().contains("sandbox"));
    }

    #[test]
    fn entries_without_a_sandbox_still_read() {
        let old: Transport = serde_json::from_value(
            json!({"type": "stdio", "command": "x", "args": [], "env": {}, "cwd": null}),
        )
        .unwrap();
        assert!(matches!(old, Transport::Stdio { sandbox, .. } if sandbox.is_default()));
    }
}
