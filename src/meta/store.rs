//! The redb database under [`Meta`]: opening it, running read and write transactions off
//! tokio's workers, and reopening it in place after an I/O failure (a full disk).
//!
//! Every write commits with redb's `Durability::None`: in the file and visible to readers at
//! once, but not fsynced. [`super::durability`] then makes a batch of them durable with one
//! empty `Durability::Immediate` commit, which persists every commit before it (group
//! commit). A write is acknowledged only after that flush.
//!
//! redb, like most engines, refuses every write after an I/O error until the database is
//! closed and reopened. [`Store::reopen`] does that inside the process, so a registry whose
//! disk filled up recovers once space is back, with no restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};

use crate::error::{Error, Result};

/// A table of byte keys and byte values (the record families, JSON-encoded).
pub(super) type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;

pub(super) const REPOS: Bytes = TableDefinition::new("repos");
pub(super) const LINKS: Bytes = TableDefinition::new("links");
pub(super) const MANIFESTS: Bytes = TableDefinition::new("manifests");
pub(super) const MANIFEST_BYTES: Bytes = TableDefinition::new("manifest_bytes");
pub(super) const TAGS: Bytes = TableDefinition::new("tags");
pub(super) const REFERRERS: Bytes = TableDefinition::new("referrers");
pub(super) const UPLOADS: Bytes = TableDefinition::new("uploads");
pub(super) const USERS: Bytes = TableDefinition::new("users");
pub(super) const RULES: Bytes = TableDefinition::new("rules");
pub(super) const REFRESH: Bytes = TableDefinition::new("refresh_tokens");
pub(super) const IMMUTABILITY: Bytes = TableDefinition::new("immutability");
pub(super) const GC_RUNS: Bytes = TableDefinition::new("gc_runs");
pub(super) const RETENTION: Bytes = TableDefinition::new("retention");
pub(super) const QUOTAS: Bytes = TableDefinition::new("quotas");
pub(super) const MIRROR_TAGS: Bytes = TableDefinition::new("mirror_tags");
pub(super) const PINS: Bytes = TableDefinition::new("pins");
pub(super) const CORRUPT: Bytes = TableDefinition::new("corrupt");
pub(super) const CHECKSUMS: Bytes = TableDefinition::new("checksums");
pub(super) const TRUST_KEYS: Bytes = TableDefinition::new("trust_keys");
pub(super) const TRUST_POLICIES: Bytes = TableDefinition::new("trust_policies");
/// Counters, by name: `next_id` numbers rules and GC runs.
pub(super) const COUNTERS: TableDefinition<'static, &'static str, u64> =
    TableDefinition::new("counters");

/// Every byte table, with the name the sled store gave the same records (for migration).
pub(super) const TABLES: [Bytes; 20] = [
    REPOS,
    LINKS,
    MANIFESTS,
    MANIFEST_BYTES,
    TAGS,
    REFERRERS,
    UPLOADS,
    USERS,
    RULES,
    REFRESH,
    IMMUTABILITY,
    GC_RUNS,
    RETENTION,
    QUOTAS,
    MIRROR_TAGS,
    PINS,
    CORRUPT,
    CHECKSUMS,
    TRUST_KEYS,
    TRUST_POLICIES,
];

/// Why the store cannot be opened while a server runs (see [`super::is_in_use`]).
#[derive(Debug)]
pub struct InUse;

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it is in use by another edgeyard process (a running server?)")
    }
}

impl std::error::Error for InUse {}

/// The database file inside the metadata directory.
pub(super) const FILE: &str = "store.redb";

/// redb's page cache. Small on purpose: the records are small, the OS caches the file too,
/// and edge boxes have little memory (redb's default is 1 GiB).
const CACHE_BYTES: usize = 4 << 20;

/// Why a transaction failed: the store, or a record in it.
pub(super) enum Fail {
    Store(redb::Error),
    Record(Error),
}

macro_rules! store_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Fail {
                Fail::Store(e.into())
            }
        }
    )*};
}
store_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::DatabaseError
);

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Record(e)
    }
}

pub(super) type Tx<T> = std::result::Result<T, Fail>;

/// Whether an error is the disk's being full.
fn is_disk_full(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(io)
        if io.raw_os_error() == Some(libc::ENOSPC) || io.kind() == std::io::ErrorKind::StorageFull)
}

/// Whether the database refuses writes until it is reopened.
fn needs_reopen(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::Backend(_)
    )
}

/// A metadata write that failed on a full disk: the client should know the registry is
/// full (507, as for uploads), not that it broke.
pub(super) fn disk_full() -> Error {
    Error::api(
        crate::error::ErrorCode::Denied,
        "the registry's disk is full: nothing more can be stored until space is freed",
    )
    .with_status(http::StatusCode::INSUFFICIENT_STORAGE)
}

/// How long a flush waits for the writers already queued to commit first (group commit).
pub(super) const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

pub(super) struct Store {
    path: PathBuf,
    /// `None` only while a reopen that failed is waiting to be retried.
    db: RwLock<Option<Arc<redb::Database>>>,
    /// The I/O failure that left the database refusing writes (and whether the disk was
    /// full), until a reopen.
    failed: Mutex<Option<(String, bool)>>,
    /// Write transactions committed so far (numbering them for group commit).
    committed: AtomicU64,
    /// Write transactions waiting for redb's writer slot or running.
    writers: AtomicUsize,
}

impl Store {
    pub(super) fn open(dir: &Path) -> Result<Store> {
        let path = dir.join(FILE);
        let db = open_file(&path)?;
        Ok(Store {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            failed: Mutex::new(None),
            committed: AtomicU64::new(0),
            writers: AtomicUsize::new(0),
        })
    }

    fn db(&self) -> Tx<Arc<redb::Database>> {
        self.db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Fail::Store(redb::Error::DatabaseClosed))
    }

    /// Runs `f` in a read transaction. Reads never wait for writers (redb keeps the last
    /// committed version for them).
    pub(super) fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&ReadTransaction) -> Tx<T>,
    ) -> Result<T> {
        let run = || -> Tx<T> {
            let tx = self.db()?.begin_read()?;
            f(&tx)
        };
        run().map_err(|e| self.error(context, e))
    }

    /// Runs `f` in a write transaction and commits it (not yet durable: see the module doc).
    /// redb runs one write transaction at a time, and one may be waiting for an fsync, so on
    /// a tokio worker the wait is handed over to tokio first (`block_in_place`: the worker's
    /// other tasks move to another thread instead of stalling behind the disk).
    pub(super) fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&WriteTransaction) -> Tx<T>,
    ) -> Result<T> {
        let run = || -> Tx<T> {
            let mut tx = self.db()?.begin_write()?;
            tx.set_durability(redb::Durability::None)?;
            let out = f(&tx)?;
            tx.commit()?;
            self.committed.fetch_add(1, Ordering::AcqRel);
            Ok(out)
        };
        self.writers.fetch_add(1, Ordering::AcqRel);
        let out = off_worker(run);
        self.writers.fetch_sub(1, Ordering::AcqRel);
        out.map_err(|e| self.error(context, e))
    }

    /// How many write transactions have committed.
    pub(super) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Waits (at most [`GATHER`]) for the write transactions already queued to commit.
    pub(super) fn gather_writers(&self) {
        let until = std::time::Instant::now() + GATHER;
        while self.writers.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    /// Makes every commit so far durable: one fsync (an empty durable commit). Returns the
    /// number of the last commit it covered. Blocking: the group commit runs it on its own
    /// thread.
    pub(super) fn sync(&self) -> Result<u64> {
        let run = || -> Tx<u64> {
            let tx = self.db()?.begin_write()?;
            // No other write transaction runs now: every commit counted is in this one.
            let covered = self.committed();
            tx.commit()?;
            Ok(covered)
        };
        run().map_err(|e| self.error("flushing metadata", e))
    }

    fn error(&self, context: &'static str, e: Fail) -> Error {
        match e {
            Fail::Record(e) => e,
            Fail::Store(e) => {
                if needs_reopen(&e) {
                    let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                    if failed.is_none() {
                        tracing::error!(error = %e, "{context}: the metadata store failed; it takes no writes until it is reopened");
                        *failed = Some((e.to_string(), is_disk_full(&e)));
                    }
                }
                if is_disk_full(&e) {
                    return disk_full();
                }
                Error::internal(context, e)
            }
        }
    }

    /// The I/O failure that stopped writes, if one did and no reopen has cleared it.
    pub(super) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(text, _)| text.clone())
    }

    /// That failure as the error a write is answered with.
    pub(super) fn failed_error(&self) -> Option<Error> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.as_ref().map(|(text, full)| match full {
            true => disk_full(),
            false => Error::internal("writing metadata", text.clone()),
        })
    }

    /// Runs `f` with the database to itself: new transactions wait, and the ones in
    /// flight are waited for (at most 10 s). `f` gets the handle out of its slot and must
    /// put one back (or leave `None` for the next reopen).
    fn exclusive<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&mut Option<redb::Database>) -> Result<T>,
    ) -> Result<T> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        let mut db = match slot.take() {
            None => None,
            Some(mut shared) => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    match Arc::try_unwrap(shared) {
                        Ok(db) => break Some(db),
                        Err(still) if std::time::Instant::now() < deadline => {
                            shared = still;
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                        Err(still) => {
                            *slot = Some(still);
                            return Err(Error::internal(
                                context,
                                "transactions still hold the metadata store after 10 s",
                            ));
                        }
                    }
                }
            }
        };
        let out = f(&mut db);
        *slot = db.map(Arc::new);
        out
    }

    /// Closes and reopens the database after an I/O failure. redb repairs it on open: commits
    /// made durable are kept, later ones were never acknowledged.
    pub(super) fn reopen(&self) -> Result<()> {
        self.exclusive("reopening the metadata store", |db| {
            // Closed first: the file is locked while open.
            drop(db.take());
            *db = Some(open_file(&self.path)?);
            Ok(())
        })?;
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("the metadata store was reopened and takes writes again");
        Ok(())
    }

    /// Verifies every page of the file against its checksum. Everything else waits
    /// meanwhile, so only the offline fsck runs it.
    pub(super) fn check_integrity(&self) -> Integrity {
        let checked = self.exclusive("checking the metadata store", |db| match db {
            Some(db) => db
                .check_integrity()
                .map_err(|e| Error::internal("checking the metadata store", e)),
            None => Err(Error::internal(
                "checking the metadata store",
                "it is closed after a failure",
            )),
        });
        match checked {
            Ok(true) => Integrity::Sound,
            Ok(false) => Integrity::Repaired,
            Err(e) => Integrity::Corrupt(e.to_string()),
        }
    }

    /// Compacts the database file (space freed by deleted records goes back to the disk):
    /// its size before and after. Everything else waits meanwhile, so it runs when nothing
    /// else does (offline garbage collection).
    pub(super) fn compact(&self) -> Result<(u64, u64)> {
        let size = || std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        self.exclusive("compacting the metadata store", |db| match db {
            Some(db) => db
                .compact(redb::CompactionMode::Balanced)
                .map(|_| ())
                .map_err(|e| Error::internal("compacting the metadata store", e)),
            None => Err(Error::internal(
                "compacting the metadata store",
                "it is closed after a failure",
            )),
        })?;
        Ok((before, size()))
    }
}

/// What a check of every page found.
#[derive(Debug, PartialEq, Eq)]
pub enum Integrity {
    Sound,
    /// Pages failed their checksums; redb went back to the last sound durable commit.
    Repaired,
    Corrupt(String),
}

/// Opens (or creates) the database file and makes sure every table exists, so that read
/// transactions never meet a missing table.
pub(super) fn open_file(path: &Path) -> Result<redb::Database> {
    private_file(path).map_err(|e| Error::internal("creating the metadata database", e))?;
    match open_as(path, false) {
        Opened::Yes(db) => Ok(db),
        Opened::No(e) => Err(e),
        // redb trusts a cleanly closed file without reading it, and a damaged page can then
        // fail (or panic) the first read. Verifying every page finds the damage and goes
        // back to the last sound commit when there is one.
        Opened::Damaged(why) => {
            tracing::warn!(path = %path.display(), %why, "the metadata store is damaged: checking every page to repair it");
            match open_as(path, true) {
                Opened::Yes(db) => {
                    tracing::warn!(path = %path.display(), "the metadata store was repaired to its last sound commit; run edgeyard fsck to see what it holds");
                    Ok(db)
                }
                Opened::No(e) => Err(e),
                Opened::Damaged(why) => Err(Error::internal(
                    "opening the metadata database",
                    format!(
                        "{} is damaged and could not be repaired ({why}): restore it from a backup",
                        path.display()
                    ),
                )),
            }
        }
    }
}

enum Opened {
    Yes(redb::Database),
    No(Error),
    Damaged(String),
}

/// Opens the file (verifying every page first if `check`) and makes sure every table
/// exists. A panic inside redb on a damaged file is caught and reported as damage.
fn open_as(path: &Path, check: bool) -> Opened {
    let attempt =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Tx<redb::Database> {
            let db = redb::Database::builder()
                .set_cache_size(CACHE_BYTES)
                .set_check_integrity_on_open(check)
                .create(path)?;
            let tx = db.begin_write()?;
            for t in TABLES {
                tx.open_table(t)?;
            }
            tx.open_table(COUNTERS)?;
            tx.commit()?;
            Ok(db)
        }));
    match attempt {
        Ok(Ok(db)) => Opened::Yes(db),
        Ok(Err(Fail::Store(redb::Error::DatabaseAlreadyOpen))) => {
            Opened::No(Error::internal("opening the metadata database", InUse))
        }
        Ok(Err(Fail::Store(redb::Error::Corrupted(why)))) => Opened::Damaged(why),
        Ok(Err(Fail::Store(e))) if is_disk_full(&e) => Opened::No(disk_full()),
        Ok(Err(Fail::Store(e))) => Opened::No(Error::internal("opening the metadata database", e)),
        Ok(Err(Fail::Record(e))) => Opened::No(e),
        Err(panic) => Opened::Damaged(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "it failed to read its own pages".into()),
        ),
    }
}

/// Creates the database file owner-only (it holds password hashes), whatever the umask, or
/// makes an existing one so. redb initialises an empty file as a new database.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?
        .set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Runs blocking work from async code without stalling a tokio worker (see [`Store::write`]).
pub(super) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        // Offline commands run a current-thread runtime (or none): nothing else to stall.
        _ => f(),
    }
}
