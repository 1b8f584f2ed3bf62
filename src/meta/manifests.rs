//! Manifests and their exact bytes, stored with their tag in one transaction.

use super::*;
use store::{LINKS, MANIFESTS, MANIFEST_BYTES, REFERRERS, TAGS};

impl Meta {
    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        self.get(MANIFESTS, &key2(repo.as_str(), &digest.to_string()))
    }

    pub fn manifest_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        self.read("reading manifest bytes", |tx| {
            let t = tx.open_table(MANIFEST_BYTES)?;
            let v = t.get(digest.to_key().as_slice())?;
            Ok(v.map(|v| v.value().to_vec()))
        })
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
        let touched_at = now();
        self.write("storing a manifest", |tx| {
            let mut tags = tx.open_table(TAGS)?;
            if let (Some(tag), true) = (put.tag, put.tag_immutable) {
                let old: Option<TagRecord> = get_json(&tags, &key2(repo, tag.as_str()))?;
                if let Some(old) = old.filter(|old| &old.digest != put.digest) {
                    return Ok(PutResult::TagImmutable(old.digest));
                }
            }
            tx.open_table(MANIFESTS)?
                .insert(key2(repo, &dkey).as_slice(), record.as_slice())?;
            tx.open_table(MANIFEST_BYTES)?
                .insert(dkey.as_bytes(), put.bytes)?;
            if let Some(tag) = put.tag {
                tags.insert(key2(repo, tag.as_str()).as_slice(), tag_rec.as_slice())?;
            }
            if let Some((subject, desc)) = put.referrer {
                let mut k = key2(repo, &subject.to_string());
                k.push(0);
                k.extend_from_slice(dkey.as_bytes());
                tx.open_table(REFERRERS)?
                    .insert(k.as_slice(), encode(desc).as_slice())?;
            }
            links::create_repo_in(tx, repo)?;
            // Referencing a blob renews its link, so a garbage collection that marked
            // before this manifest existed sees the blob as freshly used and keeps it.
            let mut links = tx.open_table(LINKS)?;
            for d in &put.record.blobs {
                let k = key2(repo, &d.to_string());
                let mut rec: LinkRecord = match get_json(&links, &k) {
                    Ok(Some(rec)) => rec,
                    // No link, or an unreadable one: nothing to renew.
                    Ok(None) | Err(Fail::Record(_)) => continue,
                    Err(e) => return Err(e),
                };
                rec.linked_at = touched_at;
                links.insert(k.as_slice(), encode(&rec).as_slice())?;
            }
            Ok(PutResult::Stored)
        })
    }
}
