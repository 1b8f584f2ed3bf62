//! Blobs found corrupt by a scrub or a pull: recorded so that detection sticks (across
//! restarts, and from an offline `edgeyard fsck` to the server started after it). And the
//! checksums pulls verify blobs with (see `storage::verify`).

use super::{db_err, decode, encode, CorruptRecord, Meta};
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

    /// The checksum (CRC-32) of a blob's bytes, recorded when a pull found them matching
    /// the digest; `None` until then.
    pub fn blob_checksum(&self, digest: &Digest) -> Result<Option<u32>> {
        let v = self
            .checksums
            .get(digest.to_key())
            .map_err(db_err("reading a blob checksum"))?;
        Ok(v.and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes))
    }

    /// Records a blob's checksum. Not flushed: a record lost in a crash only means the next
    /// pull checks the digest again.
    pub fn set_blob_checksum(&self, digest: &Digest, checksum: u32) -> Result<()> {
        self.checksums
            .insert(digest.to_key(), &checksum.to_be_bytes())
            .map(|_| ())
            .map_err(db_err("recording a blob checksum"))
    }

    /// Forgets what was recorded about a blob's file once the file is deleted.
    pub fn blob_file_deleted(&self, digest: &Digest) -> Result<()> {
        self.clear_corrupt(digest)?;
        self.checksums
            .remove(digest.to_key())
            .map(|_| ())
            .map_err(db_err("forgetting a blob checksum"))
    }

    /// How many blobs are recorded corrupt (read on every metrics scrape: counted, not decoded).
    pub fn corrupt_count(&self) -> u64 {
        self.corrupt.len() as u64
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
        assert_eq!(m.blob_checksum(&d).unwrap(), None);
        m.set_blob_checksum(&d, 0xdead_beef).unwrap();
        assert_eq!(m.blob_checksum(&d).unwrap(), Some(0xdead_beef));
        m.blob_file_deleted(&d).unwrap();
        assert_eq!(m.blob_checksum(&d).unwrap(), None);
        assert!(!m.is_corrupt(&d).unwrap());
        m.mark_corrupt(&d, &rec).unwrap();
        assert_eq!(m.corrupt_blobs().unwrap()[0].0, d);
        assert!(m.clear_corrupt(&d).unwrap());
        assert!(!m.clear_corrupt(&d).unwrap());
        assert!(!m.is_corrupt(&d).unwrap());
    }
}
