//! Whole-store listings for garbage collection, eviction and fsck.

use super::*;

impl Meta {
    /// Every manifest record of every repository: (repository, digest, record).
    pub fn all_manifests(&self) -> Result<Vec<(String, Digest, ManifestRecord)>> {
        self.manifests
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("reading manifests"))?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let (repo, digest) = key
                    .split_once('\0')
                    .ok_or_else(|| Error::internal("reading manifests", "malformed key"))?;
                let digest: Digest = digest
                    .parse()
                    .map_err(|_| Error::internal("reading manifests", "malformed digest"))?;
                Ok((repo.to_string(), digest, decode(&v)?))
            })
            .collect()
    }

    /// Every tag of every repository: (repository, tag, digest it points at).
    pub fn all_tag_entries(&self) -> Result<Vec<(String, String, Digest)>> {
        let mut out = Vec::new();
        for kv in self.tags.iter() {
            let (k, v) = kv.map_err(db_err("reading tags"))?;
            let Some(pos) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let rec: TagRecord = decode(&v)?;
            out.push((
                String::from_utf8_lossy(&k[..pos]).into_owned(),
                String::from_utf8_lossy(&k[pos + 1..]).into_owned(),
                rec.digest,
            ));
        }
        Ok(out)
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
        let mut out = Vec::new();
        for kv in self.links.iter() {
            let (k, v) = kv.map_err(db_err("reading blob links"))?;
            let Some(pos) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let Ok(digest) = String::from_utf8_lossy(&k[pos + 1..]).parse::<Digest>() else {
                continue;
            };
            let repo = String::from_utf8_lossy(&k[..pos]).into_owned();
            out.push((repo, digest, decode(&v)?));
        }
        Ok(out)
    }

    /// Removes one link found by [`Meta::all_links`] (its repository as stored, which
    /// garbage collection does not re-validate).
    pub fn remove_link(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.links
            .remove(key2(repo, &digest.to_string()))
            .map(|_| ())
            .map_err(db_err("removing a blob link"))
    }

    /// The link record of one blob in one repository.
    pub fn link(&self, repo: &str, digest: &Digest) -> Result<Option<LinkRecord>> {
        Self::get_json(&self.links, &key2(repo, &digest.to_string()))
    }

    /// Manifest contents no manifest record refers to any more.
    pub fn orphan_manifest_bytes(
        &self,
        live: &std::collections::HashSet<Digest>,
    ) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for k in self.manifest_bytes.iter().keys() {
            let k = k.map_err(db_err("reading manifest bytes"))?;
            if let Ok(d) = String::from_utf8_lossy(&k).parse::<Digest>() {
                if !live.contains(&d) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    pub fn delete_manifest_bytes(&self, digest: &Digest) -> Result<()> {
        self.manifest_bytes
            .remove(digest.to_key())
            .map(|_| ())
            .map_err(db_err("removing manifest bytes"))
    }

    /// Every upload session: (id, record).
    pub fn uploads(&self) -> Result<Vec<(UploadId, UploadRecord)>> {
        Ok(Self::list_json::<UploadRecord>(&self.uploads)?
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
        let id = self
            .db
            .generate_id()
            .map_err(db_err("numbering a GC run"))?;
        self.gc_runs
            .insert(
                id.to_be_bytes(),
                serde_json::to_vec(run).unwrap_or_default(),
            )
            .map_err(db_err("recording a GC run"))?;
        while self.gc_runs.len() > 100 {
            match self.gc_runs.pop_min().map_err(db_err("trimming GC runs"))? {
                Some(_) => {}
                None => break,
            }
        }
        Ok(())
    }

    pub fn gc_runs(&self) -> Result<Vec<serde_json::Value>> {
        self.gc_runs
            .iter()
            .values()
            .map(|v| {
                let v = v.map_err(db_err("reading GC runs"))?;
                serde_json::from_slice(&v).map_err(|e| Error::internal("reading GC runs", e))
            })
            .collect()
    }

    /// Digests of the tags in `repo` (tag name, digest).
    pub fn tags_of(&self, repo: &RepoName) -> Result<Vec<(String, Digest)>> {
        let pre = prefix(repo.as_str());
        self.tags
            .scan_prefix(&pre)
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("reading tags"))?;
                let rec: TagRecord = decode(&v)?;
                Ok((
                    String::from_utf8_lossy(&k[pre.len()..]).into_owned(),
                    rec.digest,
                ))
            })
            .collect()
    }

    /// Removes a manifest from a repository with every tag pointing at it and its referrer
    /// entry. The bytes stay (shared by content) until garbage collection.
    pub fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let Some(record) = self.manifest(repo, digest)? else {
            return Ok(false);
        };
        let tag_keys: Vec<sled::IVec> = self
            .tags
            .scan_prefix(prefix(repo.as_str()))
            .filter_map(|kv| kv.ok())
            .filter(|(_, v)| {
                decode::<TagRecord>(v)
                    .map(|t| &t.digest == digest)
                    .unwrap_or(false)
            })
            .map(|(k, _)| k)
            .collect();
        let referrer_key = record.subject.as_ref().map(|s| {
            let mut k = key2(repo.as_str(), &s.to_string());
            k.push(0);
            k.extend_from_slice(digest.to_string().as_bytes());
            k
        });
        let _exclusive = self.durability.exclusive();
        (&self.manifests, &self.tags, &self.referrers)
            .transaction(|(manifests, tags, referrers)| {
                manifests.remove(key2(repo.as_str(), &digest.to_string()))?;
                for k in &tag_keys {
                    tags.remove(k)?;
                }
                if let Some(k) = &referrer_key {
                    referrers.remove(k.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err("deleting a manifest"))?;
        Ok(true)
    }
}
