//! Offline commands run as root on the service's data directory give what they create back
//! to the directory's owner when they end.
//!
//! The packaged unit runs with `DynamicUser=`: /var/lib/edgeyard belongs to an account that
//! exists only while the service runs. An operator who stops the service and runs
//! `sudo edgeyard import bundle.tar -c /etc/edgeyard/edgeyard.toml` writes blob files and
//! directories as root, which the service, without any capability, could then neither read
//! nor write into. So every command that opened a data directory notes it, and `main` calls
//! [`give_back`] at the end: whatever in it is not owned by the directory's owner is handed
//! to that owner (uid and gid). Nothing happens unless the command runs as root and the
//! directory belongs to someone else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The data directory this command opened, if any.
static OPENED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Records the data directory the command works on.
pub fn note(dir: &Path) {
    if let Ok(mut opened) = OPENED.lock() {
        *opened = Some(dir.to_path_buf());
    }
}

/// Hands every file and directory under the noted data directory that its owner does not
/// own back to that owner; returns how many. A no-op unless running as root.
pub fn give_back() -> std::io::Result<u64> {
    let Some(dir) = OPENED.lock().ok().and_then(|mut o| o.take()) else {
        return Ok(0);
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let top = match std::fs::metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if euid != 0 || top.uid() == 0 {
        return Ok(0);
    }
    chown_tree(&dir, top.uid(), top.gid())
}

/// Every entry below `dir` (not following links) not owned by `uid`:`gid`, changed to it.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<u64> {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.uid() != uid || meta.gid() != gid {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
                changed += 1;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_differs_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("data");
        std::fs::create_dir_all(d.join("blobs/sha256/ab")).unwrap();
        std::fs::write(d.join("blobs/sha256/ab/abcd"), b"x").unwrap();
        let me = std::fs::metadata(&d).unwrap();
        // All entries are ours already: nothing to change.
        assert_eq!(chown_tree(&d, me.uid(), me.gid()).unwrap(), 0);
    }
}
