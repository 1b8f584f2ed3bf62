//! Blobs found corrupt by a scrub: recorded so that detection sticks (across restarts, and
//! from an offline `edgeyard fsck` to the server started after it).

use super::{db_err, decode, encode, CorruptRecord, Meta, TagRecord};
use crate::error::Result;
use crate::oci::Digest;

impl Meta {
    pub fn mark_corrupt(&self, digest: &Digest, rec: &CorruptRecord) -> Result<()> {
        self.corrupt
            .insert(digest.to_key(), encode(rec))
            .map(|_| ())
            .map_err(db_err("recording a corrupt blob"))
    }

    /// Whether the blob is recorded corrupt: one lookup in a tree that is normally empty,
    /// made on every blob read.
    pub fn is_corrupt(&self, digest: &Digest) -> Result<bool> {
        self.corrupt
            .contains_key(digest.to_key())
            .map_err(db_err("reading corrupt blobs"))
    }

    /// Forgets a mark (the blob was replaced by good bytes, or deleted); whether there was one.
    pub fn clear_corrupt(&self, digest: &Digest) -> Result<bool> {
        self.corrupt
            .remove(digest.to_key())
            .map(|old| old.is_some())
            .map_err(db_err("clearing a corrupt blob"))
    }

    /// Every blob recorded corrupt.
    pub fn corrupt_blobs(&self) -> Result<Vec<(Digest, CorruptRecord)>> {
        let mut out = Vec::new();
        for kv in self.corrupt.iter() {
            let (k, v) = kv.map_err(db_err("listing corrupt blobs"))?;
            if let Ok(d) = String::from_utf8_lossy(&k).parse::<Digest>() {
                out.push((d, decode(&v)?));
            }
        }
        Ok(out)
    }
}

impl Meta {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_stick_until_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Digest::sha256_of(b"x");
        let rec = CorruptRecord {
            found_at: 1,
            size: 1,
            actual: Digest::sha256_of(b"y").to_string(),
            quarantined: None,
        };
        {
            let m = Meta::open(&tmp.path().join("meta")).unwrap();
            assert!(!m.is_corrupt(&d).unwrap());
            m.mark_corrupt(&d, &rec).unwrap();
            m.flush_blocking().unwrap();
        }
        let m = Meta::open(&tmp.path().join("meta")).unwrap();
        assert!(m.is_corrupt(&d).unwrap());
        assert!(!m.is_corrupt(&Digest::sha256_of(b"z")).unwrap());
        assert_eq!(m.corrupt_blobs().unwrap()[0].0, d);
        assert!(m.clear_corrupt(&d).unwrap());
        assert!(!m.clear_corrupt(&d).unwrap());
        assert!(!m.is_corrupt(&d).unwrap());
    }
}
