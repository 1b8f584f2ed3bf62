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

mod cache;
mod durability;
mod integrity;
mod records;

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

    // ---- repositories -------------------------------------------------------------------

    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        self.repos
            .contains_key(repo.as_str())
            .map_err(db_err("reading a repository"))
    }

    pub fn repo_record(&self, repo: &RepoName) -> Result<Option<RepoRecord>> {
        Self::get_json(&self.repos, repo.as_str().as_bytes())
    }

    pub fn put_repo_record(&self, repo: &RepoName, rec: &RepoRecord) -> Result<()> {
        self.repos
            .insert(repo.as_str(), encode(rec))
            .map(|_| ())
            .map_err(db_err("storing a repository"))
    }

    /// The blobs linked into a repository, with their sizes.
    pub fn links_of(&self, repo: &RepoName) -> Result<Vec<(Digest, LinkRecord)>> {
        let pre = prefix(repo.as_str());
        let mut out = Vec::new();
        for kv in self.links.scan_prefix(&pre) {
            let (k, v) = kv.map_err(db_err("reading blob links"))?;
            if let Ok(d) = String::from_utf8_lossy(&k[pre.len()..]).parse::<Digest>() {
                out.push((d, decode(&v)?));
            }
        }
        Ok(out)
    }

    /// The manifests of a repository.
    pub fn manifests_of(&self, repo: &RepoName) -> Result<Vec<(Digest, ManifestRecord)>> {
        let pre = prefix(repo.as_str());
        let mut out = Vec::new();
        for kv in self.manifests.scan_prefix(&pre) {
            let (k, v) = kv.map_err(db_err("reading manifests"))?;
            if let Ok(d) = String::from_utf8_lossy(&k[pre.len()..]).parse::<Digest>() {
                out.push((d, decode(&v)?));
            }
        }
        Ok(out)
    }

    /// Removes a whole repository's metadata: tags first (nothing is pullable from then
    /// on), then manifests, referrers, blob links and the repository record. Bytes stay for
    /// garbage collection.
    pub fn delete_repository(&self, repo: &RepoName) -> Result<bool> {
        if !self.repo_exists(repo)? {
            return Ok(false);
        }
        let pre = prefix(repo.as_str());
        for tree in [&self.tags, &self.manifests, &self.referrers, &self.links] {
            let mut batch = sled::Batch::default();
            for k in tree.scan_prefix(&pre).keys() {
                batch.remove(k.map_err(db_err("listing a repository"))?);
            }
            tree.apply_batch(batch)
                .map_err(db_err("deleting a repository"))?;
        }
        self.repos
            .remove(repo.as_str())
            .map_err(db_err("deleting a repository"))?;
        Ok(true)
    }

    /// Repository names in order that pass `visible`, strictly after `last`, at most `n`;
    /// plus whether more follow.
    pub fn list_repos(
        &self,
        last: Option<&str>,
        n: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<String>, bool)> {
        let iter = match last {
            Some(l) => self.repos.range::<&[u8], _>((
                std::ops::Bound::Excluded(l.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.repos.iter(),
        };
        let visible_keys = iter.keys().filter(|k| match k {
            Ok(k) => visible(&String::from_utf8_lossy(k)),
            Err(_) => true,
        });
        page(visible_keys, n, |k| {
            Ok(String::from_utf8_lossy(&k).into_owned())
        })
    }

    // ---- blob links -----------------------------------------------------------------------

    pub fn is_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.links
            .contains_key(key2(repo.as_str(), &digest.to_string()))
            .map_err(db_err("reading a blob link"))
    }

    /// Links a committed blob into a repository (creating the repository record if new).
    pub fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        let link = encode(&LinkRecord {
            size,
            linked_at: now(),
        });
        let repo_rec = encode(&RepoRecord {
            created_at: now(),
            description: String::new(),
            public: false,
        });
        let _exclusive = self.durability.exclusive();
        (&self.links, &self.repos)
            .transaction(|(links, repos)| {
                links.insert(key2(repo.as_str(), &digest.to_string()), link.as_slice())?;
                if repos.get(repo.as_str())?.is_none() {
                    repos.insert(repo.as_str(), repo_rec.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err("linking a blob"))
    }

    pub fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.links
            .remove(key2(repo.as_str(), &digest.to_string()))
            .map(|old| old.is_some())
            .map_err(db_err("removing a blob link"))
    }

    // ---- manifests ------------------------------------------------------------------------

    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        match self
            .manifests
            .get(key2(repo.as_str(), &digest.to_string()))
            .map_err(db_err("reading a manifest record"))?
        {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn manifest_bytes(&self, digest: &Digest) -> Result<Option<sled::IVec>> {
        self.manifest_bytes
            .get(digest.to_key())
            .map_err(db_err("reading manifest bytes"))
    }

    /// Stores a manifest, its tag and its referrer entry atomically.
    pub fn put_manifest(&self, put: &ManifestPut<'_>) -> Result<PutResult> {
        let repo = put.repo.as_str();
        let dkey = put.digest.to_string();
        let record = encode(put.record);
        let tag_rec = encode(&TagRecord {
            digest: put.digest.clone(),
            updated_at: put.record.pushed_at,
        });
        let repo_rec = encode(&RepoRecord {
            created_at: now(),
            description: String::new(),
            public: false,
        });
        let referrer = put.referrer.map(|(subject, desc)| {
            let mut k = key2(repo, &subject.to_string());
            k.push(0);
            k.extend_from_slice(dkey.as_bytes());
            (k, encode(desc))
        });
        let link_keys: Vec<Vec<u8>> = put
            .record
            .blobs
            .iter()
            .map(|d| key2(repo, &d.to_string()))
            .collect();
        let touched_at = now();
        let _exclusive = self.durability.exclusive();
        let result = (
            &self.manifests,
            &self.manifest_bytes,
            &self.tags,
            &self.referrers,
            &self.repos,
            &self.links,
        )
            .transaction(|(manifests, bytes, tags, referrers, repos, links)| {
                if let (Some(tag), true) = (put.tag, put.tag_immutable) {
                    if let Some(old) = tags.get(key2(repo, tag.as_str()))? {
                        let old: TagRecord = serde_json::from_slice(&old)
                            .map_err(|_| ConflictableTransactionError::Abort(None))?;
                        if &old.digest != put.digest {
                            return Err(ConflictableTransactionError::Abort(Some(old.digest)));
                        }
                    }
                }
                manifests.insert(key2(repo, &dkey), record.as_slice())?;
                bytes.insert(dkey.as_bytes(), put.bytes)?;
                if let Some(tag) = put.tag {
                    tags.insert(key2(repo, tag.as_str()), tag_rec.as_slice())?;
                }
                if let Some((k, v)) = &referrer {
                    referrers.insert(k.as_slice(), v.as_slice())?;
                }
                if repos.get(repo)?.is_none() {
                    repos.insert(repo, repo_rec.as_slice())?;
                }
                // Referencing a blob renews its link, so a garbage collection that marked
                // before this manifest existed sees the blob as freshly used and keeps it.
                for k in &link_keys {
                    if let Some(v) = links.get(k.as_slice())? {
                        if let Ok(mut rec) = serde_json::from_slice::<LinkRecord>(&v) {
                            rec.linked_at = touched_at;
                            links.insert(k.as_slice(), encode(&rec))?;
                        }
                    }
                }
                Ok::<_, ConflictableTransactionError<Option<Digest>>>(())
            });
        match result {
            Ok(()) => Ok(PutResult::Stored),
            Err(TransactionError::Abort(Some(existing))) => Ok(PutResult::TagImmutable(existing)),
            Err(TransactionError::Abort(None)) => Err(Error::internal(
                "storing a manifest",
                "unreadable tag record",
            )),
            Err(TransactionError::Storage(e)) => Err(db_err("storing a manifest")(e)),
        }
    }

    // ---- garbage collection -----------------------------------------------------------

    /// Every manifest record of every repository: (repository, digest, record).
    pub fn all_manifests(&self) -> Result<Vec<(String, Digest, ManifestRecord)>> {
        self.manifests
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("reading manifests"))?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let (repo, digest) = key
                    .split_once('\0')
                    .ok_or_else(|| Error::internal("reading manifests", "malformed key"))?;
                let digest: Digest = digest
                    .parse()
                    .map_err(|_| Error::internal("reading manifests", "malformed digest"))?;
                Ok((repo.to_string(), digest, decode(&v)?))
            })
            .collect()
    }

    /// Every tag of every repository: (repository, digest it points at).
    pub fn all_tags(&self) -> Result<Vec<(String, Digest)>> {
        let mut out = Vec::new();
        for kv in self.tags.iter() {
            let (k, v) = kv.map_err(db_err("reading tags"))?;
            let Some(pos) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let rec: TagRecord = decode(&v)?;
            out.push((String::from_utf8_lossy(&k[..pos]).into_owned(), rec.digest));
        }
        Ok(out)
    }

    /// Every blob link: (key, digest, record), to find the links of collected blobs.
    pub fn all_links(&self) -> Result<Vec<(sled::IVec, Digest, LinkRecord)>> {
        let mut out = Vec::new();
        for kv in self.links.iter() {
            let (k, v) = kv.map_err(db_err("reading blob links"))?;
            let Some(pos) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let Ok(digest) = String::from_utf8_lossy(&k[pos + 1..]).parse::<Digest>() else {
                continue;
            };
            out.push((k.clone(), digest, decode(&v)?));
        }
        Ok(out)
    }

    pub fn remove_link_key(&self, key: &[u8]) -> Result<()> {
        self.links
            .remove(key)
            .map(|_| ())
            .map_err(db_err("removing a blob link"))
    }

    /// The link record of one blob in one repository.
    pub fn link(&self, repo: &str, digest: &Digest) -> Result<Option<LinkRecord>> {
        Self::get_json(&self.links, &key2(repo, &digest.to_string()))
    }

    /// Manifest contents no manifest record refers to any more.
    pub fn orphan_manifest_bytes(
        &self,
        live: &std::collections::HashSet<Digest>,
    ) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for k in self.manifest_bytes.iter().keys() {
            let k = k.map_err(db_err("reading manifest bytes"))?;
            if let Ok(d) = String::from_utf8_lossy(&k).parse::<Digest>() {
                if !live.contains(&d) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    pub fn delete_manifest_bytes(&self, digest: &Digest) -> Result<()> {
        self.manifest_bytes
            .remove(digest.to_key())
            .map(|_| ())
            .map_err(db_err("removing manifest bytes"))
    }

    /// Every upload session: (id, record).
    pub fn uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>> {
        Ok(Self::list_json::<UploadRecord>(&self.uploads)?
            .into_iter()
            .filter_map(|(k, v)| {
                String::from_utf8_lossy(&k)
                    .parse::<UploadId>()
                    .ok()
                    .map(|id| (id, v))
            })
            .collect())
    }

    /// Records a garbage collection run (newest kept last; the 100 latest are kept).
    pub fn record_gc_run(&self, run: &serde_json::Value) -> Result<()> {
        let id = self
            .db
            .generate_id()
            .map_err(db_err("numbering a GC run"))?;
        self.gc_runs
            .insert(
                id.to_be_bytes(),
                serde_json::to_vec(run).unwrap_or_default(),
            )
            .map_err(db_err("recording a GC run"))?;
        while self.gc_runs.len() > 100 {
            match self.gc_runs.pop_min().map_err(db_err("trimming GC runs"))? {
                Some(_) => {}
                None => break,
            }
        }
        Ok(())
    }

    pub fn gc_runs(&self) -> Result<Vec<serde_json::Value>> {
        self.gc_runs
            .iter()
            .values()
            .map(|v| {
                let v = v.map_err(db_err("reading GC runs"))?;
                serde_json::from_slice(&v).map_err(|e| Error::internal("reading GC runs", e))
            })
            .collect()
    }

    /// Digests of the tags in `repo` (tag name, digest).
    pub fn tags_of(&self, repo: &RepoName) -> Result<Vec<(String, Digest)>> {
        let pre = prefix(repo.as_str());
        self.tags
            .scan_prefix(&pre)
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("reading tags"))?;
                let rec: TagRecord = decode(&v)?;
                Ok((
                    String::from_utf8_lossy(&k[pre.len()..]).into_owned(),
                    rec.digest,
                ))
            })
            .collect()
    }

    /// Removes a manifest from a repository with every tag pointing at it and its referrer
    /// entry. The bytes stay (shared by content) until garbage collection.
    pub fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let Some(record) = self.manifest(repo, digest)? else {
            return Ok(false);
        };
        let tag_keys: Vec<sled::IVec> = self
            .tags
            .scan_prefix(prefix(repo.as_str()))
            .filter_map(|kv| kv.ok())
            .filter(|(_, v)| {
                decode::<TagRecord>(v)
                    .map(|t| &t.digest == digest)
                    .unwrap_or(false)
            })
            .map(|(k, _)| k)
            .collect();
        let referrer_key = record.subject.as_ref().map(|s| {
            let mut k = key2(repo.as_str(), &s.to_string());
            k.push(0);
            k.extend_from_slice(digest.to_string().as_bytes());
            k
        });
        let _exclusive = self.durability.exclusive();
        (&self.manifests, &self.tags, &self.referrers)
            .transaction(|(manifests, tags, referrers)| {
                manifests.remove(key2(repo.as_str(), &digest.to_string()))?;
                for k in &tag_keys {
                    tags.remove(k)?;
                }
                if let Some(k) = &referrer_key {
                    referrers.remove(k.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err("deleting a manifest"))?;
        Ok(true)
    }

    // ---- tags -----------------------------------------------------------------------------

    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<TagRecord>> {
        match self
            .tags
            .get(key2(repo.as_str(), tag.as_str()))
            .map_err(db_err("reading a tag"))?
        {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        self.tags
            .remove(key2(repo.as_str(), tag.as_str()))
            .map(|old| old.is_some())
            .map_err(db_err("deleting a tag"))
    }

    /// Tags of a repository in lexical order, strictly after `last`, at most `n`.
    pub fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool)> {
        let pre = prefix(repo.as_str());
        let start = match last {
            Some(l) => std::ops::Bound::Excluded(key2(repo.as_str(), l)),
            None => std::ops::Bound::Included(pre.clone()),
        };
        let iter = self
            .tags
            .range((start, std::ops::Bound::Unbounded))
            .keys()
            .take_while(|k| k.as_ref().map(|k| k.starts_with(&pre)).unwrap_or(true));
        let plen = pre.len();
        page(iter, n, |k| {
            Ok(String::from_utf8_lossy(&k[plen..]).into_owned())
        })
    }

    // ---- referrers ------------------------------------------------------------------------

    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let mut pre = key2(repo.as_str(), &subject.to_string());
        pre.push(0);
        self.referrers
            .scan_prefix(pre)
            .values()
            .map(|v| decode(&v.map_err(db_err("reading referrers"))?))
            .collect()
    }

    // ---- uploads --------------------------------------------------------------------------

    pub fn put_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        self.uploads
            .insert(id.as_str(), encode(record))
            .map(|_| ())
            .map_err(db_err("recording an upload"))
    }

    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        match self
            .uploads
            .get(id.as_str())
            .map_err(db_err("reading an upload"))?
        {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn remove_upload(&self, id: &UploadId) -> Result<()> {
        self.uploads
            .remove(id.as_str())
            .map(|_| ())
            .map_err(db_err("removing an upload"))
    }

    /// Completes an upload in one transaction: forget the session, link the blob.
    pub fn finish_upload(
        &self,
        id: &UploadId,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let link = encode(&LinkRecord {
            size,
            linked_at: now(),
        });
        let repo_rec = encode(&RepoRecord {
            created_at: now(),
            description: String::new(),
            public: false,
        });
        let _exclusive = self.durability.exclusive();
        (&self.uploads, &self.links, &self.repos)
            .transaction(|(uploads, links, repos)| {
                uploads.remove(id.as_str())?;
                links.insert(key2(repo.as_str(), &digest.to_string()), link.as_slice())?;
                if repos.get(repo.as_str())?.is_none() {
                    repos.insert(repo.as_str(), repo_rec.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err("finishing an upload"))
    }
}

impl Meta {
    // ---- users, rules, refresh tokens ------------------------------------------------------

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

    // ---- records under numeric ids: access, immutability, retention rules, quotas ----

    /// Every record of an id-keyed tree, by id.
    fn by_id<T: serde::de::DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<(u64, T)>> {
        Ok(Self::list_json(tree)?
            .into_iter()
            .map(|(k, v)| (id_of(&k), v))
            .collect())
    }

    /// Stores a record under a fresh id (ids are unique across all such trees).
    fn insert_new<T: serde::Serialize>(&self, tree: &sled::Tree, rec: &T) -> Result<u64> {
        let id = self.db.generate_id().map_err(db_err("numbering a rule"))? + 1;
        tree.insert(id.to_be_bytes(), encode(rec))
            .map_err(db_err("storing a rule"))?;
        Ok(id)
    }

    /// Removes a record; whether it existed.
    fn remove_id(tree: &sled::Tree, id: u64) -> Result<bool> {
        tree.remove(id.to_be_bytes())
            .map(|o| o.is_some())
            .map_err(db_err("deleting a rule"))
    }

    pub fn rules(&self) -> Result<Vec<(u64, RuleRecord)>> {
        Self::by_id(&self.rules)
    }
    pub fn add_rule(&self, rule: &RuleRecord) -> Result<u64> {
        self.insert_new(&self.rules, rule)
    }
    pub fn delete_rule(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.rules, id)
    }
    pub fn immutability_rules(&self) -> Result<Vec<(u64, ImmutabilityRecord)>> {
        Self::by_id(&self.immutability)
    }
    pub fn add_immutability_rule(&self, rule: &ImmutabilityRecord) -> Result<u64> {
        self.insert_new(&self.immutability, rule)
    }
    pub fn delete_immutability_rule(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.immutability, id)
    }
    pub fn retention_rules(&self) -> Result<Vec<(u64, RetentionRecord)>> {
        Self::by_id(&self.retention)
    }
    pub fn add_retention_rule(&self, rule: &RetentionRecord) -> Result<u64> {
        self.insert_new(&self.retention, rule)
    }
    pub fn delete_retention_rule(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.retention, id)
    }
    pub fn quotas(&self) -> Result<Vec<(u64, QuotaRecord)>> {
        Self::by_id(&self.quotas)
    }
    pub fn add_quota(&self, q: &QuotaRecord) -> Result<u64> {
        self.insert_new(&self.quotas, q)
    }
    pub fn delete_quota(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.quotas, id)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        Self::get_json(&self.users, name.as_bytes())
    }

    pub fn put_user(&self, name: &str, rec: &UserRecord) -> Result<()> {
        self.users
            .insert(name.as_bytes(), encode(rec))
            .map(|_| ())
            .map_err(db_err("storing a user"))
    }

    /// Deletes a user and every refresh token issued to it.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let existed = self
            .users
            .remove(name.as_bytes())
            .map_err(db_err("deleting a user"))?
            .is_some();
        self.revoke_refresh_tokens(name)?;
        Ok(existed)
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        Ok(Self::list_json(&self.users)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    pub fn refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>> {
        Self::get_json(&self.refresh, hash.as_bytes())
    }

    pub fn put_refresh_token(&self, hash: &str, rec: &RefreshRecord) -> Result<()> {
        self.refresh
            .insert(hash.as_bytes(), encode(rec))
            .map(|_| ())
            .map_err(db_err("storing a refresh token"))
    }

    pub fn revoke_refresh_tokens(&self, user: &str) -> Result<usize> {
        let mut n = 0;
        for (k, rec) in Self::list_json::<RefreshRecord>(&self.refresh)? {
            if rec.user == user {
                self.refresh
                    .remove(k)
                    .map_err(db_err("revoking a refresh token"))?;
                n += 1;
            }
        }
        Ok(n)
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
