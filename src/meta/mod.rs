//! Registry metadata in sled: typed trees, key encoding and the transactions that change
//! several trees at once. Nothing here touches blob bytes.
//!
//! Trees and keys (`\0` separates parts; it cannot occur in names, tags or digests):
//!
//! | tree             | key                          | value                    |
//! |------------------|------------------------------|--------------------------|
//! | `repos`          | repo                         | [`RepoRecord`]           |
//! | `links`          | repo `\0` digest             | [`LinkRecord`] (blob linked to repo) |
//! | `manifests`      | repo `\0` digest             | [`ManifestRecord`]       |
//! | `manifest_bytes` | digest                       | the exact manifest bytes |
//! | `tags`           | repo `\0` tag                | [`TagRecord`]            |
//! | `referrers`      | repo `\0` subject `\0` digest | referrer [`Descriptor`] |
//! | `uploads`        | upload id                    | [`UploadRecord`]         |
//! | `users`          | user name                    | [`UserRecord`]           |
//! | `rules`          | rule id (8 bytes, big-endian) | [`RuleRecord`]          |
//! | `refresh_tokens` | sha256 of the token (hex)    | [`RefreshRecord`]        |
//! | `immutability`   | rule id (8 bytes, big-endian) | [`ImmutabilityRecord`]  |
//! | `gc_runs`        | run number (8 bytes, big-endian) | GC report (JSON)     |
//! | `retention`      | rule id (8 bytes, big-endian) | [`RetentionRecord`]     |
//! | `quotas`         | rule id (8 bytes, big-endian) | [`QuotaRecord`]         |
//! | `mirror_tags`    | repo `\0` tag                | [`CacheRecord`] (mirrored tag) |
//! | `pins`           | repo `\0` tag                | [`PinRecord`]           |
//! | `corrupt`        | digest                       | [`CorruptRecord`] (blob found corrupt) |
//! | `checksums`      | digest                       | CRC-32 of the blob's bytes (4 bytes, big-endian) |
//!
//! One file per record family, each an `impl Meta` block: `repos`, `links`, `manifests`,
//! `tags` (and referrers), `uploads`, `accounts` (users, refresh tokens), `rules` (records
//! under numeric ids: access, immutability, retention, quotas), `cache` (mirrored tags,
//! pins), `integrity` (corrupt blobs, checksums) and `sweep` (whole-store listings for GC
//! and fsck). This file holds the store itself and what they share.

mod accounts;
mod cache;
mod durability;
mod integrity;
mod links;
mod manifests;
mod records;
mod repos;
mod rules;
mod sweep;
mod tags;
mod uploads;

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, RepoName, Tag, UploadId};

pub use records::{
    CacheRecord, CorruptRecord, GrantRecord, ImmutabilityRecord, LinkRecord, ManifestRecord,
    PinRecord, QuotaRecord, RefreshRecord, RepoRecord, RetentionRecord, RobotRecord, RuleRecord,
    TagRecord, UploadRecord, UserRecord,
};

/// Handle to the metadata database. Cheap to clone (sled trees are reference counted).
#[derive(Clone)]
pub struct Meta {
    db: sled::Db,
    repos: sled::Tree,
    links: sled::Tree,
    manifests: sled::Tree,
    manifest_bytes: sled::Tree,
    tags: sled::Tree,
    referrers: sled::Tree,
    uploads: sled::Tree,
    users: sled::Tree,
    rules: sled::Tree,
    refresh: sled::Tree,
    immutability: sled::Tree,
    gc_runs: sled::Tree,
    retention: sled::Tree,
    quotas: sled::Tree,
    mirror_tags: sled::Tree,
    pins: sled::Tree,
    corrupt: sled::Tree,
    checksums: sled::Tree,
    durability: std::sync::Arc<durability::Durability>,
}

fn db_err(context: &'static str) -> impl FnOnce(sled::Error) -> Error {
    move |e| match &e {
        _ if is_disk_full(&e) => {
            tracing::error!(error = %e, "{context}: the metadata store's disk is full");
            disk_full()
        }
        _ => Error::internal(context, e),
    }
}

/// Whether sled failed for want of space. sled clones its errors by text, which loses the
/// OS error number but keeps the kind.
fn is_disk_full(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.raw_os_error() == Some(libc::ENOSPC) || io.kind() == std::io::ErrorKind::StorageFull)
}

/// A metadata write that failed on a full disk: the client should know the registry is
/// full (507, as for uploads), not that it broke.
fn disk_full() -> Error {
    Error::api(
        crate::error::ErrorCode::Denied,
        "the registry's disk is full: nothing more can be stored until space is freed",
    )
    .with_status(http::StatusCode::INSUFFICIENT_STORAGE)
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Records are plain structs of strings and numbers: serialisation cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal("decoding a metadata record", e))
}

/// Seconds since the Unix epoch, for pushed-at and created-at stamps.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a manifest PUT changes, committed in one transaction.
pub struct ManifestPut<'a> {
    pub repo: &'a RepoName,
    pub digest: &'a Digest,
    pub bytes: &'a [u8],
    pub record: &'a ManifestRecord,
    pub tag: Option<&'a Tag>,
    /// The descriptor to list under the subject's referrers, when the manifest has a subject.
    pub referrer: Option<(&'a Digest, &'a Descriptor)>,
    /// The tag is immutable: it may be created, or set again to the digest it has, but never
    /// moved. Checked inside the transaction, so two racing pushes cannot both move it.
    pub tag_immutable: bool,
}

/// How a manifest PUT ended.
#[derive(Debug, PartialEq, Eq)]
pub enum PutResult {
    Stored,
    /// The immutable tag points at this other manifest; nothing was changed.
    TagImmutable(Digest),
}

impl Meta {
    pub fn open(dir: &Path) -> Result<Meta> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 << 20)
            .open()
            .map_err(|e| match e {
                // sled holds an exclusive lock on its files while a process has them open.
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    Error::internal(
                        "opening the metadata database",
                        "it is in use by another edgeyard process (a running server?)",
                    )
                }
                e => Error::internal("opening the metadata database", e),
            })?;
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(db_err("opening a metadata tree"))
        };
        Ok(Meta {
            repos: tree("repos")?,
            links: tree("links")?,
            manifests: tree("manifests")?,
            manifest_bytes: tree("manifest_bytes")?,
            tags: tree("tags")?,
            referrers: tree("referrers")?,
            uploads: tree("uploads")?,
            users: tree("users")?,
            rules: tree("rules")?,
            refresh: tree("refresh_tokens")?,
            immutability: tree("immutability")?,
            gc_runs: tree("gc_runs")?,
            retention: tree("retention")?,
            quotas: tree("quotas")?,
            mirror_tags: tree("mirror_tags")?,
            pins: tree("pins")?,
            corrupt: tree("corrupt")?,
            checksums: tree("checksums")?,
            durability: durability::Durability::new(),
            db,
        })
    }

    /// Makes every committed change durable; awaited before a write is acknowledged.
    /// Concurrent callers share flushes (group commit).
    pub async fn flush(&self) -> Result<()> {
        self.durability.flush(&self.db).await
    }

    pub fn flush_blocking(&self) -> Result<()> {
        self.durability
            .flush_now(&self.db)
            .map(|_| ())
            .map_err(db_err("flushing metadata"))
    }
}

/// JSON records in a tree, shared by the record families.
impl Meta {
    fn get_json<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>> {
        match tree.get(key).map_err(db_err("reading a record"))? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    fn list_json<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
    ) -> Result<Vec<(sled::IVec, T)>> {
        tree.iter()
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("listing records"))?;
                Ok((k, decode(&v)?))
            })
            .collect()
    }
}

/// A rule id from its 8-byte big-endian key.
fn id_of(k: &[u8]) -> u64 {
    let mut id = [0u8; 8];
    let n = k.len().min(8);
    id[8 - n..].copy_from_slice(&k[..n]);
    u64::from_be_bytes(id)
}

fn tx_err(context: &'static str) -> impl FnOnce(TransactionError<()>) -> Error {
    move |e| match e {
        TransactionError::Storage(e) => db_err(context)(e),
        TransactionError::Abort(()) => Error::internal(context, "transaction aborted"),
    }
}

/// Collects at most `n` items from a key iterator and tells whether another one follows.
fn page<I, F>(iter: I, n: usize, f: F) -> Result<(Vec<String>, bool)>
where
    I: Iterator<Item = sled::Result<sled::IVec>>,
    F: Fn(sled::IVec) -> Result<String>,
{
    let mut out = Vec::new();
    for k in iter {
        let k = k.map_err(db_err("listing metadata"))?;
        if out.len() == n {
            return Ok((out, true));
        }
        out.push(f(k)?);
    }
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> (tempfile::TempDir, Meta) {
        let tmp = tempfile::tempdir().unwrap();
        let m = Meta::open(&tmp.path().join("meta")).unwrap();
        (tmp, m)
    }

    #[test]
    fn tags_page_in_order_and_stay_in_their_repo() {
        let (_t, m) = meta();
        let a: RepoName = "a/b".parse().unwrap();
        let ab: RepoName = "a/b/c".parse().unwrap();
        let d = Digest::sha256_of(b"x");
        let rec = ManifestRecord::default();
        for (repo, tag) in [(&a, "v2"), (&a, "v1"), (&a, "latest"), (&ab, "zz")] {
            let tag: Tag = tag.parse().unwrap();
            m.put_manifest(&ManifestPut {
                repo,
                digest: &d,
                bytes: b"{}",
                record: &rec,
                tag: Some(&tag),
                referrer: None,
                tag_immutable: false,
            })
            .unwrap();
        }
        assert_eq!(
            m.list_tags(&a, None, 100).unwrap(),
            (vec!["latest".into(), "v1".into(), "v2".into()], false)
        );
        assert_eq!(
            m.list_tags(&a, None, 2).unwrap(),
            (vec!["latest".into(), "v1".into()], true)
        );
        assert_eq!(
            m.list_tags(&a, Some("v1"), 2).unwrap(),
            (vec!["v2".into()], false)
        );
        assert_eq!(m.list_tags(&a, None, 0).unwrap(), (vec![], true));
        assert_eq!(
            m.list_repos(None, 10, &|_| true).unwrap(),
            (vec!["a/b".into(), "a/b/c".into()], false)
        );
        assert_eq!(
            m.list_repos(Some("a/b"), 10, &|_| true).unwrap(),
            (vec!["a/b/c".into()], false)
        );
        assert_eq!(
            m.list_repos(None, 1, &|n| n != "a/b").unwrap(),
            (vec!["a/b/c".into()], false)
        );
    }

    #[test]
    fn deleting_a_manifest_removes_its_tags() {
        let (_t, m) = meta();
        let r: RepoName = "ab".parse().unwrap();
        let d = Digest::sha256_of(b"m");
        let tag: Tag = "t".parse().unwrap();
        m.put_manifest(&ManifestPut {
            repo: &r,
            digest: &d,
            bytes: b"{}",
            record: &ManifestRecord::default(),
            tag: Some(&tag),
            referrer: None,
            tag_immutable: false,
        })
        .unwrap();
        assert!(m.tag(&r, &tag).unwrap().is_some());
        assert!(m.delete_manifest(&r, &d).unwrap());
        assert!(m.tag(&r, &tag).unwrap().is_none());
        assert!(m.manifest(&r, &d).unwrap().is_none());
        assert!(!m.delete_manifest(&r, &d).unwrap());
    }
}
