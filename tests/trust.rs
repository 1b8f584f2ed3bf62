//! Signature verification against signatures made by an independent implementation:
//! OpenSSL makes the keys and signs cosign payloads as cosign does (ECDSA P-256 over
//! SHA-256, DER; RSA PKCS#1 v1.5 over SHA-256; Ed25519), and edgeyard's verifier must
//! accept exactly those, for exactly the image they name.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use edgeyard::oci::Digest;
use edgeyard::trust::cosign::{self, Refusal};
use edgeyard::trust::keys::{KeyKind, PublicKey};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A key pair made by OpenSSL: the private key file and the public key as cosign writes it.
fn key_pair(dir: &Path, name: &str, genpkey: &[&str]) -> PublicKey {
    let key = format!("{name}.key");
    let mut args = vec!["genpkey", "-out", &key];
    args.extend_from_slice(genpkey);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            &key,
            "-pubout",
            "-out",
            &format!("{name}.pub"),
        ],
    );
    PublicKey::from_pem(&std::fs::read(dir.join(format!("{name}.pub"))).unwrap()).unwrap()
}

fn sign(dir: &Path, name: &str, payload: &[u8], ed25519: bool) -> String {
    std::fs::write(dir.join("payload.json"), payload).unwrap();
    let key = format!("{name}.key");
    let sig = if ed25519 {
        openssl(
            dir,
            &[
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                &key,
                "-in",
                "payload.json",
            ],
        )
    } else {
        openssl(dir, &["dgst", "-sha256", "-sign", &key, "payload.json"])
    };
    base64::engine::general_purpose::STANDARD.encode(sig)
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
    let der = openssl(
        dir,
        &["pkey", "-pubin", "-in", "p256.pub", "-outform", "DER"],
    );
    let hex: String = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(keys[0].fingerprint(), format!("SHA256:{hex}"));
}
