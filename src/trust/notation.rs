//! Notary Project (notation) signatures in the JWS envelope: a referrer manifest of
//! artifact type [`ARTIFACT_TYPE`] whose one layer ([`JWS`]) is a flattened JWS JSON
//! document. Its protected header names the algorithm, the payload type and the signing
//! scheme; its unprotected header carries the certificate chain (`x5c`, leaf first); its
//! payload describes the signed manifest (`targetArtifact`: media type, digest, size).
//!
//! A signature counts only if all of this holds (signature-specification.md,
//! signature-envelope-jws.md, trust-store-trust-policy.md): the envelope is well formed and
//! every critical header is understood; the algorithm is the one the leaf key calls for; the
//! signature verifies over the exact `protected.payload` text with the leaf key; the payload
//! names this image; the chain is sound and reaches a certificate of the trust store; the
//! leaf's subject is a trusted identity; the signature has not expired. No timestamp
//! authority and no revocation check (both need the network, which an edge box may not have).

use base64::Engine;
use serde::Deserialize;
use x509_parser::public_key::PublicKey as ParsedKey;

use super::keys::{KeyKind, PublicKey};
use super::x509chain::{self, ChainError};
use crate::oci::Digest;

/// The artifact type of a notation signature manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The media type of the JWS envelope layer.
pub const JWS: &str = "application/jose+json";
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const EXPIRY: &str = "io.cncf.notary.expiry";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
/// Envelopes are a few kilobytes (mostly the certificates); anything far larger is not one.
pub const ENVELOPE_MAX: usize = 256 << 10;

/// Why a notation signature does not make an image trusted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a notation JWS envelope, or one this verifier must not accept.
    Malformed(String),
    /// The signature does not verify with the leaf certificate's key.
    BadSignature,
    /// It verifies, for another artifact.
    OtherImage(String),
    /// The certificates are not trusted (the reason names the certificate).
    Untrusted(String),
    /// The leaf's subject is not an identity the policy trusts.
    Identity(String),
    Expired,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "not a usable notation signature: {why}"),
            Refusal::BadSignature => write!(f, "the notation signature does not verify"),
            Refusal::OtherImage(d) => {
                write!(f, "the notation signature is for another artifact ({d})")
            }
            Refusal::Untrusted(why) => write!(f, "the notation signature is not trusted: {why}"),
            Refusal::Identity(s) => {
                write!(f, "the notation signer {s:?} is not a trusted identity")
            }
            Refusal::Expired => write!(f, "the notation signature has expired"),
        }
    }
}

impl From<ChainError> for Refusal {
    fn from(e: ChainError) -> Refusal {
        Refusal::Untrusted(e.0)
    }
}

fn malformed<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Malformed(why.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    protected: String,
    header: Unprotected,
    signature: String,
}

#[derive(Deserialize)]
struct Unprotected {
    x5c: Vec<String>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "targetArtifact")]
    target: Target,
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// The signed image as the registry knows it.
pub struct Image<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub size: u64,
}

/// Who may sign: the trust store (DER certificates) and the identities trusted (each
/// `x509.subject: …`, or `*` for any subject the store vouches for).
pub struct TrustStore<'a> {
    pub certificates: &'a [Vec<u8>],
    pub identities: &'a [String],
}

/// A verified signature: its signer's subject, as text and as attributes.
#[derive(Debug, PartialEq, Eq)]
pub struct Signed {
    pub subject: String,
    pub attributes: Vec<(String, String)>,
}

fn b64url(s: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| malformed(format!("{what} is not base64url")))
}

/// The JWS algorithm a leaf key calls for (signature-specification.md "Algorithm Selection").
fn algorithm_for(
    leaf: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<&'static str, Refusal> {
    match leaf.public_key().parsed() {
        Ok(ParsedKey::RSA(rsa)) => match rsa.key_size() {
            2048 => Ok("PS256"),
            3072 => Ok("PS384"),
            4096 => Ok("PS512"),
            n => malformed(format!("an RSA key of {n} bits")),
        },
        Ok(ParsedKey::EC(ec)) => match ec.key_size() {
            256 => Ok("ES256"),
            384 => Ok("ES384"),
            n => malformed(format!("an EC key of {n} bits (P-521 is not supported)")),
        },
        _ => malformed("the signing key is neither RSA nor EC"),
    }
}

/// Verifies one JWS envelope for `image` against `store` at `now` (Unix seconds).
pub fn verify(
    envelope: &[u8],
    image: &Image<'_>,
    store: &TrustStore<'_>,
    now: i64,
) -> Result<Signed, Refusal> {
    if envelope.len() > ENVELOPE_MAX {
        return malformed(format!("an envelope of {} bytes", envelope.len()));
    }
    let env: Envelope = serde_json::from_slice(envelope)
        .or_else(|e| malformed(format!("the envelope does not parse: {e}")))?;
    let protected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&b64url(&env.protected, "the protected header")?)
            .or_else(|e| malformed(format!("the protected header does not parse: {e}")))?;
    let text = |k: &str| protected.get(k).and_then(|v| v.as_str());
    if text("cty") != Some(PAYLOAD_TYPE) {
        return malformed(format!("its content type is {:?}", text("cty")));
    }
    if text(SIGNING_SCHEME) != Some("notary.x509") {
        return malformed(format!(
            "signing scheme {:?} (only notary.x509 is verified offline)",
            text(SIGNING_SCHEME)
        ));
    }
    let crit: Vec<&str> = match protected.get("crit").and_then(|v| v.as_array()) {
        Some(c) => c.iter().filter_map(|v| v.as_str()).collect(),
        None => return malformed("it has no crit header"),
    };
    if !crit.contains(&SIGNING_SCHEME) {
        return malformed("crit does not name the signing scheme");
    }
    // Headers we do not understand must not be ignored if the signer said they matter.
    for c in &crit {
        if ![SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME].contains(c)
            || !protected.contains_key(*c)
        {
            return malformed(format!(
                "critical header {c:?} is not understood or missing"
            ));
        }
    }
    if protected.contains_key(EXPIRY) && !crit.contains(&EXPIRY) {
        return malformed("the expiry is not marked critical");
    }
    let ders: Vec<Vec<u8>> = env
        .header
        .x5c
        .iter()
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c)
                .or_else(|_| malformed("a certificate in x5c is not base64"))
        })
        .collect::<Result<_, _>>()?;
    let chain = x509chain::parse(&ders)?;
    let alg = text("alg").unwrap_or_default();
    let want = algorithm_for(&chain[0])?;
    if alg != want {
        return malformed(format!("alg {alg:?}, but the signing key calls for {want}"));
    }
    let leaf = PublicKey::from_spki_der(chain[0].public_key().raw)
        .or_else(|e| malformed(format!("the signing key: {e}")))?;
    let signature = b64url(&env.signature, "the signature")?;
    let signed_text = format!("{}.{}", env.protected, env.payload);
    if !leaf.verifies_jws(alg, signed_text.as_bytes(), &signature) {
        return Err(Refusal::BadSignature);
    }
    // Authentic from here on: the payload and the times can be believed.
    let payload: Payload = serde_json::from_slice(&b64url(&env.payload, "the payload")?)
        .or_else(|e| malformed(format!("the payload does not parse: {e}")))?;
    let t = payload.target;
    if t.digest != image.digest.to_string()
        || t.size != image.size
        || t.media_type != image.media_type
    {
        return Err(Refusal::OtherImage(format!(
            "{} {} of {} bytes",
            t.media_type, t.digest, t.size
        )));
    }
    if let Some(expiry) = text(EXPIRY) {
        let at =
            time::OffsetDateTime::parse(expiry, &time::format_description::well_known::Rfc3339)
                .or_else(|_| malformed("the expiry is not an RFC 3339 time"))?;
        if now >= at.unix_timestamp() {
            return Err(Refusal::Expired);
        }
    }
    x509chain::verify(&chain, &ders, store.certificates, now)?;
    let attributes = x509chain::subject_pairs(&chain[0]);
    if !identity_trusted(&attributes, store.identities) {
        return Err(Refusal::Identity(x509chain::subject_text(&chain[0])));
    }
    Ok(Signed {
        subject: x509chain::subject_text(&chain[0]),
        attributes,
    })
}

/// Whether a signer's subject is one of `identities` (none, or `*`: any). An identity
/// that does not parse matches nothing (policies are checked when they are added).
pub fn identity_trusted(subject: &[(String, String)], identities: &[String]) -> bool {
    identities.is_empty()
        || identities.iter().any(|i| {
            i.trim() == "*"
                || x509chain::parse_identity(i)
                    .is_ok_and(|id| x509chain::identity_matches(subject, &id))
        })
}

/// Whether a key kind can have signed with the JWS algorithm `alg`.
pub(super) fn jws_algorithm(
    kind: KeyKind,
    alg: &str,
) -> Option<&'static dyn ring::signature::VerificationAlgorithm> {
    use ring::signature as s;
    Some(match (kind, alg) {
        (KeyKind::EcdsaP256, "ES256") => &s::ECDSA_P256_SHA256_FIXED,
        (KeyKind::EcdsaP384, "ES384") => &s::ECDSA_P384_SHA384_FIXED,
        (KeyKind::Rsa, "PS256") => &s::RSA_PSS_2048_8192_SHA256,
        (KeyKind::Rsa, "PS384") => &s::RSA_PSS_2048_8192_SHA384,
        (KeyKind::Rsa, "PS512") => &s::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

#[cfg(test)]
#[path = "notation_tests.rs"]
mod tests;
