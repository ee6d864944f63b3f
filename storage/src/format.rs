//! The storage format version of a data dir: what the bytes in sled mean (the layout of
//! the trees, the encoding of log entries and snapshots). A node stamps its database with
//! [`STORAGE_FORMAT`] on first open and refuses to open a database stamped with a newer
//! format, with an error naming both, instead of misreading it. A database without a stamp
//! was written before stamping began, which is format 1.

use crate::StorageError;

/// The storage format this build writes and the newest it reads.
pub const STORAGE_FORMAT: u32 = 1;

/// Name of the sled tree holding the format stamp.
pub const FORMAT_TREE: &str = "mcpd_format";
const KEY_FORMAT: &str = "storage_format";

/// The format `db` is stamped with (1 when it has no stamp).
pub fn stamped(db: &sled::Db) -> Result<u32, StorageError> {
    let tree = db.open_tree(FORMAT_TREE)?;
    match tree.get(KEY_FORMAT)? {
        None => Ok(1),
        Some(bytes) => {
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            text.parse().map_err(|_| StorageError::Corrupt {
                tree: FORMAT_TREE,
                key: KEY_FORMAT.to_owned(),
                reason: format!("not a format number: {text:?}"),
            })
        }
    }
}

/// Refuses a database of a newer format; stamps one that has no stamp yet.
pub fn check_and_stamp(db: &sled::Db) -> Result<(), StorageError> {
    let found = stamped(db)?;
    if found > STORAGE_FORMAT {
        return Err(StorageError::NewerFormat {
            found,
            supported: STORAGE_FORMAT,
        });
    }
    let tree = db.open_tree(FORMAT_TREE)?;
    if tree.get(KEY_FORMAT)?.is_none() {
        tree.insert(KEY_FORMAT, STORAGE_FORMAT.to_string().as_bytes())?;
        tree.flush()?;
    }
    Ok(())
}

/// Stamps `db` with `format` (tests and upgrade tools).
pub fn stamp(db: &sled::Db, format: u32) -> Result<(), StorageError> {
    let tree = db.open_tree(FORMAT_TREE)?;
    tree.insert(KEY_FORMAT, format.to_string().as_bytes())?;
    tree.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_db, DEFAULT_CACHE_CAPACITY};

    #[test]
    fn a_new_database_is_stamped_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = open_db(&path, DEFAULT_CACHE_CAPACITY).unwrap();
            assert_eq!(stamped(&db).unwrap(), STORAGE_FORMAT);
            stamp(&db, STORAGE_FORMAT + 1).unwrap();
        }
        let err = open_db(&path, DEFAULT_CACHE_CAPACITY).unwrap_err();
        assert!(
            matches!(err, StorageError::NewerFormat { found, supported } if found == STORAGE_FORMAT + 1 && supported == STORAGE_FORMAT),
            "{err}"
        );
        assert!(err.to_string().contains("newer mcpd"), "{err}");
    }
}
