//! Tests of `notation`: chains made with rcgen, envelopes signed with ring, each check
//! tried on the one thing that breaks it.

use rcgen::KeyUsagePurpose;
use serde_json::json;

use super::*;
use crate::trust::testkit::{b64u, envelope, good_pki, header, pki};

const NOW: i64 = 1_800_000_000;

fn image() -> (Digest, serde_json::Value) {
    let d = Digest::sha256_of(b"the image");
    let t = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.to_string(), "size": 528});
    (d, t)
}

fn check(env: &[u8], d: &Digest, store: &[Vec<u8>], ids: &[&str]) -> Result<Signed, Refusal> {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    verify(
        env,
        &Image {
            digest: d,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            size: 528,
        },
        &TrustStore {
            certificates: store,
            identities: &ids,
        },
        NOW,
    )
}

#[test]
fn a_signature_chaining_to_the_trust_store_verifies_for_its_image_only() {
    let p = good_pki();
    let (d, t) = image();
    let env = envelope(&p, header(), t.clone());
    let store = vec![p.root.clone()];
    let ok = check(&env, &d, &store, &["*"]).unwrap();
    for part in ["C=DE", "ST=Bavaria", "O=Factory", "CN=Release Signer"] {
        assert!(ok.subject.contains(part), "{}", ok.subject);
    }
    // The identity, named as trust policies do (a subset of the leaf's subject).
    assert!(check(
        &env,
        &d,
        &store,
        &["x509.subject: C=DE, ST=Bavaria, O=Factory"]
    )
    .is_ok());
    assert!(matches!(
        check(
            &env,
            &d,
            &store,
            &["x509.subject: C=DE, ST=Bavaria, O=Other"]
        ),
        Err(Refusal::Identity(_))
    ));
    // Another image, another size.
    let other = Digest::sha256_of(b"another image");
    assert!(matches!(
        check(&env, &other, &store, &["*"]),
        Err(Refusal::OtherImage(_))
    ));
    let mut t2 = t.clone();
    t2["size"] = json!(529);
    let env2 = envelope(&p, header(), t2);
    assert!(matches!(
        check(&env2, &d, &store, &["*"]),
        Err(Refusal::OtherImage(_))
    ));
    // Not chained to anything in the store.
    let stranger = good_pki();
    assert!(matches!(
        check(&env, &d, &[stranger.root], &["*"]),
        Err(Refusal::Untrusted(_))
    ));
}

#[test]
fn altered_bytes_and_unknown_critical_headers_are_refused() {
    let p = good_pki();
    let (d, t) = image();
    let store = vec![p.root.clone()];
    let env = envelope(&p, header(), t.clone());
    // The payload swapped after signing.
    let mut v: serde_json::Value = serde_json::from_slice(&env).unwrap();
    let other = json!({"targetArtifact": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.to_string(), "size": 1}});
    v["payload"] = json!(b64u(&serde_json::to_vec(&other).unwrap()));
    let swapped = serde_json::to_vec(&v).unwrap();
    assert_eq!(
        check(&swapped, &d, &store, &["*"]),
        Err(Refusal::BadSignature)
    );

    let mut h = header();
    h["crit"] = json!([
        "io.cncf.notary.signingScheme",
        "io.cncf.notary.verificationPlugin"
    ]);
    h["io.cncf.notary.verificationPlugin"] = json!("com.example.plugin");
    let env = envelope(&p, h, t.clone());
    assert!(matches!(
        check(&env, &d, &store, &["*"]),
        Err(Refusal::Malformed(_))
    ));

    let mut h = header();
    h["alg"] = json!("PS256");
    let env = envelope(&p, h, t.clone());
    assert!(matches!(
        check(&env, &d, &store, &["*"]),
        Err(Refusal::Malformed(_))
    ));

    let mut h = header();
    h["crit"] = json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
    h["io.cncf.notary.expiry"] = json!("2026-12-24T00:00:00Z");
    let env = envelope(&p, h, t.clone());
    assert_eq!(check(&env, &d, &store, &["*"]), Err(Refusal::Expired));

    // A fifth top-level member.
    let mut v: serde_json::Value = serde_json::from_slice(&envelope(&p, header(), t)).unwrap();
    v["signatures"] = json!([]);
    let extra = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        check(&extra, &d, &store, &["*"]),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn certificates_must_be_fit_for_their_place_in_the_chain() {
    let (d, t) = image();
    // A leaf that may also encipher keys.
    let p = pki(
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        true,
    );
    let env = envelope(&p, header(), t.clone());
    let e = check(&env, &d, std::slice::from_ref(&p.root), &["*"]).unwrap_err();
    assert!(e.to_string().contains("allows more than signing"), "{e}");
    // A root that is not a CA.
    let p = pki(vec![KeyUsagePurpose::DigitalSignature], false);
    let env = envelope(&p, header(), t);
    let e = check(&env, &d, std::slice::from_ref(&p.root), &["*"]).unwrap_err();
    assert!(e.to_string().contains("is not a CA certificate"), "{e}");
}

#[test]
fn identities_are_parsed_as_trust_policies_write_them() {
    let id = x509chain::parse_identity(r"x509.subject: C=US, S=WA, O=acme\, inc., CN=x").unwrap();
    assert_eq!(
        id,
        vec![
            ("C".into(), "US".into()),
            ("ST".into(), "WA".into()),
            ("O".into(), "acme, inc.".into()),
            ("CN".into(), "x".into())
        ]
    );
    assert!(x509chain::parse_identity("x509.subject: CN=only").is_err());
    assert!(x509chain::parse_identity("C=US, ST=WA, O=a").is_err());
}
