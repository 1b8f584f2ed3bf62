//! Blob links: which repositories may serve which blobs.

use super::*;

impl Meta {
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
}
