//! Reading certificates back (x509-parser): what `cert show` prints and what the tests check.

use std::fmt::Write as _;

use sha2::Digest as _;
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pki::PkiError;

/// The facts about a certificate an operator needs.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub server_auth: bool,
    pub client_auth: bool,
    /// SHA-256 of the DER encoding, as `AB:CD:…`.
    pub fingerprint: String,
    pub serial: String,
    /// Subject and authority key identifiers: which key a certificate has, and which key
    /// signed it. CAs of the same host share a name, so this is how a leaf is matched to
    /// the CA that issued it.
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
}

/// `AB:CD:…` form of a SHA-256 fingerprint of DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    let h = sha2::Sha256::digest(der);
    let mut s = String::new();
    for (i, b) in h.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// Normalises a fingerprint as users paste it (`sha256:`, colons, case) to bare lowercase hex.
pub fn normalize_fingerprint(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .or_else(|| s.strip_prefix("sha256 Fingerprint="))
        .unwrap_or(s);
    s.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Where Debian keeps the system's trusted CA certificates.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The CA certificates (DER) in `pem`, or else the system's (none when it has no bundle):
/// what verifies another registry when its CA is not given.
pub fn roots_or_system(pem: Option<&[u8]>) -> Vec<Vec<u8>> {
    match pem {
        Some(p) => pem_certs(p),
        None => pem_certs(&std::fs::read(SYSTEM_CA_BUNDLE).unwrap_or_default()),
    }
}

/// Every certificate (DER) in a PEM text.
pub fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| c.ok())
        .map(|c| c.to_vec())
        .collect()
}

impl CertInfo {
    pub fn from_pem(pem: &str) -> Result<CertInfo, PkiError> {
        let der = pem_certs(pem.as_bytes())
            .into_iter()
            .next()
            .ok_or_else(|| PkiError("no certificate in PEM".into()))?;
        CertInfo::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<CertInfo, PkiError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| PkiError(format!("unreadable certificate: {e}")))?;
        let mut info = CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans: Vec::new(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            is_ca: false,
            path_len: None,
            server_auth: false,
            client_auth: false,
            fingerprint: fingerprint(der),
            serial: cert.raw_serial_as_string(),
            subject_key_id: None,
            authority_key_id: None,
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for n in &san.general_names {
                        match n {
                            GeneralName::DNSName(d) => info.sans.push(format!("DNS:{d}")),
                            GeneralName::IPAddress(b) => {
                                let ip = match b.len() {
                                    4 => <[u8; 4]>::try_from(*b)
                                        .map(|a| std::net::IpAddr::from(a).to_string())
                                        .ok(),
                                    16 => <[u8; 16]>::try_from(*b)
                                        .map(|a| std::net::IpAddr::from(a).to_string())
                                        .ok(),
                                    _ => None,
                                };
                                info.sans
                                    .push(format!("IP:{}", ip.unwrap_or_else(|| "?".into())));
                            }
                            other => info.sans.push(format!("{other}")),
                        }
                    }
                }
                ParsedExtension::SubjectKeyIdentifier(k) => {
                    info.subject_key_id = Some(k.0.to_vec())
                }
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    info.authority_key_id = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                ParsedExtension::BasicConstraints(bc) => {
                    info.is_ca = bc.ca;
                    info.path_len = bc.path_len_constraint;
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    info.server_auth = eku.server_auth;
                    info.client_auth = eku.client_auth;
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// Whether `ca` issued this certificate (by name and key identifier).
    pub fn issued_by(&self, ca: &CertInfo) -> bool {
        self.issuer == ca.subject
            && self.authority_key_id.is_some()
            && self.authority_key_id == ca.subject_key_id
    }

    /// A few lines for `cert show`.
    pub fn describe(&self, title: &str) -> String {
        let fmt = |t: OffsetDateTime| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        };
        let mut s = format!(
            "{title}\n  subject:     {}\n  issuer:      {}\n",
            self.subject, self.issuer
        );
        if !self.sans.is_empty() {
            let _ = writeln!(s, "  names:       {}", self.sans.join(", "));
        }
        let _ = writeln!(s, "  valid from:  {}", fmt(self.not_before));
        let _ = writeln!(s, "  expires:     {}", fmt(self.not_after));
        let _ = writeln!(
            s,
            "  is a CA:     {}",
            if self.is_ca { "yes" } else { "no" }
        );
        let _ = writeln!(s, "  SHA-256:     {}", self.fingerprint);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalise() {
        let f = fingerprint(b"x");
        assert_eq!(f.len(), 64 + 31);
        let bare = normalize_fingerprint(&f);
        assert_eq!(bare.len(), 64);
        assert_eq!(
            normalize_fingerprint(&format!("sha256:{}", bare.to_uppercase())),
            bare
        );
        assert_eq!(
            normalize_fingerprint(&format!("sha256 Fingerprint={f}")),
            bare
        );
    }
}
