//! Content trust for what comes from other registries: before the pull-through mirror or
//! `edgeyard sync` stores an upstream image in a repository a trust policy covers, the
//! image's signatures are fetched from the upstream as well: cosign's (the
//! `sha256-<hex>.sig` tag and its payloads) and Notary Project ones (the image's referrers
//! of notation's artifact type, and their envelopes). The image must meet the policy with
//! them. A refused image is neither cached nor served. An admitted one is cached together
//! with its signatures, so that pulls from the cache verify it here, offline.

use http_body_util::{BodyExt, Limited};

use super::mirror::MirrorRoute;
use super::remote::{Remote, RemoteManifest};
use super::Edge;
use crate::error::{Error, Result};
use crate::oci::{Digest, Manifest, Tag};
use crate::trust::{cosign, notation};

/// Signature blobs (payloads, envelopes) fetched for one image at most (a signature
/// manifest may list many).
const PAYLOADS_MAX: usize = 16;

/// Notary Project signature manifests fetched for one image at most.
const NOTARY_MAX: usize = 4;

/// A signature manifest fetched from the upstream, to judge with and then to cache.
struct Fetched {
    remote: RemoteManifest,
    parsed: Manifest,
    /// Its tag here (cosign's), or none (a referrer, stored by digest).
    tag: Option<Tag>,
}

fn parse(m: &RemoteManifest) -> Option<Manifest> {
    Manifest::parse(
        Some(m.media_type.as_str()).filter(|t| !t.is_empty()),
        &m.bytes,
    )
    .ok()
}

/// A blob of at most `max` bytes whose bytes match its digest; `None` when the upstream
/// does not give it so.
async fn small_blob(remote: &Remote, repo: &str, digest: &Digest, max: usize) -> Option<Vec<u8>> {
    let Ok(Some((_, body))) = remote.blob(repo, digest, false).await else {
        return None;
    };
    let collected = Limited::new(body, max).collect().await.ok()?;
    let bytes = collected.to_bytes().to_vec();
    (Digest::sha256_of(&bytes) == *digest).then_some(bytes)
}

impl Edge {
    /// Admits (or refuses) the upstream image `digest` of `route` (`size` bytes) before it
    /// is stored. `platform`: whether it is a platform image of an index being admitted
    /// with it (`None`: whether an index cached here lists it).
    pub(super) async fn admit_upstream(
        &self,
        route: &MirrorRoute,
        digest: &Digest,
        manifest: &Manifest,
        size: u64,
        platform: Option<bool>,
    ) -> Result<()> {
        let reg = self.registry();
        if !reg.trust_covers(&route.local) {
            return Ok(());
        }
        let platform = match platform {
            Some(p) => p,
            None => reg.listed_by_index(&route.local, digest)?,
        };
        let remote = route.mirror.remote();
        let upstream = route.upstream.as_str();
        let mut fetched: Vec<Fetched> = Vec::new();
        let tag = cosign::signature_tag(digest);
        match remote.manifest(upstream, &tag, false).await {
            Ok(Some(m)) => {
                if let Some(parsed) = parse(&m) {
                    fetched.push(Fetched {
                        remote: m,
                        parsed,
                        tag: tag.parse().ok(),
                    });
                }
            }
            Ok(None) => {}
            // Judged without it: under an enforced policy that refuses the image.
            Err(e) => {
                tracing::warn!(repo = %route.local, %digest, error = %e, "the upstream did not give the image's cosign signature")
            }
        }
        match remote
            .referrers(upstream, digest, notation::ARTIFACT_TYPE)
            .await
        {
            Ok(found) => {
                for d in found.into_iter().take(NOTARY_MAX) {
                    let Ok(Some(m)) = remote.manifest(upstream, &d.to_string(), false).await else {
                        continue;
                    };
                    if let Some(parsed) = parse(&m) {
                        fetched.push(Fetched {
                            remote: m,
                            parsed,
                            tag: None,
                        });
                    }
                }
            }
            Err(e) => {
                tracing::warn!(repo = %route.local, %digest, error = %e, "the upstream did not list the image's notation signatures")
            }
        }
        // The blobs the signatures need: cosign payloads, notation envelopes.
        let wanted: Vec<(Digest, usize)> = fetched
            .iter()
            .flat_map(|f| match f.tag {
                Some(_) => cosign::signatures_in(&f.parsed)
                    .into_iter()
                    .filter(|s| s.payload_size <= cosign::PAYLOAD_MAX as u64)
                    .map(|s| (s.payload, cosign::PAYLOAD_MAX))
                    .collect::<Vec<_>>(),
                None => f
                    .parsed
                    .layers
                    .iter()
                    .filter(|l| l.media_type == notation::JWS)
                    .map(|l| (l.digest.clone(), notation::ENVELOPE_MAX))
                    .collect(),
            })
            .take(PAYLOADS_MAX)
            .collect();
        let mut blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
        for (d, max) in wanted {
            if let Some(bytes) = small_blob(remote, upstream, &d, max).await {
                blobs.push((d, bytes));
            }
        }
        let blob = |d: &Digest| blobs.iter().find(|(x, _)| x == d).map(|(_, b)| b.clone());
        let signatures: Vec<Manifest> = fetched.iter().map(|f| f.parsed.clone()).collect();
        let candidate = crate::registry::Candidate {
            repo: &route.local,
            digest,
            manifest,
            media_type: manifest.kind.media_type(),
            size,
            platform,
        };
        reg.check_trusted_detached(&candidate, &signatures, &blob, None)?;
        // Cached with the image, so that pulls from the cache verify it here.
        let local = std::slice::from_ref(&route.local);
        for (d, bytes) in &blobs {
            let mut incoming = reg.open_incoming()?;
            incoming
                .append(bytes)
                .map_err(|e| Error::internal("caching a signature blob", e))?;
            reg.commit_incoming(incoming, d, local).await?;
        }
        for f in &fetched {
            reg.store_fetched_manifest(
                &route.local,
                &f.remote.digest,
                f.tag.as_ref(),
                &f.parsed,
                &f.remote.bytes,
            )
            .await?;
        }
        Ok(())
    }
}
