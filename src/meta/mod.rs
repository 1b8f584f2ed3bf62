//! Registry metadata in redb: typed tables, key encoding and the transactions that change
//! several tables at once. Nothing here touches blob bytes.
//!
//! Tables and keys (`\0` separates parts; it cannot occur in names, tags or digests):
//!
//! | table            | key                          | value                    |
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
//! | `trust_keys`     | key name                     | [`TrustKeyRecord`] (signing key trusted) |
//! | `trust_policies` | policy id (8 bytes, big-endian) | [`TrustPolicyRecord`] |
//! | `counters`       | name (`next_id`)             | u64                      |
//!
//! One file per record family, each an `impl Meta` block: `repos`, `links`, `manifests`,
//! `tags` (and referrers), `uploads`, `accounts` (users, refresh tokens), `rules` (records
//! under numeric ids: access, immutability, retention, quotas, trust policies; and trust keys), `cache` (mirrored tags,
//! pins), `integrity` (corrupt blobs, checksums) and `sweep` (whole-store listings for GC
//! and fsck). `store` holds the database and its transactions, `durability` the group
//! commit, `migrate` the one-time move from the sled store earlier versions kept. This file
//! holds what they share.

mod accounts;
mod cache;
mod durability;
mod integrity;
mod links;
mod manifests;
mod migrate;
mod records;
mod repos;
mod rules;
mod store;
mod sweep;
mod tags;
mod uploads;

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};

use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, RepoName, Tag, UploadId};
use store::{Bytes, Fail, Store, Tx};

pub use records::{
    CacheRecord, CorruptRecord, GrantRecord, ImmutabilityRecord, IndexTrust, KeyPurpose,
    LinkRecord, ManifestRecord, PinRecord, QuotaRecord, RefreshRecord, RepoRecord, Require,
    RetentionRecord, RobotRecord, RuleRecord, TagRecord, TrustKeyRecord, TrustMode,
    TrustPolicyRecord, TrustSource, UploadRecord, UserRecord,
};
pub use store::Integrity;

/// Handle to the metadata database. Cheap to clone.
#[derive(Clone)]
pub struct Meta {
    store: Arc<Store>,
    durability: Arc<durability::Durability>,
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// Splits a `a \0 b` key back into its two parts (the inverse of [`key2`]).
fn split(k: &[u8]) -> Option<(String, String)> {
    let i = k.iter().position(|b| *b == 0)?;
    Some((
        String::from_utf8_lossy(&k[..i]).into_owned(),
        String::from_utf8_lossy(&k[i + 1..]).into_owned(),
    ))
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

/// A table's JSON record under `key`.
fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Tx<Option<T>> {
    match table.get(key)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// Every JSON record of a table whose key starts with `pre` (all of them for an empty
/// prefix), with its key.
fn scan_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    pre: &[u8],
) -> Tx<Vec<(Vec<u8>, T)>> {
    let mut out = Vec::new();
    for kv in table.range(pre..)? {
        let (k, v) = kv?;
        if !k.value().starts_with(pre) {
            break;
        }
        out.push((k.value().to_vec(), decode(v.value())?));
    }
    Ok(out)
}

/// The keys of a table that start with `pre`.
fn scan_keys(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    pre: &[u8],
) -> Tx<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for kv in table.range(pre..)? {
        let (k, _) = kv?;
        if !k.value().starts_with(pre) {
            break;
        }
        out.push(k.value().to_vec());
    }
    Ok(out)
}

/// Whether opening the store failed because another process (a running server) has it.
pub fn is_in_use(e: &Error) -> bool {
    e.caused_by::<store::InUse>()
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
    /// Opens the metadata store in `dir`, first moving a sled store found there (from an
    /// earlier version) into redb.
    pub fn open(dir: &Path) -> Result<Meta> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal("creating the metadata directory", e))?;
        migrate::from_sled_if_present(dir)?;
        Ok(Meta {
            store: Arc::new(Store::open(dir)?),
            durability: durability::Durability::new(),
        })
    }

    /// Makes every committed change durable; awaited before a write is acknowledged.
    /// Concurrent callers share flushes (group commit).
    pub async fn flush(&self) -> Result<()> {
        self.durability.flush(&self.store).await
    }

    pub fn flush_blocking(&self) -> Result<()> {
        store::off_worker(|| self.store.sync()).map(|_| ())
    }

    /// The I/O failure (a full disk) after which the store takes no writes, until
    /// [`Meta::reopen`] succeeds.
    pub fn failure(&self) -> Option<String> {
        self.store.failure()
    }

    /// Closes and reopens the store after an I/O failure, so that writes work again once
    /// the cause (a full disk) is gone. Blocking: run it off the async workers.
    pub fn reopen(&self) -> Result<()> {
        self.store.reopen()?;
        self.durability.reset(self.store.committed());
        Ok(())
    }

    /// Verifies every page against its checksum (see `Store::check_integrity`).
    pub fn check_integrity(&self) -> Integrity {
        store::off_worker(|| self.store.check_integrity())
    }

    /// Compacts the store's file (see `Store::compact`): its size before and after, bytes.
    pub fn compact(&self) -> Result<(u64, u64)> {
        store::off_worker(|| self.store.compact())
    }

    fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&redb::ReadTransaction) -> Tx<T>,
    ) -> Result<T> {
        self.store.read(context, f)
    }

    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Tx<T>,
    ) -> Result<T> {
        self.store.write(context, f)
    }

    /// One JSON record.
    fn get<T: serde::de::DeserializeOwned>(&self, table: Bytes, key: &[u8]) -> Result<Option<T>> {
        self.read("reading a record", |tx| {
            get_json(&tx.open_table(table)?, key)
        })
    }

    /// Whether a key is present.
    fn has(&self, table: Bytes, key: &[u8]) -> Result<bool> {
        self.read("reading a record", |tx| {
            Ok(tx.open_table(table)?.get(key)?.is_some())
        })
    }

    /// Every JSON record whose key starts with `pre`, with its key.
    fn scan<T: serde::de::DeserializeOwned>(
        &self,
        table: Bytes,
        pre: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>> {
        self.read("listing records", |tx| {
            scan_json(&tx.open_table(table)?, pre)
        })
    }

    /// Stores one JSON record.
    fn put<T: serde::Serialize>(
        &self,
        context: &'static str,
        table: Bytes,
        key: &[u8],
        rec: &T,
    ) -> Result<()> {
        let v = encode(rec);
        self.write(context, |tx| {
            tx.open_table(table)?.insert(key, v.as_slice())?;
            Ok(())
        })
    }

    /// Removes one key; whether it was there.
    fn remove(&self, context: &'static str, table: Bytes, key: &[u8]) -> Result<bool> {
        self.write(context, |tx| {
            Ok(tx.open_table(table)?.remove(key)?.is_some())
        })
    }

    /// How many records a table holds.
    fn count(&self, table: Bytes) -> Result<u64> {
        self.read("counting records", |tx| Ok(tx.open_table(table)?.len()?))
    }
}

/// A rule id from its 8-byte big-endian key.
fn id_of(k: &[u8]) -> u64 {
    let mut id = [0u8; 8];
    let n = k.len().min(8);
    id[8 - n..].copy_from_slice(&k[..n]);
    u64::from_be_bytes(id)
}

/// Takes the next number from the `next_id` counter (rules and GC runs share it, as they
/// shared sled's id generator).
fn next_id(tx: &redb::WriteTransaction) -> Tx<u64> {
    let mut counters = tx.open_table(store::COUNTERS)?;
    let id = counters.get("next_id")?.map(|v| v.value()).unwrap_or(1);
    counters.insert("next_id", id + 1)?;
    Ok(id)
}

/// Collects at most `n` keys (mapped by `f`) and tells whether another one follows.
fn page<F>(keys: impl Iterator<Item = Tx<Vec<u8>>>, n: usize, f: F) -> Tx<(Vec<String>, bool)>
where
    F: Fn(&[u8]) -> String,
{
    let mut out = Vec::new();
    for k in keys {
        let k = k?;
        if out.len() == n {
            return Ok((out, true));
        }
        out.push(f(&k));
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
    fn compaction_gives_the_space_of_deleted_records_back() {
        let (t, m) = meta();
        let r: RepoName = "big/repo".parse().unwrap();
        let pad = vec![b'x'; 16 << 10];
        let digests: Vec<Digest> = (0..400u32)
            .map(|i| Digest::sha256_of(&i.to_be_bytes()))
            .collect();
        for (i, d) in digests.iter().enumerate() {
            let tag: Tag = format!("t{i}").parse().unwrap();
            m.put_manifest(&ManifestPut {
                repo: &r,
                digest: d,
                bytes: &pad,
                record: &ManifestRecord::default(),
                tag: Some(&tag),
                referrer: None,
                tag_immutable: false,
            })
            .unwrap();
        }
        m.flush_blocking().unwrap();
        for d in &digests {
            m.delete_manifest(&r, d).unwrap();
            m.delete_manifest_bytes(d).unwrap();
        }
        m.flush_blocking().unwrap();
        let (before, after) = m.compact().unwrap();
        assert!(before > 2 << 20, "{before}");
        assert!(after < before / 2, "{before} -> {after}");
        assert_eq!(
            std::fs::metadata(t.path().join("meta").join(store::FILE))
                .unwrap()
                .len(),
            after
        );
        // Still a working store.
        assert!(m.list_tags(&r, None, 10).unwrap().0.is_empty());
        m.put_repo_record(
            &r,
            &RepoRecord {
                created_at: 1,
                description: String::new(),
                public: false,
            },
        )
        .unwrap();
        assert!(m.repo_exists(&r).unwrap());
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
