//! The trust material a bundle carries: a central site's trust keys and policies, signed,
//! so that a box with no network can have a key rotated or a policy added by the same
//! bundle that brings the images signed under them.
//!
//! The bundle holds `edgeyard-trust.json` (the keys' PEM and the policies, and when it was
//! issued) and `edgeyard-trust.json.sig` (base64 of a DER ECDSA signature over the file's
//! exact bytes). An import applies it only when an installed key whose purpose is
//! `trust-updates` verifies the signature: the keys that sign images cannot change which
//! keys a site trusts. What it brings replaces what the previous bundle brought (see
//! `trust_declared`); one issued before the last one applied is refused, so replaying an
//! old bundle cannot bring back a key the central site has withdrawn.

use base64::Engine;

use super::trust_declared::{plan, Applied, DeclaredKey, DeclaredTrust, TrustPlan};
use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::meta::{TrustPolicyRecord, TrustSource};
use crate::trust::keys::TrustAnchor;
use crate::trust::signing::SigningKey;

/// The trust document's name in a bundle.
pub const TRUST_FILE: &str = "edgeyard-trust.json";
/// Its signature's name.
pub const TRUST_SIGNATURE: &str = "edgeyard-trust.json.sig";

/// The format version this build writes and reads.
const FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "edgeyardTrust")]
    format: u32,
    /// Unix seconds when it was exported: an older one than the last applied is refused.
    issued: u64,
    keys: Vec<DeclaredKey>,
    policies: Vec<TrustPolicyRecord>,
}

/// A bundle's trust material, checked and ready to apply with its images.
pub struct TrustUpdate {
    plan: Option<TrustPlan>,
    issued: u64,
    signer: String,
}

impl TrustUpdate {
    /// The plan to judge the bundle's images under (`None` when it changes nothing).
    pub fn plan(&self) -> Option<&TrustPlan> {
        self.plan.as_ref()
    }
}

fn refused(message: String) -> Error {
    Error::api(ErrorCode::Denied, message)
}

impl Registry {
    /// This registry's trust keys and policies as a bundle carries them: the document and
    /// its signature text.
    pub fn export_trust(&self, signer: &SigningKey) -> Result<(Vec<u8>, Vec<u8>)> {
        let bytes = self.trust_document(crate::meta::now())?;
        let sig = signer
            .sign(&bytes)
            .map_err(|e| Error::internal("signing the trust document", e))?;
        let text = base64::engine::general_purpose::STANDARD.encode(sig);
        Ok((bytes, text.into_bytes()))
    }

    /// The trust document of this registry's keys and policies, issued at `issued`.
    fn trust_document(&self, issued: u64) -> Result<Vec<u8>> {
        let keys = self
            .meta()
            .trust_keys()?
            .into_iter()
            .map(|(name, k)| DeclaredKey {
                name,
                pem: k.pem,
                purpose: k.purpose,
            })
            .collect();
        let policies = self
            .meta()
            .trust_policies()?
            .into_iter()
            .map(|(_, p)| TrustPolicyRecord {
                source: TrustSource::Manual,
                ..p
            })
            .collect();
        let doc = Document {
            format: FORMAT,
            issued,
            keys,
            policies,
        };
        serde_json::to_vec_pretty(&doc)
            .map_err(|e| Error::internal("writing the trust document", e))
    }

    /// Checks a bundle's trust material: signed by an installed `trust-updates` key, not
    /// older than the last applied, and consistent with what else is installed. Nothing
    /// is written (see [`Registry::apply_trust_update`]).
    pub fn check_trust_update(&self, doc: &[u8], signature: Option<&[u8]>) -> Result<TrustUpdate> {
        let Some(signature) = signature else {
            return Err(refused(format!(
                "the bundle carries {TRUST_FILE} without {TRUST_SIGNATURE}: its trust material is not signed; nothing was imported"
            )));
        };
        let sig = base64::engine::general_purpose::STANDARD
            .decode(String::from_utf8_lossy(signature).trim())
            .map_err(|_| {
                refused(format!(
                    "{TRUST_SIGNATURE} is not base64; nothing was imported"
                ))
            })?;
        let state = self.trust_state();
        let signer = state
            .updates
            .iter()
            .find(|(_, k)| matches!(k, TrustAnchor::Key(k) if k.verifies_cosign(doc, &sig)))
            .map(|(name, _)| name.clone());
        let Some(signer) = signer else {
            let installed: Vec<&str> = state.updates.iter().map(|(n, _)| n.as_str()).collect();
            return Err(refused(format!(
                "the bundle's trust keys and policies are not signed by a key this registry trusts for trust updates ({}); nothing was imported (import with --without-trust to take only its images)",
                if installed.is_empty() {
                    "none is installed: add one with `edgeyard trust key add NAME FILE --purpose trust-updates`".to_string()
                } else {
                    format!("installed: {}", installed.join(", "))
                }
            )));
        };
        let doc: Document = serde_json::from_slice(doc)
            .map_err(|e| Error::api(ErrorCode::Invalid, format!("{TRUST_FILE}: {e}")))?;
        if doc.format != FORMAT {
            return Err(Error::api(
                ErrorCode::Invalid,
                format!(
                    "{TRUST_FILE} is format {}; this edgeyard reads {FORMAT}",
                    doc.format
                ),
            ));
        }
        let last = self.meta().trust_bundle_issued()?;
        if doc.issued < last {
            return Err(refused(format!(
                "the bundle's trust material was issued at {} (unix time), before the one already applied ({last}): an older bundle cannot roll trust back; nothing was imported",
                doc.issued
            )));
        }
        let plan = match doc.issued == last {
            // The same material again (the same bundle imported twice): nothing to do.
            true => None,
            false => Some(plan(
                self.meta(),
                TrustSource::Bundle,
                &DeclaredTrust {
                    keys: doc.keys,
                    policies: doc.policies,
                },
            )?),
        };
        Ok(TrustUpdate {
            plan,
            issued: doc.issued,
            signer,
        })
    }

    /// Applies checked trust material (after the bundle's images were stored) and says
    /// what changed.
    pub fn apply_trust_update(&self, update: TrustUpdate) -> Result<(String, Applied)> {
        let Some(plan) = update.plan else {
            return Ok((update.signer, Applied::default()));
        };
        let applied = self.commit_trust(plan)?;
        self.meta().set_trust_bundle_issued(update.issued)?;
        Ok((update.signer, applied))
    }
}

#[cfg(test)]
#[path = "trust_update_tests.rs"]
mod tests;
