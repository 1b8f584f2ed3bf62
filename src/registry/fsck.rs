//! The scrub (`edgeyard fsck`): re-hash every blob file, check every manifest's content and
//! references, every link, tag and upload; report problems, record corrupt blobs so they
//! are never served again, and optionally quarantine their files. Nothing is ever deleted.
//!
//! Safe on a running server: hashing runs on one blocking thread, one file at a time with a
//! fixed buffer, so pushes and pulls go on. A blob found bad is condemned under the GC
//! lock, and only if its file is still the one that was read (a concurrent upload may have
//! just replaced it with good bytes). The metadata checks hold the GC lock for reading, so
//! garbage collection cannot delete between a look-up and the next.
//!
//! Healing is the commit's (`integrity`): the next upload (or mirror fetch) of a corrupt
//! blob's digest replaces the file and clears the mark.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

pub use super::fsck_report::{FsckOptions, FsckReport, Problem, ProblemKind, Severity};
use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{now, CorruptRecord};
use crate::oci::{Digest, Hasher, Manifest, RepoName, UploadId};
use crate::storage::{BlobEntry, Hashed, HASH_BUFFER};

/// Upload files without a session record younger than this are left out of the report:
/// mirror fetches and bundle imports stage files without one while they run.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A manifest's stored content, checked once per digest (repositories share it).
enum Content {
    Missing,
    Corrupt(Digest),
    Invalid(String),
    Sound {
        blobs: Vec<Digest>,
        children: Vec<Digest>,
    },
}

fn digest_of(bytes: &[u8], like: &Digest) -> Digest {
    let mut h = Hasher::new(like.algorithm());
    h.update(bytes);
    h.finish()
}

impl Registry {
    /// Runs one scrub.
    pub async fn fsck(&self, o: FsckOptions) -> Result<FsckReport> {
        self.fsck_reporting(o, super::no_progress()).await
    }

    /// [`Registry::fsck`], telling `progress` how many blobs are hashed.
    pub async fn fsck_reporting(
        &self,
        o: FsckOptions,
        progress: super::Progress,
    ) -> Result<FsckReport> {
        let reg = self.clone();
        let report =
            match tokio::task::spawn_blocking(move || reg.fsck_blocking(o, &progress)).await {
                Ok(r) => r?,
                Err(e) => return Err(Error::internal("checking the store", e)),
            };
        self.meta().flush().await?;
        tracing::info!(
            blobs = report.blobs_checked,
            bytes = report.bytes_hashed,
            manifests = report.manifests_checked,
            errors = report.errors,
            warnings = report.warnings,
            ms = report.duration_ms,
            "store check finished"
        );
        Ok(report)
    }

    fn fsck_blocking(&self, o: FsckOptions, progress: &super::Progress) -> Result<FsckReport> {
        let started = Instant::now();
        let mut r = FsckReport {
            started_at: now(),
            quarantine: o.quarantine,
            ..FsckReport::default()
        };
        if o.metadata_pages {
            self.check_metadata_pages(&mut r);
        }
        self.check_blob_files(o, &mut r, progress)?;
        progress("checking manifests, links and tags", 0, 0);
        self.check_metadata(&mut r)?;
        self.check_uploads(&mut r)?;
        r.problems.sort_by_key(|p| p.severity);
        r.duration_ms = started.elapsed().as_millis() as u64;
        Ok(r)
    }

    /// Verifies the metadata store's page checksums (offline only: see [`FsckOptions`]).
    fn check_metadata_pages(&self, r: &mut FsckReport) {
        use crate::meta::Integrity;
        let object = "meta/store.redb";
        match self.meta().check_integrity() {
            Integrity::Sound => {}
            Integrity::Repaired => r.add(
                ProblemKind::MetadataRepaired,
                object,
                "pages failed their checksums; the store was repaired to its last sound durable commit (what was acknowledged after it is checked below)",
            ),
            Integrity::Corrupt(why) => r.add(
                ProblemKind::MetadataCorrupt,
                object,
                format!("pages failed their checksums and the store could not be repaired ({why}): restore the metadata from a backup"),
            ),
        }
    }

    /// Re-hashes every blob file; condemns the bad ones, clears marks of restored ones.
    fn check_blob_files(
        &self,
        o: FsckOptions,
        r: &mut FsckReport,
        progress: &super::Progress,
    ) -> Result<()> {
        let io = |context| move |e: std::io::Error| Error::internal(context, e);
        let mut link_sizes: HashMap<Digest, Vec<(String, u64)>> = HashMap::new();
        for (repo, d, rec) in self.meta().all_links()? {
            link_sizes.entry(d).or_default().push((repo, rec.size));
        }
        let entries = self.storage().blob_tree().map_err(io("listing blobs"))?;
        let total = entries.len() as u64;
        let mut buf = vec![0u8; HASH_BUFFER];
        for (n, entry) in entries.into_iter().enumerate() {
            progress("hashing blobs", n as u64, total);
            let (digest, size) = match entry {
                BlobEntry::Stray { path, why } => {
                    r.add(
                        ProblemKind::StrayFile,
                        path.display().to_string(),
                        format!("{why}: left alone (not part of any blob)"),
                    );
                    continue;
                }
                BlobEntry::Blob { digest, size } => (digest, size),
            };
            let hashed = match self.storage().hash_blob(&digest, &mut buf) {
                Ok(Some(h)) => h,
                // Deleted since the listing (garbage collection).
                Ok(None) => continue,
                Err(e) => {
                    r.blobs_checked += 1;
                    r.add(
                        ProblemKind::BlobUnreadable,
                        digest.to_string(),
                        format!("reading its {size}-byte file failed: {e}"),
                    );
                    continue;
                }
            };
            r.blobs_checked += 1;
            r.bytes_hashed += hashed.len;
            let recorded = link_sizes.get(&digest).map(Vec::as_slice).unwrap_or(&[]);
            if hashed.actual == digest {
                // Pulls then check the cheap checksum from the start. Recorded only when it is
                // not already: a scrub of a large store rewrites nothing it need not.
                if self.meta().blob_checksum(&digest)? != Some(hashed.checksum) {
                    self.meta().set_blob_checksum(&digest, hashed.checksum)?;
                }
                if self.meta().clear_corrupt(&digest)? {
                    r.cleared.push(digest.to_string());
                }
                for (repo, n) in recorded.iter().filter(|(_, n)| *n != hashed.len) {
                    r.add(
                        ProblemKind::BlobSizeMismatch,
                        format!("{repo}@{digest}"),
                        format!(
                            "the blob is sound but holds {} bytes; repository {repo} records {n} (only quota figures use it)",
                            hashed.len
                        ),
                    );
                }
                continue;
            }
            let Some(quarantined) = self.condemn(&digest, &hashed, o)? else {
                // Replaced or removed while it was read: the next run looks again.
                continue;
            };
            let sizes = match recorded.first() {
                Some((_, n)) if *n != hashed.len => {
                    format!("{} bytes where {n} were stored", hashed.len)
                }
                _ => format!("{} bytes", hashed.len),
            };
            let whereto = match quarantined {
                Some(p) => format!("; its file was moved to {p}"),
                None => String::new(),
            };
            r.add(
                ProblemKind::BlobCorrupt,
                digest.to_string(),
                format!(
                    "content ({sizes}) hashes to {}, not to its name: it is no longer served; push an image holding it again to repair it{whereto}",
                    hashed.actual
                ),
            );
        }
        Ok(())
    }

    /// Records a blob found corrupt (and quarantines its file when asked), under the GC
    /// lock and only if its file is still the one that was hashed. `None` when it was not;
    /// else where the file went, if it moved.
    pub(super) fn condemn(
        &self,
        digest: &Digest,
        hashed: &Hashed,
        o: FsckOptions,
    ) -> Result<Option<Option<String>>> {
        let io = |e| Error::internal("quarantining a blob", e);
        let _exclusive = self.inner.gc_lock.blocking_write();
        if self.storage().blob_file_id(digest).map_err(io)? != Some(hashed.id) {
            return Ok(None);
        }
        let quarantined = if o.quarantine {
            self.storage()
                .quarantine_blob(digest)
                .map_err(io)?
                .map(|p| p.display().to_string())
        } else {
            None
        };
        self.meta().mark_corrupt(
            digest,
            &CorruptRecord {
                found_at: now(),
                size: hashed.len,
                actual: hashed.actual.to_string(),
                quarantined: quarantined.clone(),
            },
        )?;
        self.meta().flush_blocking()?;
        tracing::error!(%digest, actual = %hashed.actual, quarantined = ?quarantined, "blob found corrupt: it is no longer served");
        Ok(Some(quarantined))
    }

    /// Manifests (content, references), links, tags, and corrupt blobs whose file is gone.
    fn check_metadata(&self, r: &mut FsckReport) -> Result<()> {
        let _shared = self.inner.gc_lock.blocking_read();
        let meta = self.meta();
        let marks: HashMap<Digest, CorruptRecord> = meta.corrupt_blobs()?.into_iter().collect();
        let mut present: HashMap<Digest, bool> = HashMap::new();
        let mut is_present = |d: &Digest| -> Result<bool> {
            if let Some(p) = present.get(d) {
                return Ok(*p);
            }
            let p = self
                .storage()
                .blob_size(d)
                .map_err(|e| Error::internal("reading a blob's size", e))?
                .is_some();
            present.insert(d.clone(), p);
            Ok(p)
        };
        let tags = meta.all_tag_entries()?;
        let mut tags_of: HashMap<(&str, &Digest), Vec<&str>> = HashMap::new();
        for (repo, tag, d) in &tags {
            tags_of.entry((repo, d)).or_default().push(tag);
        }
        let label = |repo: &str, d: &Digest| match tags_of.get(&(repo, d)) {
            Some(t) => format!("{repo}@{d} (tagged {})", t.join(", ")),
            None => format!("{repo}@{d}"),
        };
        // Blobs something still needs: a corrupt one among them stays reported.
        let mut needed: HashSet<Digest> = HashSet::new();
        let mut contents: HashMap<Digest, Content> = HashMap::new();
        for (repo, digest, rec) in meta.all_manifests()? {
            r.manifests_checked += 1;
            let content = match contents.get(&digest) {
                Some(c) => c,
                None => {
                    let c = match meta.manifest_bytes(&digest)? {
                        None => Content::Missing,
                        Some(bytes) => {
                            let actual = digest_of(&bytes, &digest);
                            if actual != digest {
                                Content::Corrupt(actual)
                            } else {
                                match Manifest::parse(Some(&rec.media_type), &bytes) {
                                    Ok(m) => Content::Sound {
                                        blobs: m.required_blobs().cloned().collect(),
                                        children: m
                                            .manifests
                                            .iter()
                                            .map(|c| c.digest.clone())
                                            .collect(),
                                    },
                                    Err(e) => Content::Invalid(e.to_string()),
                                }
                            }
                        }
                    };
                    contents.entry(digest.clone()).or_insert(c)
                }
            };
            let object = label(&repo, &digest);
            let (blobs, children) = match content {
                Content::Missing => {
                    r.add(ProblemKind::ManifestMissing, object, "the manifest is recorded but its content is missing: pulls of it fail; push the image again");
                    continue;
                }
                Content::Corrupt(actual) => {
                    r.add(
                        ProblemKind::ManifestCorrupt,
                        object,
                        format!("its stored content hashes to {actual}: it is not served; push the image again to repair it"),
                    );
                    continue;
                }
                Content::Invalid(e) => {
                    r.add(
                        ProblemKind::ManifestInvalid,
                        object,
                        format!("its stored content does not parse ({e})"),
                    );
                    continue;
                }
                Content::Sound { blobs, children } => (blobs, children),
            };
            // A mirror caches manifests first and blobs as they are pulled: absent ones are
            // not problems there, and corrupt ones are fetched again by the next pull.
            let name = repo.parse::<RepoName>().ok();
            let mirrored = name.as_ref().is_some_and(|n| self.mirror_of(n).is_some());
            let repair = if mirrored {
                "the next pull through the mirror fetches it again"
            } else {
                "pulls of this image fail until it is pushed again"
            };
            for b in blobs {
                needed.insert(b.clone());
                let missing = if marks.contains_key(b) {
                    r.add(
                        ProblemKind::ReferenceCorrupt,
                        object.clone(),
                        format!("needs blob {b}, which is corrupt: {repair}"),
                    );
                    continue;
                } else if mirrored {
                    continue;
                } else if !is_present(b)? {
                    "whose file is missing"
                } else if meta.link(&repo, b)?.is_none() {
                    "which is not linked into the repository"
                } else {
                    continue;
                };
                r.add(
                    ProblemKind::ReferenceMissing,
                    object.clone(),
                    format!("needs blob {b}, {missing}: {repair}"),
                );
            }
            let Some(name) = name.filter(|_| !mirrored) else {
                continue;
            };
            for c in children {
                if meta.manifest(&name, c)?.is_none() {
                    r.add(
                        ProblemKind::ReferenceMissing,
                        object.clone(),
                        format!("lists manifest {c}, which {repo} does not hold: pulls of that platform fail"),
                    );
                }
            }
        }
        for (repo, digest, _) in meta.all_links()? {
            r.links_checked += 1;
            needed.insert(digest.clone());
            if !marks.contains_key(&digest) && !is_present(&digest)? {
                r.add(
                    ProblemKind::LinkDangling,
                    format!("{repo}@{digest}"),
                    format!("{repo} links the blob but its file is missing: pulls of it fail until it is pushed again"),
                );
            }
        }
        for (repo, tag, digest) in &tags {
            r.tags_checked += 1;
            let Ok(name) = repo.parse::<RepoName>() else {
                continue;
            };
            if meta.manifest(&name, digest)?.is_none() {
                r.add(
                    ProblemKind::TagDangling,
                    format!("{repo}:{tag}"),
                    format!("points at manifest {digest}, which {repo} does not hold: pulls of the tag fail"),
                );
            }
        }
        // Corrupt blobs whose file is gone (quarantined, or lost): still a problem while
        // anything needs them; otherwise nothing is left to repair.
        for (digest, rec) in marks {
            if is_present(&digest)? {
                continue;
            }
            if !needed.contains(&digest) {
                meta.clear_corrupt(&digest)?;
                r.cleared.push(digest.to_string());
                continue;
            }
            let whereto = match &rec.quarantined {
                Some(p) => format!("its file was moved to {p}"),
                None => "its file is gone".to_string(),
            };
            r.add(
                ProblemKind::BlobCorrupt,
                digest.to_string(),
                format!("found corrupt earlier and not repaired yet ({whereto}): push an image holding it again to repair it"),
            );
        }
        Ok(())
    }

    /// Upload sessions without a file and files without a session: crash leftovers that
    /// garbage collection cleans, reported as warnings.
    fn check_uploads(&self, r: &mut FsckReport) -> Result<()> {
        let records = self.meta().uploads()?;
        let known: HashSet<UploadId> = records.iter().map(|(id, _)| id.clone()).collect();
        for (id, _) in &records {
            r.uploads_checked += 1;
            // Looked at again just before reporting: an upload may have completed meanwhile.
            if !self.storage().upload_exists(id)
                && !self.session_busy(id)
                && self.meta().upload(id)?.is_some()
            {
                r.add(
                    ProblemKind::UploadWithoutFile,
                    id.as_str(),
                    "an upload session whose file is gone: the client must start over; edgeyard gc expires it",
                );
            }
        }
        let files = self
            .storage()
            .upload_files()
            .map_err(|e| Error::internal("listing uploads", e))?;
        let cutoff = std::time::SystemTime::now() - ORPHAN_AGE;
        for (id, mtime) in files {
            if known.contains(&id) {
                continue;
            }
            r.uploads_checked += 1;
            if mtime < cutoff && self.meta().upload(&id)?.is_none() {
                r.add(
                    ProblemKind::UploadFileWithoutRecord,
                    id.as_str(),
                    "an upload file no session refers to (left by a crash): edgeyard gc removes it",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    async fn upload(reg: &Registry, repo: &RepoName, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        let s = reg.start_upload(repo, "test").await.unwrap();
        let body = http_body_util::Full::new(bytes::Bytes::copy_from_slice(data));
        reg.finish_upload(repo, &s.id, &d, None, body)
            .await
            .unwrap();
        d
    }

    #[tokio::test]
    async fn a_corrupt_blob_is_refused_everywhere_then_healed_by_its_next_upload() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        let (a, b): (RepoName, RepoName) = ("t/a".parse().unwrap(), "t/b".parse().unwrap());
        let data = b"the bytes of a layer".to_vec();
        let d = upload(&reg, &a, &data).await;
        upload(&reg, &b, &data).await;
        let path = reg.storage().blob_path(&d);
        let mut bad = data.clone();
        bad[3] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();

        let r = reg.fsck(FsckOptions::default()).await.unwrap();
        assert_eq!((r.errors, r.blobs_checked), (1, 1), "{r:?}");
        assert_eq!(r.problems[0].kind, ProblemKind::BlobCorrupt);
        assert_eq!(r.problems[0].object, d.to_string());
        for repo in [&a, &b] {
            let e = reg.read_blob(repo, &d, None).await.err().unwrap();
            assert_eq!(
                (e.status().as_u16(), e.error_code()),
                (409, ErrorCode::Unsupported)
            );
            let e = reg.stat_blob(repo, &d).await.err().unwrap();
            assert_eq!(
                (e.status().as_u16(), e.error_code()),
                (404, ErrorCode::BlobUnknown)
            );
        }
        // A mount would vouch for the bad bytes: refused, so the client uploads them.
        let c: RepoName = "t/c".parse().unwrap();
        assert_eq!(reg.mount_blob(&c, &d, Some(&a)).await.unwrap(), None);

        upload(&reg, &c, &data).await;
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(reg.read_blob(&a, &d, None).await.is_ok());
        assert_eq!(reg.stat_blob(&b, &d).await.unwrap(), data.len() as u64);
        let r = reg.fsck(FsckOptions::default()).await.unwrap();
        assert_eq!((r.errors, r.warnings), (0, 0), "{r:?}");
    }

    #[tokio::test]
    async fn a_sound_blob_is_never_replaced_and_a_restored_one_is_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        let a: RepoName = "t/a".parse().unwrap();
        let data = b"sound".to_vec();
        let d = upload(&reg, &a, &data).await;
        let path = reg.storage().blob_path(&d);
        let before = reg.storage().blob_file_id(&d).unwrap();
        upload(&reg, &a, &data).await;
        assert_eq!(reg.storage().blob_file_id(&d).unwrap(), before);
        // Found bad, then restored by hand: the next check clears the mark.
        std::fs::write(&path, b"SOUND").unwrap();
        assert_eq!(reg.fsck(FsckOptions::default()).await.unwrap().errors, 1);
        std::fs::write(&path, &data).unwrap();
        let r = reg.fsck(FsckOptions::default()).await.unwrap();
        assert_eq!((r.errors, r.cleared.clone()), (0, vec![d.to_string()]));
        assert!(reg.read_blob(&a, &d, None).await.is_ok());
    }
}
