//! openraft's storage conformance suite against the redb store, each test on a fresh database
//! in its own temporary directory.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use secnet_control::raft::store::{LogStore, RedbStore, StateMachineStore};
use secnet_control::raft::TypeConfig;
use secnet_keys::seal::Kek;
use tempfile::TempDir;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let (log, sm) = RedbStore::open(&dir.path().join("raft.redb"), Arc::new(Kek::generate()))
            .map_err(|e| e.into_storage_error(ErrorSubject::Store, ErrorVerb::Read))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn redb_store_passes_openraft_suite() {
    if let Err(e) = Suite::test_all(RedbBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
