//! Whole-store listings for garbage collection, eviction and fsck.

use super::*;
use store::{GC_RUNS, LINKS, MANIFESTS, MANIFEST_BYTES, REFERRERS, TAGS, UPLOADS};

impl Meta {
    /// Every manifest record of every repository: (repository, digest, record).
    pub fn all_manifests(&self) -> Result<Vec<(String, Digest, ManifestRecord)>> {
        self.scan::<ManifestRecord>(MANIFESTS, b"")?
            .into_iter()
            .map(|(k, v)| {
                let (repo, digest) = split(&k)
                    .ok_or_else(|| Error::internal("reading manifests", "malformed key"))?;
                let digest: Digest = digest
                    .parse()
                    .map_err(|_| Error::internal("reading manifests", "malformed digest"))?;
                Ok((repo, digest, v))
            })
            .collect()
    }

    /// Every tag of every repository: (repository, tag, digest it points at).
    pub fn all_tag_entries(&self) -> Result<Vec<(String, String, Digest)>> {
        Ok(self
            .scan::<TagRecord>(TAGS, b"")?
            .into_iter()
            .filter_map(|(k, v)| split(&k).map(|(repo, tag)| (repo, tag, v.digest)))
            .collect())
    }

    /// Every tag of every repository: (repository, digest it points at).
    pub fn all_tags(&self) -> Result<Vec<(String, Digest)>> {
        Ok(self
            .all_tag_entries()?
            .into_iter()
            .map(|(repo, _, digest)| (repo, digest))
            .collect())
    }

    /// Every blob link of every repository: (repository, digest, record).
    pub fn all_links(&self) -> Result<Vec<(String, Digest, LinkRecord)>> {
        Ok(self
            .scan::<LinkRecord>(LINKS, b"")?
            .into_iter()
            .filter_map(|(k, v)| {
                let (repo, digest) = split(&k)?;
                Some((repo, digest.parse::<Digest>().ok()?, v))
            })
            .collect())
    }

    /// Removes one link found by [`Meta::all_links`] (its repository as stored, which
    /// garbage collection does not re-validate).
    pub fn remove_link(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.remove(
            "removing a blob link",
            LINKS,
            &key2(repo, &digest.to_string()),
        )
        .map(|_| ())
    }

    /// The link record of one blob in one repository.
    pub fn link(&self, repo: &str, digest: &Digest) -> Result<Option<LinkRecord>> {
        self.get(LINKS, &key2(repo, &digest.to_string()))
    }

    /// Manifest contents no manifest record refers to any more.
    pub fn orphan_manifest_bytes(
        &self,
        live: &std::collections::HashSet<Digest>,
    ) -> Result<Vec<Digest>> {
        let keys = self.read("reading manifest bytes", |tx| {
            scan_keys(&tx.open_table(MANIFEST_BYTES)?, b"")
        })?;
        Ok(keys
            .iter()
            .filter_map(|k| String::from_utf8_lossy(k).parse::<Digest>().ok())
            .filter(|d| !live.contains(d))
            .collect())
    }

    pub fn delete_manifest_bytes(&self, digest: &Digest) -> Result<()> {
        self.remove("removing manifest bytes", MANIFEST_BYTES, &digest.to_key())
            .map(|_| ())
    }

    /// Every upload session: (id, record).
    pub fn uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>> {
        Ok(self
            .scan::<UploadRecord>(UPLOADS, b"")?
            .into_iter()
            .filter_map(|(k, v)| {
                String::from_utf8_lossy(&k)
                    .parse::<UploadId>()
                    .ok()
                    .map(|id| (id, v))
            })
            .collect())
    }

    /// Records a garbage collection run (newest kept last; the 100 latest are kept).
    pub fn record_gc_run(&self, run: &serde_json::Value) -> Result<()> {
        let v = serde_json::to_vec(run).unwrap_or_default();
        self.write("recording a GC run", |tx| {
            let id = next_id(tx)?;
            let mut t = tx.open_table(GC_RUNS)?;
            t.insert(id.to_be_bytes().as_slice(), v.as_slice())?;
            while t.len()? > 100 {
                if t.pop_first()?.is_none() {
                    break;
                }
            }
            Ok(())
        })
    }

    pub fn gc_runs(&self) -> Result<Vec<serde_json::Value>> {
        Ok(self
            .scan::<serde_json::Value>(GC_RUNS, b"")?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Digests of the tags in `repo` (tag name, digest).
    pub fn tags_of(&self, repo: &RepoName) -> Result<Vec<(String, Digest)>> {
        let pre = prefix(repo.as_str());
        Ok(self
            .scan::<TagRecord>(TAGS, &pre)?
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k[pre.len()..]).into_owned(),
                    v.digest,
                )
            })
            .collect())
    }

    /// Removes a manifest from a repository with every tag pointing at it and its referrer
    /// entry, in one transaction. The bytes stay (shared by content) until garbage collection.
    pub fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let mkey = key2(repo.as_str(), &digest.to_string());
        let pre = prefix(repo.as_str());
        self.write("deleting a manifest", |tx| {
            let record: Option<ManifestRecord> = get_json(&tx.open_table(MANIFESTS)?, &mkey)?;
            let Some(record) = record else {
                return Ok(false);
            };
            tx.open_table(MANIFESTS)?.remove(mkey.as_slice())?;
            let mut tags = tx.open_table(TAGS)?;
            let pointing: Vec<Vec<u8>> = scan_json::<TagRecord>(&tags, &pre)?
                .into_iter()
                .filter(|(_, t)| &t.digest == digest)
                .map(|(k, _)| k)
                .collect();
            for k in &pointing {
                tags.remove(k.as_slice())?;
            }
            if let Some(s) = &record.subject {
                let mut k = key2(repo.as_str(), &s.to_string());
                k.push(0);
                k.extend_from_slice(digest.to_string().as_bytes());
                tx.open_table(REFERRERS)?.remove(k.as_slice())?;
            }
            Ok(true)
        })
    }
}
