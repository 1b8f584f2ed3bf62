//! The certificate chain of a Notary Project signature, checked as its specification asks
//! (signature-specification.md "Certificate Requirements", trust-store-trust-policy.md):
//! an ordered chain, leaf first, each certificate signed by the next and the last by itself;
//! every certificate valid now; CA certificates marked as such and allowed to sign
//! certificates; the leaf allowed to make digital signatures and nothing a code-signing key
//! must not do; no SHA-1 anywhere. The chain is trusted when one of its certificates is,
//! byte for byte, in the trust store, and its leaf's subject is one the policy names.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    Oid, OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME,
    OID_X509_LOCALITY_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME,
    OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

/// Why a chain is not trusted; the text says which certificate and what.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainError(pub String);

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, ChainError> {
    Err(ChainError(msg.into()))
}

/// Parses DER certificates, leaf first.
pub fn parse(ders: &[Vec<u8>]) -> Result<Vec<X509Certificate<'_>>, ChainError> {
    if ders.is_empty() {
        return fail("the signature carries no certificate");
    }
    ders.iter()
        .enumerate()
        .map(|(i, der)| match X509Certificate::from_der(der) {
            Ok((&[], c)) => Ok(c),
            _ => fail(format!("certificate {i} of the chain does not parse")),
        })
        .collect()
}

/// The subject as `C=…, ST=…, O=…` (the attributes the trust policy's identities use).
pub fn subject_text(cert: &X509Certificate<'_>) -> String {
    subject_pairs(cert)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short_name(oid: &Oid<'_>) -> Option<&'static str> {
    [
        (&OID_X509_COUNTRY_NAME, "C"),
        (&OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
        (&OID_X509_LOCALITY_NAME, "L"),
        (&OID_X509_ORGANIZATION_NAME, "O"),
        (&OID_X509_ORGANIZATIONAL_UNIT, "OU"),
        (&OID_X509_COMMON_NAME, "CN"),
    ]
    .iter()
    .find(|(o, _)| *o == oid)
    .map(|(_, n)| *n)
}

/// The subject's attributes the trust policy's identities use, as (short name, value).
pub fn subject_pairs(cert: &X509Certificate<'_>) -> Vec<(String, String)> {
    cert.subject()
        .iter_attributes()
        .filter_map(|a| {
            let k = short_name(a.attr_type())?;
            Some((k.to_string(), a.as_str().ok()?.to_string()))
        })
        .collect()
}

/// A trusted identity as trust policies write it: `x509.subject: C=US, ST=WA, O=acme`
/// (`\,` escapes a comma in a value); `S` is accepted for `ST`.
pub fn parse_identity(text: &str) -> Result<Vec<(String, String)>, ChainError> {
    let Some(dn) = text.trim().strip_prefix("x509.subject:") else {
        return fail(format!(
            "{text:?} is not an identity: write x509.subject: C=…, ST=…, O=…"
        ));
    };
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ',' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut pairs = Vec::new();
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            return fail(format!("{text:?}: {p:?} is not ATTRIBUTE=value"));
        };
        let k = match k.trim() {
            "S" => "ST",
            k => k,
        };
        if !["C", "ST", "L", "O", "OU", "CN"].contains(&k) {
            return fail(format!("{text:?}: unknown attribute {k:?}"));
        }
        pairs.push((k.to_string(), v.trim().to_string()));
    }
    for need in ["C", "ST", "O"] {
        if !pairs.iter().any(|(k, _)| k == need) {
            return fail(format!("{text:?}: an identity names at least C, ST and O"));
        }
    }
    Ok(pairs)
}

/// Whether a subject (its attributes) holds every attribute of `identity` (parsed).
pub fn identity_matches(subject: &[(String, String)], identity: &[(String, String)]) -> bool {
    identity.iter().all(|p| subject.contains(p))
}

/// Checks the chain at `now` (Unix seconds) and that one of its certificates is in `store`
/// (DER). Returns the index of the first trusted certificate.
pub fn verify(
    chain: &[X509Certificate<'_>],
    ders: &[Vec<u8>],
    store: &[Vec<u8>],
    now: i64,
) -> Result<usize, ChainError> {
    let at = ASN1Time::from_timestamp(now).map_err(|_| ChainError("bad time".into()))?;
    let last = chain.len() - 1;
    for (i, cert) in chain.iter().enumerate() {
        let what = if i == 0 {
            "the signing certificate".to_string()
        } else {
            format!("certificate {i} of the chain")
        };
        if !cert.validity().is_valid_at(at) {
            return fail(format!(
                "{what} ({}) is not valid now (valid {} to {})",
                subject_text(cert),
                cert.validity().not_before,
                cert.validity().not_after
            ));
        }
        let alg = &cert.signature_algorithm.algorithm;
        if *alg == OID_PKCS1_SHA1WITHRSA || *alg == OID_SHA1_WITH_RSA {
            return fail(format!("{what} is signed with SHA-1"));
        }
        let issuer_key = if i == last {
            None
        } else {
            Some(chain[i + 1].public_key())
        };
        if i == last && cert.subject().as_raw() != cert.issuer().as_raw() {
            return fail(format!(
                "the chain ends at {what}, which is not self-signed (its issuer is not in the signature)"
            ));
        }
        if i < last && cert.issuer().as_raw() != chain[i + 1].subject().as_raw() {
            return fail(format!(
                "{what} was not issued by the next certificate of the chain"
            ));
        }
        if cert.verify_signature(issuer_key).is_err() {
            return fail(format!("{what}'s own signature does not verify"));
        }
        let ku = cert
            .key_usage()
            .map_err(|_| ChainError(format!("{what}: its key usage does not parse")))?;
        let bc = cert
            .basic_constraints()
            .map_err(|_| ChainError(format!("{what}: its basic constraints do not parse")))?;
        if i == 0 {
            let Some(ku) = ku else {
                return fail("the signing certificate has no key usage");
            };
            let k = ku.value;
            if !ku.critical || !k.digital_signature() {
                return fail(
                    "the signing certificate is not marked (critical) for digital signatures",
                );
            }
            if k.key_encipherment()
                || k.data_encipherment()
                || k.key_agreement()
                || k.key_cert_sign()
                || k.crl_sign()
                || k.encipher_only()
                || k.decipher_only()
            {
                return fail("the signing certificate's key usage allows more than signing");
            }
            if bc.is_some_and(|b| b.value.ca) && last > 0 {
                return fail("the signing certificate is a CA certificate");
            }
            let eku = cert
                .extended_key_usage()
                .map_err(|_| ChainError("the signing certificate's EKU does not parse".into()))?;
            if let Some(e) = eku {
                let e = e.value;
                if e.any
                    || e.server_auth
                    || e.client_auth
                    || e.email_protection
                    || e.time_stamping
                    || e.ocsp_signing
                {
                    return fail(
                        "the signing certificate's extended key usage is not for code signing",
                    );
                }
            }
        } else {
            match bc {
                Some(b) if b.critical && b.value.ca => {
                    // pathLen counts the CA certificates below this one.
                    if let Some(n) = b.value.path_len_constraint {
                        if (i - 1) as u32 > n {
                            return fail(format!("{what}: its path length limit is exceeded"));
                        }
                    }
                }
                _ => {
                    return fail(format!(
                        "{what} is not a CA certificate (critical basicConstraints cA)"
                    ))
                }
            }
            if !ku.is_some_and(|k| k.critical && k.value.key_cert_sign()) {
                return fail(format!(
                    "{what} may not sign certificates (keyUsage keyCertSign)"
                ));
            }
        }
    }
    ders.iter()
        .position(|d| store.iter().any(|s| s == d))
        .ok_or_else(|| {
            ChainError(format!(
                "no certificate of the chain ({}) is in the trust store",
                subject_text(&chain[0])
            ))
        })
}
