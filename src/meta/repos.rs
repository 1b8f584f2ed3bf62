//! Repository records: existence, creation, visibility, descriptions, listing.

use super::*;

impl Meta {
    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        self.repos
            .contains_key(repo.as_str())
            .map_err(db_err("reading a repository"))
    }

    pub fn repo_record(&self, repo: &RepoName) -> Result<Option<RepoRecord>> {
        Self::get_json(&self.repos, repo.as_str().as_bytes())
    }

    pub fn put_repo_record(&self, repo: &RepoName, rec: &RepoRecord) -> Result<()> {
        self.repos
            .insert(repo.as_str(), encode(rec))
            .map(|_| ())
            .map_err(db_err("storing a repository"))
    }

    /// The blobs linked into a repository, with their sizes.
    pub fn links_of(&self, repo: &RepoName) -> Result<Vec<(Digest, LinkRecord)>> {
        let pre = prefix(repo.as_str());
        let mut out = Vec::new();
        for kv in self.links.scan_prefix(&pre) {
            let (k, v) = kv.map_err(db_err("reading blob links"))?;
            if let Ok(d) = String::from_utf8_lossy(&k[pre.len()..]).parse::<Digest>() {
                out.push((d, decode(&v)?));
            }
        }
        Ok(out)
    }

    /// The manifests of a repository.
    pub fn manifests_of(&self, repo: &RepoName) -> Result<Vec<(Digest, ManifestRecord)>> {
        let pre = prefix(repo.as_str());
        let mut out = Vec::new();
        for kv in self.manifests.scan_prefix(&pre) {
            let (k, v) = kv.map_err(db_err("reading manifests"))?;
            if let Ok(d) = String::from_utf8_lossy(&k[pre.len()..]).parse::<Digest>() {
                out.push((d, decode(&v)?));
            }
        }
        Ok(out)
    }

    /// Removes a whole repository's metadata: tags first (nothing is pullable from then
    /// on), then manifests, referrers, blob links and the repository record. Bytes stay for
    /// garbage collection.
    pub fn delete_repository(&self, repo: &RepoName) -> Result<bool> {
        if !self.repo_exists(repo)? {
            return Ok(false);
        }
        let pre = prefix(repo.as_str());
        for tree in [&self.tags, &self.manifests, &self.referrers, &self.links] {
            let mut batch = sled::Batch::default();
            for k in tree.scan_prefix(&pre).keys() {
                batch.remove(k.map_err(db_err("listing a repository"))?);
            }
            tree.apply_batch(batch)
                .map_err(db_err("deleting a repository"))?;
        }
        self.repos
            .remove(repo.as_str())
            .map_err(db_err("deleting a repository"))?;
        Ok(true)
    }

    /// Repository names in order that pass `visible`, strictly after `last`, at most `n`;
    /// plus whether more follow.
    pub fn list_repos(
        &self,
        last: Option<&str>,
        n: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<String>, bool)> {
        let iter = match last {
            Some(l) => self.repos.range::<&[u8], _>((
                std::ops::Bound::Excluded(l.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.repos.iter(),
        };
        let visible_keys = iter.keys().filter(|k| match k {
            Ok(k) => visible(&String::from_utf8_lossy(k)),
            Err(_) => true,
        });
        page(visible_keys, n, |k| {
            Ok(String::from_utf8_lossy(&k).into_owned())
        })
    }
}
