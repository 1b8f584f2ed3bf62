//! Manifests, tags and referrers. A manifest is accepted only when everything it references
//! is already in the repository, so a pull of anything tagged can always complete.

use bytes::Bytes;

use super::{Registry, PAGE_MAX};
use crate::error::{Error, ErrorCode, Result};
use crate::meta::{now, ImmutabilityRecord, ManifestPut, ManifestRecord, PutResult};
use crate::oci::{Algorithm, Descriptor, Digest, Hasher, Manifest, Reference, RepoName};

/// A stored manifest as served: exact bytes, media type and digest.
#[derive(Clone)]
pub struct ManifestContent {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Bytes,
}

/// What a successful manifest PUT reports back.
pub struct PutOutcome {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// The referrers of a subject, ready to serialise as an image index.
pub struct Referrers {
    pub manifests: Vec<Descriptor>,
    pub filtered: bool,
    /// More referrers follow the last one of this page.
    pub more: bool,
}

fn digest_of(bytes: &[u8], algorithm: Algorithm) -> Digest {
    let mut h = Hasher::new(algorithm);
    h.update(bytes);
    h.finish()
}

impl Registry {
    fn manifest_unknown(reference: &Reference) -> Error {
        Error::code(ErrorCode::ManifestUnknown)
            .with_detail(serde_json::json!({ "reference": reference.to_string() }))
    }

    /// Resolves a tag or digest to the digest of a manifest stored in `repo`.
    fn resolve(&self, repo: &RepoName, reference: &Reference) -> Result<(Digest, ManifestRecord)> {
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => match self.meta().tag(repo, t)? {
                Some(rec) => rec.digest,
                None => return Err(Self::manifest_unknown(reference)),
            },
        };
        match self.meta().manifest(repo, &digest)? {
            Some(rec) => Ok((digest, rec)),
            None => Err(Self::manifest_unknown(reference)),
        }
    }

    /// A manifest by tag or digest (`GET`/`HEAD`). Its bytes are hashed again on every read
    /// (microseconds for a manifest's few kilobytes), so stored content that no longer
    /// matches its digest is never served.
    pub fn get_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<ManifestContent> {
        let (digest, rec) = self.resolve(repo, reference)?;
        let bytes = self.meta().manifest_bytes(&digest)?.ok_or_else(|| {
            tracing::error!(%repo, %digest, "manifest record without bytes");
            Self::manifest_unknown(reference)
        })?;
        let actual = digest_of(&bytes, digest.algorithm());
        if actual != digest {
            tracing::error!(%repo, %digest, %actual, "stored manifest is corrupt: not served");
            return Err(super::integrity::corrupt(
                format!("manifest {digest} is corrupt in this registry (its stored content failed an integrity check) and is not served; push the image again to repair it"),
                &digest,
            ));
        }
        Ok(ManifestContent {
            media_type: rec.media_type,
            digest,
            bytes: Bytes::copy_from_slice(&bytes),
        })
    }

    /// Stores a manifest a client pushed under a tag or its digest (`PUT`). The exact bytes
    /// are kept; the answer is sent only after the metadata is flushed.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<PutOutcome> {
        self.events().bytes_received(bytes.len() as u64);
        self.check_not_mirrored(repo)?;
        self.put_manifest_anywhere(repo, reference, content_type, bytes)
            .await
    }

    /// Stores a manifest in any namespace, a mirror's included: [`Registry::put_manifest`]
    /// without the refusal of client pushes into mirrored namespaces, for imports (a bundle
    /// can seed a mirror's cache).
    pub async fn put_manifest_anywhere(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<PutOutcome> {
        self.check_may_receive(repo)?;
        let manifest = Manifest::parse(content_type, bytes)
            .map_err(|e| Error::api(ErrorCode::ManifestInvalid, e.to_string()))?;
        let (digest, tag) = match reference {
            Reference::Digest(expected) => {
                let actual = digest_of(bytes, expected.algorithm());
                if &actual != expected {
                    return Err(Error::api(
                        ErrorCode::DigestInvalid,
                        format!("manifest has digest {actual}, not {expected}"),
                    ));
                }
                (actual, None)
            }
            Reference::Tag(t) => (Digest::sha256_of(bytes), Some(t)),
        };
        self.check_quota_adding(
            repo,
            Some((&digest, bytes.len() as u64, super::quota::Content::Manifest)),
        )?;
        // Manifests fill a disk too (4 MiB indexes, one after another): below the floor
        // they are refused like uploads, before the metadata store can run out of space.
        self.check_free_space().await?;
        let missing = |d: &Digest, what: &str| {
            Error::api(
                ErrorCode::ManifestBlobUnknown,
                format!("{what} {d} is not in repository {repo}: push it first"),
            )
            .with_detail(serde_json::json!({ "digest": d.to_string() }))
        };
        // Held until the manifest is stored: garbage collection must not delete a blob
        // between this check and the transaction that references it.
        let _shared = self.inner.gc_lock.read().await;
        // A descriptor's size must be the size of what it names: clients verify it and fail
        // the pull otherwise, and a wrong size is how a manifest would smuggle a claim past
        // checks that trust descriptors (negative or non-numeric sizes fail parsing).
        let wrong_size = |d: &Descriptor, actual: u64| {
            Error::api(
                ErrorCode::ManifestInvalid,
                format!(
                    "descriptor of {} says {} bytes, but it has {actual}",
                    d.digest, d.size
                ),
            )
            .with_detail(serde_json::json!({ "digest": d.digest.to_string(), "size": d.size, "actual": actual }))
        };
        for d in manifest.required_descriptors() {
            match self.meta().link(repo.as_str(), &d.digest)? {
                None => return Err(missing(&d.digest, "blob")),
                Some(l) if l.size != d.size => return Err(wrong_size(d, l.size)),
                Some(_) => {}
            }
        }
        // A foreign layer need not be here, but when the repository holds its digest a client
        // may take it from here: its size must be true then too.
        for d in manifest.layers.iter().filter(|l| l.is_foreign()) {
            if let Some(l) = self.meta().link(repo.as_str(), &d.digest)? {
                if l.size != d.size {
                    return Err(wrong_size(d, l.size));
                }
            }
        }
        for child in &manifest.manifests {
            if child.digest == digest {
                return Err(Error::api(
                    ErrorCode::ManifestInvalid,
                    "an index cannot contain itself",
                ));
            }
            match self.meta().manifest(repo, &child.digest)? {
                None => return Err(missing(&child.digest, "manifest")),
                Some(m) if m.size != child.size => return Err(wrong_size(child, m.size)),
                Some(_) => {}
            }
        }
        self.store_manifest(repo, &digest, tag, &manifest, bytes)
            .await?;
        Ok(PutOutcome {
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            digest,
        })
    }

    /// Records a parsed manifest (and moves `tag` to it), then flushes. Refuses a manifest
    /// that is its own subject, and an immutable tag that would move.
    pub(super) async fn store_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        tag: Option<&crate::oci::Tag>,
        manifest: &Manifest,
        bytes: &[u8],
    ) -> Result<()> {
        let digest = digest.clone();
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        if subject.as_ref() == Some(&digest) {
            return Err(Error::api(
                ErrorCode::ManifestInvalid,
                "a manifest cannot be its own subject",
            ));
        }
        let record = ManifestRecord {
            media_type: manifest.kind.media_type().to_string(),
            size: bytes.len() as u64,
            // Once each: a manifest may list one layer thousands of times.
            blobs: {
                let mut seen = std::collections::HashSet::new();
                manifest
                    .required_blobs()
                    .filter(|d| seen.insert(*d))
                    .cloned()
                    .collect()
            },
            children: manifest
                .manifests
                .iter()
                .map(|m| m.digest.clone())
                .collect(),
            subject: subject.clone(),
            pushed_at: now(),
        };
        let referrer_desc = subject.as_ref().map(|_| Descriptor {
            media_type: record.media_type.clone(),
            digest: digest.clone(),
            size: record.size,
            urls: Vec::new(),
            artifact_type: manifest.effective_artifact_type(),
            annotations: manifest.annotations.clone(),
            platform: None,
        });
        let stored = self.meta().put_manifest(&ManifestPut {
            repo,
            digest: &digest,
            bytes,
            record: &record,
            tag,
            referrer: subject.as_ref().zip(referrer_desc.as_ref()),
            tag_immutable: tag.is_some_and(|t| self.immutable_rule(repo, t.as_str()).is_some()),
        })?;
        if let (PutResult::TagImmutable(_), Some(t)) = (&stored, tag) {
            return Err(self.immutable_error(repo, t.as_str(), "moved to another image"));
        }
        self.meta().flush().await
    }

    /// DENIED naming the immutability rule; docker prints the message.
    pub(super) fn immutable_error(&self, repo: &RepoName, tag: &str, what: &str) -> Error {
        let (id, rule) = self.immutable_rule(repo, tag).unwrap_or((
            0,
            ImmutabilityRecord {
                repos: "?".into(),
                tags: "?".into(),
            },
        ));
        Error::api(
            ErrorCode::Denied,
            format!(
                "tag {tag} of {repo} is immutable and cannot be {what} (immutability rule {id}: repositories {} tags {}); push under a new tag",
                rule.repos, rule.tags
            ),
        )
        .with_detail(serde_json::json!({ "tag": tag, "rule": id, "repositories": rule.repos, "tags": rule.tags }))
    }

    /// The immutable tag of `repo` from which `digest` (a manifest or blob) can be reached:
    /// the tag's own manifest, the children of an index it points at, and the config and
    /// layers of those. Deleting any of them would break an image that may never change, so
    /// all of it is as immutable as the tag.
    pub(super) fn immutable_holder(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<String>> {
        for (tag, target) in self.meta().tags_of(repo)? {
            if self.immutable_rule(repo, &tag).is_none() {
                continue;
            }
            let mut todo = vec![target];
            let mut seen = std::collections::HashSet::new();
            while let Some(m) = todo.pop() {
                if &m == digest {
                    return Ok(Some(tag));
                }
                if !seen.insert(m.clone()) {
                    continue;
                }
                if let Some(rec) = self.meta().manifest(repo, &m)? {
                    if rec.blobs.contains(digest) {
                        return Ok(Some(tag));
                    }
                    todo.extend(rec.children);
                }
            }
        }
        Ok(None)
    }

    /// Deletes by digest (the manifest and every tag on it) or by tag (only the tag). Refused
    /// when an immutable tag would go or change.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        match reference {
            Reference::Tag(t) if self.immutable_rule(repo, t.as_str()).is_some() => {
                return Err(self.immutable_error(repo, t.as_str(), "deleted"));
            }
            Reference::Digest(d) => {
                if let Some(tag) = self.immutable_holder(repo, d)? {
                    return Err(self.immutable_error(
                        repo,
                        &tag,
                        &format!("changed by deleting {d}, which it points at"),
                    ));
                }
            }
            Reference::Tag(_) => {}
        }
        let found = match reference {
            Reference::Digest(d) => self.meta().delete_manifest(repo, d)?,
            Reference::Tag(t) => self.meta().delete_tag(repo, t)?,
        };
        if !found {
            return Err(Self::manifest_unknown(reference));
        }
        self.meta().flush().await
    }

    /// Manifests in `repo` whose subject is `subject`, optionally only of one artifact type.
    pub fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: usize,
    ) -> Result<Referrers> {
        let mut manifests = self.meta().referrers(repo, subject)?;
        if let Some(t) = artifact_type {
            manifests.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        // Pages in digest order, after `last`, as tags are paged by name.
        manifests.sort_by_cached_key(|d| d.digest.to_string());
        if let Some(last) = last {
            manifests.retain(|d| d.digest.to_string().as_str() > last);
        }
        let n = n.min(PAGE_MAX);
        let more = manifests.len() > n;
        manifests.truncate(n);
        Ok(Referrers {
            manifests,
            filtered: artifact_type.is_some(),
            more,
        })
    }
}
