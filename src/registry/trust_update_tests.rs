use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::*;
use crate::meta::KeyPurpose;
use crate::trust::testkit::signer;

fn pem_of(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
}

/// A private key that signs trust updates, and its public key's PEM.
fn update_key() -> (SigningKey, String) {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    let key = SigningKey::from_pem(pem_of("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap();
    let public = pem_of("PUBLIC KEY", key.public().spki_der());
    (key, public)
}

fn registry() -> (tempfile::TempDir, Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::open(tmp.path()).unwrap();
    (tmp, reg)
}

fn policy(repos: &str, keys: &[&str]) -> TrustPolicyRecord {
    crate::registry::trust_rules::test_policy(repos, keys)
}

fn sign(key: &SigningKey, doc: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(key.sign(doc).unwrap())
        .into_bytes()
}

/// (name or repos, source) of keys or policies.
type Sourced = Vec<(String, TrustSource)>;

/// The keys and the policies `reg` holds, with where each came from.
fn held(reg: &Registry) -> (Sourced, Sourced) {
    let keys = reg
        .trust_keys()
        .unwrap()
        .into_iter()
        .map(|k| (k.name, k.source))
        .collect();
    let policies = reg
        .trust_policies()
        .unwrap()
        .into_iter()
        .map(|p| (p.policy.repos, p.policy.source))
        .collect();
    (keys, policies)
}

#[test]
fn a_site_applies_trust_signed_by_its_update_key_and_refuses_replays() {
    let (ops, ops_pub) = update_key();
    // The central site: the update key, an image key and a policy naming it.
    let (_c, central) = registry();
    central
        .add_trust_key("ops", &ops_pub, KeyPurpose::TrustUpdates)
        .unwrap();
    central
        .add_trust_key("release", &signer().pem, KeyPurpose::Images)
        .unwrap();
    central
        .add_trust_policy(policy("prod/**", &["release"]))
        .unwrap();
    // A policy cannot name the update key.
    let e = central
        .add_trust_policy(policy("x/**", &["ops"]))
        .unwrap_err();
    assert!(e.to_string().contains("signs trust updates"), "{e}");

    // The edge site trusts only the update key.
    let (_e, edge) = registry();
    edge.add_trust_key("ops", &ops_pub, KeyPurpose::TrustUpdates)
        .unwrap();
    let doc = central.trust_document(1_000).unwrap();
    let update = edge
        .check_trust_update(&doc, Some(&sign(&ops, &doc)))
        .unwrap();
    assert!(update.plan().is_some());
    let (signer_name, applied) = edge.apply_trust_update(update).unwrap();
    assert_eq!(signer_name, "ops");
    assert_eq!(applied.keys_added, vec!["release".to_string()]);
    assert_eq!(applied.policies_added, 1);
    assert_eq!(
        held(&edge),
        (
            vec![
                ("ops".into(), TrustSource::Manual),
                ("release".into(), TrustSource::Bundle)
            ],
            vec![("prod/**".into(), TrustSource::Bundle)]
        )
    );
    // The same material again changes nothing; older material is refused.
    let again = edge
        .check_trust_update(&doc, Some(&sign(&ops, &doc)))
        .unwrap();
    assert!(again.plan().is_none());
    let old = central.trust_document(999).unwrap();
    let e = edge
        .check_trust_update(&old, Some(&sign(&ops, &old)))
        .err()
        .unwrap();
    assert_eq!(e.error_code(), ErrorCode::Denied);
    assert!(e.to_string().contains("cannot roll trust back"), "{e}");

    // A newer one that drops the policy and rotates the image key replaces what the last
    // bundle brought, and nothing else.
    central
        .delete_trust_policy(central.trust_policies().unwrap()[0].id)
        .unwrap();
    central.delete_trust_key("release").unwrap();
    central
        .add_trust_key("release-2", &signer().pem, KeyPurpose::Images)
        .unwrap();
    let newer = central.trust_document(2_000).unwrap();
    let update = edge
        .check_trust_update(&newer, Some(&sign(&ops, &newer)))
        .unwrap();
    let (_, applied) = edge.apply_trust_update(update).unwrap();
    assert_eq!(
        (
            applied.keys_added,
            applied.keys_removed,
            applied.policies_removed
        ),
        (
            vec!["release-2".to_string()],
            vec!["release".to_string()],
            1
        )
    );
    assert_eq!(edge.meta().trust_bundle_issued().unwrap(), 2_000);
}

#[test]
fn trust_material_not_signed_by_an_update_key_is_refused_and_changes_nothing() {
    let (ops, ops_pub) = update_key();
    let (stranger, stranger_pub) = update_key();
    let (_c, central) = registry();
    central
        .add_trust_key("release", &signer().pem, KeyPurpose::Images)
        .unwrap();
    let doc = central.trust_document(1_000).unwrap();
    let (_e, edge) = registry();
    edge.add_trust_key("ops", &ops_pub, KeyPurpose::TrustUpdates)
        .unwrap();
    // The stranger's key is trusted, but to sign images: it cannot sign trust.
    edge.add_trust_key("ci", &stranger_pub, KeyPurpose::Images)
        .unwrap();
    let mut tampered = doc.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    for (doc, sig) in [
        (&doc, Some(sign(&stranger, &doc))),
        (&tampered, Some(sign(&ops, &doc))),
        (&doc, Some(b"not base64!".to_vec())),
        (&doc, None),
    ] {
        let e = edge.check_trust_update(doc, sig.as_deref()).err().unwrap();
        assert_eq!(e.error_code(), ErrorCode::Denied, "{e}");
        assert!(e.to_string().contains("nothing was imported"), "{e}");
    }
    // A signed document that is not one.
    let junk = b"{\"edgeyardTrust\":1}".to_vec();
    let e = edge
        .check_trust_update(&junk, Some(&sign(&ops, &junk)))
        .err()
        .unwrap();
    assert_eq!(e.error_code(), ErrorCode::Invalid, "{e}");
    assert_eq!(edge.trust_keys().unwrap().len(), 2);
    assert_eq!(edge.meta().trust_bundle_issued().unwrap(), 0);
}
