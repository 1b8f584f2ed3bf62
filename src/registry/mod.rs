//! The registry's use cases behind one cheap-to-clone handle: uploads, blobs, manifests,
//! tags, referrers, the catalog, governance, garbage collection, and the scrub that checks
//! them all (`fsck`). This layer decides what is allowed; `storage` and `meta` only keep
//! bytes and records, `http` only translates requests and responses, and `edge` brings
//! content from other registries and sites through the narrow API in `ingest`.

mod blobs;
mod closure;
mod detail;
mod events;
mod evict;
mod fsck;
mod fsck_report;
mod gc;
pub mod governance;
mod ingest;
mod integrity;
mod manifests;
mod proofs;
mod pump;
mod quota;
mod repos;
mod retention;
mod sessions;
pub mod trust_declared;
pub mod trust_rules;
pub mod trust_update;
mod trusted;
mod uploads;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::meta::{ImmutabilityRecord, Meta};
use crate::storage::Storage;

pub use blobs::{BlobRange, BlobRead};
pub use closure::ImageClosure;
pub use detail::{ConfigSummary, TagDetail};
pub use events::Events;
pub use fsck::{FsckOptions, FsckReport, Problem, ProblemKind, Severity};
pub use gc::{GcOptions, GcReport};

/// Told how long work (fsck, gc) goes on: what it is at, how many done, out of how many (0:
/// not known). The offline commands draw it; the server passes [`no_progress`].
pub type Progress = std::sync::Arc<dyn Fn(&'static str, u64, u64) + Send + Sync>;

/// A [`Progress`] that tells no one.
pub fn no_progress() -> Progress {
    std::sync::Arc::new(|_, _, _| {})
}
pub use ingest::{Incoming, MirrorOf, Mirrored};
pub use manifests::{ManifestContent, PutOutcome, Referrers};
pub use quota::QuotaUsage;
pub use repos::{RepoInfo, TagInfo};
pub use retention::{Expired, Pin};
pub use trusted::{Candidate, PolicyStatus, Signer, TrustStatus};
pub use uploads::{range_header, upload_location, ContentRange, UploadState};

/// Largest manifest accepted, as in CNCF Distribution and the OCI conformance suite.
pub const MANIFEST_MAX: usize = 4 << 20;

/// Most entries one tags or catalog page returns, whatever `n` asks for.
pub const PAGE_MAX: usize = 10_000;

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    meta: Meta,
    /// Upload sessions open in this process (see `uploads`).
    uploads: sessions::Sessions,
    /// What the operator set that decides what is allowed.
    policy: Policy,
    /// Last storage usage and when it was measured: walking the blob tree on every scrape
    /// would cost too much on a large store.
    usage: Mutex<Option<(std::time::Instant, crate::storage::Usage)>>,
    /// Held for reading while a blob is committed, linked or referenced; for writing while
    /// garbage collection deletes (see `gc`).
    gc_lock: tokio::sync::RwLock<()>,
    /// Who counts what the registry does (see `events`); nobody until the server says.
    events: std::sync::OnceLock<Arc<dyn Events>>,
    /// What images' signatures proved (see `trusted`).
    proofs: proofs::ProofCache,
}

/// What the operator set (in the configuration, or through the admin API) that decides what
/// is allowed: read on every request, replaced whole when it changes.
struct Policy {
    /// Immutability rules, read on every tag change; reloaded when they change.
    immutable: RwLock<Arc<Vec<(u64, ImmutabilityRecord)>>>,
    /// The free space below which uploads are refused.
    floor: RwLock<DiskFloor>,
    /// Whole-blob pulls hash what they send and hold back the last piece until it checks
    /// out (see `storage::Verify`); on unless the operator turned it off.
    verify_pulls: AtomicBool,
    /// Repositories exist only once an administrator created them (no creation on push).
    explicit_creation: AtomicBool,
    /// Who says which repositories a mirror fills (see `ingest`); nobody until the edge
    /// installs its mirrors.
    mirrored: RwLock<Arc<dyn Mirrored>>,
    /// Trusted keys and trust policies (see `trusted`); reloaded when they change.
    trust: RwLock<Arc<trusted::TrustState>>,
}

/// The free space an upload needs to be accepted: the larger of a byte count and a share of
/// the filesystem. Below it, uploads are refused before any byte is written; pulls go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskFloor {
    pub bytes: u64,
    pub percent: u8,
}

impl Default for DiskFloor {
    fn default() -> Self {
        DiskFloor {
            bytes: 256 << 20,
            percent: 0,
        }
    }
}

impl DiskFloor {
    fn of(&self, total: u64) -> u64 {
        self.bytes.max(total / 100 * self.percent as u64)
    }
}

/// How long a measured storage usage is reused.
const USAGE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a metadata flush may take before the store counts as hung.
pub const METADATA_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// One readiness check's outcome, as `/readyz` shows it: ready, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ready,
    NotReady(String),
}

/// See [`Registry::metadata_health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataHealth {
    Ok,
    /// The last flush failed (its error).
    Failing(String),
    /// A flush did not finish in time.
    Hung,
}

impl Registry {
    /// Opens (creating if needed) the registry stored under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Registry> {
        let storage = Storage::open(data_dir)
            .map_err(|e| Error::internal("creating the data directory layout", e))?;
        let meta = Meta::open(&storage.meta_dir())?;
        let immutable = meta.immutability_rules()?;
        let registry = Registry {
            inner: Arc::new(Inner {
                storage,
                meta,
                uploads: sessions::Sessions::default(),
                policy: Policy {
                    immutable: RwLock::new(Arc::new(immutable)),
                    floor: RwLock::new(DiskFloor::default()),
                    verify_pulls: AtomicBool::new(true),
                    explicit_creation: AtomicBool::new(false),
                    mirrored: RwLock::new(Arc::new(ingest::NoMirrors)),
                    trust: RwLock::new(Arc::new(trusted::TrustState::empty())),
                },
                usage: Mutex::new(None),
                gc_lock: tokio::sync::RwLock::new(()),
                events: std::sync::OnceLock::new(),
                proofs: proofs::ProofCache::default(),
            }),
        };
        registry.reload_trust()?;
        Ok(registry)
    }

    fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// Flushes metadata; called on shutdown.
    pub fn close(&self) -> Result<()> {
        self.meta().flush_blocking()
    }

    /// Repository names for `GET /v2/_catalog` that pass `visible`, after `last`, at most
    /// `n`; and whether more follow.
    pub fn catalog(
        &self,
        last: Option<&str>,
        n: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<String>, bool)> {
        self.meta().list_repos(last, n.min(PAGE_MAX), visible)
    }

    /// Bytes and count of blob files, measured at most every 30 s.
    pub async fn usage(&self) -> Option<crate::storage::Usage> {
        if let Some((at, u)) = *self.inner.usage.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < USAGE_TTL {
                return Some(u);
            }
        }
        let storage = self.storage().clone();
        let u = blocking("measuring storage", move || storage.usage())
            .await
            .ok()?;
        *self.inner.usage.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), u));
        Some(u)
    }

    /// What `/readyz` checks: the data directory takes writes, the metadata answers.
    pub async fn readiness(&self) -> Vec<(&'static str, Check)> {
        let storage = self.storage().clone();
        let disk = match blocking("probing storage", move || storage.probe_writable()).await {
            Ok(()) => Check::Ready,
            Err(e) => Check::NotReady(e.to_string()),
        };
        let probe: crate::oci::RepoName = match "readiness/probe".parse() {
            Ok(n) => n,
            Err(_) => return vec![("storage", disk)],
        };
        let meta = match self.meta().repo_exists(&probe) {
            Err(e) => Check::NotReady(e.to_string()),
            Ok(_) => match self.metadata_health().await {
                MetadataHealth::Ok => Check::Ready,
                MetadataHealth::Failing(e) => {
                    Check::NotReady(format!("metadata cannot be written: {e}"))
                }
                MetadataHealth::Hung => Check::NotReady(format!(
                    "metadata writes do not finish (none in {} s)",
                    METADATA_PATIENCE.as_secs()
                )),
            },
        };
        let space = match self.free_space().await {
            Ok((avail, floor)) if avail >= floor => Check::Ready,
            Ok((avail, floor)) => Check::NotReady(format!(
                "{avail} bytes free, below the floor of {floor}: uploads are refused"
            )),
            Err(e) => Check::NotReady(e.to_string()),
        };
        vec![("storage", disk), ("metadata", meta), ("free_space", space)]
    }

    /// Whether metadata can still be made durable: a flush (cheap when nothing is pending,
    /// and joined with any flush under way) must finish without error within
    /// [`METADATA_PATIENCE`]. After a failure (a full disk) every later write fails too, so
    /// readiness reports it rather than answering "ready" over a store that cannot take a tag.
    pub async fn metadata_health(&self) -> MetadataHealth {
        match tokio::time::timeout(METADATA_PATIENCE, self.meta().flush()).await {
            Ok(Ok(())) => MetadataHealth::Ok,
            Ok(Err(e)) => MetadataHealth::Failing(e.to_string()),
            Err(_) => MetadataHealth::Hung,
        }
    }

    /// Closes and reopens the metadata store after an I/O failure (a full disk whose space
    /// is back), so that writes work again without a restart.
    pub async fn reopen_metadata(&self) -> Result<()> {
        self.meta_maintenance("reopening the metadata store", |m| m.reopen())
            .await
    }

    /// Compacts the metadata store's file: its size before and after, bytes. Every metadata
    /// read and write waits meanwhile, so only the offline `edgeyard gc` runs it.
    pub async fn compact_metadata(&self) -> Result<(u64, u64)> {
        self.meta_maintenance("compacting the metadata store", |m| m.compact())
            .await
    }

    /// Runs work that takes the metadata store to itself on a blocking thread.
    async fn meta_maintenance<T: Send + 'static>(
        &self,
        context: &'static str,
        f: impl FnOnce(&crate::meta::Meta) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let meta = self.meta().clone();
        match tokio::task::spawn_blocking(move || f(&meta)).await {
            Ok(r) => r,
            Err(e) => Err(Error::internal(context, e)),
        }
    }

    /// Whether pushes may create repositories (`false`) or only administrators (`true`).
    pub fn set_explicit_creation(&self, explicit: bool) {
        self.inner
            .policy
            .explicit_creation
            .store(explicit, std::sync::atomic::Ordering::Relaxed);
    }

    /// Refuses writes into a repository that does not exist when creation is explicit.
    pub(crate) fn check_may_receive(&self, repo: &crate::oci::RepoName) -> Result<()> {
        if self
            .inner
            .policy
            .explicit_creation
            .load(std::sync::atomic::Ordering::Relaxed)
            && !self.meta().repo_exists(repo)?
        {
            return Err(Error::api(
                crate::error::ErrorCode::Denied,
                format!("repository {repo} does not exist: an administrator must create it first (edgeyard repo create {repo})"),
            )
            .with_detail(serde_json::json!({ "name": repo.as_str() })));
        }
        Ok(())
    }

    pub fn set_disk_floor(&self, floor: DiskFloor) {
        *self
            .inner
            .policy
            .floor
            .write()
            .unwrap_or_else(|p| p.into_inner()) = floor;
    }

    /// Installs the observer of what the registry does (once; later calls are ignored).
    pub fn set_events(&self, events: Arc<dyn Events>) {
        let _ = self.inner.events.set(events);
    }

    /// Who counts what the registry (and the edge above it) does.
    pub fn events(&self) -> &dyn Events {
        match self.inner.events.get() {
            Some(e) => e.as_ref(),
            None => &events::Silent,
        }
    }

    /// Whether whole-blob pulls are verified as they are sent (`[storage] verify_pulls`).
    pub fn set_verify_pulls(&self, on: bool) {
        self.inner
            .policy
            .verify_pulls
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Free bytes, and the floor below which uploads are refused.
    pub async fn free_space(&self) -> Result<(u64, u64)> {
        let storage = self.storage().clone();
        let (avail, total) = blocking("measuring free space", move || storage.free_space()).await?;
        let floor = self
            .inner
            .policy
            .floor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .of(total);
        Ok((avail, floor))
    }

    /// Refuses an upload while free space is below the floor, after evicting what mirrors
    /// cached (unpinned, least recently used first) to make room. Never called with the GC
    /// lock held: eviction takes it for writing.
    pub async fn check_free_space(&self) -> Result<()> {
        let (mut avail, floor) = self.free_space().await?;
        if avail < floor {
            // Nothing to evict costs one read of the (empty) cache records.
            self.evict_for_space().await?;
            avail = self.free_space().await?.0;
        }
        if avail < floor {
            tracing::warn!(
                free = avail,
                floor,
                "upload refused: free space is below the configured floor"
            );
            return Err(pump::disk_full(format!(
                "the registry's disk is nearly full ({avail} bytes free, floor {floor}): uploads are refused until space is freed (delete images, then edgeyard gc)"
            )));
        }
        Ok(())
    }

    /// Re-reads the immutability rules (after the admin API changed them).
    pub fn reload_immutability(&self) -> Result<()> {
        let rules = self.meta().immutability_rules()?;
        *self
            .inner
            .policy
            .immutable
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        Ok(())
    }

    /// The immutability rule that covers `tag` in `repo`, if any.
    pub(super) fn immutable_rule(
        &self,
        repo: &crate::oci::RepoName,
        tag: &str,
    ) -> Option<(u64, ImmutabilityRecord)> {
        use crate::oci::glob::glob_match;
        self.inner
            .policy
            .immutable
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(_, r)| glob_match(&r.repos, repo.as_str()) && glob_match(&r.tags, tag))
            .cloned()
    }

    /// The metadata handle, shared with the authentication store.
    pub fn meta_handle(&self) -> Meta {
        self.inner.meta.clone()
    }

    /// Tags of an existing repository, after `last`, at most `n`; and whether more follow.
    pub fn tags(
        &self,
        repo: &crate::oci::RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool)> {
        if !self.meta().repo_exists(repo)? {
            return Err(Error::code(crate::error::ErrorCode::NameUnknown)
                .with_detail(serde_json::json!({ "name": repo.as_str() })));
        }
        self.meta().list_tags(repo, last, n.min(PAGE_MAX))
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T, F>(context: &'static str, f: F) -> Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Error::internal(context, e)),
        Err(e) => Err(Error::internal(context, e)),
    }
}
