//! openraft's own storage test suite, run against the real sled log store and the registry
//! state machine (acceptance 6 of the cluster-core issue).

use mcp_raft::{RegistryStateMachine, TypeConfig};
use mcp_storage::SledLogStore;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

struct SledBuilder;

impl StoreBuilder<TypeConfig, SledLogStore<TypeConfig>, RegistryStateMachine, tempfile::TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            SledLogStore<TypeConfig>,
            RegistryStateMachine,
        ),
        StorageError<u64>,
    > {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            mcp_storage::open_db(&dir.path().join("raft.db"), 16 * 1024 * 1024).expect("open sled");
        let log_store = SledLogStore::open(&db).expect("open log store");
        let state_machine = RegistryStateMachine::open(&db).expect("open state machine");
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_sled() {
    Suite::test_all(SledBuilder).expect("openraft storage suite");
}
