//! Blob bytes on local disk, content-addressed and shared by every repository.
//!
//! ```text
//! <data-dir>/
//! ├── blobs/
//! │   ├── sha256/
//! │   │   └── ab/
//! │   │       └── ab12…ef     a committed blob: complete, verified, never modified
//! │   └── sha512/…
//! ├── uploads/
//! │   └── <upload-id>         bytes of an upload in progress, append-only
//! ├── quarantine/             created by `edgeyard fsck --quarantine` (see `scrub`)
//! │   └── sha256/
//! │       └── ab12…ef         a blob file that failed its integrity check, moved here as is
//! └── meta/                   the redb metadata store (owned by `meta`)
//! ```
//!
//! A blob file appears under its digest only by `rename` of a complete, fsynced upload file,
//! followed by an fsync of the directory: a crash leaves either no file or the whole file.
//! Once there it is never modified; it is replaced only when the registry recorded it
//! corrupt ([`Storage::replace_blob`]).

mod file_body;
pub mod files;
mod scrub;
mod upload_file;
mod verify;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::oci::{Digest, UploadId};

pub use file_body::{FileBody, ReadShare};
pub use scrub::{BlobEntry, FileId, Hashed, HASH_BUFFER};
pub use upload_file::UploadFile;
pub use verify::{Expect, Outcome, Verify};

/// Handle to the on-disk layout. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    root: PathBuf,
}

/// Makes every file and directory the process creates from now on private to its user
/// (umask 077), whatever umask it was started with: the data directory holds password
/// hashes, keys and images that are nobody else's business.
pub fn private_umask() {
    // SAFETY: umask only swaps the process's file mode creation mask; it cannot fail and
    // touches no memory of ours.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and missing parents) private to this user, or makes an existing one so:
/// stores created by earlier versions under umask 022 were readable by every local user.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

impl Storage {
    /// Opens (creating if needed) the layout under `root`, private to this user.
    pub fn open(root: &Path) -> io::Result<Storage> {
        private_dir(root)?;
        private_dir(&root.join("blobs"))?;
        private_dir(&root.join("uploads"))?;
        // Before the metadata store creates anything in it: it holds password hashes.
        private_dir(&root.join("meta"))?;
        Ok(Storage {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.root.join("meta")
    }

    fn blob_dir(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&digest.hex()[..2])
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest).join(digest.hex())
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.root.join("uploads").join(id.as_str())
    }

    /// Size of a committed blob, or `None` if its file does not exist.
    pub fn blob_size(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> io::Result<Option<File>> {
        match File::open(self.blob_path(digest)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts the file of a new upload; `create_new` guarantees a single writer per id.
    pub fn create_upload(&self, id: &UploadId) -> io::Result<UploadFile> {
        let file = fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(self.upload_path(id))?;
        Ok(UploadFile::new(file))
    }

    /// Makes the upload files created so far survive a power cut (their directory entries
    /// are only on disk once `uploads/` is synced): a session the client was told about
    /// must still have its file after a restart.
    pub fn sync_uploads(&self) -> io::Result<()> {
        sync_dir(&self.root.join("uploads"))
    }

    /// Reopens the file of an upload that survived a restart and re-hashes what it holds,
    /// the only time uploaded bytes are read back.
    pub fn reopen_upload(&self, id: &UploadId) -> io::Result<Option<UploadFile>> {
        match fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.upload_path(id))
        {
            Ok(f) => UploadFile::resume(f).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn remove_upload(&self, id: &UploadId) -> io::Result<()> {
        match fs::remove_file(self.upload_path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Makes a verified upload the blob named `digest`: fsync the data, rename it into
    /// place, fsync the directory. If the blob already exists (a concurrent upload of the same
    /// content won), the upload file is simply removed: the bytes are identical by definition.
    pub fn commit_upload(
        &self,
        id: &UploadId,
        file: UploadFile,
        digest: &Digest,
    ) -> io::Result<()> {
        self.commit(id, file, digest, false)
    }

    /// [`Storage::commit_upload`] for a blob whose file is recorded corrupt: the verified
    /// upload takes the bad file's place (rename replaces it atomically). Never called for a
    /// good blob.
    pub fn replace_blob(&self, id: &UploadId, file: UploadFile, digest: &Digest) -> io::Result<()> {
        self.commit(id, file, digest, true)
    }

    fn commit(
        &self,
        id: &UploadId,
        file: UploadFile,
        digest: &Digest,
        replace: bool,
    ) -> io::Result<()> {
        file.sync()?;
        drop(file);
        let dir = self.blob_dir(digest);
        let target = dir.join(digest.hex());
        if !replace && target.exists() {
            return self.remove_upload(id);
        }
        fs::create_dir_all(&dir)?;
        fs::rename(self.upload_path(id), &target)?;
        sync_dir(&dir)?;
        Ok(())
    }
}

/// Bytes and number of blob files on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub blobs: u64,
}

/// A listed file's metadata, or `None` if it went away since the directory was read (an
/// upload that finished, a blob collected): listing races with pushes and deletions, and
/// a vanished file is not an error. (The power-cut test's log check caught a garbage
/// collection that failed on an upload completing while it listed them.)
fn still_there(entry: &fs::DirEntry) -> io::Result<Option<fs::Metadata>> {
    match entry.metadata() {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Storage {
    /// Walks the blob tree (a directory read per two-hex-digit fan-out folder).
    pub fn usage(&self) -> io::Result<Usage> {
        let mut u = Usage::default();
        for alg in fs::read_dir(self.root.join("blobs"))? {
            for fan in fs::read_dir(alg?.path())? {
                for blob in fs::read_dir(fan?.path())? {
                    if let Some(m) = still_there(&blob?)?.filter(|m| m.is_file()) {
                        u.bytes += m.len();
                        u.blobs += 1;
                    }
                }
            }
        }
        Ok(u)
    }

    /// Every blob file: digest, size and modification time (when it was committed).
    pub fn blobs(&self) -> io::Result<Vec<(Digest, u64, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for alg in fs::read_dir(self.root.join("blobs"))? {
            let alg = alg?;
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            for fan in fs::read_dir(alg.path())? {
                for blob in fs::read_dir(fan?.path())? {
                    let blob = blob?;
                    let name = format!("{alg_name}:{}", blob.file_name().to_string_lossy());
                    // Anything that is not a valid digest name is not ours to touch.
                    let Ok(digest) = name.parse::<Digest>() else {
                        continue;
                    };
                    if let Some(m) = still_there(&blob)?.filter(|m| m.is_file()) {
                        out.push((digest, m.len(), m.modified()?));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Removes a blob's file (garbage collection, cache eviction). Not synced: no record points at it any more, so a removal a
    /// crash undoes leaves an orphan file for the next collection, whole as it was.
    pub fn delete_blob(&self, digest: &Digest) -> io::Result<()> {
        match fs::remove_file(self.blob_path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Upload files and their modification times (for expiring abandoned uploads).
    pub fn upload_files(&self) -> io::Result<Vec<(UploadId, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for f in fs::read_dir(self.root.join("uploads"))? {
            let f = f?;
            if let Ok(id) = f.file_name().to_string_lossy().parse::<UploadId>() {
                if let Some(m) = still_there(&f)? {
                    out.push((id, m.modified()?));
                }
            }
        }
        Ok(out)
    }

    /// Bytes available to this process and total bytes of the data directory's filesystem.
    pub fn free_space(&self) -> io::Result<(u64, u64)> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.root.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "data directory path contains NUL",
            )
        })?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `path` is a valid NUL-terminated string and `st` points to writable memory
        // of the right type; statvfs only writes into it, and we read it only on success.
        let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statvfs returned 0, so it filled the struct.
        let st = unsafe { st.assume_init() };
        // The field types differ by target (32 bits on armv7): convert, whatever they are.
        #[allow(clippy::useless_conversion)]
        let (frsize, avail, blocks) = (
            u64::from(st.f_frsize),
            u64::from(st.f_bavail),
            u64::from(st.f_blocks),
        );
        Ok((avail * frsize, blocks * frsize))
    }

    /// Proves the data directory takes writes: create, write, fsync and remove a probe file.
    /// Whether uploads can be written and committed: a probe file in `uploads/` and one in
    /// `blobs/` (where commits rename to), each written, synced and removed. A read-only
    /// `blobs/` with a writable `uploads/` fails every push at its end.
    pub fn probe_writable(&self) -> io::Result<()> {
        use std::io::Write;
        for dir in ["uploads", "blobs"] {
            let p = self.root.join(dir).join(PROBE);
            let mut f = fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&p)
                .map_err(|e| io::Error::new(e.kind(), format!("{dir}/ cannot be written: {e}")))?;
            f.write_all(b"ok")?;
            f.sync_all()?;
            fs::remove_file(p)?;
        }
        Ok(())
    }
}

/// The readiness probe's file name (see [`Storage::probe_writable`]); the scrub skips it.
pub(crate) const PROBE: &str = ".ready-probe";

/// Makes a rename durable: the directory entry is only on disk once the directory is synced.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_commits_under_its_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path()).unwrap();
        let id = UploadId::random().unwrap();
        let mut up = s.create_upload(&id).unwrap();
        up.append(b"hello").unwrap();
        let d = up.digest();
        assert_eq!(d, Digest::sha256_of(b"hello"));
        s.commit_upload(&id, up, &d).unwrap();
        assert_eq!(s.blob_size(&d).unwrap(), Some(5));
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), b"hello");
        assert!(fs::read_dir(tmp.path().join("uploads"))
            .unwrap()
            .next()
            .is_none());
        assert!(s.blob_path(&d).starts_with(tmp.path().join("blobs/sha256")));
    }

    #[test]
    fn second_commit_of_same_blob_keeps_one_file() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path()).unwrap();
        for _ in 0..2 {
            let id = UploadId::random().unwrap();
            let mut up = s.create_upload(&id).unwrap();
            up.append(b"same").unwrap();
            let d = up.digest();
            s.commit_upload(&id, up, &d).unwrap();
        }
        assert!(fs::read_dir(tmp.path().join("uploads"))
            .unwrap()
            .next()
            .is_none());
    }

    #[test]
    fn resumed_upload_continues_the_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path()).unwrap();
        let id = UploadId::random().unwrap();
        let mut up = s.create_upload(&id).unwrap();
        up.append(b"part one, ").unwrap();
        up.sync().unwrap();
        drop(up);
        let mut up = s.reopen_upload(&id).unwrap().unwrap();
        assert_eq!(up.len(), 10);
        up.append(b"part two").unwrap();
        assert_eq!(up.digest(), Digest::sha256_of(b"part one, part two"));
    }
}
