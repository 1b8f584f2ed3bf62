//! Blob links: which repositories may serve which blobs.

use super::*;
use store::{LINKS, REPOS};

impl Meta {
    pub fn is_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.has(LINKS, &key2(repo.as_str(), &digest.to_string()))
    }

    /// Links a committed blob into a repository (creating the repository record if new).
    pub fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        self.write("linking a blob", |tx| link_in(tx, repo, digest, size))
    }

    pub fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.remove(
            "removing a blob link",
            LINKS,
            &key2(repo.as_str(), &digest.to_string()),
        )
    }
}

/// Links a blob inside a write transaction, creating the repository record if new.
pub(super) fn link_in(
    tx: &redb::WriteTransaction,
    repo: &RepoName,
    digest: &Digest,
    size: u64,
) -> Tx<()> {
    let link = encode(&LinkRecord {
        size,
        linked_at: now(),
    });
    tx.open_table(LINKS)?.insert(
        key2(repo.as_str(), &digest.to_string()).as_slice(),
        link.as_slice(),
    )?;
    create_repo_in(tx, repo.as_str())
}

/// Creates a repository's record inside a write transaction, unless it exists.
pub(super) fn create_repo_in(tx: &redb::WriteTransaction, repo: &str) -> Tx<()> {
    let mut repos = tx.open_table(REPOS)?;
    if repos.get(repo.as_bytes())?.is_none() {
        let rec = encode(&RepoRecord {
            created_at: now(),
            description: String::new(),
            public: false,
        });
        repos.insert(repo.as_bytes(), rec.as_slice())?;
    }
    Ok(())
}
