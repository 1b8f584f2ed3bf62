//! Signature verification against signatures made by an independent implementation:
//! OpenSSL makes the keys and signs cosign payloads as cosign does (ECDSA P-256 over
//! SHA-256, DER; RSA PKCS#1 v1.5 over SHA-256; Ed25519), and edgeyard's verifier must
//! accept exactly those, for exactly the image they name.

use std::path::Path;

use edgeyard::oci::Digest;
use edgeyard::trust::cosign::{self, Refusal};
use edgeyard::trust::keys::{KeyKind, PublicKey};

mod common;
use common::signing::{self, sign};

/// A key pair made by OpenSSL, and the public key as cosign writes it, read by edgeyard.
fn key_pair(dir: &Path, name: &str, genpkey: &[&str]) -> PublicKey {
    signing::key_pair(dir, name, genpkey);
    PublicKey::from_pem(&std::fs::read(dir.join(format!("{name}.pub"))).unwrap()).unwrap()
}

fn payload(image: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"edge.example/prod/app"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

#[test]
fn openssl_signatures_verify_for_their_image_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let image = Digest::sha256_of(b"the image manifest");
    let other = Digest::sha256_of(b"another image");
    let kinds: [(&str, &[&str], KeyKind); 3] = [
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::EcdsaP256,
        ),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::Rsa,
        ),
        ("ed25519", &["-algorithm", "ED25519"], KeyKind::Ed25519),
    ];
    let keys: Vec<PublicKey> = kinds
        .iter()
        .map(|(name, args, _)| key_pair(dir, name, args))
        .collect();
    let stranger = key_pair(dir, "stranger", kinds[0].1);
    for ((name, _, kind), key) in kinds.iter().zip(&keys) {
        assert_eq!(key.kind(), *kind, "{name}");
        let ed = *kind == KeyKind::Ed25519;
        let p = payload(&image);
        let sig = sign(dir, name, &p, ed);
        assert_eq!(
            cosign::verify(&image, &p, &sig, &keys)
                .unwrap()
                .fingerprint(),
            key.fingerprint(),
            "{name}"
        );
        // Only the keys installed count.
        assert_eq!(
            cosign::verify(&image, &p, &sig, std::slice::from_ref(&stranger)),
            Err(Refusal::Untrusted),
            "{name}"
        );
        // A signature of another image is no signature of this one.
        let p2 = payload(&other);
        let sig2 = sign(dir, name, &p2, ed);
        assert_eq!(
            cosign::verify(&image, &p2, &sig2, &keys),
            Err(Refusal::OtherImage(other.to_string())),
            "{name}"
        );
        // Altered payload bytes.
        let mut altered = p.clone();
        altered[20] ^= 1;
        assert_eq!(
            cosign::verify(&image, &altered, &sig, &keys),
            Err(Refusal::Untrusted),
            "{name}"
        );
    }
    // The fingerprint is that of the DER public key, as `openssl pkey -pubout -outform DER`
    // gives it.
    assert_eq!(keys[0].fingerprint(), signing::fingerprint(dir, "p256"));
}
