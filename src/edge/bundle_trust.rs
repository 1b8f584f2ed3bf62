//! Content trust for bundles: what an export carries beside the images (the signatures, and
//! optionally this registry's trust material, signed), and the judging of a bundle's images
//! before an import stores any of them.

use std::collections::HashMap;

use super::bundle::{invalid, staged_bytes, Staged};
use super::Edge;
use crate::error::Result;
use crate::oci::{Digest, Manifest, RepoName, Tag};
use crate::registry::trust_declared::TrustPlan;
use crate::trust::cosign;

/// What an export adds beside the images, and what an import takes from a bundle.
#[derive(Default)]
pub struct TrustCarry {
    /// Export: carry this registry's trust keys and policies, signed with this key.
    pub sign_with: Option<crate::trust::signing::SigningKey>,
    /// Import: leave the bundle's trust material aside (its images are still judged by the
    /// policies in force).
    pub skip: bool,
}

impl Edge {
    /// Every image of the bundle against the trust policies of the repository it goes to,
    /// with the signatures the bundle carries: one image that fails an enforced policy
    /// refuses the whole bundle, before anything is stored.
    pub(super) fn check_trust(
        &self,
        staged: &Staged,
        images: &[(RepoName, Option<Tag>, Digest)],
        generated: &HashMap<Digest, (Vec<u8>, &'static str)>,
        order: &[(RepoName, Digest, Vec<u8>, String)],
        under: Option<&TrustPlan>,
    ) -> Result<()> {
        // A manifest of the bundle: parsed, with its media type and size.
        let manifest = |repo: &RepoName, d: &Digest| -> Result<(Manifest, String, u64)> {
            let (bytes, media) = match generated.get(d) {
                Some((b, m)) => (b.as_slice(), m.to_string()),
                None => order
                    .iter()
                    .find(|(r, x, _, _)| r == repo && x == d)
                    .map(|(_, _, b, m)| (b.as_slice(), m.clone()))
                    .ok_or_else(|| invalid(format!("the bundle lacks manifest {d}")))?,
            };
            let m = Manifest::parse(Some(&media), bytes)
                .map_err(|e| invalid(format!("manifest {d}: {e}")))?;
            Ok((m, media, bytes.len() as u64))
        };
        // The manifests the bundle carries by digest that have a subject (notation's
        // signatures among them), parsed once.
        let mut referrers: Vec<(&RepoName, Digest, Manifest)> = Vec::new();
        for (r, _, d) in images.iter().filter(|(_, t, _)| t.is_none()) {
            let (m, _, _) = manifest(r, d)?;
            if let Some(subject) = m.subject.as_ref().map(|s| s.digest.clone()) {
                referrers.push((r, subject, m));
            }
        }
        // The signature manifests the bundle holds for `d` in `repo`: cosign's under its
        // tag, and the referrers of `d`.
        let signatures = |repo: &RepoName, d: &Digest| -> Result<Vec<Manifest>> {
            let tag = cosign::signature_tag(d);
            let mut out = Vec::new();
            for (r, _, sig) in images
                .iter()
                .filter(|(r, t, _)| r == repo && t.as_ref().is_some_and(|t| t.as_str() == tag))
            {
                out.push(manifest(r, sig)?.0);
            }
            out.extend(
                referrers
                    .iter()
                    .filter(|(r, subject, _)| *r == repo && subject == d)
                    .map(|(_, _, m)| m.clone()),
            );
            Ok(out)
        };
        let blob = |d: &Digest| staged_bytes(staged, d).ok();
        let reg = self.registry();
        let judge = |repo: &RepoName, d: &Digest, platform: bool| -> Result<Manifest> {
            let (m, media_type, size) = manifest(repo, d)?;
            let candidate = crate::registry::Candidate {
                repo,
                digest: d,
                manifest: &m,
                media_type: &media_type,
                size,
                platform,
            };
            reg.check_trusted_detached(&candidate, &signatures(repo, d)?, &blob, under)?;
            Ok(m)
        };
        for (repo, _, top) in images {
            let m = judge(repo, top, false)?;
            for child in &m.manifests {
                judge(repo, &child.digest, true)?;
            }
        }
        Ok(())
    }
}
