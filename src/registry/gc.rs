//! Online garbage collection: mark every blob a manifest references, then sweep blob files
//! nobody references, expired upload sessions and manifest contents no repository lists.
//!
//! Safe while pushes and pulls go on: uploads, mounts and manifest PUTs hold the GC lock for
//! reading while they check and link; the sweep takes it for writing per batch and, under
//! it, keeps any blob linked or referenced since the grace cutoff (a manifest PUT renews the
//! links of the blobs it references). A blob committed or used within the grace period is
//! never deleted, so a push that uploads layers now and its manifest later loses nothing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{blocking, Registry};
use crate::error::Result;
use crate::meta::now;
use crate::oci::Digest;

/// Blobs deleted per hold of the write lock: pushes wait at most for one batch.
const BATCH: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    pub dry_run: bool,
    /// Anything committed, linked or referenced more recently than this is kept.
    pub grace: Duration,
    /// Upload sessions older than this are expired.
    pub upload_ttl: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            grace: Duration::from_secs(3600),
            upload_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a run found and (unless a dry run) freed.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct GcReport {
    pub started_at: u64,
    pub dry_run: bool,
    pub blobs_total: u64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    /// Unreferenced, but within the grace period: kept this time.
    pub blobs_recent: u64,
    pub uploads_expired: u64,
    /// Untagged manifests nothing refers to, older than the grace period.
    #[serde(default)]
    pub manifests_deleted: u64,
    /// Untagged manifests nothing refers to, kept this time because they were pushed within
    /// the grace period: work a later run (or `--grace-secs 0`) will do.
    #[serde(default)]
    pub manifests_recent: u64,
    pub manifest_contents_removed: u64,
    pub duration_ms: u64,
    /// Digests of the blobs deleted (or that would be, in a dry run); at most 1,000 listed.
    pub deleted: Vec<String>,
}

/// (repository, digest) of every manifest reachable from a tag: tagged manifests, the
/// children of reachable indexes (recursively), and referrers whose subject is reachable.
pub(super) fn reachable_manifests(
    all: &[(String, Digest, crate::meta::ManifestRecord)],
    tags: &[(String, Digest)],
) -> HashSet<(String, Digest)> {
    let by_key: HashMap<(String, Digest), &crate::meta::ManifestRecord> = all
        .iter()
        .map(|(r, d, m)| ((r.clone(), d.clone()), m))
        .collect();
    let mut referrers: HashMap<(String, Digest), Vec<Digest>> = HashMap::new();
    for (r, d, m) in all {
        if let Some(s) = &m.subject {
            referrers
                .entry((r.clone(), s.clone()))
                .or_default()
                .push(d.clone());
        }
    }
    let mut seen: HashSet<(String, Digest)> = HashSet::new();
    let mut todo: Vec<(String, Digest)> = tags.to_vec();
    while let Some(key) = todo.pop() {
        if !seen.insert(key.clone()) {
            continue;
        }
        if let Some(m) = by_key.get(&key) {
            todo.extend(m.children.iter().map(|c| (key.0.clone(), c.clone())));
        }
        if let Some(refs) = referrers.get(&key) {
            todo.extend(refs.iter().map(|d| (key.0.clone(), d.clone())));
        }
    }
    seen
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    /// Runs one garbage collection.
    pub async fn gc(&self, o: GcOptions) -> Result<GcReport> {
        self.gc_reporting(o, super::no_progress()).await
    }

    /// [`Registry::gc`], telling `progress` how far it is.
    pub async fn gc_reporting(&self, o: GcOptions, progress: super::Progress) -> Result<GcReport> {
        let started = Instant::now();
        let start = now();
        let cutoff = start.saturating_sub(o.grace.as_secs());
        // Within the grace period; with no grace at all, nothing is (not even what was
        // written this very second).
        let held = |t: u64| !o.grace.is_zero() && t >= cutoff;
        let mut report = GcReport {
            started_at: start,
            dry_run: o.dry_run,
            ..GcReport::default()
        };

        // Manifests nothing reaches any more (no tag, not in a tagged index, not a referrer
        // of a live manifest) and older than the grace period go first. Under the write lock
        // no PUT is half done, so the reachability computed here is exact.
        progress("finding unreachable manifests", 0, 0);
        {
            let _exclusive = self.inner.gc_lock.write().await;
            let all = self.meta().all_manifests()?;
            let tags = self.meta().all_tags()?;
            let reachable = reachable_manifests(&all, &tags);
            for (repo, digest, rec) in &all {
                if reachable.contains(&(repo.clone(), digest.clone())) {
                    continue;
                }
                if held(rec.pushed_at) {
                    report.manifests_recent += 1;
                    continue;
                }
                report.manifests_deleted += 1;
                if !o.dry_run {
                    if let Ok(r) = repo.parse() {
                        self.meta().delete_manifest(&r, digest)?;
                    }
                }
            }
            if !o.dry_run && report.manifests_deleted > 0 {
                self.meta().flush().await?;
            }
        }

        // Mark: every blob a remaining manifest references.
        let manifests: Vec<_> = {
            let all = self.meta().all_manifests()?;
            if o.dry_run {
                // What the deletion above would have left.
                let tags = self.meta().all_tags()?;
                let reachable = reachable_manifests(&all, &tags);
                all.into_iter()
                    .filter(|(r, d, m)| {
                        reachable.contains(&(r.clone(), d.clone())) || held(m.pushed_at)
                    })
                    .collect()
            } else {
                all
            }
        };
        let live: HashSet<Digest> = manifests
            .iter()
            .flat_map(|(_, _, r)| r.blobs.iter().cloned())
            .collect();
        drop(manifests);

        progress("listing blobs", 0, 0);
        let storage = self.storage().clone();
        let files = blocking("listing blobs", move || storage.blobs()).await?;
        report.blobs_total = files.len() as u64;
        let mut candidates = Vec::new();
        for (d, size, mtime) in files {
            if live.contains(&d) {
                continue;
            }
            if held(unix(mtime)) {
                report.blobs_recent += 1;
                continue;
            }
            candidates.push((d, size));
        }

        // Sweep, in batches, re-checking the links under the write lock.
        let total = candidates.len() as u64;
        for (n, batch) in candidates.chunks(BATCH).enumerate() {
            progress("sweeping unreferenced blobs", (n * BATCH) as u64, total);
            let _exclusive = self.inner.gc_lock.write().await;
            let mut links: HashMap<Digest, Vec<(String, u64)>> = HashMap::new();
            for (repo, d, rec) in self.meta().all_links()? {
                links.entry(d).or_default().push((repo, rec.linked_at));
            }
            let mut doomed: Vec<Digest> = Vec::new();
            for (d, size) in batch {
                let its_links = links.get(d).map(Vec::as_slice).unwrap_or(&[]);
                if its_links.iter().any(|(_, at)| held(*at)) {
                    report.blobs_recent += 1;
                    continue;
                }
                if !o.dry_run {
                    for (repo, _) in its_links {
                        self.meta().remove_link(repo, d)?;
                    }
                    doomed.push(d.clone());
                }
                report.blobs_deleted += 1;
                report.bytes_freed += size;
                if report.deleted.len() < 1000 {
                    report.deleted.push(d.to_string());
                }
            }
            if doomed.is_empty() {
                continue;
            }
            // Links first, then bytes: an interruption leaves at worst orphan files for the
            // next run, never a link to missing bytes. One flush for the whole batch, so the
            // pushes waiting on this lock wait for one fsync, not one per blob.
            self.meta().flush().await?;
            let storage = self.storage().clone();
            let files = doomed.clone();
            blocking("deleting blobs", move || {
                files.iter().try_for_each(|d| storage.delete_blob(d))
            })
            .await?;
            for d in &doomed {
                self.meta().blob_file_deleted(d)?;
            }
        }

        if !o.dry_run {
            // Under the write lock no manifest PUT is half done, so the set of manifests
            // read here is complete: contents outside it belong to deleted manifests only.
            // (Regression: computed at mark time, it dropped manifests pushed during the run.)
            let _exclusive = self.inner.gc_lock.write().await;
            let live_manifests: HashSet<Digest> = self
                .meta()
                .all_manifests()?
                .into_iter()
                .map(|(_, d, _)| d)
                .collect();
            for d in self.meta().orphan_manifest_bytes(&live_manifests)? {
                self.meta().delete_manifest_bytes(&d)?;
                report.manifest_contents_removed += 1;
            }
        }
        report.uploads_expired = self.expire_uploads(o).await?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        if !o.dry_run {
            self.meta()
                .record_gc_run(&serde_json::to_value(&report).unwrap_or_default())?;
            self.meta().flush().await?;
            self.events()
                .gc_run(report.blobs_deleted, report.bytes_freed);
            *self.inner.usage.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        tracing::info!(
            dry_run = o.dry_run,
            blobs_deleted = report.blobs_deleted,
            bytes_freed = report.bytes_freed,
            kept_recent = report.blobs_recent,
            manifests_deleted = report.manifests_deleted,
            manifests_kept_recent = report.manifests_recent,
            uploads_expired = report.uploads_expired,
            ms = report.duration_ms,
            "garbage collection finished"
        );
        Ok(report)
    }

    /// Removes upload sessions (and stray upload files) older than the TTL that nobody is
    /// using right now.
    async fn expire_uploads(&self, o: GcOptions) -> Result<u64> {
        let cutoff = now().saturating_sub(o.upload_ttl.as_secs());
        let mut expired = 0;
        let recorded = self.meta().uploads()?;
        let known: HashSet<_> = recorded.iter().map(|(id, _)| id.clone()).collect();
        for (id, rec) in recorded {
            if rec.started_at >= cutoff || self.session_busy(&id) {
                continue;
            }
            expired += 1;
            if !o.dry_run {
                self.forget_upload(&id).await?;
            }
        }
        let storage = self.storage().clone();
        let files = blocking("listing uploads", move || storage.upload_files()).await?;
        for (id, mtime) in files {
            if !known.contains(&id) && unix(mtime) < cutoff {
                expired += 1;
                if !o.dry_run {
                    let storage = self.storage().clone();
                    blocking("removing an upload file", move || {
                        storage.remove_upload(&id)
                    })
                    .await?;
                }
            }
        }
        Ok(expired)
    }

    /// The recorded GC runs, oldest first.
    pub fn gc_runs(&self) -> Result<Vec<serde_json::Value>> {
        self.meta().gc_runs()
    }
}
