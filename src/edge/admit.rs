//! Content trust for what comes from other registries: before the pull-through mirror or
//! `edgeyard sync` stores an upstream image in a repository a trust policy covers, the
//! image's cosign signature (`sha256-<hex>.sig`) and its payloads are fetched from the
//! upstream as well, and the image must meet the policy with them. A refused image is
//! neither cached nor served. An admitted one is cached together with its signature, so
//! that pulls from the cache verify it here, offline.

use http_body_util::{BodyExt, Limited};

use super::mirror::MirrorRoute;
use super::Edge;
use crate::error::Result;
use crate::oci::{Digest, Manifest, Tag};
use crate::trust::cosign;

/// Signature payloads fetched for one image at most (a signature manifest may list many).
const PAYLOADS_MAX: usize = 16;

impl Edge {
    /// Admits (or refuses) the upstream image `digest` of `route` before it is stored.
    /// `platform`: whether it is a platform image of an index being admitted with it
    /// (`None`: whether an index cached here lists it).
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
        let tag = cosign::signature_tag(digest);
        let fetched = match remote.manifest(&route.upstream, &tag, false).await {
            Ok(found) => found,
            Err(e) => {
                // Judged without it: under an enforced policy that refuses the image.
                tracing::warn!(repo = %route.local, %digest, error = %e, "the upstream did not give the image's signature");
                None
            }
        };
        let parsed = fetched.as_ref().and_then(|m| {
            Manifest::parse(
                Some(m.media_type.as_str()).filter(|t| !t.is_empty()),
                &m.bytes,
            )
            .ok()
        });
        let mut payloads: Vec<(Digest, Vec<u8>)> = Vec::new();
        for s in parsed
            .iter()
            .flat_map(cosign::signatures_in)
            .take(PAYLOADS_MAX)
        {
            if s.payload_size > cosign::PAYLOAD_MAX as u64 {
                continue;
            }
            let Ok(Some((_, body))) = remote.blob(&route.upstream, &s.payload, false).await else {
                continue;
            };
            let Ok(collected) = Limited::new(body, cosign::PAYLOAD_MAX).collect().await else {
                continue;
            };
            let bytes = collected.to_bytes().to_vec();
            if Digest::sha256_of(&bytes) == s.payload {
                payloads.push((s.payload, bytes));
            }
        }
        let payload = |d: &Digest| {
            payloads
                .iter()
                .find(|(x, _)| x == d)
                .map(|(_, b)| b.clone())
        };
        let signatures: Vec<Manifest> = parsed.iter().cloned().collect();
        let candidate = crate::registry::Candidate {
            repo: &route.local,
            digest,
            manifest,
            media_type: manifest.kind.media_type(),
            size,
            platform,
        };
        reg.check_trusted_detached(&candidate, &signatures, &payload, None)?;
        // Cached with the image, so that pulls from the cache verify it here.
        if let (Some(m), Some(p), Ok(tag)) = (fetched, parsed, tag.parse::<Tag>()) {
            for (d, bytes) in &payloads {
                let mut incoming = reg.open_incoming()?;
                incoming
                    .append(bytes)
                    .map_err(|e| crate::error::Error::internal("caching a signature payload", e))?;
                reg.commit_incoming(incoming, d, std::slice::from_ref(&route.local))
                    .await?;
            }
            reg.store_fetched_manifest(&route.local, &m.digest, Some(&tag), &p, &m.bytes)
                .await?;
        }
        Ok(())
    }
}
