//! The one thing edgeyard itself signs: the trust material a bundle carries (see
//! `registry::trust_update`), with an ECDSA P-256 private key the operator holds, as
//! OpenSSL writes it (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`: a
//! PEM `PRIVATE KEY`, PKCS#8). The signature is DER ECDSA with SHA-256, as cosign's are, so
//! the same verification reads both.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::keys::{KeyError, PublicKey};

/// A private key that signs trust material.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    /// The public half only: a private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public.fingerprint())
    }
}

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8) holding an ECDSA P-256 key.
    pub fn from_pem(text: &[u8]) -> Result<SigningKey, KeyError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(text).map_err(|_| KeyError::NotPem)?;
        if pem.label != "PRIVATE KEY" {
            return Err(KeyError::NotPrivateKey);
        }
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &pem.contents,
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError::NotPrivateKey)?;
        let public = PublicKey::from_spki_der(&p256_spki_der(pair.public_key().as_ref()))?;
        Ok(SigningKey { pair, public })
    }

    /// The public key that verifies what this key signs (installed at the sites that are
    /// to accept it).
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// DER ECDSA P-256 SHA-256 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError::Unsupported("signing with this key"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openssl_style_pkcs8_key_signs_what_its_public_key_verifies() {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pem = pem_of("PRIVATE KEY", pkcs8.as_ref());
        let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let sig = key.sign(b"trust").unwrap();
        assert!(key.public().verifies_cosign(b"trust", &sig));
        assert!(!key.public().verifies_cosign(b"trusT", &sig));
        assert!(!format!("{key:?}").contains(&pem[40..80]));
        // A public key, or garbage, is not a signing key.
        let public = pem_of("PUBLIC KEY", &p256_spki_der(key.pair.public_key().as_ref()));
        for text in [
            public.as_str(),
            "junk",
            &pem_of("PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
        ] {
            assert!(SigningKey::from_pem(text.as_bytes()).is_err(), "{text}");
        }
    }

    fn pem_of(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
    }
}
