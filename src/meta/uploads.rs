//! Upload sessions.

use super::*;

impl Meta {
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
