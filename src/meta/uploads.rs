//! Upload sessions.

use super::*;
use store::UPLOADS;

impl Meta {
    pub fn put_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        self.put(
            "recording an upload",
            UPLOADS,
            id.as_str().as_bytes(),
            record,
        )
    }

    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        self.get(UPLOADS, id.as_str().as_bytes())
    }

    pub fn remove_upload(&self, id: &UploadId) -> Result<()> {
        self.remove("removing an upload", UPLOADS, id.as_str().as_bytes())
            .map(|_| ())
    }

    /// Completes an upload in one transaction: forget the session, link the blob.
    pub fn finish_upload(
        &self,
        id: &UploadId,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.write("finishing an upload", |tx| {
            tx.open_table(UPLOADS)?.remove(id.as_str().as_bytes())?;
            links::link_in(tx, repo, digest, size)
        })
    }
}
