//! What a scrub (`edgeyard fsck`) needs from the disk: every entry of the blob tree, stray
//! ones included; a blob's content re-hashed; and quarantine, which moves a bad blob file
//! out of the tree without deleting a byte of it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{sync_dir, Storage};
use crate::oci::{Digest, Hasher, UploadId};

/// One entry of the blob tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobEntry {
    /// A file named like a digest, in the folder its name belongs in.
    Blob { digest: Digest, size: u64 },
    /// Anything else: not ours to touch, but worth a warning.
    Stray { path: PathBuf, why: &'static str },
}

/// Which file was read: a rename (a blob replaced by an upload) or a write changes it, so a
/// verdict reached on one file is never applied to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileId {
    fn of(m: &fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// A blob file re-hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// What its content hashes to, with the algorithm of its name.
    pub actual: Digest,
    /// Bytes read.
    pub len: u64,
    pub id: FileId,
    /// Their CRC-32: what pulls check the blob with once its digest matched.
    pub checksum: u32,
}

/// Reads per `read` call while hashing: large enough that the disk streams, small enough
/// that a scrub's memory does not grow with the blobs.
pub const HASH_BUFFER: usize = 1 << 20;

impl Storage {
    /// Every entry of the blob tree, in directory order. Folders and files that do not fit
    /// the layout are reported as strays, never followed or touched.
    pub fn blob_tree(&self) -> io::Result<Vec<BlobEntry>> {
        let mut out = Vec::new();
        let stray = |path: PathBuf, why| BlobEntry::Stray { path, why };
        for alg in fs::read_dir(self.root.join("blobs"))? {
            let alg = alg?;
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            if alg_name == super::PROBE {
                continue; // the readiness probe, there for an instant
            }
            if !alg.file_type()?.is_dir() || !matches!(alg_name.as_str(), "sha256" | "sha512") {
                out.push(stray(alg.path(), "not a digest algorithm's folder"));
                continue;
            }
            for fan in fs::read_dir(alg.path())? {
                let fan = fan?;
                let fan_name = fan.file_name().to_string_lossy().into_owned();
                let fan_ok = fan_name.len() == 2
                    && fan_name
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !fan.file_type()?.is_dir() || !fan_ok {
                    out.push(stray(fan.path(), "not a two-hex-digit folder"));
                    continue;
                }
                for blob in fs::read_dir(fan.path())? {
                    let blob = blob?;
                    let name = blob.file_name().to_string_lossy().into_owned();
                    let Ok(digest) = format!("{alg_name}:{name}").parse::<Digest>() else {
                        out.push(stray(blob.path(), "not named like a digest"));
                        continue;
                    };
                    if !name.starts_with(&fan_name) {
                        out.push(stray(blob.path(), "in another digest's folder"));
                        continue;
                    }
                    let m = blob.metadata()?;
                    if !m.is_file() {
                        out.push(stray(blob.path(), "not a regular file"));
                        continue;
                    }
                    out.push(BlobEntry::Blob {
                        digest,
                        size: m.len(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Re-hashes a blob file with its name's algorithm, `buf.len()` bytes per read; `None`
    /// when the file is gone. Blocking: run it on a blocking thread.
    pub fn hash_blob(&self, digest: &Digest, buf: &mut [u8]) -> io::Result<Option<Hashed>> {
        let mut f = match File::open(self.blob_path(digest)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = FileId::of(&f.metadata()?);
        let mut h = Hasher::new(digest.algorithm());
        let mut crc = crc32fast::Hasher::new();
        let mut len = 0u64;
        loop {
            let n = match f.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
            crc.update(&buf[..n]);
            len += n as u64;
        }
        Ok(Some(Hashed {
            actual: h.finish(),
            len,
            id,
            checksum: crc.finalize(),
        }))
    }

    /// The identity of a blob's file now, or `None` if it is gone.
    pub fn blob_file_id(&self, digest: &Digest) -> io::Result<Option<FileId>> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves a blob file to `quarantine/<algorithm>/<hex>` (`<hex>.1`, `.2`, … if that name
    /// is taken: an earlier quarantined copy is never overwritten). Returns where it went, or
    /// `None` if the file was gone. The bytes are kept as they are, for inspection.
    pub fn quarantine_blob(&self, digest: &Digest) -> io::Result<Option<PathBuf>> {
        let from = self.blob_path(digest);
        if !from.exists() {
            return Ok(None);
        }
        let dir = self
            .root
            .join("quarantine")
            .join(digest.algorithm().as_str());
        fs::create_dir_all(&dir)?;
        let mut to = dir.join(digest.hex());
        let mut n = 0;
        while to.exists() {
            n += 1;
            to = dir.join(format!("{}.{n}", digest.hex()));
        }
        // Not atomic against another process creating `to` in between, but only scrubs
        // write here and they do so under the registry's exclusive lock.
        fs::rename(&from, &to)?;
        sync_dir(&dir)?;
        sync_dir(&self.blob_dir(digest))?;
        Ok(Some(to))
    }

    /// Whether an upload's file exists.
    pub fn upload_exists(&self, id: &UploadId) -> bool {
        self.upload_path(id).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Storage, Digest) {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path()).unwrap();
        let id = UploadId::random().unwrap();
        let mut up = s.create_upload(&id).unwrap();
        up.append(b"good bytes").unwrap();
        let d = up.digest();
        s.commit_upload(&id, up, &d).unwrap();
        (tmp, s, d)
    }

    #[test]
    fn hashing_finds_a_flipped_byte() {
        let (_t, s, d) = store();
        let mut buf = vec![0; 3];
        let h = s.hash_blob(&d, &mut buf).unwrap().unwrap();
        assert_eq!((h.actual.clone(), h.len), (d.clone(), 10));
        let mut bytes = fs::read(s.blob_path(&d)).unwrap();
        bytes[4] ^= 1;
        fs::write(s.blob_path(&d), &bytes).unwrap();
        let bad = s.hash_blob(&d, &mut buf).unwrap().unwrap();
        assert_eq!(bad.actual, Digest::sha256_of(&bytes));
        assert_ne!(bad.actual, d);
        assert!(s
            .hash_blob(&Digest::sha256_of(b"none"), &mut buf)
            .unwrap()
            .is_none());
    }

    #[test]
    fn strays_are_reported_and_blobs_listed() {
        let (tmp, s, d) = store();
        let blobs = tmp.path().join("blobs");
        fs::write(blobs.join("README"), b"x").unwrap();
        fs::create_dir_all(blobs.join("sha256/zz")).unwrap();
        fs::write(blobs.join("sha256").join(&d.hex()[..2]).join("tmp"), b"x").unwrap();
        let other = Digest::sha256_of(b"elsewhere");
        let wrong_fan = if &other.hex()[..2] == "00" {
            "01"
        } else {
            "00"
        };
        fs::create_dir_all(blobs.join("sha256").join(wrong_fan)).unwrap();
        fs::write(blobs.join("sha256").join(wrong_fan).join(other.hex()), b"x").unwrap();
        let entries = s.blob_tree().unwrap();
        assert!(entries.contains(&BlobEntry::Blob {
            digest: d,
            size: 10
        }));
        let whys: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                BlobEntry::Stray { why, .. } => Some(*why),
                _ => None,
            })
            .collect();
        assert_eq!(whys.len(), 4, "{entries:?}");
        for why in [
            "not a digest algorithm's folder",
            "not a two-hex-digit folder",
            "not named like a digest",
            "in another digest's folder",
        ] {
            assert!(whys.contains(&why), "{why}: {entries:?}");
        }
    }

    #[test]
    fn quarantine_moves_the_bytes_and_never_overwrites() {
        let (tmp, s, d) = store();
        let first = s.quarantine_blob(&d).unwrap().unwrap();
        assert_eq!(first, tmp.path().join("quarantine/sha256").join(d.hex()));
        assert_eq!(fs::read(&first).unwrap(), b"good bytes");
        assert_eq!(s.blob_size(&d).unwrap(), None);
        assert_eq!(s.quarantine_blob(&d).unwrap(), None);
        // The same digest quarantined again keeps the first copy.
        fs::write(s.blob_path(&d), b"second").unwrap();
        let second = s.quarantine_blob(&d).unwrap().unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read(&first).unwrap(), b"good bytes");
        assert_eq!(fs::read(&second).unwrap(), b"second");
    }

    #[test]
    fn replace_takes_the_place_of_a_bad_file_and_commit_never_does() {
        let (_t, s, d) = store();
        fs::write(s.blob_path(&d), b"bad bytes!").unwrap();
        let before = s.blob_file_id(&d).unwrap().unwrap();
        let upload = |s: &Storage| {
            let id = UploadId::random().unwrap();
            let mut up = s.create_upload(&id).unwrap();
            up.append(b"good bytes").unwrap();
            (id, up)
        };
        let (id, up) = upload(&s);
        s.commit_upload(&id, up, &d).unwrap();
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), b"bad bytes!");
        let (id, up) = upload(&s);
        s.replace_blob(&id, up, &d).unwrap();
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), b"good bytes");
        assert_ne!(s.blob_file_id(&d).unwrap().unwrap(), before);
        assert!(!s.upload_exists(&id));
    }
}
