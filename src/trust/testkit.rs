//! For tests: a P-256 signer that makes cosign signatures and gives its public key as the
//! PEM an operator installs (what `cosign.pub` holds); and a CA with a signing certificate
//! (rcgen) that makes Notary Project JWS envelopes.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair as CertKey, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
use serde_json::json;

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

pub(crate) use super::signing::p256_spki_der;

pub(crate) struct Pki {
    pub root: Vec<u8>,
    pub leaf: Vec<u8>,
    pub leaf_key: CertKey,
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
pub(crate) fn pki(leaf_usages: Vec<KeyUsagePurpose>, root_is_ca: bool) -> Pki {
    let root_key = CertKey::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut rp, "Factory Root");
    if root_is_ca {
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    let root = rp.self_signed(&root_key).unwrap();
    let leaf_key = CertKey::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
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

pub(crate) fn good_pki() -> Pki {
    pki(vec![KeyUsagePurpose::DigitalSignature], true)
}

pub(crate) fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An envelope over `target` with the protected header `protected`, signed by the leaf.
pub(crate) fn envelope(
    p: &Pki,
    protected: serde_json::Value,
    target: serde_json::Value,
) -> Vec<u8> {
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

pub(crate) fn header() -> serde_json::Value {
    json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2026-12-01T10:00:00Z",
    })
}

/// The root certificate as the PEM an operator installs.
pub(crate) fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
}
