//! For tests: a P-256 signer that makes cosign signatures and gives its public key as the
//! PEM an operator installs (what `cosign.pub` holds).

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::keys::PublicKey;

pub(crate) struct Signer {
    pair: EcdsaKeyPair,
    pub pem: String,
    pub key: PublicKey,
}

/// A fresh key pair.
pub(crate) fn signer() -> Signer {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let der = p256_spki_der(pair.public_key().as_ref());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    let key = PublicKey::from_pem(pem.as_bytes()).unwrap();
    Signer { pair, pem, key }
}

impl Signer {
    /// The raw signature (ASN.1 DER, as cosign makes it).
    pub fn sign_raw(&self, msg: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// The signature as cosign's annotation holds it: base64.
    pub fn sign(&self, msg: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sign_raw(msg))
    }
}

/// A cosign payload of `kind` (cosign's is `cosign container image signature`) for `digest`.
pub(crate) fn payload(digest: &str, kind: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": "edge.example/prod/app"},
            "image": {"docker-manifest-digest": digest},
            "type": kind,
        },
        "optional": null,
    }))
    .unwrap()
}

/// A DER SubjectPublicKeyInfo for a P-256 point (ring gives the point alone): the fixed
/// prefix of id-ecPublicKey with prime256v1, then the point.
pub(crate) fn p256_spki_der(point: &[u8]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(point);
    der
}
