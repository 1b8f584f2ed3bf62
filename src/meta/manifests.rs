//! Manifests and their exact bytes, stored with their tag in one transaction.

use super::*;

impl Meta {
    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        match self
            .manifests
            .get(key2(repo.as_str(), &digest.to_string()))
            .map_err(db_err("reading a manifest record"))?
        {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn manifest_bytes(&self, digest: &Digest) -> Result<Option<sled::IVec>> {
        self.manifest_bytes
            .get(digest.to_key())
            .map_err(db_err("reading manifest bytes"))
    }

    /// Stores a manifest, its tag and its referrer entry atomically.
    pub fn put_manifest(&self, put: &ManifestPut<'_>) -> Result<PutResult> {
        let repo = put.repo.as_str();
        let dkey = put.digest.to_string();
        let record = encode(put.record);
        let tag_rec = encode(&TagRecord {
            digest: put.digest.clone(),
            updated_at: put.record.pushed_at,
        });
        let repo_rec = encode(&RepoRecord {
            created_at: now(),
            description: String::new(),
            public: false,
        });
        let referrer = put.referrer.map(|(subject, desc)| {
            let mut k = key2(repo, &subject.to_string());
            k.push(0);
            k.extend_from_slice(dkey.as_bytes());
            (k, encode(desc))
        });
        let link_keys: Vec<Vec<u8>> = put
            .record
            .blobs
            .iter()
            .map(|d| key2(repo, &d.to_string()))
            .collect();
        let touched_at = now();
        let _exclusive = self.durability.exclusive();
        let result = (
            &self.manifests,
            &self.manifest_bytes,
            &self.tags,
            &self.referrers,
            &self.repos,
            &self.links,
        )
            .transaction(|(manifests, bytes, tags, referrers, repos, links)| {
                if let (Some(tag), true) = (put.tag, put.tag_immutable) {
                    if let Some(old) = tags.get(key2(repo, tag.as_str()))? {
                        let old: TagRecord = serde_json::from_slice(&old)
                            .map_err(|_| ConflictableTransactionError::Abort(None))?;
                        if &old.digest != put.digest {
                            return Err(ConflictableTransactionError::Abort(Some(old.digest)));
                        }
                    }
                }
                manifests.insert(key2(repo, &dkey), record.as_slice())?;
                bytes.insert(dkey.as_bytes(), put.bytes)?;
                if let Some(tag) = put.tag {
                    tags.insert(key2(repo, tag.as_str()), tag_rec.as_slice())?;
                }
                if let Some((k, v)) = &referrer {
                    referrers.insert(k.as_slice(), v.as_slice())?;
                }
                if repos.get(repo)?.is_none() {
                    repos.insert(repo, repo_rec.as_slice())?;
                }
                // Referencing a blob renews its link, so a garbage collection that marked
                // before this manifest existed sees the blob as freshly used and keeps it.
                for k in &link_keys {
                    if let Some(v) = links.get(k.as_slice())? {
                        if let Ok(mut rec) = serde_json::from_slice::<LinkRecord>(&v) {
                            rec.linked_at = touched_at;
                            links.insert(k.as_slice(), encode(&rec))?;
                        }
                    }
                }
                Ok::<_, ConflictableTransactionError<Option<Digest>>>(())
            });
        match result {
            Ok(()) => Ok(PutResult::Stored),
            Err(TransactionError::Abort(Some(existing))) => Ok(PutResult::TagImmutable(existing)),
            Err(TransactionError::Abort(None)) => Err(Error::internal(
                "storing a manifest",
                "unreadable tag record",
            )),
            Err(TransactionError::Storage(e)) => Err(db_err("storing a manifest")(e)),
        }
    }
}
