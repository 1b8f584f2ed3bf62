//! Blobs found corrupt by a scrub or a pull: recorded so that detection sticks (across
//! restarts, and from an offline `edgeyard fsck` to the server started after it). And the
//! checksums pulls verify blobs with (see `storage::verify`).

use redb::ReadableTable;

use super::store::{CHECKSUMS, CORRUPT};
use super::{CorruptRecord, Meta};
use crate::error::Result;
use crate::oci::Digest;

impl Meta {
    pub fn mark_corrupt(&self, digest: &Digest, rec: &CorruptRecord) -> Result<()> {
        self.put("recording a corrupt blob", CORRUPT, &digest.to_key(), rec)
    }

    /// Whether the blob is recorded corrupt: one lookup in a table that is normally empty,
    /// made on every blob read.
    pub fn is_corrupt(&self, digest: &Digest) -> Result<bool> {
        self.has(CORRUPT, &digest.to_key())
    }

    /// Forgets a mark (the blob was replaced by good bytes, or deleted); whether there was one.
    pub fn clear_corrupt(&self, digest: &Digest) -> Result<bool> {
        self.remove("clearing a corrupt blob", CORRUPT, &digest.to_key())
    }

    /// The checksum (CRC-32) of a blob's bytes, recorded when a pull found them matching
    /// the digest; `None` until then.
    pub fn blob_checksum(&self, digest: &Digest) -> Result<Option<u32>> {
        self.read("reading a blob checksum", |tx| {
            let t = tx.open_table(CHECKSUMS)?;
            let v = t.get(digest.to_key().as_slice())?;
            Ok(v.and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
                .map(u32::from_be_bytes))
        })
    }

    /// Records a blob's checksum. Not flushed: a record lost in a crash only means the next
    /// pull checks the digest again.
    pub fn set_blob_checksum(&self, digest: &Digest, checksum: u32) -> Result<()> {
        self.write("recording a blob checksum", |tx| {
            tx.open_table(CHECKSUMS)?.insert(
                digest.to_key().as_slice(),
                checksum.to_be_bytes().as_slice(),
            )?;
            Ok(())
        })
    }

    /// Forgets what was recorded about a blob's file once the file is deleted.
    pub fn blob_file_deleted(&self, digest: &Digest) -> Result<()> {
        let k = digest.to_key();
        self.write("forgetting a blob's checks", |tx| {
            tx.open_table(CORRUPT)?.remove(k.as_slice())?;
            tx.open_table(CHECKSUMS)?.remove(k.as_slice())?;
            Ok(())
        })
    }

    /// How many blobs are recorded corrupt (read on every metrics scrape: counted, not decoded).
    pub fn corrupt_count(&self) -> u64 {
        self.count(CORRUPT).unwrap_or(0)
    }

    /// Every blob recorded corrupt.
    pub fn corrupt_blobs(&self) -> Result<Vec<(Digest, CorruptRecord)>> {
        Ok(self
            .scan::<CorruptRecord>(CORRUPT, b"")?
            .into_iter()
            .filter_map(|(k, v)| {
                let d = String::from_utf8_lossy(&k).parse::<Digest>();
                d.ok().map(|d| (d, v))
            })
            .collect())
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
