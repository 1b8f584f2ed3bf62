//! Pull-through cache state: when mirrored tags were last confirmed upstream and used, and
//! which tags are pinned against eviction.

use super::store::{MIRROR_TAGS, PINS};
use super::{key2, prefix, split, CacheRecord, Meta, PinRecord};
use crate::error::Result;
use crate::oci::{RepoName, Tag};

impl Meta {
    pub fn cache_record(&self, repo: &RepoName, tag: &Tag) -> Result<Option<CacheRecord>> {
        self.get(MIRROR_TAGS, &key2(repo.as_str(), tag.as_str()))
    }

    /// Not flushed: losing it in a crash only means one extra revalidation.
    pub fn put_cache_record(&self, repo: &RepoName, tag: &Tag, rec: &CacheRecord) -> Result<()> {
        let k = key2(repo.as_str(), tag.as_str());
        self.put("recording a mirrored tag", MIRROR_TAGS, &k, rec)
    }

    pub fn remove_cache_record(&self, repo: &str, tag: &str) -> Result<()> {
        self.remove("forgetting a mirrored tag", MIRROR_TAGS, &key2(repo, tag))
            .map(|_| ())
    }

    /// Every mirrored tag: (repository, tag, record).
    pub fn cache_records(&self) -> Result<Vec<(String, String, CacheRecord)>> {
        Ok(self
            .scan::<CacheRecord>(MIRROR_TAGS, b"")?
            .into_iter()
            .filter_map(|(k, v)| split(&k).map(|(r, t)| (r, t, v)))
            .collect())
    }

    pub fn pin(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let rec = PinRecord {
            pinned_at: super::now(),
        };
        self.put(
            "pinning a tag",
            PINS,
            &key2(repo.as_str(), tag.as_str()),
            &rec,
        )
    }

    pub fn unpin(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        self.remove("unpinning a tag", PINS, &key2(repo.as_str(), tag.as_str()))
    }

    pub fn is_pinned(&self, repo: &str, tag: &str) -> Result<bool> {
        self.has(PINS, &key2(repo, tag))
    }

    /// Pinned tags, of one repository or (with `None`) of all: (repository, tag, record).
    pub fn pins(&self, repo: Option<&RepoName>) -> Result<Vec<(String, String, PinRecord)>> {
        let pre = repo.map(|r| prefix(r.as_str())).unwrap_or_default();
        Ok(self
            .scan::<PinRecord>(PINS, &pre)?
            .into_iter()
            .filter_map(|(k, v)| split(&k).map(|(r, t)| (r, t, v)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_cache_records() {
        let dir = tempfile::tempdir().unwrap();
        let m = Meta::open(dir.path()).unwrap();
        let repo: RepoName = "hub/library/alpine".parse().unwrap();
        let other: RepoName = "hub/library/alpin".parse().unwrap();
        let tag: Tag = "3.19".parse().unwrap();
        assert!(!m.is_pinned(repo.as_str(), "3.19").unwrap());
        m.pin(&repo, &tag).unwrap();
        m.pin(&other, &tag).unwrap();
        assert!(m.is_pinned(repo.as_str(), "3.19").unwrap());
        // A repository's pins do not include those of a name it is a prefix of.
        let listed = m.pins(Some(&repo)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].0.as_str(), listed[0].1.as_str()),
            ("hub/library/alpine", "3.19")
        );
        assert_eq!(m.pins(None).unwrap().len(), 2);
        assert!(m.unpin(&repo, &tag).unwrap());
        assert!(!m.unpin(&repo, &tag).unwrap());

        assert!(m.cache_record(&repo, &tag).unwrap().is_none());
        let rec = CacheRecord {
            checked_at: 10,
            used_at: 20,
        };
        m.put_cache_record(&repo, &tag, &rec).unwrap();
        assert_eq!(m.cache_record(&repo, &tag).unwrap().unwrap().used_at, 20);
        assert_eq!(m.cache_records().unwrap().len(), 1);
        m.remove_cache_record(repo.as_str(), "3.19").unwrap();
        assert!(m.cache_records().unwrap().is_empty());
    }
}
