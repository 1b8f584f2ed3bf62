//! cosign's key-based image signatures: for an image `sha256:<hex>`, the manifest tagged
//! `sha256-<hex>.sig` has one layer per signature, of type [`SIMPLE_SIGNING`]. The layer's
//! blob is the signed payload, a small JSON document whose `critical.image.
//! docker-manifest-digest` names the image; its annotation [`SIGNATURE_ANNOTATION`] holds the
//! base64 signature over the payload's exact bytes. A signature counts only if a trusted key
//! verifies it *and* the payload names the image being pulled: a valid signature of another
//! image proves nothing about this one.

use base64::Engine;

use super::keys::PublicKey;
use crate::oci::{Digest, Manifest};

/// The media type of a signature layer (its blob is the payload).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Payloads are a few hundred bytes; anything far larger is not one.
pub const PAYLOAD_MAX: usize = 64 << 10;

/// The tag cosign keeps an image's signatures under.
pub fn signature_tag(image: &Digest) -> String {
    image.to_string().replacen(':', "-", 1) + ".sig"
}

/// One signature in a signature manifest: the payload blob to fetch (by digest) and the
/// signature over it.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureLayer {
    pub payload: Digest,
    pub payload_size: u64,
    pub signature: String,
}

/// The signatures a manifest tagged `sha256-<hex>.sig` carries: its layers of type
/// [`SIMPLE_SIGNING`] with a signature annotation. Other layers (attestations, unknown
/// types) are not signatures and are skipped.
pub fn signatures_in(manifest: &Manifest) -> Vec<SignatureLayer> {
    manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
        .filter_map(|l| {
            let sig = l
                .annotations
                .as_ref()?
                .get(SIGNATURE_ANNOTATION)?
                .as_str()?;
            Some(SignatureLayer {
                payload: l.digest.clone(),
                payload_size: l.size,
                signature: sig.to_string(),
            })
        })
        .collect()
}

/// Why a signature does not make an image trusted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No trusted key verifies the signature (an unknown signer, or altered bytes).
    Untrusted,
    /// The signature is not base64, or the payload not a cosign payload.
    Malformed(String),
    /// A trusted key signed it, for another image.
    OtherImage(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Untrusted => write!(f, "no trusted key verifies the signature"),
            Refusal::Malformed(why) => write!(f, "not a cosign signature: {why}"),
            Refusal::OtherImage(d) => write!(f, "the signature is for another image ({d})"),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    critical: Critical,
    /// Free-form claims (`cosign sign -a k=v`); not part of the decision.
    #[serde(default)]
    #[allow(dead_code)]
    optional: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    #[allow(dead_code)]
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    #[allow(dead_code)]
    docker_reference: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks one signature of `image`: `payload` is the signature layer's blob (the caller
/// has checked it against the layer's digest), `signature` the layer's annotation. On
/// success, the key that verified it.
pub fn verify<'k>(
    image: &Digest,
    payload: &[u8],
    signature: &str,
    keys: &'k [PublicKey],
) -> Result<&'k PublicKey, Refusal> {
    if payload.len() > PAYLOAD_MAX {
        return Err(Refusal::Malformed(format!(
            "a payload of {} bytes",
            payload.len()
        )));
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Refusal::Malformed("the signature is not base64".into()))?;
    // Authenticity first: nothing in an unverified payload is believed.
    let key = keys
        .iter()
        .find(|k| k.verifies_cosign(payload, &sig))
        .ok_or(Refusal::Untrusted)?;
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| Refusal::Malformed(format!("the payload does not parse: {e}")))?;
    if p.critical.kind != PAYLOAD_TYPE {
        return Err(Refusal::Malformed(format!(
            "the payload's type is {:?}",
            p.critical.kind
        )));
    }
    if p.critical.image.digest != image.to_string() {
        return Err(Refusal::OtherImage(p.critical.image.digest));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::testkit::{payload, signer};

    #[test]
    fn the_signatures_of_a_signature_manifest() {
        let payload = Digest::sha256_of(b"payload");
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::sha256_of(b"{}").to_string(), "size": 2},
            "layers": [
                {"mediaType": SIMPLE_SIGNING, "digest": payload.to_string(), "size": 7,
                 "annotations": {SIGNATURE_ANNOTATION: "c2ln"}},
                {"mediaType": SIMPLE_SIGNING, "digest": payload.to_string(), "size": 7},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                 "digest": payload.to_string(), "size": 7,
                 "annotations": {SIGNATURE_ANNOTATION: "c2ln"}},
            ]
        });
        let m = Manifest::parse(None, &serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            signatures_in(&m),
            vec![SignatureLayer {
                payload,
                payload_size: 7,
                signature: "c2ln".into()
            }]
        );
    }

    #[test]
    fn the_tag_scheme() {
        let d = Digest::sha256_of(b"x");
        let hex = d.to_string()["sha256:".len()..].to_string();
        assert_eq!(signature_tag(&d), format!("sha256-{hex}.sig"));
    }

    #[test]
    fn a_signature_counts_only_from_a_trusted_key_over_this_image() {
        let (s, other) = (signer(), signer());
        let image = Digest::sha256_of(b"image");
        let p = payload(&image.to_string(), PAYLOAD_TYPE);
        let sig = s.sign(&p);
        let keys = [other.key.clone(), s.key.clone()];
        assert_eq!(verify(&image, &p, &sig, &keys).unwrap(), &s.key);
        // An untrusted signer.
        assert_eq!(
            verify(&image, &p, &sig, std::slice::from_ref(&other.key)),
            Err(Refusal::Untrusted)
        );
        // A tampered payload (one byte of the digest it names).
        let mut tampered = p.clone();
        let at = tampered.len() - 40;
        tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            verify(&image, &tampered, &sig, &keys),
            Err(Refusal::Untrusted)
        );
        // A trusted signature of another image.
        let elsewhere = Digest::sha256_of(b"other image");
        let p2 = payload(&elsewhere.to_string(), PAYLOAD_TYPE);
        assert_eq!(
            verify(&image, &p2, &s.sign(&p2), &keys),
            Err(Refusal::OtherImage(elsewhere.to_string()))
        );
        // Not a cosign payload, though signed.
        let p3 = payload(&image.to_string(), "atomic container signature");
        assert!(matches!(
            verify(&image, &p3, &s.sign(&p3), &keys),
            Err(Refusal::Malformed(_))
        ));
        let p4 = br#"{"critical":{"image":{"docker-manifest-digest":"x"}},"extra":1}"#;
        assert!(matches!(
            verify(&image, p4, &s.sign(p4), &keys),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            verify(&image, &p, "not base64!", &keys),
            Err(Refusal::Malformed(_))
        ));
    }
}
