//! Making room: when free space falls below the floor, the disk guard evicts what mirrors
//! cached, least recently used first, before refusing anything. Only mirrored tags are
//! candidates (content pushed here is never evicted), and never a pinned one.
//!
//! An evicted tag takes with it the manifests nothing else reaches and the blobs nothing
//! else references or links; it all happens under the GC lock held for writing, so no
//! upload or manifest PUT is half done while the references are counted.

use std::collections::HashSet;

use super::gc::reachable_manifests;
use super::Registry;
use crate::error::Result;
use crate::oci::{Digest, RepoName, Tag};

/// What one eviction round freed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evicted {
    pub tags: Vec<String>,
    pub blobs: u64,
    pub bytes: u64,
}

impl Registry {
    /// Evicts unpinned mirrored tags, least recently used first, until free space is back
    /// above the floor or nothing is left to evict.
    pub async fn evict_for_space(&self) -> Result<Evicted> {
        let mut out = Evicted::default();
        let mut candidates = self.meta().cache_records()?;
        candidates.sort_by_key(|(_, _, r)| r.used_at);
        for (repo, tag, _) in candidates {
            if self.meta().is_pinned(&repo, &tag)? {
                continue;
            }
            let (avail, floor) = self.free_space().await?;
            if avail >= floor {
                break;
            }
            let (Ok(r), Ok(t)) = (repo.parse::<RepoName>(), tag.parse::<Tag>()) else {
                continue;
            };
            let (blobs, bytes) = self.evict_tag(&r, &t).await?;
            tracing::warn!(repo = %r, tag = %t, blobs, bytes, free = avail, floor, "disk nearly full: evicted a cached mirror tag (least recently used, not pinned)");
            out.tags.push(format!("{r}:{t}"));
            out.blobs += blobs;
            out.bytes += bytes;
        }
        Ok(out)
    }

    /// Removes one cached tag and whatever only it kept; returns blobs and bytes deleted.
    async fn evict_tag(&self, repo: &RepoName, tag: &Tag) -> Result<(u64, u64)> {
        let _exclusive = self.inner.gc_lock.write().await;
        self.meta()
            .remove_cache_record(repo.as_str(), tag.as_str())?;
        let Some(rec) = self.meta().tag(repo, tag)? else {
            return Ok((0, 0));
        };
        self.meta().delete_tag(repo, tag)?;
        let all = self.meta().all_manifests()?;
        let reachable = reachable_manifests(&all, &self.meta().all_tags()?);
        // The evicted manifest and what hangs off it (index children), unless still reached.
        let mut doomed: HashSet<Digest> = HashSet::new();
        let mut todo = vec![rec.digest];
        while let Some(d) = todo.pop() {
            if reachable.contains(&(repo.to_string(), d.clone())) || !doomed.insert(d.clone()) {
                continue;
            }
            if let Some((_, _, m)) = all.iter().find(|(r, x, _)| r == repo.as_str() && *x == d) {
                todo.extend(m.children.iter().cloned());
            }
        }
        let mut blobs: HashSet<Digest> = HashSet::new();
        let mut still_used: HashSet<Digest> = HashSet::new();
        for (r, d, m) in &all {
            if r == repo.as_str() && doomed.contains(d) {
                blobs.extend(m.blobs.iter().cloned());
            } else {
                still_used.extend(m.blobs.iter().cloned());
            }
        }
        for d in &doomed {
            self.meta().delete_manifest(repo, d)?;
        }
        let mut linked_elsewhere: HashSet<Digest> = HashSet::new();
        for (other, d, _) in self.meta().all_links()? {
            if other != repo.as_str() {
                linked_elsewhere.insert(d);
            }
        }
        let mut files: Vec<Digest> = Vec::new();
        for d in blobs.difference(&still_used) {
            self.meta().unlink_blob(repo, d)?;
            if !linked_elsewhere.contains(d) {
                files.push(d.clone());
            }
        }
        // Records first, then bytes: a crash between them leaves orphan files for the next
        // collection, never a link or a manifest pointing at missing bytes.
        self.meta().flush().await?;
        let storage = self.storage().clone();
        let doomed_files = files.clone();
        let bytes = super::blocking("evicting blobs", move || {
            let mut bytes = 0;
            for d in &doomed_files {
                bytes += storage.blob_size(d)?.unwrap_or(0);
                storage.delete_blob(d)?;
            }
            Ok(bytes)
        })
        .await?;
        for d in &files {
            self.meta().blob_file_deleted(d)?;
        }
        let count = files.len() as u64;
        *self.inner.usage.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok((count, bytes))
    }
}
