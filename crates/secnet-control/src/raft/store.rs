//! openraft storage (storage-v2 API) on a single [redb] file.
//!
//! [`RedbStore::open`] returns two handles over one database: the [`LogStore`] (Raft log, vote,
//! committed and purged log ids) and the [`StateMachineStore`] (the applied
//! [`ClusterState`], the last applied log id and membership, the current snapshot).
//!
//! # Durability
//!
//! Raft's safety rests on what a node acknowledged being on disk: a vote granted twice in one
//! term after a crash, or a log entry counted in a quorum but lost on restart, can make two
//! leaders commit different entries at the same index. Every write transaction here is
//! therefore committed with [`redb::Durability::Immediate`]: `commit()` returns only after the
//! data is fsynced. [`LogStore`] calls `log_io_completed` (the acknowledgement openraft waits
//! for before counting the entries) only after that commit returned, and `save_vote` returns
//! only after its commit. The state machine is persisted after every applied batch, so a restart
//! resumes from the last applied entry without replaying the log, and the log can be purged up to
//! any snapshot.
//!
//! # Sealing
//!
//! The log and the state hold the cluster's secrets (the CA private key and the join-token
//! secrets travel inside `Bootstrap`/`RotateToken` commands and live in [`ClusterState`]). Every
//! value written to the file is therefore sealed (XChaCha20-Poly1305) with the node's
//! key-encryption key ([`Kek`]); the file on its own, a backup or a stolen disk, reveals nothing
//! but table names and log indexes. The associated data of each value is its table name and key,
//! so a value cannot be moved to another slot (an old vote replayed as the current one, log entry
//! 7 copied over entry 9) without failing authentication. A known value sealed at creation
//! (`kek_check`) lets [`RedbStore::open`] report a wrong key clearly instead of failing on the
//! first log read.
//!
//! Blocking redb work (transactions commit with an fsync) runs on tokio's blocking pool so the
//! Raft core task's runtime threads are not stalled by disk latency.

use std::fs::{self, OpenOptions};
use std::io::{self, Cursor};
use std::ops::RangeBounds;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState,
    OptionalSend, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use secnet_keys::seal::{self, Kek, SealError};
use secnet_model::{ClusterState, CommandResult, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};
use zeroize::Zeroizing;

use super::TypeConfig;

/// Name of the table of log entries: index -> sealed JSON of the [`Entry`].
const LOG_TABLE: &str = "raft_log";
/// Name of the table of log metadata: vote, committed, last purged log id, key check.
const META_TABLE: &str = "raft_meta";
/// Name of the table of the state machine: applied state, current snapshot.
const SM_TABLE: &str = "raft_state_machine";

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new(LOG_TABLE);
const META: TableDefinition<&str, &[u8]> = TableDefinition::new(META_TABLE);
const SM: TableDefinition<&str, &[u8]> = TableDefinition::new(SM_TABLE);

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_KEK_CHECK: &str = "kek_check";
const KEY_STATE: &str = "state";
const KEY_SNAPSHOT_META: &str = "snapshot_meta";
const KEY_SNAPSHOT_DATA: &str = "snapshot_data";

/// Plaintext of the `kek_check` value.
const KEK_CHECK_PLAINTEXT: &[u8] = b"secnet raft store key check v1";

/// Why the Raft store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another handle in this process) holds the database.
    #[error("the Raft database {} is in use by another process (is secnetd already running?)", path.display())]
    AlreadyOpen {
        /// The database file.
        path: PathBuf,
    },
    /// redb refused to open the file.
    #[error("cannot open the Raft database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },
    /// Creating the file or restricting its permissions failed.
    #[error("cannot {op} {}: {source}", path.display())]
    File {
        /// What was being done.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The database was sealed with another key-encryption key.
    #[error("the Raft database {} was sealed with a different key-encryption key: the node's key file does not belong to this data directory (restore the matching key, or remove the data directory and join the cluster again)", path.display())]
    WrongKey {
        /// The database file.
        path: PathBuf,
    },
    /// A stored value failed authentication or is not a sealed blob.
    #[error("cannot decrypt {what} in the Raft database: {source}")]
    Unseal {
        /// Table and key of the value.
        what: String,
        /// What opening the sealed value reported.
        #[source]
        source: SealError,
    },
    /// A stored value decrypted but is not what it should be.
    #[error("corrupt {what} in the Raft database: {source}")]
    Decode {
        /// Table and key of the value.
        what: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what} for the Raft database: {source}")]
    Encode {
        /// Table and key of the value.
        what: String,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A redb operation failed.
    #[error("Raft database error: {0}")]
    Db(#[from] redb::Error),
    /// The blocking task running a database operation panicked or was cancelled.
    #[error("Raft database task failed: {0}")]
    Task(String),
}

macro_rules! redb_error_into_store_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
redb_error_into_store_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl StoreError {
    /// Wraps this error for openraft, naming what was being read or written.
    pub fn into_storage_error(
        self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
    ) -> StorageError<u64> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

/// The associated data binding a sealed value to its table and key.
fn aad(table: &str, key: &str) -> Vec<u8> {
    format!("secnet/raft-store/v1\0{table}\0{key}").into_bytes()
}

/// The database and the key, shared by both store handles.
struct Shared {
    db: Database,
    kek: Arc<Kek>,
    path: PathBuf,
}

impl Shared {
    /// Seals raw bytes for `table`/`key`.
    fn seal_bytes(&self, table: &str, key: &str, plaintext: &[u8]) -> Vec<u8> {
        seal::seal(&self.kek, plaintext, &aad(table, key))
    }

    /// JSON-encodes then seals `value` for `table`/`key`. The plaintext buffer is wiped.
    fn seal_json<T: Serialize>(
        &self,
        table: &str,
        key: &str,
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        let plain =
            Zeroizing::new(
                serde_json::to_vec(value).map_err(|source| StoreError::Encode {
                    what: format!("{table}/{key}"),
                    source,
                })?,
            );
        Ok(self.seal_bytes(table, key, &plain))
    }

    /// Opens a value sealed for `table`/`key`.
    fn open_bytes(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let plain = seal::open(&self.kek, sealed, &aad(table, key)).map_err(|source| {
            StoreError::Unseal {
                what: format!("{table}/{key}"),
                source,
            }
        })?;
        Ok(Zeroizing::new(plain.expose().to_vec()))
    }

    /// Opens and JSON-decodes a value sealed for `table`/`key`.
    fn open_json<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let plain = seal::open(&self.kek, sealed, &aad(table, key)).map_err(|source| {
            StoreError::Unseal {
                what: format!("{table}/{key}"),
                source,
            }
        })?;
        serde_json::from_slice(plain.expose()).map_err(|source| StoreError::Decode {
            what: format!("{table}/{key}"),
            source,
        })
    }

    /// Reads and opens `key` of a string-keyed table.
    fn get_json<T: DeserializeOwned>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        table: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(def)?;
        let Some(v) = t.get(key)? else {
            return Ok(None);
        };
        self.open_json(table, key, v.value()).map(Some)
    }

    /// Runs `f` in a write transaction and commits it durably, synchronously.
    fn write_sync<T>(
        &self,
        f: impl FnOnce(&Shared, &WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write()?;
        // Immediate is redb's default; set it explicitly because Raft's correctness depends on
        // it: `commit` must not return before the data is fsynced.
        txn.set_durability(Durability::Immediate)?;
        let out = f(self, &txn)?;
        txn.commit()?;
        Ok(out)
    }

    /// [`Self::write_sync`] on tokio's blocking pool.
    async fn write<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared, &WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || shared.write_sync(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Opens the database file, creating it private to the owner if it does not exist.
fn open_db(path: &Path) -> Result<Database, StoreError> {
    // Create the file with mode 0600 before redb opens it, so it is never readable by others,
    // not even while empty; then force 0600 in case it existed with a looser mode or the umask
    // interfered.
    let existed = path.exists();
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| StoreError::File {
            op: "create",
            path: path.to_path_buf(),
            source,
        })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| {
        StoreError::File {
            op: "set permissions 0600 on",
            path: path.to_path_buf(),
            source,
        }
    })?;
    let db = Database::create(path).map_err(|e| db_open_error(path, e))?;
    if !existed {
        // redb's commits fsync the file, not the directory entry that names it: without this a
        // power loss could drop the whole new file after a vote or entries were acknowledged.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::File {
                op: "fsync the directory of",
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(db)
}

/// Opens an existing database file without creating it.
fn open_existing_db(path: &Path) -> Result<Database, StoreError> {
    Database::open(path).map_err(|e| db_open_error(path, e))
}

fn db_open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
            path: path.to_path_buf(),
        },
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Checks the `kek_check` value, if the database has one.
/// Returns whether it was present.
fn check_kek(shared: &Shared, sealed: Option<&[u8]>) -> Result<bool, StoreError> {
    let Some(sealed) = sealed else {
        return Ok(false);
    };
    match seal::open(&shared.kek, sealed, &aad(META_TABLE, KEY_KEK_CHECK)) {
        Ok(plain) if plain.expose() == KEK_CHECK_PLAINTEXT => Ok(true),
        _ => Err(StoreError::WrongKey {
            path: shared.path.clone(),
        }),
    }
}

/// The state as the rest of the daemon sees it: published after every applied batch and every
/// installed snapshot.
#[derive(Debug, Clone, Default)]
pub struct StateView {
    /// Index of the last applied log entry (0 before anything was applied).
    pub applied_index: u64,
    /// The cluster state after that entry, shared: readers clone the `Arc`, never the state
    /// (one copy is made per applied batch, here, and none per read).
    pub state: Arc<ClusterState>,
    /// The Raft membership as of that entry.
    pub membership: StoredMembership<u64, BasicNode>,
}

/// What the state machine persists after every batch, and what a snapshot contains.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SmData {
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, BasicNode>,
    state: ClusterState,
}

impl SmData {
    fn view(&self) -> StateView {
        StateView {
            applied_index: self.last_applied.map(|l| l.index).unwrap_or(0),
            state: Arc::new(self.state.clone()),
            membership: self.last_membership.clone(),
        }
    }
}

/// The metadata of the stored snapshot, with the counter that keeps snapshot ids unique.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshotMeta {
    meta: SnapshotMeta<u64, BasicNode>,
    seq: u64,
}

/// Opens the Raft store.
pub struct RedbStore;

impl RedbStore {
    /// Opens (creating if needed) the Raft database at `path`, a file in a directory the caller
    /// made private (0700). The file is kept at mode 0600.
    ///
    /// Fails with [`StoreError::WrongKey`] when the file was sealed with another key and with
    /// [`StoreError::AlreadyOpen`] when another process holds it.
    pub fn open(path: &Path, kek: Arc<Kek>) -> Result<(LogStore, StateMachineStore), StoreError> {
        let db = open_db(path)?;
        let shared = Arc::new(Shared {
            db,
            kek,
            path: path.to_path_buf(),
        });

        // Create the tables (so readers never meet a missing table) and check or record the key.
        shared.write_sync(|sh, txn| {
            txn.open_table(LOGS)?;
            txn.open_table(SM)?;
            let mut meta = txn.open_table(META)?;
            let existing = meta.get(KEY_KEK_CHECK)?.map(|v| v.value().to_vec());
            if !check_kek(sh, existing.as_deref())? {
                let check = sh.seal_bytes(META_TABLE, KEY_KEK_CHECK, KEK_CHECK_PLAINTEXT);
                meta.insert(KEY_KEK_CHECK, check.as_slice())?;
            }
            Ok(())
        })?;

        let data: SmData = shared
            .get_json(SM, SM_TABLE, KEY_STATE)?
            .unwrap_or_default();
        let snapshot_seq = shared
            .get_json::<StoredSnapshotMeta>(SM, SM_TABLE, KEY_SNAPSHOT_META)?
            .map(|m| m.seq)
            .unwrap_or(0);
        tracing::info!(
            path = %path.display(),
            applied_index = data.last_applied.map(|l| l.index).unwrap_or(0),
            "opened the Raft store"
        );

        let (view_tx, _) = watch::channel(Arc::new(data.view()));
        let log = LogStore {
            shared: Arc::clone(&shared),
        };
        let sm = StateMachineStore {
            shared,
            inner: Arc::new(Mutex::new(SmInner { data, snapshot_seq })),
            view_tx: Arc::new(view_tx),
        };
        Ok((log, sm))
    }
}

/// Reads the persisted state machine of the database at `path` without starting Raft (used by
/// `init --force-new-cluster` to re-seed a new cluster with a surviving manager's state).
///
/// Returns `None` when there is no database or nothing was ever applied. The database must not
/// be open elsewhere (stop the daemon first). It is opened writable only so redb can repair it
/// after a crash; nothing is written otherwise.
pub fn read_state(path: &Path, kek: Arc<Kek>) -> Result<Option<StateView>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let shared = Shared {
        db: open_existing_db(path)?,
        kek,
        path: path.to_path_buf(),
    };
    let txn = shared.db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let check = meta.get(KEY_KEK_CHECK)?.map(|v| v.value().to_vec());
    check_kek(&shared, check.as_deref())?;
    let sm = match txn.open_table(SM) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(sealed) = sm.get(KEY_STATE)? else {
        return Ok(None);
    };
    let data: SmData = shared.open_json(SM_TABLE, KEY_STATE, sealed.value())?;
    Ok(Some(data.view()))
}

/// Whether the database at `path` holds any Raft data: a vote, a log entry (or purged log), or
/// an applied state. `false` when the file does not exist. Needs no key: only the presence of
/// values is checked. The database must not be open elsewhere.
pub fn has_raft_data(path: &Path) -> Result<bool, StoreError> {
    if !path.exists() {
        return Ok(false);
    }
    let db = open_existing_db(path)?;
    has_data(&db)
}

fn has_data(db: &Database) -> Result<bool, StoreError> {
    let txn = db.begin_read()?;
    let present = |r: Result<bool, StoreError>| match r {
        Err(StoreError::Db(redb::Error::TableDoesNotExist(_))) => Ok(false),
        other => other,
    };
    let logs = present(
        txn.open_table(LOGS)
            .map_err(StoreError::from)
            .and_then(|t| Ok(t.first()?.is_some())),
    )?;
    let meta = present(
        txn.open_table(META)
            .map_err(StoreError::from)
            .and_then(|t| Ok(t.get(KEY_VOTE)?.is_some() || t.get(KEY_LAST_PURGED)?.is_some())),
    )?;
    let sm = present(
        txn.open_table(SM)
            .map_err(StoreError::from)
            .and_then(|t| Ok(t.get(KEY_STATE)?.is_some())),
    )?;
    Ok(logs || meta || sm)
}

// ---------------------------------------------------------------------------------------------
// Log store
// ---------------------------------------------------------------------------------------------

/// The Raft log, vote and log pointers. Cloning gives another handle on the same database
/// (used as the log reader of replication tasks).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

impl LogStore {
    /// Whether this store holds any Raft data (see [`has_raft_data`]).
    pub fn has_raft_data(&self) -> Result<bool, StoreError> {
        has_data(&self.shared.db)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.shared.get_json(META, META_TABLE, key)
    }

    fn read_entries<RB: RangeBounds<u64>>(
        &self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let txn = self.shared.db.begin_read()?;
        let t = txn.open_table(LOGS)?;
        let mut out = Vec::new();
        for item in t.range::<u64>(range)? {
            let (k, v) = item?;
            let index = k.value();
            let entry: Entry<TypeConfig> =
                self.shared
                    .open_json(LOG_TABLE, &index.to_string(), v.value())?;
            out.push(entry);
        }
        Ok(out)
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged: Option<LogId<u64>> = self.read_meta(KEY_LAST_PURGED)?;
        let txn = self.shared.db.begin_read()?;
        let t = txn.open_table(LOGS)?;
        let last = match t.last()? {
            Some((k, v)) => {
                let entry: Entry<TypeConfig> =
                    self.shared
                        .open_json(LOG_TABLE, &k.value().to_string(), v.value())?;
                Some(entry.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn write_meta<T: Serialize + Send + 'static>(
        &self,
        key: &'static str,
        value: T,
    ) -> Result<(), StoreError> {
        self.shared
            .write(move |sh, txn| {
                let sealed = sh.seal_json(META_TABLE, key, &value)?;
                txn.open_table(META)?.insert(key, sealed.as_slice())?;
                Ok(())
            })
            .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        self.read_entries(range)
            .map_err(|e| e.into_storage_error(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        self.log_state()
            .map_err(|e| e.into_storage_error(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        // Durable before returning: a vote forgotten in a crash could be granted twice.
        self.write_meta(KEY_VOTE, *vote)
            .await
            .map_err(|e| e.into_storage_error(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.read_meta(KEY_VOTE)
            .map_err(|e| e.into_storage_error(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.write_meta(KEY_COMMITTED, committed)
            .await
            .map_err(|e| e.into_storage_error(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        self.read_meta::<Option<LogId<u64>>>(KEY_COMMITTED)
            .map(Option::flatten)
            .map_err(|e| e.into_storage_error(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let result = self
            .shared
            .write(move |sh, txn| {
                let mut t = txn.open_table(LOGS)?;
                for entry in &entries {
                    let index = entry.log_id.index;
                    let sealed = sh.seal_json(LOG_TABLE, &index.to_string(), entry)?;
                    t.insert(index, sealed.as_slice())?;
                }
                Ok(())
            })
            .await;
        // The commit above returned, so the entries are fsynced: only now may openraft count
        // them as stored on this node.
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(e.into_storage_error(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let since = log_id.index;
        self.shared
            .write(move |_, txn| {
                txn.open_table(LOGS)?.retain_in(since.., |_, _| false)?;
                Ok(())
            })
            .await
            .map_err(|e| e.into_storage_error(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // The purge pointer and the deletion commit together, so a crash never leaves a hole
        // between the last purged id and the first stored entry.
        self.shared
            .write(move |sh, txn| {
                let sealed = sh.seal_json(META_TABLE, KEY_LAST_PURGED, &log_id)?;
                txn.open_table(META)?
                    .insert(KEY_LAST_PURGED, sealed.as_slice())?;
                txn.open_table(LOGS)?
                    .retain_in(..=log_id.index, |_, _| false)?;
                Ok(())
            })
            .await
            .map_err(|e| e.into_storage_error(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}

// ---------------------------------------------------------------------------------------------
// State machine
// ---------------------------------------------------------------------------------------------

struct SmInner {
    data: SmData,
    /// Counter making snapshot ids unique, persisted with the snapshot.
    snapshot_seq: u64,
}

/// The state machine: applies committed commands to the [`ClusterState`] and persists it.
/// Cloning gives another handle on the same state (used as the snapshot builder).
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
    inner: Arc<Mutex<SmInner>>,
    view_tx: Arc<watch::Sender<Arc<StateView>>>,
}

impl StateMachineStore {
    /// Follows the applied state: the receiver holds the latest [`StateView`] and is notified
    /// after every applied batch and installed snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<StateView>> {
        self.view_tx.subscribe()
    }

    /// The latest applied state.
    pub fn current(&self) -> Arc<StateView> {
        self.view_tx.borrow().clone()
    }

    fn publish(&self, data: &SmData) {
        self.view_tx.send_replace(Arc::new(data.view()));
    }

    /// Persists the state machine blob (and optionally a snapshot) in one durable transaction.
    async fn persist(
        &self,
        state: Vec<u8>,
        snapshot: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        self.shared
            .write(move |_, txn| {
                let mut t = txn.open_table(SM)?;
                t.insert(KEY_STATE, state.as_slice())?;
                if let Some((meta, data)) = snapshot {
                    t.insert(KEY_SNAPSHOT_META, meta.as_slice())?;
                    t.insert(KEY_SNAPSHOT_DATA, data.as_slice())?;
                }
                Ok(())
            })
            .await
    }

    /// Persists the sealed state machine blob `state` together with snapshot `seq` (its meta
    /// and its serialized bytes `data`, sealed here), in the one transaction of [`Self::persist`]:
    /// a restart never finds a snapshot that disagrees with the state beside it.
    async fn persist_with_snapshot(
        &self,
        state: Vec<u8>,
        meta: &SnapshotMeta<u64, BasicNode>,
        seq: u64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let sealed_meta = self.shared.seal_json(
            SM_TABLE,
            KEY_SNAPSHOT_META,
            &StoredSnapshotMeta {
                meta: meta.clone(),
                seq,
            },
        )?;
        let sealed_data = self.shared.seal_bytes(SM_TABLE, KEY_SNAPSHOT_DATA, data);
        self.persist(state, Some((sealed_meta, sealed_data))).await
    }

    fn read_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let txn = self.shared.db.begin_read()?;
        let t = txn.open_table(SM)?;
        let (Some(meta), Some(data)) = (t.get(KEY_SNAPSHOT_META)?, t.get(KEY_SNAPSHOT_DATA)?)
        else {
            return Ok(None);
        };
        let meta: StoredSnapshotMeta =
            self.shared
                .open_json(SM_TABLE, KEY_SNAPSHOT_META, meta.value())?;
        let data = self
            .shared
            .open_bytes(SM_TABLE, KEY_SNAPSHOT_DATA, data.value())?;
        Ok(Some(Snapshot {
            meta: meta.meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let err =
            |e: StoreError| e.into_storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write);
        let mut inner = self.inner.lock().await;
        let data = Zeroizing::new(serde_json::to_vec(&inner.data).map_err(|source| {
            err(StoreError::Encode {
                what: "snapshot".to_string(),
                source,
            })
        })?);
        let seq = inner.snapshot_seq + 1;
        let snapshot_id = match inner.data.last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("--{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: inner.data.last_applied,
            last_membership: inner.data.last_membership.clone(),
            snapshot_id,
        };
        let state = self.shared.seal_bytes(SM_TABLE, KEY_STATE, &data);
        self.persist_with_snapshot(state, &meta, seq, &data)
            .await
            .map_err(err)?;
        inner.snapshot_seq = seq;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let inner = self.inner.lock().await;
        Ok((inner.data.last_applied, inner.data.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut replies = Vec::new();
        let mut last = None;
        for entry in entries {
            last = Some(entry.log_id);
            inner.data.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Ok(Response::Done),
                // A refused command is a normal, deterministic result returned to the proposer,
                // not a storage failure.
                EntryPayload::Normal(cmd) => inner.data.state.apply(cmd),
                EntryPayload::Membership(m) => {
                    inner.data.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(Response::Done)
                }
            };
            replies.push(reply);
        }
        let Some(last) = last else {
            return Ok(replies);
        };
        let err = |e: StoreError| e.into_storage_error(ErrorSubject::Apply(last), ErrorVerb::Write);
        let state = self
            .shared
            .seal_json(SM_TABLE, KEY_STATE, &inner.data)
            .map_err(err)?;
        self.persist(state, None).await.map_err(err)?;
        self.publish(&inner.data);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let signature = meta.signature();
        let bytes = Zeroizing::new(snapshot.into_inner());
        let decoded: SmData = serde_json::from_slice(&bytes).map_err(|source| {
            StoreError::Decode {
                what: format!("snapshot {}", meta.snapshot_id),
                source,
            }
            .into_storage_error(
                ErrorSubject::Snapshot(Some(signature.clone())),
                ErrorVerb::Read,
            )
        })?;
        // The meta is authoritative for what the snapshot covers.
        let data = SmData {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            state: decoded.state,
        };
        let err = |e: StoreError| {
            e.into_storage_error(
                ErrorSubject::Snapshot(Some(signature.clone())),
                ErrorVerb::Write,
            )
        };
        let mut inner = self.inner.lock().await;
        let seq = inner.snapshot_seq + 1;
        let state = self
            .shared
            .seal_json(SM_TABLE, KEY_STATE, &data)
            .map_err(err)?;
        self.persist_with_snapshot(state, meta, seq, &bytes)
            .await
            .map_err(err)?;
        inner.snapshot_seq = seq;
        inner.data = data;
        self.publish(&inner.data);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        self.read_snapshot()
            .map_err(|e| e.into_storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, Membership};
    use secnet_keys::secret::SecretBytes;
    use secnet_model::{
        ClusterConfig, ClusterSecrets, Command, NetworkSpec, Node, NodeId, NodeStatus, Role,
    };

    use super::*;

    const MARKER: &str = "marker-7f3a9c";
    const SECRET_MARKER: &[u8] = b"ca-key-marker-51d2e8";

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, index),
            payload,
        }
    }

    fn bootstrap() -> Command {
        let node = Node {
            id: NodeId(1),
            hostname: "mgr-1".to_string(),
            role: Role::Manager,
            status: NodeStatus::Ready,
            advertise_addr: "192.0.2.10:7946".parse().unwrap(),
            data_path_addr: "192.0.2.10".parse().unwrap(),
            cert_fingerprint: "00".repeat(32),
            underlay: vec!["192.0.2.0/24".parse().unwrap()],
            joined_at: 1_700_000_000,
        };
        Command::Bootstrap {
            config: ClusterConfig {
                cluster_id: "cluster-1".to_string(),
                pools: secnet_ipam::PoolConfig::new(vec!["10.20.0.0/16".parse().unwrap()], 26)
                    .unwrap(),
                data_path_port: 4789,
                wireguard_port: 51820,
                key_rotation_interval_secs: 3600,
                created_at: 1_700_000_000,
            },
            ca_cert_der: vec![0x30, 0x82],
            secrets: ClusterSecrets {
                ca_key: SecretBytes::from_slice(SECRET_MARKER),
                worker_token: SecretBytes::from_slice(b"worker-token-secret"),
                manager_token: SecretBytes::from_slice(b"manager-token-secret"),
            },
            node,
        }
    }

    fn create_network() -> Command {
        Command::CreateNetwork {
            id: "0123456789abcdef01234567".to_string(),
            spec: NetworkSpec {
                name: MARKER.to_string(),
                driver: "overlay".to_string(),
                subnet: None,
                gateway: None,
                encrypted: true,
                mtu: None,
                attachable: false,
                labels: BTreeMap::new(),
            },
            created_at: 1_700_000_001,
        }
    }

    fn entries() -> Vec<Entry<TypeConfig>> {
        let membership = Membership::new(
            vec![BTreeSet::from([1u64])],
            BTreeMap::from([(1u64, BasicNode::new("192.0.2.10:7946"))]),
        );
        vec![
            entry(1, 1, EntryPayload::Blank),
            entry(1, 2, EntryPayload::Membership(membership)),
            entry(1, 3, EntryPayload::Normal(bootstrap())),
            entry(1, 4, EntryPayload::Normal(create_network())),
            // Refused (duplicate name): a normal result, not a storage error.
            entry(1, 5, EntryPayload::Normal(create_network())),
        ]
    }

    fn kek() -> Arc<Kek> {
        Arc::new(Kek::generate())
    }

    /// Appends, votes, commits and applies the test entries.
    async fn fill(log: &mut LogStore, sm: &mut StateMachineStore) {
        log.save_vote(&Vote::new(1, 1)).await.unwrap();
        log.blocking_append(entries()).await.unwrap();
        log.save_committed(Some(log_id(1, 5))).await.unwrap();
        let replies = sm.apply(entries()).await.unwrap();
        assert_eq!(replies.len(), 5);
        assert!(matches!(replies[0], Ok(Response::Done)));
        assert!(matches!(replies[1], Ok(Response::Done)));
        assert!(matches!(replies[2], Ok(Response::Node(_))));
        assert!(matches!(replies[3], Ok(Response::Network(_))));
        assert!(matches!(
            replies[4],
            Err(secnet_model::ModelError::DuplicateNetworkName(_))
        ));
    }

    fn assert_view(view: &StateView) {
        assert_eq!(view.applied_index, 5);
        assert!(view.state.is_initialized());
        assert_eq!(view.state.find_network(MARKER).unwrap().name, MARKER);
        assert_eq!(view.state.networks.len(), 1);
        assert_eq!(view.membership.log_id(), &Some(log_id(1, 2)));
        assert!(view.membership.membership().get_node(&1).is_some());
    }

    #[tokio::test]
    async fn everything_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let key = kek();
        assert!(!has_raft_data(&path).unwrap());
        {
            let (mut log, mut sm) = RedbStore::open(&path, key.clone()).unwrap();
            assert!(!log.has_raft_data().unwrap());
            let mut rx = sm.subscribe();
            assert_eq!(rx.borrow().applied_index, 0);
            fill(&mut log, &mut sm).await;
            assert!(rx.has_changed().unwrap());
            assert_view(&rx.borrow_and_update());
            assert!(log.has_raft_data().unwrap());
            let snap = sm.build_snapshot().await.unwrap();
            assert_eq!(snap.meta.last_log_id, Some(log_id(1, 5)));
            log.purge(log_id(1, 2)).await.unwrap();
        }
        assert!(has_raft_data(&path).unwrap());

        let (mut log, mut sm) = RedbStore::open(&path, key.clone()).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 5)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
        assert_eq!(state.last_log_id, Some(log_id(1, 5)));
        let got = log.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(matches!(
            &got[1].payload,
            EntryPayload::Normal(Command::CreateNetwork { spec, .. }) if spec.name == MARKER
        ));

        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 5)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 2)));
        // The published view is loaded from disk, without replaying the log.
        assert_view(&sm.subscribe().borrow());
        assert_view(&sm.current());

        let snap = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 5)));
        drop((log, sm));

        let view = read_state(&path, key).unwrap().unwrap();
        assert_view(&view);
    }

    #[tokio::test]
    async fn snapshot_install_replaces_state_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log_l, mut sm_l) = RedbStore::open(&dir.path().join("l.redb"), kek()).unwrap();
        fill(&mut log_l, &mut sm_l).await;
        let snap = sm_l.build_snapshot().await.unwrap();

        let path_f = dir.path().join("f.redb");
        let key_f = kek();
        {
            let (_log_f, mut sm_f) = RedbStore::open(&path_f, key_f.clone()).unwrap();
            let rx = sm_f.subscribe();
            let mut buf = sm_f.begin_receiving_snapshot().await.unwrap();
            *buf = *snap.snapshot;
            sm_f.install_snapshot(&snap.meta, buf).await.unwrap();
            assert_view(&rx.borrow());
        }
        let (_log_f, mut sm_f) = RedbStore::open(&path_f, key_f).unwrap();
        assert_view(&sm_f.current());
        let cur = sm_f.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(cur.meta, snap.meta);
    }

    #[tokio::test]
    async fn values_are_sealed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let (mut log, mut sm) = RedbStore::open(&path, kek()).unwrap();
            fill(&mut log, &mut sm).await;
            sm.build_snapshot().await.unwrap();
        }
        let raw = fs::read(&path).unwrap();
        let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        // Sanity: the file is readable and table names are in it, so the search works.
        assert!(contains(LOG_TABLE.as_bytes()));
        assert!(
            !contains(MARKER.as_bytes()),
            "network name found in plaintext"
        );
        assert!(!contains(SECRET_MARKER), "CA key found in plaintext");
        let hex_secret = SecretBytes::from_slice(SECRET_MARKER).to_hex();
        assert!(
            !contains(hex_secret.as_bytes()),
            "CA key (hex) found in plaintext"
        );
        assert!(!contains(b"manager-token-secret"));
    }

    #[tokio::test]
    async fn a_different_kek_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let (mut log, mut sm) = RedbStore::open(&path, kek()).unwrap();
            fill(&mut log, &mut sm).await;
        }
        let err = RedbStore::open(&path, kek()).err().unwrap();
        assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
        assert!(
            err.to_string().contains("different key-encryption key"),
            "{err}"
        );
        let err = read_state(&path, kek()).err().unwrap();
        assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
    }

    #[test]
    fn swapped_values_fail_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let (log, _sm) = RedbStore::open(&path, kek()).unwrap();
        let sh = &log.shared;
        let sealed = sh
            .seal_json(META_TABLE, KEY_VOTE, &Vote::new(7, 1))
            .unwrap();
        assert!(sh
            .open_json::<Vote<u64>>(META_TABLE, KEY_VOTE, &sealed)
            .is_ok());
        let err = sh
            .open_json::<Vote<u64>>(META_TABLE, KEY_COMMITTED, &sealed)
            .unwrap_err();
        assert!(matches!(err, StoreError::Unseal { .. }), "{err:?}");
        let entry = sh.seal_json(LOG_TABLE, "7", &entries()[0]).unwrap();
        assert!(sh
            .open_json::<Entry<TypeConfig>>(LOG_TABLE, "9", &entry)
            .is_err());
    }

    #[test]
    fn database_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let key = kek();
        {
            let _stores = RedbStore::open(&path, key.clone()).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // A file that was made readable by others is made private again on open.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let _stores = RedbStore::open(&path, key).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let key = kek();
        let _stores = RedbStore::open(&path, key.clone()).unwrap();
        let err = RedbStore::open(&path, key).err().unwrap();
        assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err:?}");
    }

    #[test]
    fn read_state_of_missing_or_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        assert!(read_state(&path, kek()).unwrap().is_none());
        let key = kek();
        drop(RedbStore::open(&path, key.clone()).unwrap());
        assert!(read_state(&path, key).unwrap().is_none());
        assert!(!has_raft_data(&path).unwrap());
    }
}
