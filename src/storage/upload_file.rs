//! One upload's bytes on disk together with the running hash of exactly those bytes.

use std::fs::File;
use std::io::{self, Read, Write};

use crate::oci::{Algorithm, Digest, Hasher};

/// An append-only upload file and the sha256 of its content so far. The invariant
/// `hash == sha256(file[..len])` holds after every call, including failed ones: a failed
/// write is cut back off the file. A CRC-32 runs alongside: what pulls of the blob check
/// (see `verify`), recorded at commit so that even a blob's first pull is cheap to verify.
pub struct UploadFile {
    file: File,
    hasher: Hasher,
    crc: crc32fast::Hasher,
    len: u64,
    /// Bytes already handed to the kernel for writeback (see [`UploadFile::append`]).
    flushed: u64,
}

/// Writeback is started every this many bytes, so the fsync at commit has little left.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl UploadFile {
    pub(super) fn new(file: File) -> UploadFile {
        UploadFile {
            file,
            hasher: Hasher::new(Algorithm::Sha256),
            crc: crc32fast::Hasher::new(),
            len: 0,
            flushed: 0,
        }
    }

    /// Rebuilds the running hash from the file's content (after a restart).
    pub(super) fn resume(mut file: File) -> io::Result<UploadFile> {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            crc.update(&buf[..n]);
            len += n as u64;
        }
        Ok(UploadFile {
            file,
            hasher,
            crc,
            len,
            flushed: len,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes`, hashing them only once they are written.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            // Cut a partial write back so the file and the hash agree again.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.hasher.update(bytes);
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
        if self.len - self.flushed >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(())
    }

    /// The CRC-32 of the content so far.
    pub fn checksum(&self) -> u32 {
        self.crc.clone().finalize()
    }

    /// The sha256 of the content so far.
    pub fn digest(&self) -> Digest {
        self.hasher.peek()
    }

    /// The digest of the content with another algorithm: re-reads the file, which only
    /// happens for the rare client that names a sha512 digest.
    pub fn digest_with(&self, algorithm: Algorithm) -> io::Result<Digest> {
        if algorithm == Algorithm::Sha256 {
            return Ok(self.digest());
        }
        let mut f = self.file.try_clone()?;
        use std::io::Seek;
        f.seek(io::SeekFrom::Start(0))?;
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finish())
    }

    /// The whole content (small files only: manifests and configs of a bundle).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        use std::io::Seek;
        let mut f = self.file.try_clone()?;
        f.seek(io::SeekFrom::Start(0))?;
        let mut out = Vec::with_capacity(self.len as usize);
        f.take(self.len).read_to_end(&mut out)?;
        Ok(out)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Asks the kernel to start writing what was appended since the last call, without
    /// waiting: the disk works while the rest of the upload arrives, and the fsync that
    /// makes the blob durable at commit waits for the tail only. Best effort: a failure here
    /// only means the fsync does all the work.
    fn start_writeback(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: sync_file_range reads no memory of ours; it is given a file descriptor
            // this struct owns (open for the call's whole duration) and a byte range.
            let _ = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.flushed as libc::off64_t,
                    (self.len - self.flushed) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
        self.flushed = self.len;
    }
}
