//! What an image's signatures prove: the signature manifests stored beside it (cosign's
//! `sha256-<hex>.sig` tag, OCI 1.1 referrers), each signature checked with the installed
//! keys (cosign) or certificates (Notary Project), and the result cached per image.
//! Only blobs linked into the image's repository are read, so one tenant's signatures
//! never vouch for another's images. `trusted` judges the proof against the policies.
//!
//! The cache is keyed by the signature manifests a proof was drawn from and the version of
//! the keys and policies: a new signature, a deleted one, or any change of keys or policies
//! makes a fresh check; so does an hour passing (certificates and signatures expire).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::trusted::TrustState;
use super::Registry;
use crate::error::Result;
use crate::oci::{Descriptor, Digest, Manifest, RepoName, Tag};
use crate::trust::keys::{PublicKey, TrustAnchor};
use crate::trust::{cosign, notation};

/// Referrers looked at for one image; more are ignored (a flood of referrers must not turn
/// a pull into a scan).
const REFERRERS_MAX: usize = 64;

/// Signatures read from one signature manifest; more are ignored (each costs a blob read
/// and a verification, and a pusher could list thousands).
pub(super) const SIGNATURES_MAX: usize = 32;

/// Cached results before the cache is emptied and starts again.
const CACHE_MAX: usize = 4096;

/// What an image's signatures prove.
#[derive(Clone, Debug, Default)]
pub(super) struct Proof {
    /// Installed keys with a valid signature of the image.
    pub(super) signers: BTreeSet<String>,
    /// Signatures that did not count, and why (for the refusal message).
    pub(super) problems: Vec<String>,
    /// Signatures found at all.
    pub(super) found: usize,
    /// For each installed certificate a Notary Project signature chained to: the signer's
    /// subject attributes (which a policy's identities are matched against).
    pub(super) subjects: Vec<(String, Vec<(String, String)>)>,
}

#[derive(Default)]
pub(super) struct ProofCache {
    entries: Mutex<HashMap<(String, Digest), Cached>>,
}

/// What the signatures of an image in a repository proved, and from what.
struct Cached {
    /// The trust version it was checked under.
    version: u64,
    /// The signature manifests it was drawn from.
    sources: Vec<Digest>,
    /// When: certificates and signatures expire, so a proof is redone after [`PROOF_TTL`].
    at: std::time::Instant,
    proof: Proof,
}

/// How long a proof is reused while nothing else changes.
const PROOF_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Registry {
    /// The signature manifests of `image` in `repo`: cosign's tag, then referrers.
    fn signature_manifests(&self, repo: &RepoName, image: &Digest) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        if let Ok(tag) = cosign::signature_tag(image).parse::<Tag>() {
            if let Some(t) = self.meta().tag(repo, &tag)? {
                out.push(t.digest);
            }
        }
        for r in self
            .meta()
            .referrers(repo, image)?
            .into_iter()
            .take(REFERRERS_MAX)
        {
            if !out.contains(&r.digest) {
                out.push(r.digest);
            }
        }
        Ok(out)
    }

    /// What the signatures of `image` in `repo` prove, from the cache when nothing changed.
    pub(super) async fn proof(
        &self,
        state: &TrustState,
        repo: &RepoName,
        image: &Digest,
    ) -> Result<Proof> {
        let sources = self.signature_manifests(repo, image)?;
        let key = (repo.to_string(), image.clone());
        let cache = &self.inner.proofs.entries;
        if let Some(c) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if c.version == state.version && c.sources == sources && c.at.elapsed() < PROOF_TTL {
                return Ok(c.proof.clone());
            }
        }
        let mut proof = Proof::default();
        for source in &sources {
            self.verify_manifest(state, repo, image, source, &mut proof)
                .await?;
        }
        let mut entries = cache.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            key,
            Cached {
                version: state.version,
                sources,
                at: std::time::Instant::now(),
                proof: proof.clone(),
            },
        );
        Ok(proof)
    }

    /// Checks every signature in the signature manifest `source`: cosign's, or a Notary
    /// Project envelope.
    async fn verify_manifest(
        &self,
        state: &TrustState,
        repo: &RepoName,
        image: &Digest,
        source: &Digest,
        proof: &mut Proof,
    ) -> Result<()> {
        let Some(rec) = self.meta().manifest(repo, source)? else {
            return Ok(());
        };
        let Some(bytes) = self.meta().manifest_bytes(source)? else {
            return Ok(());
        };
        let Ok(manifest) = Manifest::parse(Some(&rec.media_type), &bytes) else {
            return Ok(());
        };
        if is_notation(&manifest) {
            return self
                .verify_notation(state, repo, image, &manifest, proof)
                .await;
        }
        let sigs = cosign::signatures_in(&manifest);
        note_cap(sigs.len(), proof);
        for sig in sigs.into_iter().take(SIGNATURES_MAX) {
            proof.found += 1;
            let Some(payload) = self
                .signature_blob(
                    repo,
                    &sig.payload,
                    sig.payload_size,
                    cosign::PAYLOAD_MAX,
                    proof,
                )
                .await?
            else {
                continue;
            };
            weigh(state, image, &sig, &payload, proof);
        }
        Ok(())
    }

    /// Checks a Notary Project signature manifest's JWS envelope against each installed
    /// certificate (the trust store); a policy's identities are applied when it is judged.
    async fn verify_notation(
        &self,
        state: &TrustState,
        repo: &RepoName,
        image: &Digest,
        manifest: &Manifest,
        proof: &mut Proof,
    ) -> Result<()> {
        let Some(target) = self.meta().manifest(repo, image)? else {
            return Ok(());
        };
        for layer in jws_layers(manifest, proof) {
            let Some(envelope) = self
                .signature_blob(
                    repo,
                    &layer.digest,
                    layer.size,
                    notation::ENVELOPE_MAX,
                    proof,
                )
                .await?
            else {
                continue;
            };
            let img = notation::Image {
                digest: image,
                media_type: &target.media_type,
                size: target.size,
            };
            weigh_notation(state, &img, &envelope, proof);
        }
        Ok(())
    }

    /// A signature blob (payload or envelope) linked into `repo`, at most `max` bytes, its
    /// bytes checked against its digest; `None` (and the reason noted in `proof`) when it
    /// cannot be used.
    async fn signature_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        max: usize,
        proof: &mut Proof,
    ) -> Result<Option<Vec<u8>>> {
        let problem = if size > max as u64 {
            format!("a signature payload of {size} bytes")
        } else if !self.meta().is_linked(repo, digest)? {
            format!("the signature payload {digest} is not in this repository")
        } else {
            let path = self.storage().blob_path(digest);
            let bytes =
                super::blocking("reading a signature payload", move || {
                    match std::fs::read(path) {
                        Ok(b) => Ok(Some(b)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            match bytes {
                None => format!("the signature payload {digest} is missing"),
                Some(b) if Digest::sha256_of(&b) != *digest => {
                    format!("the signature payload {digest} does not match its digest")
                }
                Some(b) => return Ok(Some(b)),
            }
        };
        proof.problems.push(problem);
        Ok(None)
    }
}

/// Checks one signature of `image` (its payload's bytes in hand) with the installed keys,
/// and notes in `proof` who signed or why it does not count.
/// Says in `proof` that signatures past [`SIGNATURES_MAX`] were not read.
pub(super) fn note_cap(count: usize, proof: &mut Proof) {
    if count > SIGNATURES_MAX {
        proof.problems.push(format!(
            "a signature manifest lists {count} signatures; only the first {SIGNATURES_MAX} are read"
        ));
    }
}

/// Whether a manifest is a Notary Project signature (the artifact type, or in the older
/// form the config's media type, says so).
/// The JWS envelope layers of a notation signature manifest, at most [`SIGNATURES_MAX`]:
/// each counted as a signature found, any other envelope format noted as not read.
pub(super) fn jws_layers<'m>(m: &'m Manifest, proof: &mut Proof) -> Vec<&'m Descriptor> {
    note_cap(m.layers.len(), proof);
    let mut out = Vec::new();
    for layer in m.layers.iter().take(SIGNATURES_MAX) {
        proof.found += 1;
        if layer.media_type == notation::JWS {
            out.push(layer);
        } else {
            proof.problems.push(format!(
                "a notation signature in {} (only JWS envelopes are read)",
                layer.media_type
            ));
        }
    }
    out
}

/// Checks one Notary Project JWS envelope for `img` against each installed certificate
/// (the trust store); a policy's identities are applied when it is judged.
pub(super) fn weigh_notation(
    state: &TrustState,
    img: &notation::Image,
    envelope: &[u8],
    proof: &mut Proof,
) {
    let now = crate::meta::now() as i64;
    let (mut refusals, mut verified) = (Vec::new(), false);
    for (name, anchor) in &state.keys {
        let TrustAnchor::Certificate(der) = anchor else {
            continue;
        };
        let store = notation::TrustStore {
            certificates: std::slice::from_ref(der),
            identities: &[],
        };
        match notation::verify(envelope, img, &store, now) {
            Ok(signed) => {
                verified = true;
                proof.signers.insert(name.clone());
                proof.subjects.push((name.clone(), signed.attributes));
            }
            Err(r) => refusals.push(r),
        }
    }
    // Why it counted for no certificate (the first reason found).
    if !verified {
        if let Some(r) = refusals.into_iter().next() {
            proof.problems.push(r.to_string());
        } else {
            proof
                .problems
                .push("a notation signature, and no certificate is installed".into());
        }
    }
}

pub(super) fn is_notation(m: &Manifest) -> bool {
    m.artifact_type.as_deref() == Some(notation::ARTIFACT_TYPE)
        || m.config
            .as_ref()
            .is_some_and(|c| c.media_type == notation::ARTIFACT_TYPE)
}

pub(super) fn weigh(
    state: &TrustState,
    image: &Digest,
    sig: &cosign::SignatureLayer,
    payload: &[u8],
    proof: &mut Proof,
) {
    let (names, keys): (Vec<&String>, Vec<PublicKey>) = state
        .keys
        .iter()
        .filter_map(|(name, a)| match a {
            TrustAnchor::Key(k) => Some((name, k.clone())),
            TrustAnchor::Certificate(_) => None,
        })
        .unzip();
    match cosign::verify(image, payload, &sig.signature, &keys) {
        Ok(k) => {
            if let Some(i) = keys.iter().position(|key| key == k) {
                proof.signers.insert(names[i].clone());
            }
        }
        Err(r) => proof.problems.push(r.to_string()),
    }
}
