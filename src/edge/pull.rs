//! Pulls through a pull-through mirror: a manifest or blob from the store, or fetched from
//! the upstream of the mirror that covers the repository (see `mirror.rs`).

use super::mirror::MirrorRoute;
use super::remote::{RemoteError, RemoteManifest};
use super::Edge;
use crate::error::{Error, ErrorCode, Result};
use crate::meta::now;
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};
use crate::registry::{BlobRange, BlobRead, ManifestContent, Registry};
use crate::storage::FileBody;

/// Seconds a tag's "last used" stamp may lag, so a busy tag is not rewritten on every pull.
const USED_GRANULARITY: u64 = 60;

fn not_cached(what: &str, route: &MirrorRoute, e: &RemoteError) -> Error {
    Error::api(
        ErrorCode::ManifestUnknown,
        format!(
            "{what} is not in the cache and the upstream {} could not give it ({e})",
            route.mirror.settings.url
        ),
    )
}

impl Edge {
    /// A manifest for a pull: from the store, or through the mirror that covers `repo`.
    pub async fn pull_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        ns: Option<&str>,
    ) -> Result<ManifestContent> {
        let reg = self.registry();
        let Some(route) = self.mirror_route(repo, ns) else {
            return reg.get_manifest(repo, reference);
        };
        let m = &route.mirror;
        let metrics = reg.events();
        let tag = match reference {
            Reference::Digest(d) => {
                if let Ok(c) = reg.get_manifest(&route.local, reference) {
                    metrics.mirror("hit");
                    return Ok(c);
                }
                return match m
                    .remote()
                    .manifest(&route.upstream, &d.to_string(), false)
                    .await
                {
                    Ok(Some(fetched)) => {
                        let c = self.cache_manifest(&route, None, fetched).await?;
                        metrics.mirror("fetched");
                        Ok(c)
                    }
                    Ok(None) => {
                        metrics.mirror("failed");
                        Err(Error::code(ErrorCode::ManifestUnknown)
                            .with_detail(serde_json::json!({ "reference": d.to_string() })))
                    }
                    Err(e) => {
                        metrics.mirror("failed");
                        Err(not_cached(&format!("manifest {d}"), &route, &e))
                    }
                };
            }
            Reference::Tag(t) => t,
        };
        let cached = reg.get_manifest(&route.local, reference).ok();
        let record = reg.mirrored_tag(&route.local, tag)?;
        let at = now();
        if let (Some(c), Some(r)) = (&cached, &record) {
            if at < r.checked_at.saturating_add(m.settings.tag_ttl.as_secs()) {
                if at >= r.used_at + USED_GRANULARITY {
                    let _ = reg.mark_used(&route.local, tag, r);
                }
                metrics.mirror("hit");
                return Ok(c.clone());
            }
        }
        if let (Some(c), true) = (&cached, m.upstream_down()) {
            metrics.mirror("stale");
            return Ok(c.clone());
        }
        // Ask the upstream what the tag is now: a HEAD is enough when it still matches.
        let head = m
            .remote()
            .manifest(&route.upstream, tag.as_str(), true)
            .await;
        m.observe(&head);
        let fetched = match head {
            Ok(Some(h)) if cached.as_ref().is_some_and(|c| c.digest == h.digest) => {
                reg.mark_checked(&route.local, tag)?;
                metrics.mirror("revalidated");
                return cached.ok_or_else(|| Error::code(ErrorCode::ManifestUnknown));
            }
            Ok(Some(h)) => {
                m.remote()
                    .manifest(&route.upstream, &h.digest.to_string(), false)
                    .await
            }
            // No digest in the HEAD answer: fetch the manifest itself.
            Err(RemoteError::Refused(200, _)) => {
                m.remote()
                    .manifest(&route.upstream, tag.as_str(), false)
                    .await
            }
            other => other,
        };
        match (fetched, cached) {
            (Ok(Some(f)), _) => {
                let c = self.cache_manifest(&route, Some(tag), f).await?;
                metrics.mirror("fetched");
                Ok(c)
            }
            (result, Some(c)) => {
                let why = match result {
                    Err(e) => e.to_string(),
                    _ => "the upstream no longer has this tag".to_string(),
                };
                tracing::warn!(repo = %route.local, %tag, upstream = %m.settings.url, reason = %why, "serving a cached tag that could not be confirmed upstream");
                metrics.mirror("stale");
                Ok(c)
            }
            (Ok(None), None) => {
                metrics.mirror("failed");
                Err(Error::code(ErrorCode::ManifestUnknown)
                    .with_detail(serde_json::json!({ "reference": tag.as_str() })))
            }
            (Err(e), None) => {
                metrics.mirror("failed");
                Err(not_cached(&format!("{}:{tag}", route.local), &route, &e))
            }
        }
    }

    /// Stores a manifest fetched from the upstream (its blobs follow when they are pulled).
    async fn cache_manifest(
        &self,
        route: &MirrorRoute,
        tag: Option<&Tag>,
        f: RemoteManifest,
    ) -> Result<ManifestContent> {
        let content_type = Some(f.media_type.as_str()).filter(|t| !t.is_empty());
        let manifest = Manifest::parse(content_type, &f.bytes).map_err(|e| {
            Error::api(
                ErrorCode::ManifestInvalid,
                format!("the upstream sent an invalid manifest: {e}"),
            )
        })?;
        self.admit_upstream(route, &f.digest, &manifest, f.bytes.len() as u64, None)
            .await?;
        let reg = self.registry();
        match reg
            .store_fetched_manifest(&route.local, &f.digest, tag, &manifest, &f.bytes)
            .await
        {
            Ok(()) => {}
            // An immutability rule holds the tag where it is: keep serving that.
            Err(e) if tag.is_some() && e.error_code() == ErrorCode::Denied => {
                tracing::warn!(repo = %route.local, error = %e, "mirrored tag not moved");
                if let Some(t) = tag {
                    return reg.get_manifest(&route.local, &Reference::Tag(t.clone()));
                }
            }
            Err(e) => return Err(e),
        }
        if let Some(t) = tag {
            reg.mark_checked(&route.local, t)?;
        }
        Ok(ManifestContent {
            media_type: manifest.kind.media_type().to_string(),
            digest: f.digest,
            bytes: f.bytes,
        })
    }

    /// Size of a blob for `HEAD`: from the store, else as the upstream announces it.
    pub async fn pull_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
        ns: Option<&str>,
    ) -> Result<u64> {
        let reg = self.registry();
        let Some(route) = self.mirror_route(repo, ns) else {
            return reg.stat_blob(repo, digest).await;
        };
        // A cached blob recorded corrupt is fetched again from the upstream (which heals it).
        if reg.holds_sound(&route.local, digest)? {
            return reg.stat_blob(&route.local, digest).await;
        }
        match route
            .mirror
            .remote()
            .blob(&route.upstream, digest, true)
            .await
        {
            Ok(Some((Some(size), _))) => Ok(size),
            _ => Err(Registry::blob_unknown(digest)),
        }
    }

    /// A blob for a pull: from the store, or streamed from the upstream while it is stored.
    pub async fn pull_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<BlobRange>,
        ns: Option<&str>,
    ) -> Result<BlobRead> {
        let reg = self.registry();
        let Some(route) = self.mirror_route(repo, ns) else {
            return reg.read_blob(repo, digest, range).await;
        };
        let metrics = reg.events();
        if reg.holds_sound(&route.local, digest)? {
            metrics.mirror("hit");
            return reg.read_blob(&route.local, digest, range).await;
        }
        let remote = route.mirror.remote();
        let upstream = match remote.blob(&route.upstream, digest, false).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                metrics.mirror("failed");
                return Err(Registry::blob_unknown(digest));
            }
            Err(e) => {
                metrics.mirror("failed");
                return Err(Error::api(
                    ErrorCode::BlobUnknown,
                    format!(
                        "blob {digest} is not in the cache and the upstream {} could not give it ({e})",
                        route.mirror.settings.url
                    ),
                ));
            }
        };
        let (Some(size), body) = upstream else {
            return Err(Error::api(
                ErrorCode::BlobUnknown,
                "the upstream sent the blob without a Content-Length",
            ));
        };
        // The bytes may already be here for another repository: the upstream just confirmed
        // this repository may have them, so link instead of downloading again.
        if reg.link_present(&route.local, digest).await?.is_some() {
            drop(body);
            metrics.mirror("hit");
            return reg.read_blob(&route.local, digest, range).await;
        }
        let store = match reg.check_free_space().await {
            Ok(()) => match reg.open_incoming() {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a cache file; passing the blob through");
                    None
                }
            },
            Err(_) => {
                tracing::warn!(%digest, "disk nearly full: passing a mirrored blob through without caching it");
                None
            }
        };
        metrics.mirror("fetched");
        let (tx, out) = FileBody::channel(size);
        let me = reg.clone();
        let (local, d) = (route.local.clone(), digest.clone());
        tokio::spawn(async move {
            // Failures are logged inside; the client has seen its stream end in an error.
            let _ = super::tee::tee(me, local, d, size, body, store, tx).await;
        });
        Ok(BlobRead {
            size,
            range: None,
            body: out,
        })
    }
}
