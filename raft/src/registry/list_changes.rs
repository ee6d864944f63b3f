//! Changes servers announce of their own lists (`notifications/tools/list_changed` and
//! the like): a counter per server, bumped through Raft by the node whose instance heard
//! the announcement, so that every node's gateway drops what it cached of that server
//! and tells its clients, wherever the server runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many list changes each server has announced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEpochs {
    epochs: BTreeMap<String, u64>,
}

impl ListEpochs {
    /// Counts one more change announced by `server`.
    pub fn bump(&mut self, server: &str) {
        *self.epochs.entry(server.to_owned()).or_default() += 1;
    }

    /// The changes `server` announced so far.
    pub fn of(&self, server: &str) -> u64 {
        self.epochs.get(server).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_server() {
        let mut epochs = ListEpochs::default();
        epochs.bump("a");
        epochs.bump("a");
        epochs.bump("b");
        assert_eq!((epochs.of("a"), epochs.of("b"), epochs.of("c")), (2, 1, 0));
    }
}
