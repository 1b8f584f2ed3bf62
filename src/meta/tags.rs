//! Tags and referrers.

use super::*;

impl Meta {
    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<TagRecord>> {
        match self
            .tags
            .get(key2(repo.as_str(), tag.as_str()))
            .map_err(db_err("reading a tag"))?
        {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        self.tags
            .remove(key2(repo.as_str(), tag.as_str()))
            .map(|old| old.is_some())
            .map_err(db_err("deleting a tag"))
    }

    /// Tags of a repository in lexical order, strictly after `last`, at most `n`.
    pub fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool)> {
        let pre = prefix(repo.as_str());
        let start = match last {
            Some(l) => std::ops::Bound::Excluded(key2(repo.as_str(), l)),
            None => std::ops::Bound::Included(pre.clone()),
        };
        let iter = self
            .tags
            .range((start, std::ops::Bound::Unbounded))
            .keys()
            .take_while(|k| k.as_ref().map(|k| k.starts_with(&pre)).unwrap_or(true));
        let plen = pre.len();
        page(iter, n, |k| {
            Ok(String::from_utf8_lossy(&k[plen..]).into_owned())
        })
    }

    // ---- referrers ------------------------------------------------------------------------

    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let mut pre = key2(repo.as_str(), &subject.to_string());
        pre.push(0);
        self.referrers
            .scan_prefix(pre)
            .values()
            .map(|v| decode(&v.map_err(db_err("reading referrers"))?))
            .collect()
    }
}
