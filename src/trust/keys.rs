//! Public keys the operator trusts, installed as PEM `PUBLIC KEY` blocks (DER
//! SubjectPublicKeyInfo: what `cosign generate-key-pair` writes to `cosign.pub`), and the
//! signature checks each supports. `ring` verifies; it wants the key bytes from inside the
//! SubjectPublicKeyInfo, and the algorithm chosen from its object identifiers.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a key was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PEM `PUBLIC KEY` block.
    NotPem,
    /// The block does not hold a SubjectPublicKeyInfo.
    NotSpki,
    /// A key type or curve signatures cannot be verified with (named).
    Unsupported(&'static str),
    /// A `CERTIFICATE` block that does not hold one X.509 certificate.
    NotCertificate,
    /// Not an ECDSA P-256 private key in a PEM `PRIVATE KEY` (PKCS#8) block.
    NotPrivateKey,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::NotPem => write!(
                f,
                "not a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate (-----BEGIN CERTIFICATE-----)"
            ),
            KeyError::NotSpki => write!(f, "the PEM block does not hold a public key"),
            KeyError::Unsupported(what) => write!(f, "{what} keys are not supported"),
            KeyError::NotCertificate => write!(f, "the CERTIFICATE block does not hold a certificate"),
            KeyError::NotPrivateKey => write!(
                f,
                "not an ECDSA P-256 private key in a PEM PRIVATE KEY block (make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`; convert an EC PRIVATE KEY with `openssl pkcs8 -topk8 -nocrypt`)"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// The kinds of key a signature can be verified with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ecdsa-p256",
            KeyKind::EcdsaP384 => "ecdsa-p384",
            KeyKind::Rsa => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }
}

/// A trusted public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    /// What `ring` verifies with: the SubjectPublicKeyInfo's bit string.
    raw: Vec<u8>,
    /// The whole SubjectPublicKeyInfo, which the fingerprint is taken over.
    spki: Vec<u8>,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` block.
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(text).map_err(|_| KeyError::NotPem)?;
        if pem.label != "PUBLIC KEY" {
            return Err(KeyError::NotPem);
        }
        PublicKey::from_spki_der(&pem.contents)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::NotSpki)?;
        if !rest.is_empty() {
            return Err(KeyError::NotSpki);
        }
        let alg = &spki.algorithm.algorithm;
        let kind = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or(KeyError::NotSpki)?;
            if curve == OID_EC_P256 {
                KeyKind::EcdsaP256
            } else if curve == OID_NIST_EC_P384 {
                KeyKind::EcdsaP384
            } else if curve == OID_NIST_EC_P521 {
                return Err(KeyError::Unsupported("ECDSA P-521"));
            } else {
                return Err(KeyError::Unsupported("this elliptic curve's"));
            }
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            KeyKind::Rsa
        } else if *alg == OID_SIG_ED25519 {
            KeyKind::Ed25519
        } else {
            return Err(KeyError::Unsupported("this algorithm's"));
        };
        Ok(PublicKey {
            kind,
            raw: spki.subject_public_key.data.to_vec(),
            spki: spki.raw.to_vec(),
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo (what a PEM `PUBLIC KEY` block holds).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// `SHA256:<hex>` over the DER SubjectPublicKeyInfo: how keys are shown and named.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.spki)
    }

    /// Whether `sig` is this key's signature over `msg` as cosign makes them: ECDSA with
    /// SHA-256 (P-256) or SHA-384 or SHA-256 (P-384: cosign's verifier defaults to SHA-256
    /// whatever the curve), DER-encoded or fixed-width; RSA PKCS#1 v1.5 with SHA-256; pure
    /// Ed25519.
    pub fn verifies_cosign(&self, msg: &[u8], sig: &[u8]) -> bool {
        let algs: &[&'static dyn VerificationAlgorithm] = match self.kind {
            KeyKind::EcdsaP256 => &[
                &signature::ECDSA_P256_SHA256_ASN1,
                &signature::ECDSA_P256_SHA256_FIXED,
            ],
            KeyKind::EcdsaP384 => &[
                &signature::ECDSA_P384_SHA384_ASN1,
                &signature::ECDSA_P384_SHA256_ASN1,
                &signature::ECDSA_P384_SHA384_FIXED,
            ],
            KeyKind::Rsa => &[&signature::RSA_PKCS1_2048_8192_SHA256],
            KeyKind::Ed25519 => &[&signature::ED25519],
        };
        algs.iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.raw)
                .verify(msg, sig)
                .is_ok()
        })
    }
}

/// `SHA256:<hex>` of DER bytes: how keys and certificates are shown.
fn fingerprint_of(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    format!("SHA256:{}", hex::encode(d.as_ref()))
}

/// What an operator installs to trust signers: a public key (for cosign signatures) or a
/// CA certificate (a trust store entry for Notary Project signatures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustAnchor {
    Key(PublicKey),
    /// A DER X.509 certificate.
    Certificate(Vec<u8>),
}

impl TrustAnchor {
    /// Reads a PEM `PUBLIC KEY` or `CERTIFICATE` block.
    pub fn from_pem(text: &[u8]) -> Result<TrustAnchor, KeyError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(text).map_err(|_| KeyError::NotPem)?;
        match pem.label.as_str() {
            "PUBLIC KEY" => PublicKey::from_spki_der(&pem.contents).map(TrustAnchor::Key),
            "CERTIFICATE" => match x509_parser::parse_x509_certificate(&pem.contents) {
                Ok((&[], _)) => Ok(TrustAnchor::Certificate(pem.contents.clone())),
                _ => Err(KeyError::NotCertificate),
            },
            _ => Err(KeyError::NotPem),
        }
    }

    /// `public-key kinds` or `x509-certificate`.
    pub fn kind(&self) -> &'static str {
        match self {
            TrustAnchor::Key(k) => k.kind().as_str(),
            TrustAnchor::Certificate(_) => "x509-certificate",
        }
    }

    /// `SHA256:<hex>` of the key's SubjectPublicKeyInfo, or of the whole certificate (what
    /// `openssl x509 -fingerprint -sha256` shows, in lower case without colons).
    pub fn fingerprint(&self) -> String {
        match self {
            TrustAnchor::Key(k) => k.fingerprint(),
            TrustAnchor::Certificate(der) => fingerprint_of(der),
        }
    }
}

impl PublicKey {
    /// Checks a JWS signature (RFC 7518: ES256/ES384 as fixed-length `r‖s`, PS256/384/512
    /// as RSASSA-PSS with the salt as long as the hash) over `msg`.
    pub fn verifies_jws(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        super::notation::jws_algorithm(self.kind, alg).is_some_and(|a| {
            UnparsedPublicKey::new(a, &self.raw)
                .verify(msg, sig)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    #[test]
    fn a_p256_key_verifies_its_signatures_and_nothing_else() {
        let s = crate::trust::testkit::signer();
        let key = &s.key;
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        assert!(key.fingerprint().starts_with("SHA256:") && key.fingerprint().len() == 71);
        let sig = s.sign_raw(b"payload");
        assert!(key.verifies_cosign(b"payload", &sig));
        assert!(!key.verifies_cosign(b"payload!", &sig));
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!key.verifies_cosign(b"payload", &bad));
        // Another key does not verify it.
        let other = crate::trust::testkit::signer().key;
        assert_ne!(other.fingerprint(), key.fingerprint());
        assert!(!other.verifies_cosign(b"payload", &sig));
    }

    #[test]
    fn an_ed25519_key_from_its_spki() {
        let rng = SystemRandom::new();
        let pair =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(pair.public_key().as_ref());
        let key = PublicKey::from_spki_der(&der).unwrap();
        assert_eq!(key.kind(), KeyKind::Ed25519);
        assert!(key.verifies_cosign(b"m", pair.sign(b"m").as_ref()));
        assert!(!key.verifies_cosign(b"n", pair.sign(b"m").as_ref()));
    }

    #[test]
    fn what_is_not_a_usable_key_says_why() {
        assert_eq!(PublicKey::from_pem(b"hello"), Err(KeyError::NotPem));
        let cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(PublicKey::from_pem(cert.as_bytes()), Err(KeyError::NotPem));
        let junk = "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n";
        assert_eq!(PublicKey::from_pem(junk.as_bytes()), Err(KeyError::NotSpki));
        // A P-521 key (id-ecPublicKey with secp521r1) is named, not mistaken for another.
        let mut der = vec![
            0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
            0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
        ];
        der.extend(std::iter::repeat_n(4u8, 133));
        assert_eq!(
            PublicKey::from_spki_der(&der),
            Err(KeyError::Unsupported("ECDSA P-521"))
        );
    }
}
