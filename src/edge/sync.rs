//! Sync: fetch chosen repositories and tags from a mirror's upstream ahead of time, so a node
//! can be staged while it is online and serve them when it is not.
//!
//! What is fetched lands where a pull through the mirror would put it, so the same tags are
//! later revalidated (and served stale when the upstream is gone). Resumable at blob
//! granularity: a blob already stored is linked, never fetched again; an interrupted run
//! leaves no partial blob behind and the next run picks up where it stopped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::mirror::MirrorRoute;
use super::remote::{RemoteError, RemoteManifest};
use super::Edge;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::glob::glob_match;
use crate::oci::{Digest, Manifest, Reference, Tag};

/// One `[[sync]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRule {
    /// The `[[mirror]]` whose upstream is fetched from.
    pub mirror: String,
    /// Upstream repository names.
    pub repositories: Vec<String>,
    /// Tag globs.
    pub tags: Vec<String>,
    /// `os/arch[/variant]` of multi-platform images to keep; all when empty.
    pub platforms: Vec<String>,
    /// How often the schedule runs it; `None`: only on demand.
    pub interval: Option<Duration>,
    /// Pin what is fetched.
    pub pin: bool,
}

/// What a sync run did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncReport {
    /// `local/repo:tag` of every image now present.
    pub images: Vec<String>,
    pub manifests: u64,
    pub blobs_fetched: u64,
    pub blobs_present: u64,
    pub bytes_fetched: u64,
    /// What could not be synced and why; the rest went on.
    pub failures: Vec<String>,
}

/// A line of progress: what is being fetched.
pub type SyncProgress = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

fn platform_of(d: &crate::oci::Descriptor) -> Option<String> {
    let p = d.platform.as_ref()?;
    let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
    Some(match p["variant"].as_str() {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}

impl Edge {
    /// Runs every configured rule (or those of one mirror) now; a report per rule (none
    /// when no rule is configured).
    pub async fn sync_all(
        &self,
        mirror: Option<&str>,
        progress: SyncProgress,
    ) -> Result<Vec<(SyncRule, SyncReport)>> {
        let rules = self.sync_rules();
        let chosen = super::chosen(
            &rules,
            mirror,
            |r| &r.mirror,
            |m| format!("no [[sync]] rule uses mirror {m:?}"),
        )?;
        let mut out = Vec::new();
        for r in chosen {
            let report = self.sync(r, progress.clone()).await?;
            out.push((r.clone(), report));
        }
        Ok(out)
    }

    /// Runs one sync rule.
    pub async fn sync(&self, rule: &SyncRule, progress: SyncProgress) -> Result<SyncReport> {
        let mirror = self
            .mirrors()
            .iter()
            .find(|m| m.settings.name == rule.mirror)
            .cloned()
            .ok_or_else(|| {
                Error::api(
                    ErrorCode::NameUnknown,
                    format!("no mirror named {:?} is configured", rule.mirror),
                )
            })?;
        let mut report = SyncReport::default();
        for upstream in &rule.repositories {
            let Some(local) = mirror.local_name(upstream) else {
                report
                    .failures
                    .push(format!("{upstream}: no usable local name"));
                continue;
            };
            let route = MirrorRoute {
                mirror: mirror.clone(),
                local,
                upstream: upstream.clone(),
            };
            let tags = match mirror.remote().tags(upstream).await {
                Ok(t) => t,
                Err(e) => {
                    report
                        .failures
                        .push(format!("{upstream}: listing tags failed: {e}"));
                    continue;
                }
            };
            for tag in tags
                .iter()
                .filter(|t| rule.tags.iter().any(|g| glob_match(g, t)))
            {
                let Ok(tag) = tag.parse::<Tag>() else {
                    continue;
                };
                progress(&format!(
                    "{}:{tag} <- {}/{upstream}",
                    route.local, mirror.settings.url
                ));
                match self
                    .sync_tag(&route, &tag, rule, &mut report, &progress)
                    .await
                {
                    Ok(()) => report.images.push(format!("{}:{tag}", route.local)),
                    Err(e) => report.failures.push(format!("{upstream}:{tag}: {e}")),
                }
            }
        }
        Ok(report)
    }

    /// Fetches one tag: its manifests (index children for the chosen platforms), then every
    /// blob, then stores the manifests, children first, and moves the tag.
    async fn sync_tag(
        &self,
        route: &MirrorRoute,
        tag: &Tag,
        rule: &SyncRule,
        report: &mut SyncReport,
        progress: &SyncProgress,
    ) -> Result<()> {
        let reg = self.registry();
        let remote = route.mirror.remote();
        let upstream_err =
            |e: RemoteError| Error::api(ErrorCode::ManifestUnknown, format!("the upstream: {e}"));
        let top = remote
            .manifest(&route.upstream, tag.as_str(), false)
            .await
            .map_err(upstream_err)?
            .ok_or_else(|| {
                Error::api(ErrorCode::ManifestUnknown, "the upstream has no such tag")
            })?;
        let parse = |m: &RemoteManifest| {
            Manifest::parse(
                Some(m.media_type.as_str()).filter(|t| !t.is_empty()),
                &m.bytes,
            )
            .map_err(|e| Error::api(ErrorCode::ManifestInvalid, format!("{}: {e}", m.digest)))
        };
        let top_parsed = parse(&top)?;
        let mut children = Vec::new();
        for c in &top_parsed.manifests {
            let wanted = rule.platforms.is_empty()
                || platform_of(c).is_some_and(|p| rule.platforms.contains(&p));
            if !wanted {
                continue;
            }
            let here = reg.get_manifest(&route.local, &Reference::Digest(c.digest.clone()));
            let bytes = match here {
                Ok(b) => RemoteManifest {
                    media_type: c.media_type.clone(),
                    digest: b.digest,
                    bytes: b.bytes,
                },
                Err(_) => remote
                    .manifest(&route.upstream, &c.digest.to_string(), false)
                    .await
                    .map_err(upstream_err)?
                    .ok_or_else(|| {
                        Error::api(
                            ErrorCode::ManifestUnknown,
                            format!("the upstream lacks child manifest {}", c.digest),
                        )
                    })?,
            };
            let parsed = parse(&bytes)?;
            children.push((bytes, parsed));
        }
        // Nothing of an image its repository's trust policy refuses is stored.
        self.admit_upstream(
            route,
            &top.digest,
            &top_parsed,
            top.bytes.len() as u64,
            Some(false),
        )
        .await?;
        for (m, parsed) in &children {
            self.admit_upstream(route, &m.digest, parsed, m.bytes.len() as u64, Some(true))
                .await?;
        }
        let mut blobs: Vec<Digest> = Vec::new();
        for m in children.iter().map(|(_, p)| p).chain([&top_parsed]) {
            for d in m.required_blobs() {
                if !blobs.contains(d) {
                    blobs.push(d.clone());
                }
            }
        }
        for d in &blobs {
            self.sync_blob(route, d, report, progress).await?;
        }
        for (m, parsed) in &children {
            reg.store_fetched_manifest(&route.local, &m.digest, None, parsed, &m.bytes)
                .await?;
            report.manifests += 1;
        }
        reg.store_fetched_manifest(
            &route.local,
            &top.digest,
            Some(tag),
            &top_parsed,
            &top.bytes,
        )
        .await?;
        report.manifests += 1;
        reg.mark_checked(&route.local, tag)?;
        if rule.pin {
            reg.pin(&route.local, tag).await?;
        }
        Ok(())
    }

    /// Makes one blob present in the route's repository: linked when its bytes are here,
    /// else fetched, verified and stored.
    async fn sync_blob(
        &self,
        route: &MirrorRoute,
        digest: &Digest,
        report: &mut SyncReport,
        progress: &SyncProgress,
    ) -> Result<()> {
        let reg = self.registry();
        // A blob recorded corrupt is fetched again, which repairs it.
        if reg.holds_sound(&route.local, digest)?
            || reg.link_present(&route.local, digest).await?.is_some()
        {
            report.blobs_present += 1;
            return Ok(());
        }
        reg.check_free_space().await?;
        let failed =
            |why: String| Error::api(ErrorCode::BlobUnknown, format!("blob {digest}: {why}"));
        let (size, body) = match route
            .mirror
            .remote()
            .blob(&route.upstream, digest, false)
            .await
        {
            Ok(Some((Some(size), body))) => (size, body),
            Ok(Some((None, _))) => {
                return Err(failed("no Content-Length from the upstream".into()))
            }
            Ok(None) => return Err(failed("the upstream does not have it".into())),
            Err(e) => return Err(failed(e.to_string())),
        };
        progress(&format!("  {digest} ({size} bytes)"));
        let file = reg.open_incoming()?;
        // Nobody reads along: the tee only stores.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        super::tee::tee(
            reg.clone(),
            route.local.clone(),
            digest.clone(),
            size,
            body,
            Some(file),
            tx,
        )
        .await
        .map_err(|e| failed(e.0))?;
        report.blobs_fetched += 1;
        report.bytes_fetched += size;
        Ok(())
    }
}
