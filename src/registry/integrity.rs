//! Only sound blobs: a blob is committed only as bytes that matched its digest (replacing,
//! and so healing, one recorded corrupt), a blob recorded corrupt is refused in every
//! repository, and a whole-blob pull checks the bytes it sends (see `storage::verify`),
//! recording the blob corrupt, as a scrub would, when they turn out wrong.

use super::fsck::FsckOptions;
use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, UploadId};
use crate::storage::UploadFile;
use crate::storage::{Expect, Outcome, Verify, HASH_BUFFER};

/// 409 `UNSUPPORTED` for content the registry holds but will not serve because it is
/// corrupt (see [`Registry::corrupt_blob`] for why this status and code).
pub(crate) fn corrupt(message: String, digest: &Digest) -> Error {
    Error::api(ErrorCode::Unsupported, message)
        .with_status(http::StatusCode::CONFLICT)
        .with_detail(serde_json::json!({ "digest": digest.to_string(), "reason": "corrupt" }))
}

impl Registry {
    /// The answer to a pull of a blob recorded corrupt, whatever the repository.
    ///
    /// `GET` answers 409 with the spec's `UNSUPPORTED` code and a message saying what
    /// happened. The docker daemon decides by the code: it does not retry `UNSUPPORTED` and
    /// prints the message, so a pull fails at once with `unsupported: blob sha256:… is
    /// corrupt in this registry …`. The alternatives read worse: a 404 is printed as a bare
    /// "unknown blob"; `DENIED` is printed after "pull access denied, repository does not
    /// exist or may require 'docker login'", which sends people the wrong way; other codes
    /// are retried five times (about a minute); a 5xx also loses the message. 409 (Conflict:
    /// the stored blob's state prevents serving it) rather than `UNSUPPORTED`'s usual 405,
    /// which would claim the method is the problem.
    ///
    /// `HEAD` answers 404 `BLOB_UNKNOWN`: a push asks with HEAD whether the registry has the
    /// blob and must hear "no", so it uploads the layer again, which repairs it. (A HEAD
    /// answer has no body to carry a message anyway.)
    pub(super) fn corrupt_blob(digest: &Digest, head: bool) -> Error {
        if head {
            return Self::blob_unknown(digest);
        }
        corrupt(format!("blob {digest} is corrupt in this registry (its bytes failed an integrity check) and is not served; push the image again to repair it"), digest)
    }

    /// Refuses a blob recorded corrupt (see [`Registry::corrupt_blob`]).
    pub(super) fn check_not_corrupt(&self, digest: &Digest, head: bool) -> Result<()> {
        if self.meta().is_corrupt(digest)? {
            tracing::warn!(%digest, "refused to serve a blob recorded corrupt");
            return Err(Self::corrupt_blob(digest, head));
        }
        Ok(())
    }

    /// Blobs recorded corrupt (a lookup in a tree that is normally empty).
    pub fn corrupt_blob_count(&self) -> u64 {
        self.meta().corrupt_count()
    }

    /// What a whole-blob pull of `digest` checks as it sends it: the digest on its first
    /// verified pull, then the checksum recorded when the digest matched (see
    /// `storage::verify`). Wrong bytes make the blob's file be hashed again, and recorded
    /// corrupt as a scrub would if it is, so later pulls are refused at once and a push of
    /// the blob repairs it.
    pub(super) fn verify_served(&self, digest: &Digest) -> Result<Verify> {
        let expect = match self.meta().blob_checksum(digest)? {
            Some(c) => Expect::Checksum(c),
            None => Expect::Digest(digest.clone()),
        };
        let first = matches!(expect, Expect::Digest(_));
        let (me, d) = (self.clone(), digest.clone());
        Ok(Verify {
            expect,
            report: Box::new(move |outcome| match outcome {
                Outcome::Sound { checksum } if first => {
                    if let Err(e) = me.meta().set_blob_checksum(&d, checksum) {
                        tracing::warn!(digest = %d, error = %e, "could not record a blob checksum");
                    }
                }
                Outcome::Sound { .. } => {}
                Outcome::Wrong => {
                    tracing::error!(digest = %d, "a pull read the blob back wrong: the client got an error, not the bytes");
                    // Called on the runtime (the reader task); hashing reads the whole file.
                    tokio::task::spawn_blocking(move || me.rehash_after_bad_read(&d));
                }
            }),
        })
    }

    /// Hashes a blob a pull read wrong, and records it corrupt if its file is.
    fn rehash_after_bad_read(&self, digest: &Digest) {
        let mut buf = vec![0u8; HASH_BUFFER];
        let hashed = match self.storage().hash_blob(digest, &mut buf) {
            Ok(Some(h)) => h,
            Ok(None) => return, // deleted meanwhile
            Err(e) => {
                tracing::error!(%digest, error = %e, "cannot read the blob to check it");
                return;
            }
        };
        if hashed.actual == *digest {
            tracing::warn!(%digest, "the blob's file hashes right when read again: the bad read was transient (memory or I/O); it stays served");
            return;
        }
        if let Err(e) = self.condemn(digest, &hashed, FsckOptions::default()) {
            tracing::error!(%digest, error = %e, "could not record the blob corrupt");
        }
    }

    /// Commits a verified upload file as the blob `digest` (the caller holds the GC lock
    /// for reading). An existing file is kept, since its bytes are the same by definition,
    /// unless the blob is recorded corrupt: then the upload replaces it and the mark is
    /// cleared. A sound blob is never overwritten; a bad one heals on its next upload.
    pub(super) async fn commit_blob(
        &self,
        id: &UploadId,
        file: UploadFile,
        digest: &Digest,
    ) -> Result<()> {
        let corrupt = self.meta().is_corrupt(digest)?;
        let checksum = file.checksum();
        let storage = self.storage().clone();
        let (id2, d2) = (id.clone(), digest.clone());
        match tokio::task::spawn_blocking(move || {
            if corrupt {
                storage.replace_blob(&id2, file, &d2)
            } else {
                storage.commit_upload(&id2, file, &d2)
            }
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(super::pump::storage_error(e)),
            Err(e) => return Err(Error::internal("committing a blob", e)),
        }
        if corrupt && self.meta().clear_corrupt(digest)? {
            tracing::info!(%digest, "a corrupt blob was replaced by an upload of its bytes");
        }
        // The bytes matched the digest, so their checksum is the blob's (whichever file is
        // kept): pulls check it from the first. Not flushed; a lost record costs only a
        // digest check on the next pull.
        self.meta().set_blob_checksum(digest, checksum)?;
        Ok(())
    }
}
