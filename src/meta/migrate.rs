//! The one-time move of a sled store (what edgeyard kept metadata in before redb) into redb,
//! run by [`super::Meta::open`] when it finds one. Nothing for the operator to do.
//!
//! The sled trees and the redb tables have the same names, keys and values, so the move
//! copies bytes. It is safe to interrupt at any point:
//! 1. everything is copied into `store.redb.migrating`, committed durably;
//! 2. that file is renamed to `store.redb` and the directory synced: from here the redb
//!    store is the store;
//! 3. sled's files move into `sled-before-redb/`, kept for the operator to delete once
//!    the upgrade is confirmed (the log says so). An interrupted step 3 is finished by the
//!    next open; an interrupted step 1 is started again.

use std::path::Path;

use super::store::{self, Fail, Tx, COUNTERS, GC_RUNS, IMMUTABILITY, QUOTAS, RETENTION, RULES};
use crate::error::{Error, Result};

/// Where sled's files go once their records are in redb.
pub const KEPT: &str = "sled-before-redb";

/// sled's files in its directory: `conf`, `db`, `blobs/` and `snap.*`.
fn sled_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            matches!(name.as_ref(), "conf" | "db" | "blobs") || name.starts_with("snap.")
        })
        .map(|e| e.path())
        .collect()
}

pub(super) fn from_sled_if_present(dir: &Path) -> Result<()> {
    let partial = dir.join(format!("{}.migrating", store::FILE));
    if !dir.join("db").exists() {
        let _ = std::fs::remove_file(&partial);
        return Ok(());
    }
    if !dir.join(store::FILE).exists() {
        let started = std::time::Instant::now();
        let _ = std::fs::remove_file(&partial);
        let copied = copy(dir, &partial)?;
        std::fs::rename(&partial, dir.join(store::FILE))
            .and_then(|()| sync_dir(dir))
            .map_err(|e| Error::internal("moving the metadata store to redb", e))?;
        tracing::info!(
            records = copied,
            ms = started.elapsed().as_millis() as u64,
            "the metadata store moved from sled to redb"
        );
    }
    keep_aside(dir)
}

/// Copies every sled tree into a new redb file; how many records.
fn copy(dir: &Path, to: &Path) -> Result<u64> {
    let sled_db = sled::Config::new()
        .path(dir)
        .cache_capacity(4 << 20)
        .open()
        .map_err(|e| {
            let context = "opening the sled metadata store to move it to redb";
            match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    Error::internal(context, store::InUse)
                }
                e => Error::internal(context, e.to_string()),
            }
        })?;
    let db = store::open_file(to)?;
    let run = || -> Tx<u64> {
        let tx = db.begin_write()?;
        let mut copied = 0;
        let mut max_id = 0u64;
        for def in store::TABLES {
            let name = redb::TableHandle::name(&def).to_string();
            let tree = sled_db.open_tree(&name).map_err(sled_failure)?;
            let mut table = tx.open_table(def)?;
            let numbered = [RULES, IMMUTABILITY, RETENTION, QUOTAS, GC_RUNS]
                .iter()
                .any(|t| redb::TableHandle::name(t) == name);
            for kv in tree.iter() {
                let (k, v) = kv.map_err(sled_failure)?;
                table.insert(k.as_ref(), v.as_ref())?;
                if numbered {
                    max_id = max_id.max(super::id_of(&k));
                }
                copied += 1;
            }
        }
        tx.open_table(COUNTERS)?.insert("next_id", max_id + 1)?;
        // Durable by default: the copy must be on disk before the rename makes it the store.
        tx.commit()?;
        Ok(copied)
    };
    run().map_err(|e| match e {
        Fail::Store(e) => Error::internal("copying the sled metadata store into redb", e),
        Fail::Record(e) => e,
    })
}

fn sled_failure(e: sled::Error) -> Fail {
    Fail::Record(Error::internal("reading the sled metadata store", e))
}

/// Moves sled's files out of the way, into [`KEPT`].
fn keep_aside(dir: &Path) -> Result<()> {
    let kept = dir.join(KEPT);
    let files = sled_files(dir);
    if files.is_empty() {
        return Ok(());
    }
    let moved = || -> std::io::Result<()> {
        std::fs::create_dir_all(&kept)?;
        for f in &files {
            if let Some(name) = f.file_name() {
                std::fs::rename(f, kept.join(name))?;
            }
        }
        sync_dir(&kept)?;
        sync_dir(dir)
    };
    moved().map_err(|e| Error::internal("setting the old sled store aside", e))?;
    tracing::warn!(
        kept = %kept.display(),
        "the old sled metadata store was kept; delete it once this version is confirmed"
    );
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::KEPT;

    /// A store written by sled (as the versions before redb wrote it) opens with every
    /// record, new rule ids do not reuse old ones, and sled's files are set aside.
    #[test]
    fn a_sled_store_moves_to_redb_with_every_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("meta");
        let repo: RepoName = "team/app".parse().unwrap();
        let d = Digest::sha256_of(b"manifest");
        let tag: Tag = "v1".parse().unwrap();
        {
            let db = sled::open(&dir).unwrap();
            let tags = db.open_tree("tags").unwrap();
            let rec = TagRecord {
                digest: d.clone(),
                updated_at: 7,
            };
            tags.insert(key2(repo.as_str(), "v1"), encode(&rec))
                .unwrap();
            db.open_tree("manifest_bytes")
                .unwrap()
                .insert(d.to_key(), b"{}".as_slice())
                .unwrap();
            db.open_tree("repos")
                .unwrap()
                .insert(repo.as_str(), b"{\"created_at\":1}".as_slice())
                .unwrap();
            let quota = QuotaRecord {
                repos: "team/**".into(),
                max_bytes: 5,
            };
            db.open_tree("quotas")
                .unwrap()
                .insert(41u64.to_be_bytes(), encode(&quota))
                .unwrap();
            db.flush().unwrap();
        }
        let m = Meta::open(&dir).unwrap();
        assert_eq!(m.tag(&repo, &tag).unwrap().unwrap().digest, d);
        assert_eq!(m.manifest_bytes(&d).unwrap().unwrap(), b"{}");
        assert!(m.repo_exists(&repo).unwrap());
        assert_eq!(m.quotas().unwrap()[0].0, 41);
        let id = m
            .add_quota(&QuotaRecord {
                repos: "x/**".into(),
                max_bytes: 1,
            })
            .unwrap();
        assert!(id > 41, "{id}");
        m.flush_blocking().unwrap();
        drop(m);
        assert!(!dir.join("db").exists());
        assert!(dir.join(KEPT).join("db").exists());
        assert!(!dir.join("store.redb.migrating").exists());
        // A second open uses redb alone and keeps what was written after the move.
        let m = Meta::open(&dir).unwrap();
        assert_eq!(m.quotas().unwrap().len(), 2);
        assert_eq!(m.tag(&repo, &tag).unwrap().unwrap().digest, d);
    }
}
