//! Content trust at pull time: an image in a repository a trust policy covers is served only
//! if signatures stored beside it verify, with keys the operator installed, over a payload
//! that names this very image. Nothing here touches the network.
//!
//! Signatures are found the two ways cosign stores them: under the tag
//! `sha256-<hex>.sig` in the same repository, and as OCI 1.1 referrers of the image. Only
//! blobs linked into the repository are read, so one tenant's signatures never vouch for
//! another's images.
//!
//! What the signatures prove (which installed keys signed the image) is cached per image,
//! keyed by the signature manifests it was drawn from and the version of the keys and
//! policies: a new signature, a deleted one, or any change of keys or policies makes a
//! fresh check.

use std::sync::Arc;

use super::proofs::{
    is_notation, jws_layers, note_cap, weigh, weigh_notation, Proof, SIGNATURES_MAX,
};
use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::meta::{IndexTrust, KeyPurpose, Require, TrustKeyRecord, TrustMode, TrustPolicyRecord};
use crate::oci::glob::glob_match;
use crate::oci::{Digest, Manifest, MediaKind, RepoName};
use crate::trust::keys::TrustAnchor;
use crate::trust::{cosign, notation};

use super::manifests::ManifestContent;

/// Layer media types that carry signatures or attestations, never a filesystem: a manifest
/// made only of these is a signature artifact, which clients must be able to fetch to
/// verify (and which no runtime can run).
const SIGNATURE_LAYERS: &[&str] = &[
    cosign::SIMPLE_SIGNING,
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/jose+json",
    "application/cose",
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
];

/// The keys and policies in force, replaced whole when either changes.
pub(super) struct TrustState {
    /// Bumped on every reload: cached results from an older version are not used.
    pub(super) version: u64,
    /// Installed keys and certificates that sign images and parse, by name.
    pub(super) keys: Vec<(String, TrustAnchor)>,
    /// Installed keys that sign trust material (a bundle's), by name.
    pub(super) updates: Vec<(String, TrustAnchor)>,
    pub(super) policies: Vec<(u64, TrustPolicyRecord)>,
}

impl TrustState {
    /// The policies whose repository glob matches `repo`.
    fn covering(&self, repo: &RepoName) -> Vec<&(u64, TrustPolicyRecord)> {
        self.policies
            .iter()
            .filter(|(_, p)| glob_match(&p.repos, repo.as_str()))
            .collect()
    }

    pub(super) fn empty() -> TrustState {
        TrustState::from_records(0, Vec::new(), Vec::new())
    }

    /// The state of stored records: keys are parsed (one that no longer parses is logged,
    /// and verifies nothing) and sorted by what they sign.
    pub(super) fn from_records(
        version: u64,
        keys: Vec<(String, TrustKeyRecord)>,
        policies: Vec<(u64, TrustPolicyRecord)>,
    ) -> TrustState {
        let (mut images, mut updates) = (Vec::new(), Vec::new());
        for (name, rec) in keys {
            match super::trust_rules::parse_stored(&name, &rec) {
                Some(k) if rec.purpose == KeyPurpose::TrustUpdates => updates.push((name, k)),
                Some(k) => images.push((name, k)),
                None => {}
            }
        }
        TrustState {
            version,
            keys: images,
            updates,
            policies,
        }
    }
}

/// Where an image stands with the trust policies of its repository, as the console shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TrustStatus {
    /// Every covering policy is met (audit policies included).
    pub met: bool,
    /// Installed keys with a valid signature of the image.
    pub signed_by: Vec<Signer>,
    pub policies: Vec<PolicyStatus>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Signer {
    pub key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PolicyStatus {
    pub id: u64,
    pub repos: String,
    pub mode: TrustMode,
    pub met: bool,
    /// Why it is not met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// An image not stored yet, as [`Registry::check_trusted_detached`] judges it.
pub struct Candidate<'a> {
    pub repo: &'a RepoName,
    pub digest: &'a Digest,
    pub manifest: &'a Manifest,
    /// Its media type and size, which a notation signature names.
    pub media_type: &'a str,
    pub size: u64,
    /// A platform image of an index judged with it.
    pub platform: bool,
}

/// A policy an image failed, and why.
struct Unmet {
    id: u64,
    policy: TrustPolicyRecord,
    why: String,
}

impl Registry {
    /// Re-reads trusted keys and policies (after a change through the admin API or CLI).
    pub fn reload_trust(&self) -> Result<()> {
        let keys = self.meta().trust_keys()?;
        let policies = self.meta().trust_policies()?;
        let mut slot = self
            .inner
            .policy
            .trust
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(TrustState::from_records(slot.version + 1, keys, policies));
        Ok(())
    }

    pub(super) fn trust_state(&self) -> Arc<TrustState> {
        self.inner
            .policy
            .trust
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `m`, about to be served from `repo`, meets every trust policy covering the
    /// repository: `Ok` to serve it (also when an audit policy is unmet: that is logged and
    /// counted), a `DENIED` error naming the image, the policy and why otherwise.
    pub async fn check_trusted(&self, repo: &RepoName, m: &ManifestContent) -> Result<()> {
        let state = self.trust_state();
        let covering = state.covering(repo);
        if covering.is_empty() {
            return Ok(());
        }
        let manifest = Manifest::parse(Some(&m.media_type), &m.bytes).map_err(|e| {
            Error::internal(
                "reading a stored manifest for its signatures",
                e.to_string(),
            )
        })?;
        if is_signature_artifact(&manifest) {
            return Ok(());
        }
        let mut unmet = Vec::new();
        for (id, policy) in covering {
            unmet.extend(
                self.judge(&state, repo, &m.digest, manifest.kind, *id, policy)
                    .await?,
            );
        }
        self.verdict(repo, &m.digest, unmet, "served")
    }

    /// Whether an image that is not stored yet (a bundle's, an upstream's) meets every
    /// trust policy covering its repository, from the signature manifests that come with it
    /// (cosign's, and Notary Project ones) and their blobs (`blob` gives a blob's bytes, or
    /// `None` when it is not there). The caller checks the platform images of an index
    /// too, each on its own with `platform` set: then only policies that judge each platform
    /// apply (under the others, the index vouches). `under`: judge with the keys and
    /// policies a planned trust update would put in force (a bundle's), rather than those in
    /// force now.
    pub fn check_trusted_detached(
        &self,
        image: &Candidate,
        signatures: &[Manifest],
        blob: &dyn Fn(&Digest) -> Option<Vec<u8>>,
        under: Option<&super::trust_declared::TrustPlan>,
    ) -> Result<()> {
        let state = match under {
            Some(plan) => plan.state.clone(),
            None => self.trust_state(),
        };
        let (repo, manifest) = (image.repo, image.manifest);
        let applicable: Vec<&(u64, TrustPolicyRecord)> = state
            .covering(repo)
            .into_iter()
            .filter(|(_, p)| match p.index {
                IndexTrust::Platforms => !manifest.kind.is_index(),
                IndexTrust::Whole => !image.platform,
            })
            .collect();
        if applicable.is_empty() || is_signature_artifact(manifest) {
            return Ok(());
        }
        let mut proof = Proof::default();
        let mut sigs = Vec::new();
        for m in signatures.iter().filter(|m| !is_notation(m)) {
            let found = cosign::signatures_in(m);
            note_cap(found.len(), &mut proof);
            sigs.extend(found.into_iter().take(SIGNATURES_MAX));
        }
        for sig in sigs {
            proof.found += 1;
            match blob(&sig.payload) {
                Some(p) if p.len() <= cosign::PAYLOAD_MAX => {
                    weigh(&state, image.digest, &sig, &p, &mut proof)
                }
                Some(p) => proof
                    .problems
                    .push(format!("a signature payload of {} bytes", p.len())),
                None => proof
                    .problems
                    .push(format!("the signature payload {} is missing", sig.payload)),
            }
        }
        let target = notation::Image {
            digest: image.digest,
            media_type: image.media_type,
            size: image.size,
        };
        for m in signatures.iter().filter(|m| is_notation(m)) {
            for layer in jws_layers(m, &mut proof) {
                match blob(&layer.digest) {
                    Some(e) if e.len() <= notation::ENVELOPE_MAX => {
                        weigh_notation(&state, &target, &e, &mut proof)
                    }
                    Some(e) => proof
                        .problems
                        .push(format!("a notation envelope of {} bytes", e.len())),
                    None => proof
                        .problems
                        .push(format!("the notation envelope {} is missing", layer.digest)),
                }
            }
        }
        let unmet = applicable
            .into_iter()
            .filter_map(|(id, p)| {
                shortfall(p, &proof).map(|why| Unmet {
                    id: *id,
                    policy: p.clone(),
                    why,
                })
            })
            .collect();
        self.verdict(repo, image.digest, unmet, "accepted")
    }

    /// The outcome of the policies an image failed: `Ok` when none is enforced (audit
    /// findings are logged and counted), otherwise `DENIED` with the first enforced one.
    /// `passed` is what a check nothing failed counts as.
    fn verdict(
        &self,
        repo: &RepoName,
        image: &Digest,
        unmet: Vec<Unmet>,
        passed: &'static str,
    ) -> Result<()> {
        let (mut refusal, mut audited) = (None, false);
        for u in unmet {
            match u.policy.mode {
                TrustMode::Audit => {
                    tracing::warn!(%repo, digest = %image, policy = u.id, why = %u.why, "audit: an image its trust policy would refuse was let through");
                    self.events().trust("audit_unmet");
                    audited = true;
                }
                TrustMode::Enforce => {
                    refusal.get_or_insert(format!(
                        "image {repo}@{image} is not signed by a key trusted for {} (trust policy {}: {})",
                        u.policy.repos, u.id, u.why
                    ));
                }
            }
        }
        match refusal {
            Some(message) => {
                tracing::warn!(%repo, digest = %image, %message, "refused an image that does not meet its trust policy");
                self.events().trust("refused");
                Err(Error::api(ErrorCode::Denied, message))
            }
            None => {
                if !audited {
                    self.events().trust(passed);
                }
                Ok(())
            }
        }
    }

    /// Where the image `digest` of `repo` stands with the policies covering the repository;
    /// `None` when none does, and for signatures themselves. Nothing is logged or counted:
    /// this is for showing.
    pub async fn trust_status(
        &self,
        repo: &RepoName,
        digest: &Digest,
        kind: MediaKind,
    ) -> Result<Option<TrustStatus>> {
        let state = self.trust_state();
        let covering = state.covering(repo);
        if covering.is_empty() {
            return Ok(None);
        }
        let bytes = self.meta().manifest_bytes(digest)?.unwrap_or_default();
        if Manifest::parse(Some(kind.media_type()), &bytes).is_ok_and(|m| is_signature_artifact(&m))
        {
            return Ok(None);
        }
        let proof = self.proof(&state, repo, digest).await?;
        let mut policies = Vec::new();
        for (id, policy) in covering {
            let unmet = self.judge(&state, repo, digest, kind, *id, policy).await?;
            policies.push(PolicyStatus {
                id: *id,
                repos: policy.repos.clone(),
                mode: policy.mode,
                met: unmet.is_none(),
                why: unmet.map(|u| u.why),
            });
        }
        Ok(Some(TrustStatus {
            met: policies.iter().all(|p| p.met),
            signed_by: state
                .keys
                .iter()
                .filter(|(name, _)| proof.signers.contains(name))
                .map(|(name, key)| Signer {
                    key: name.clone(),
                    fingerprint: key.fingerprint(),
                })
                .collect(),
            policies,
        }))
    }

    /// `None` when `image` meets `policy`; otherwise why not.
    async fn judge(
        &self,
        state: &TrustState,
        repo: &RepoName,
        image: &Digest,
        kind: MediaKind,
        id: u64,
        policy: &TrustPolicyRecord,
    ) -> Result<Option<Unmet>> {
        if kind.is_index() && policy.index == IndexTrust::Platforms {
            // Each platform image is checked when it is pulled, by digest.
            return Ok(None);
        }
        let proof = self.proof(state, repo, image).await?;
        let Some(why) = shortfall(policy, &proof) else {
            return Ok(None);
        };
        // A platform image of a signed index is trusted through the index.
        if !kind.is_index() && policy.index == IndexTrust::Whole {
            for parent in self.parents(repo, image)? {
                let p = self.proof(state, repo, &parent).await?;
                if shortfall(policy, &p).is_none() {
                    return Ok(None);
                }
            }
        }
        Ok(Some(Unmet {
            id,
            policy: policy.clone(),
            why,
        }))
    }

    /// Whether a trust policy covers `repo`.
    pub fn trust_covers(&self, repo: &RepoName) -> bool {
        !self.trust_state().covering(repo).is_empty()
    }

    /// Whether an index stored in `repo` lists the manifest `digest`.
    pub fn listed_by_index(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(!self.parents(repo, digest)?.is_empty())
    }

    /// The indexes in `repo` that list `child`.
    fn parents(&self, repo: &RepoName, child: &Digest) -> Result<Vec<Digest>> {
        Ok(self
            .meta()
            .manifests_of(repo)?
            .into_iter()
            .filter(|(_, rec)| rec.children.contains(child))
            .map(|(d, _)| d)
            .collect())
    }
}

/// Whether a manifest holds only signatures or attestations (see [`SIGNATURE_LAYERS`]).
fn is_signature_artifact(m: &Manifest) -> bool {
    !m.kind.is_index()
        && !m.layers.is_empty()
        && m.layers
            .iter()
            .all(|l| SIGNATURE_LAYERS.contains(&l.media_type.as_str()))
}

/// `None` when `proof` meets `policy`, otherwise what is missing.
fn shortfall(policy: &TrustPolicyRecord, proof: &Proof) -> Option<String> {
    // A certificate counts only for a signer whose subject the policy trusts.
    let counts = |k: &String| {
        proof.signers.contains(k) && {
            let mut subjects = proof.subjects.iter().filter(|(n, _)| n == k).peekable();
            subjects.peek().is_none()
                || subjects.any(|(_, s)| notation::identity_trusted(s, &policy.identities))
        }
    };
    let signed: Vec<&String> = policy.keys.iter().filter(|k| counts(k)).collect();
    let met = match policy.require {
        Require::Any => !signed.is_empty(),
        Require::Each => signed.len() == policy.keys.len(),
    };
    if met {
        return None;
    }
    Some(if proof.found == 0 {
        "it has no signature".to_string()
    } else if let Require::Each = policy.require {
        let missing: Vec<&str> = policy
            .keys
            .iter()
            .filter(|k| !counts(k))
            .map(String::as_str)
            .collect();
        format!("no valid signature by {}", missing.join(", "))
    } else if let Some((_, s)) = proof.subjects.iter().find(|(n, _)| policy.keys.contains(n)) {
        let subject: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "its notation signer ({}) is not a trusted identity",
            subject.join(", ")
        )
    } else if proof.problems.is_empty() {
        format!(
            "its signatures are by other keys than {}",
            policy.keys.join(", ")
        )
    } else {
        let mut p = proof.problems.clone();
        p.dedup();
        p.truncate(3);
        p.join("; ")
    })
}

#[cfg(test)]
#[path = "trusted_tests.rs"]
mod tests;
