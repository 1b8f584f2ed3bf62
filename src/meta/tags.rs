//! Tags and referrers.

use super::*;
use store::{REFERRERS, TAGS};

impl Meta {
    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<TagRecord>> {
        self.get(TAGS, &key2(repo.as_str(), tag.as_str()))
    }

    pub fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        self.remove("deleting a tag", TAGS, &key2(repo.as_str(), tag.as_str()))
    }

    /// Tags of a repository in lexical order, strictly after `last`, at most `n`.
    pub fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool)> {
        let pre = prefix(repo.as_str());
        let after = last.map(|l| key2(repo.as_str(), l));
        self.read("listing tags", |tx| {
            let t = tx.open_table(TAGS)?;
            let range = match &after {
                Some(a) => t.range((
                    std::ops::Bound::Excluded(a.as_slice()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => t.range(pre.as_slice()..)?,
            };
            let keys = range
                .map(|kv| -> Tx<Vec<u8>> { Ok(kv?.0.value().to_vec()) })
                .take_while(|k| k.as_ref().map(|k| k.starts_with(&pre)).unwrap_or(true));
            page(keys, n, |k| {
                String::from_utf8_lossy(&k[pre.len()..]).into_owned()
            })
        })
    }

    // ---- referrers ------------------------------------------------------------------------

    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let mut pre = key2(repo.as_str(), &subject.to_string());
        pre.push(0);
        Ok(self
            .scan::<Descriptor>(REFERRERS, &pre)?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }
}
