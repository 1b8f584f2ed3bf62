//! Blob uploads: sessions (monolithic, chunked, resumable across restarts), completion with
//! digest verification, cancellation, and cross-repository mounts.
//!
//! Completion follows one order so a crash at any point is harmless: verify the running hash,
//! fsync, rename into place, fsync the directory, then link the blob in one metadata
//! transaction and flush. Bytes are durable before any record points at them.

use bytes::Bytes;
use http_body::Body;

use super::pump::pump;
use super::quota::Content;
use super::sessions::Session;
use super::{blocking, Registry};
use crate::error::{Error, ErrorCode, Result};
use crate::meta::UploadRecord;
use crate::oci::{Digest, RepoName, UploadId};
use crate::storage::UploadFile;

/// The byte range a chunk claims (`Content-Range: start-end`, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
}

impl ContentRange {
    /// Parses `start-end` (also with a leading `bytes ` or `bytes=`, which some clients send).
    pub fn parse(s: &str) -> Option<ContentRange> {
        let s = s.trim();
        let s = s
            .strip_prefix("bytes ")
            .or_else(|| s.strip_prefix("bytes="))
            .unwrap_or(s);
        let (a, b) = s.split_once('-')?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
        // A trailing "/total" is allowed and ignored.
        let b = b.split('/').next().unwrap_or(b);
        if !digits(a) || !digits(b) {
            return None;
        }
        let (start, end): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        // A chunk ending at byte u64::MAX would make the upload 2^64 bytes long: no length
        // holds that (and `len` would overflow).
        (start <= end && end < u64::MAX).then_some(ContentRange { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Where an upload stands: its id and how many bytes it holds.
#[derive(Clone, Debug)]
pub struct UploadState {
    pub id: UploadId,
    pub offset: u64,
}

impl Registry {
    /// Opens a new upload session in `repo` for `client` (see [`Registry::admit_upload`]).
    pub async fn start_upload(&self, repo: &RepoName, client: &str) -> Result<UploadState> {
        self.check_not_mirrored(repo)?;
        self.check_may_receive(repo)?;
        self.check_quota(repo)?;
        self.check_free_space().await?;
        let id = UploadId::random().map_err(|e| Error::internal("drawing an upload id", e))?;
        self.admit_upload(client, &id)?;
        let storage = self.storage().clone();
        let id2 = id.clone();
        let file = match blocking("creating an upload file", move || {
            let f = storage.create_upload(&id2)?;
            storage.sync_uploads()?;
            Ok(f)
        })
        .await
        {
            Ok(f) => f,
            Err(e) => {
                self.forget_session(&id);
                return Err(e);
            }
        };
        // The session is durable before the client hears of it: an upload cut off by a
        // crash or a power cut resumes rather than being unknown.
        let recorded = match self.meta().put_upload(&id, &UploadRecord::new(repo)) {
            Ok(()) => self.meta().flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            self.forget_session(&id);
            let _ = self.meta().remove_upload(&id);
            let _ = self.storage().remove_upload(&id);
            return Err(e);
        }
        self.sessions().insert(
            id.clone(),
            std::sync::Arc::new(tokio::sync::Mutex::new(Some(file))),
        );
        Ok(UploadState { id, offset: 0 })
    }

    /// Finds a session that belongs to `repo`, whether opened by this process or recorded
    /// by an earlier one.
    fn session(&self, repo: &RepoName, id: &UploadId) -> Result<Session> {
        let unknown = || Error::code(ErrorCode::BlobUploadUnknown);
        match self.meta().upload(id)? {
            Some(rec) if rec.repo == repo.as_str() => {}
            _ => return Err(unknown()),
        }
        self.touch_upload(id);
        Ok(self.sessions().entry(id.clone()).or_default().clone())
    }

    /// Takes the session's file, reopening it from disk after a restart.
    async fn take_file(&self, id: &UploadId, slot: &mut Option<UploadFile>) -> Result<UploadFile> {
        if let Some(f) = slot.take() {
            return Ok(f);
        }
        let storage = self.storage().clone();
        let id2 = id.clone();
        match blocking("reopening an upload", move || storage.reopen_upload(&id2)).await? {
            Some(f) => Ok(f),
            None => {
                // The record survived and the file did not: a durability bug (the file's
                // directory is synced before the session is recorded), so say so.
                tracing::warn!(upload = %id, "an upload's record was found without its file; the session is forgotten");
                self.meta().remove_upload(id)?;
                Err(Error::code(ErrorCode::BlobUploadUnknown))
            }
        }
    }

    /// Bytes received so far (`GET` on the upload URL).
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadState> {
        let session = self.session(repo, id)?;
        let mut slot = session.lock().await;
        let file = self.take_file(id, &mut slot).await?;
        let offset = file.len();
        *slot = Some(file);
        Ok(UploadState {
            id: id.clone(),
            offset,
        })
    }

    /// Locks the session and appends `body` to it. With a `Content-Range`, the chunk must
    /// start exactly where the upload stands (else 416 with the current range, and nothing is
    /// written) and deliver exactly the bytes it promised. On success the caller holds the
    /// session's lock and its file; on failure the file is back in the session.
    async fn receive<B>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        range: Option<ContentRange>,
        body: B,
    ) -> Result<(tokio::sync::OwnedMutexGuard<Option<UploadFile>>, UploadFile)>
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        self.check_free_space().await?;
        let session = self.session(repo, id)?;
        let mut slot = session.lock_owned().await;
        let file = self.take_file(id, &mut slot).await?;
        if let Some(r) = range {
            if r.start != file.len() {
                let offset = file.len();
                *slot = Some(file);
                return Err(out_of_order(repo, id, offset));
            }
        }
        let pumped = pump(file, body, range.map(|r| r.len()), self.events()).await;
        let offset = pumped.file.len();
        let short = range.filter(|r| offset != r.end + 1);
        match (pumped.outcome, short) {
            (Err(e), _) if e.status() == http::StatusCode::INSUFFICIENT_STORAGE => {
                // Out of disk: give the space back now; the client starts over later.
                drop(pumped.file);
                self.discard(id).await?;
                Err(e)
            }
            (Err(e), _) => {
                *slot = Some(pumped.file);
                Err(e)
            }
            (Ok(_), Some(r)) => {
                *slot = Some(pumped.file);
                Err(Error::api(
                    ErrorCode::SizeInvalid,
                    format!(
                        "chunk ended at byte {offset}, Content-Range promised {}",
                        r.end + 1
                    ),
                ))
            }
            (Ok(_), None) => Ok((slot, pumped.file)),
        }
    }

    /// Appends a chunk (`PATCH`).
    pub async fn append_upload<B>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        range: Option<ContentRange>,
        body: B,
    ) -> Result<UploadState>
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (mut slot, file) = self.receive(repo, id, range, body).await?;
        let offset = file.len();
        *slot = Some(file);
        Ok(UploadState {
            id: id.clone(),
            offset,
        })
    }

    /// Completes an upload (`PUT ?digest=`), appending the final body if any. On a digest
    /// mismatch the session is discarded: its bytes can never become that blob.
    pub async fn finish_upload<B>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        range: Option<ContentRange>,
        body: B,
    ) -> Result<u64>
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        // The lock is held until the upload is committed or discarded.
        let (_slot, file) = self.receive(repo, id, range, body).await?;
        let size = file.len();
        let (file, actual) = if digest.algorithm() == crate::oci::Algorithm::Sha256 {
            let d = file.digest();
            (file, d)
        } else {
            // Rare: the client named a sha512 digest, so hash the file once more with it.
            let alg = digest.algorithm();
            blocking("hashing an upload", move || {
                let d = file.digest_with(alg)?;
                Ok((file, d))
            })
            .await?
        };
        self.commit(repo, id, digest, &actual, file, size).await
    }

    async fn commit(
        &self,
        repo: &RepoName,
        id: &UploadId,
        expected: &Digest,
        actual: &Digest,
        file: UploadFile,
        size: u64,
    ) -> Result<u64> {
        if actual != expected {
            drop(file);
            self.discard(id).await?;
            return Err(Error::api(
                ErrorCode::DigestInvalid,
                format!("uploaded content has digest {actual}, not {expected}"),
            )
            .with_detail(serde_json::json!({ "expected": expected.to_string(), "actual": actual.to_string() })));
        }
        let _shared = self.inner.gc_lock.read().await;
        let committed = match self.check_quota_adding(repo, Some((expected, size, Content::Blob))) {
            Ok(()) => self.commit_blob(id, file, expected).await,
            Err(e) => {
                drop(file);
                Err(e)
            }
        };
        if let Err(e) = committed {
            self.discard(id).await?;
            return Err(e);
        }
        self.meta().finish_upload(id, repo, expected, size)?;
        self.meta().flush().await?;
        self.forget_session(id);
        Ok(size)
    }

    /// Forgets an expired session and deletes its bytes (garbage collection).
    pub(super) async fn forget_upload(&self, id: &UploadId) -> Result<()> {
        self.discard(id).await
    }

    /// Forgets a session and deletes its bytes.
    async fn discard(&self, id: &UploadId) -> Result<()> {
        self.forget_session(id);
        self.meta().remove_upload(id)?;
        let storage = self.storage().clone();
        let id2 = id.clone();
        blocking("removing an upload file", move || {
            storage.remove_upload(&id2)
        })
        .await
    }

    /// Cancels an upload (`DELETE` on the upload URL).
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        let session = self.session(repo, id)?;
        let _slot = session.lock().await;
        self.discard(id).await
    }

    /// Links an existing blob into `repo` without moving bytes. Answers the blob's size, or
    /// `None` when the registry does not hold it, holds it corrupt (the caller then opens a
    /// normal session, whose bytes repair it), or `from` does not link it.
    ///
    /// With a source repository, the blob must be linked there: the caller's right to pull
    /// `from` is what vouches for its right to these bytes, so bytes held only by other
    /// repositories are never mounted through it (as distribution stats the blob through the
    /// source's linked blob store). Without one, the caller must already be entitled to read
    /// anything (the handler allows that to administrators only).
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>> {
        self.check_not_mirrored(repo)?;
        self.check_may_receive(repo)?;
        let _shared = self.inner.gc_lock.read().await;
        if let Some(from) = from {
            if !self.meta().is_linked(from, digest)? {
                return Ok(None);
            }
        }
        if self.meta().is_corrupt(digest)? {
            return Ok(None);
        }
        let storage = self.storage().clone();
        let d2 = digest.clone();
        let Some(size) = blocking("checking a blob", move || storage.blob_size(&d2)).await? else {
            return Ok(None);
        };
        self.check_quota_adding(repo, Some((digest, size, Content::Blob)))?;
        self.meta().link_blob(repo, digest, size)?;
        self.meta().flush().await?;
        Ok(Some(size))
    }
}

/// 416 for a chunk that does not start at the upload's current end, with what the client
/// needs to resume: the range already held and the upload's URL.
fn out_of_order(repo: &RepoName, id: &UploadId, offset: u64) -> Error {
    Error::api(
        ErrorCode::BlobUploadInvalid,
        format!("chunk must start at byte {offset}"),
    )
    .with_status(http::StatusCode::RANGE_NOT_SATISFIABLE)
    .with_header(http::header::RANGE, range_header(offset))
    .with_header(http::header::LOCATION, upload_location(repo, id))
    .with_header(
        http::HeaderName::from_static("docker-upload-uuid"),
        id.as_str(),
    )
}

/// `Range` value for an upload holding `offset` bytes, as distribution writes it.
pub fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

pub fn upload_location(repo: &RepoName, id: &UploadId) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            ContentRange::parse("0-9"),
            Some(ContentRange { start: 0, end: 9 })
        );
        assert_eq!(
            ContentRange::parse("bytes 10-19/100"),
            Some(ContentRange { start: 10, end: 19 })
        );
        assert_eq!(ContentRange::parse("bytes=5-5").map(|r| r.len()), Some(1));
        for bad in ["", "-", "5-", "-5", "9-0", "a-b", "1-2-3", "0x1-2", " - "] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn range_header_matches_distribution() {
        assert_eq!(range_header(0), "0-0");
        assert_eq!(range_header(10), "0-9");
    }

    /// Found by fuzzing (fuzz/fuzz_targets/ranges.rs): a chunk claiming to end at byte
    /// u64::MAX was accepted, and its length overflowed.
    #[test]
    fn content_range_ending_at_u64_max_is_refused() {
        assert_eq!(ContentRange::parse("0-18446744073709551615"), None);
        assert_eq!(ContentRange::parse("bytes 5-18446744073709551615/*"), None);
        let last = ContentRange::parse("1-18446744073709551614").unwrap();
        assert_eq!(last.len(), u64::MAX - 1);
    }

    /// Regression (security): a mount naming a source the caller may pull linked a blob
    /// that only another repository held, and the caller then read its bytes.
    #[tokio::test]
    async fn a_mount_links_only_what_its_source_links() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        let [vault, public, mine]: [RepoName; 3] =
            ["private/vault", "public/x", "alice/app"].map(|n| n.parse().unwrap());
        let secret = b"only the vault holds these bytes";
        let d = Digest::sha256_of(secret);
        let s = reg.start_upload(&vault, "test").await.unwrap();
        let body = http_body_util::Full::new(bytes::Bytes::from_static(secret));
        reg.finish_upload(&vault, &s.id, &d, None, body)
            .await
            .unwrap();

        assert_eq!(
            reg.mount_blob(&mine, &d, Some(&public)).await.unwrap(),
            None
        );
        assert!(!reg.meta().is_linked(&mine, &d).unwrap());
        let e = reg.read_blob(&mine, &d, None).await.err().unwrap();
        assert_eq!(e.error_code(), ErrorCode::BlobUnknown);

        // Through the repository that links it, the mount works.
        let size = secret.len() as u64;
        assert_eq!(
            reg.mount_blob(&mine, &d, Some(&vault)).await.unwrap(),
            Some(size)
        );
        assert_eq!(reg.stat_blob(&mine, &d).await.unwrap(), size);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn content_ranges_parse_in_every_spelling(
                a in any::<u64>(), b in any::<u64>(), total in any::<u64>()
            ) {
                let (start, end) = (a.min(b), a.max(b));
                let want = (end < u64::MAX).then_some(ContentRange { start, end });
                for s in [
                    format!("{start}-{end}"),
                    format!("bytes {start}-{end}/{total}"),
                    format!("bytes={start}-{end}"),
                    format!(" {start}-{end}/* "),
                ] {
                    prop_assert_eq!(ContentRange::parse(&s), want, "{}", s);
                }
                if let Some(r) = want {
                    prop_assert_eq!(u128::from(r.len()), u128::from(end - start) + 1);
                }
                if start < end {
                    prop_assert_eq!(ContentRange::parse(&format!("{end}-{start}")), None);
                }
            }

            #[test]
            fn held_ranges_parse_back(offset in 1u64..) {
                prop_assert_eq!(
                    ContentRange::parse(&range_header(offset)),
                    Some(ContentRange { start: 0, end: offset - 1 })
                );
            }
        }
    }
}
