//! Content that arrives from somewhere other than a client's push: a mirror's upstream, a
//! sync run, a bundle. The `edge` layer fetches it and decides what to keep; this is the
//! registry's side of it, kept narrow: a private file for bytes in flight that becomes a blob
//! only once it is verified, links for bytes already here, manifests stored without the
//! refusal that client pushes into a mirrored namespace meet, and the records that say when
//! a mirrored tag was last confirmed.
//!
//! A mirrored namespace belongs to whoever fills it. The registry does not know mirrors; it
//! asks a [`Mirrored`] (installed by the edge) whether a repository is one, to refuse client
//! writes there and to tell fsck that missing bytes there are fetched again on the next pull.

use std::sync::Arc;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{now, CacheRecord};
use crate::oci::{Digest, Manifest, RepoName, Tag, UploadId};
use crate::storage::{Storage, UploadFile};

/// Which mirror fills a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorOf {
    /// The mirror's name in the configuration.
    pub name: String,
    /// Its upstream, for messages.
    pub url: String,
}

/// Answers whether a repository is filled by a mirror (see the module documentation).
pub trait Mirrored: Send + Sync {
    fn mirror_of(&self, repo: &RepoName) -> Option<MirrorOf>;
}

/// Nobody mirrors anything: the registry on its own.
pub(super) struct NoMirrors;

impl Mirrored for NoMirrors {
    fn mirror_of(&self, _: &RepoName) -> Option<MirrorOf> {
        None
    }
}

/// A blob on its way in: a private upload file, hashed as it is written, that nobody sees
/// until [`Registry::commit_incoming`] makes it a blob. Dropped uncommitted, it is removed.
pub struct Incoming {
    id: UploadId,
    file: Option<UploadFile>,
    storage: Storage,
}

impl Incoming {
    /// Appends bytes (blocking: call it from a blocking thread).
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.append(bytes),
            None => Err(std::io::Error::other(
                "the incoming blob was already committed",
            )),
        }
    }

    pub fn len(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SHA-256 digest of what was written so far.
    pub fn sha256(&self) -> Option<Digest> {
        self.file.as_ref().map(|f| f.digest())
    }

    /// Everything written (for manifests and configs, which are small).
    pub fn read_all(&self) -> std::io::Result<Vec<u8>> {
        match &self.file {
            Some(f) => f.read_all(),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            drop(f);
            let _ = self.storage.remove_upload(&self.id);
        }
    }
}

impl Registry {
    /// Installs who answers whether a repository is mirrored (the edge, at start).
    pub fn set_mirrored(&self, mirrored: Arc<dyn Mirrored>) {
        *self
            .inner
            .policy
            .mirrored
            .write()
            .unwrap_or_else(|p| p.into_inner()) = mirrored;
    }

    /// The mirror that fills `repo`, if any.
    pub fn mirror_of(&self, repo: &RepoName) -> Option<MirrorOf> {
        let m = self
            .inner
            .policy
            .mirrored
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        m.mirror_of(repo)
    }

    /// Refuses client writes (pushes, deletes) into a mirrored namespace.
    pub fn check_not_mirrored(&self, repo: &RepoName) -> Result<()> {
        let Some(m) = self.mirror_of(repo) else {
            return Ok(());
        };
        Err(Error::api(
            crate::error::ErrorCode::Denied,
            format!(
                "repository {repo} is a read-only mirror of {} (mirror {:?}): push to a repository outside the mirrored namespace",
                m.url, m.name
            ),
        )
        .with_detail(serde_json::json!({ "name": repo.as_str(), "mirror": m.name })))
    }

    /// Opens a private file for a blob arriving from elsewhere. Free space is not checked
    /// here: a mirror passes a blob through uncached when the disk is nearly full, a sync
    /// refuses (see [`Registry::check_free_space`]).
    pub fn open_incoming(&self) -> Result<Incoming> {
        let id = UploadId::random().map_err(|e| Error::internal("drawing an upload id", e))?;
        let file = self
            .storage()
            .create_upload(&id)
            .map_err(super::pump::storage_error)?;
        Ok(Incoming {
            id,
            file: Some(file),
            storage: self.storage().clone(),
        })
    }

    /// Makes a verified incoming blob the blob `digest`, linked into each of `repos`, and
    /// flushes. The caller has checked the bytes against `digest`; a SHA-256 digest is
    /// checked again here, since the file hashed it anyway.
    pub async fn commit_incoming(
        &self,
        mut incoming: Incoming,
        digest: &Digest,
        repos: &[RepoName],
    ) -> Result<()> {
        let file = incoming
            .file
            .take()
            .ok_or_else(|| Error::internal("committing a blob", "committed twice"))?;
        if digest.algorithm() == crate::oci::Algorithm::Sha256 && &file.digest() != digest {
            let _ = self.storage().remove_upload(&incoming.id);
            return Err(Error::internal(
                "committing a blob",
                format!("its bytes have digest {}, not {digest}", file.digest()),
            ));
        }
        let size = file.len();
        {
            // Shared with other commits, exclusive with GC and a scrub condemning this blob.
            let _shared = self.inner.gc_lock.read().await;
            if let Err(e) = self.commit_blob(&incoming.id, file, digest).await {
                let _ = self.storage().remove_upload(&incoming.id);
                return Err(e);
            }
            for repo in repos {
                self.meta().link_blob(repo, digest, size)?;
            }
        }
        self.meta().flush().await
    }

    /// Whether `repo` holds `digest` with bytes not recorded corrupt: nothing to fetch.
    pub fn holds_sound(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self.meta().is_linked(repo, digest)? && !self.meta().is_corrupt(digest)?)
    }

    /// Links `digest` into `repo` when its bytes are already here (for another repository)
    /// and not recorded corrupt, and flushes; their size, or `None` when they must be
    /// fetched. The caller has confirmed `repo` may have them.
    pub async fn link_present(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        if self.meta().is_corrupt(digest)? {
            return Ok(None);
        }
        let size = {
            let _shared = self.inner.gc_lock.read().await;
            let Some(size) = self.storage().blob_size(digest).ok().flatten() else {
                return Ok(None);
            };
            self.meta().link_blob(repo, digest, size)?;
            size
        };
        self.meta().flush().await?;
        Ok(Some(size))
    }

    /// Stores a manifest fetched from another registry (its blobs linked already, or
    /// following as they are pulled) and moves `tag` to it, then flushes.
    pub async fn store_fetched_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        tag: Option<&Tag>,
        manifest: &Manifest,
        bytes: &[u8],
    ) -> Result<()> {
        self.store_manifest(repo, digest, tag, manifest, bytes)
            .await
    }

    /// When a mirrored tag was last confirmed with its upstream and last pulled.
    pub fn mirrored_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<CacheRecord>> {
        self.meta().cache_record(repo, tag)
    }

    /// Records that a mirrored tag was just pulled (not flushed: a lost stamp costs only an
    /// earlier eviction).
    pub fn mark_used(&self, repo: &RepoName, tag: &Tag, rec: &CacheRecord) -> Result<()> {
        self.meta().put_cache_record(
            repo,
            tag,
            &CacheRecord {
                used_at: now(),
                ..rec.clone()
            },
        )
    }

    /// Records that a mirrored tag was just confirmed with its upstream.
    pub fn mark_checked(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let at = now();
        self.meta().put_cache_record(
            repo,
            tag,
            &CacheRecord {
                checked_at: at,
                used_at: at,
            },
        )
    }

    /// A blob's file for a copy that leaves the registry (a bundle), refused when the blob
    /// is recorded corrupt.
    pub fn open_blob_file(&self, digest: &Digest) -> Result<std::fs::File> {
        self.check_not_corrupt(digest, false)?;
        self.storage()
            .open_blob(digest)
            .map_err(|e| Error::internal("reading a blob", e))?
            .ok_or_else(|| Self::blob_unknown(digest))
    }
}
