//! Content trust's parsers and checks (`trust::cosign`) on hostile input. The first byte
//! picks what the rest is:
//!
//! - 0: a signature payload, signed by the trusted key: it must be accepted exactly when it
//!   is a cosign payload naming the image, and refused as naming another image exactly when
//!   it names another one; a signature by the trusted key is never called untrusted;
//! - 1: the signature annotation's text, over a valid payload: never accepted (no forged
//!   signature verifies);
//! - 2: a signature manifest: `signatures_in` never panics and yields exactly its
//!   simple-signing layers that carry a signature annotation;
//! - 3: a Notary Project JWS envelope: `notation::verify` never panics and never accepts
//!   one, as the trust store is empty (whatever the envelope's certificates claim).

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use edgeyard::oci::{Digest, Manifest};
use edgeyard::trust::cosign::{self, Refusal, SIGNATURE_ANNOTATION, SIMPLE_SIGNING};
use edgeyard::trust::keys::PublicKey;
use edgeyard::trust::notation;
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::Value;

struct Signer {
    pair: EcdsaKeyPair,
    keys: Vec<PublicKey>,
}

static SIGNER: LazyLock<Signer> = LazyLock::new(|| {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    // DER SubjectPublicKeyInfo of a P-256 point: the fixed prefix, then the point.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(pair.public_key().as_ref());
    let keys = vec![PublicKey::from_spki_der(&der).unwrap()];
    Signer { pair, keys }
});

fn sign(msg: &[u8]) -> String {
    let sig = SIGNER.pair.sign(&SystemRandom::new(), msg).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
}

/// What the payload claims, read independently of the verifier: (type, digest).
fn claims(payload: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let c = &v["critical"];
    Some((
        c["type"].as_str()?.to_string(),
        c["image"]["docker-manifest-digest"].as_str()?.to_string(),
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let image = Digest::sha256_of(b"the image");
    let keys = &SIGNER.keys;
    match pick % 4 {
        0 => match cosign::verify(&image, rest, &sign(rest), keys) {
            Ok(k) => {
                assert_eq!(k, &keys[0]);
                let (kind, digest) = claims(rest).expect("an accepted payload is JSON with claims");
                assert_eq!(kind, "cosign container image signature");
                assert_eq!(digest, image.to_string());
            }
            Err(Refusal::OtherImage(d)) => {
                assert_ne!(d, image.to_string());
                assert_eq!(claims(rest).map(|c| c.1), Some(d));
            }
            Err(Refusal::Untrusted) => panic!("the trusted key's own signature was refused"),
            // Not a cosign payload (strictly parsed), or too large: refused, and that is all
            // there is to check.
            Err(Refusal::Malformed(_)) => {}
        },
        1 => {
            let payload = format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"edge/app"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"cosign container image signature"}},"optional":null}}"#
            );
            let text = String::from_utf8_lossy(rest);
            assert!(
                cosign::verify(&image, payload.as_bytes(), &text, keys).is_err(),
                "a signature the key never made verified: {text:?}"
            );
        }
        3 => {
            let image = notation::Image {
                digest: &image,
                media_type: "application/vnd.oci.image.manifest.v1+json",
                size: 528,
            };
            let store = notation::TrustStore {
                certificates: &[],
                identities: &[],
            };
            assert!(
                notation::verify(rest, &image, &store, 1_800_000_000).is_err(),
                "an envelope verified with an empty trust store"
            );
        }
        _ => {
            let Ok(m) = Manifest::parse(None, rest) else {
                return;
            };
            let sigs = cosign::signatures_in(&m);
            let expected: Vec<&str> = m
                .layers
                .iter()
                .filter(|l| l.media_type == SIMPLE_SIGNING)
                .filter_map(|l| l.annotations.as_ref()?.get(SIGNATURE_ANNOTATION)?.as_str())
                .collect();
            let got: Vec<&str> = sigs.iter().map(|s| s.signature.as_str()).collect();
            assert_eq!(got, expected);
        }
    }
});
