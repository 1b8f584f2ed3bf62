//! Repository records: existence, creation, visibility, descriptions, listing.

use super::*;
use store::{LINKS, MANIFESTS, REFERRERS, REPOS, TAGS};

impl Meta {
    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        self.has(REPOS, repo.as_str().as_bytes())
    }

    pub fn repo_record(&self, repo: &RepoName) -> Result<Option<RepoRecord>> {
        self.get(REPOS, repo.as_str().as_bytes())
    }

    pub fn put_repo_record(&self, repo: &RepoName, rec: &RepoRecord) -> Result<()> {
        self.put("storing a repository", REPOS, repo.as_str().as_bytes(), rec)
    }

    /// The blobs linked into a repository, with their sizes.
    pub fn links_of(&self, repo: &RepoName) -> Result<Vec<(Digest, LinkRecord)>> {
        self.digests_under(LINKS, repo)
    }

    /// The manifests of a repository.
    pub fn manifests_of(&self, repo: &RepoName) -> Result<Vec<(Digest, ManifestRecord)>> {
        self.digests_under(MANIFESTS, repo)
    }

    /// The records of a `repo \0 digest` table under one repository.
    fn digests_under<T: serde::de::DeserializeOwned>(
        &self,
        table: Bytes,
        repo: &RepoName,
    ) -> Result<Vec<(Digest, T)>> {
        let pre = prefix(repo.as_str());
        Ok(self
            .scan::<T>(table, &pre)?
            .into_iter()
            .filter_map(|(k, v)| {
                let d = String::from_utf8_lossy(&k[pre.len()..]).parse::<Digest>();
                d.ok().map(|d| (d, v))
            })
            .collect())
    }

    /// Removes a whole repository's metadata in one transaction: tags, manifests,
    /// referrers, blob links and the repository record. Bytes stay for garbage collection.
    pub fn delete_repository(&self, repo: &RepoName) -> Result<bool> {
        let pre = prefix(repo.as_str());
        self.write("deleting a repository", |tx| {
            if tx
                .open_table(REPOS)?
                .remove(repo.as_str().as_bytes())?
                .is_none()
            {
                return Ok(false);
            }
            for table in [TAGS, MANIFESTS, REFERRERS, LINKS] {
                let mut t = tx.open_table(table)?;
                for k in scan_keys(&t, &pre)? {
                    t.remove(k.as_slice())?;
                }
            }
            Ok(true)
        })
    }

    /// Repository names in order that pass `visible`, strictly after `last`, at most `n`;
    /// plus whether more follow.
    pub fn list_repos(
        &self,
        last: Option<&str>,
        n: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<String>, bool)> {
        self.read("listing repositories", |tx| {
            let t = tx.open_table(REPOS)?;
            let range = match last {
                Some(l) => t.range((
                    std::ops::Bound::Excluded(l.as_bytes()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => t.iter()?,
            };
            let keys = range
                .map(|kv| -> Tx<Vec<u8>> { Ok(kv?.0.value().to_vec()) })
                .filter(|k| match k {
                    Ok(k) => visible(&String::from_utf8_lossy(k)),
                    Err(_) => true,
                });
            page(keys, n, |k| String::from_utf8_lossy(k).into_owned())
        })
    }
}
