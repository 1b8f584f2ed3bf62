//! Tests of `notation`: chains made with rcgen, envelopes signed with ring, each check
//! tried on the one thing that breaks it.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use super::*;

const NOW: i64 = 1_800_000_000;

struct Pki {
    root: Vec<u8>,
    leaf: Vec<u8>,
    leaf_key: KeyPair,
}

fn dn(params: &mut CertificateParams, cn: &str) {
    params.distinguished_name.push(DnType::CountryName, "DE");
    params
        .distinguished_name
        .push(DnType::StateOrProvinceName, "Bavaria");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Factory");
    params.distinguished_name.push(DnType::CommonName, cn);
}

/// A root CA and a leaf it issued; `leaf_usages` and `root_is_ca` let a test break one.
fn pki(leaf_usages: Vec<KeyUsagePurpose>, root_is_ca: bool) -> Pki {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut rp, "Factory Root");
    if root_is_ca {
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    let root = rp.self_signed(&root_key).unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut lp, "Release Signer");
    lp.key_usages = leaf_usages;
    let issuer = Issuer::new(rp, root_key);
    let leaf = lp.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        root: root.der().to_vec(),
        leaf: leaf.der().to_vec(),
        leaf_key,
    }
}

fn good_pki() -> Pki {
    pki(vec![KeyUsagePurpose::DigitalSignature], true)
}

fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An envelope over `target` with the protected header `protected`, signed by the leaf.
fn envelope(p: &Pki, protected: serde_json::Value, target: serde_json::Value) -> Vec<u8> {
    let protected = b64u(&serde_json::to_vec(&protected).unwrap());
    let payload = b64u(&serde_json::to_vec(&json!({ "targetArtifact": target })).unwrap());
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &p.leaf_key.serialize_der(),
        &rng,
    )
    .unwrap();
    let sig = pair
        .sign(&rng, format!("{protected}.{payload}").as_bytes())
        .unwrap();
    let std = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": [std.encode(&p.leaf), std.encode(&p.root)], "io.cncf.notary.signingAgent": "test"},
        "signature": b64u(sig.as_ref()),
    }))
    .unwrap()
}

fn header() -> serde_json::Value {
    json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2026-12-01T10:00:00Z",
    })
}

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
