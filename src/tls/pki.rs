//! Certificate issuance with rcgen: the registry's own CA (ECDSA P-256, constrained to sign
//! only end-entity certificates) and the server and client certificates it signs.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

/// How long the CA is valid: clients install it once, so make it outlive the hardware.
pub const CA_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Certificates start being valid a little in the past, for clients with a slow clock.
const BACKDATE: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct PkiError(pub String);

impl std::fmt::Display for PkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiError {}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError(format!("certificate generation: {e}"))
    }
}

/// A certificate and its private key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The registry's certificate authority.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| PkiError(format!("random source: {e}")))?;
    b[0] &= 0x7f; // a positive integer in DER
    Ok(SerialNumber::from_slice(&b))
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

/// Whether `name` is usable as a DNS name in a certificate: dot-separated labels of letters,
/// digits and inner hyphens (a leading `*.` wildcard allowed), as clients will match it.
pub fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn san(name: &str) -> Result<SanType, PkiError> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) if !valid_dns_name(name) => {
            Err(PkiError(format!("{name:?} is not a valid DNS name")))
        }
        Err(_) => Ok(SanType::DnsName(name.try_into().map_err(|_| {
            PkiError(format!("{name:?} is not a valid DNS name"))
        })?)),
    }
}

impl Ca {
    /// A new CA named after the host it serves.
    pub fn generate(host: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("edgeyard CA {host}"));
        dn.push(DnType::OrganizationName, "edgeyard");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(serial()?);
        validity(&mut params, CA_LIFETIME);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA from its PEM certificate and key (as written by [`Ca::key_pem`]).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| PkiError(format!("CA key is unreadable: {e}")))?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| PkiError(format!("CA certificate is unreadable: {e:?}")))?;
        let der: CertificateDer<'static> = der;
        let issuer = Issuer::from_ca_cert_der(&der, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            cert_der: der,
            issuer,
        })
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String], lifetime: Duration) -> Result<Issued, PkiError> {
        let first = names.first().map(String::as_str).unwrap_or("edgeyard");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, first);
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, lifetime)
    }

    /// A client certificate for mutual TLS, named `name`.
    pub fn issue_client(&self, name: &str, lifetime: Duration) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, lifetime)
    }

    fn issue(&self, mut params: CertificateParams, lifetime: Duration) -> Result<Issued, PkiError> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial()?);
        validity(&mut params, lifetime);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::info::CertInfo;

    #[test]
    fn ca_is_constrained_and_server_cert_is_not_a_ca() {
        let ca = Ca::generate("box1").unwrap();
        let info = CertInfo::from_pem(&ca.cert_pem).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.path_len, Some(0));
        assert!(
            info.subject.contains("edgeyard CA box1"),
            "{}",
            info.subject
        );
        assert!(info.not_after > OffsetDateTime::now_utc() + Duration::from_secs(10 * 365 * 86400));

        let names = vec![
            "registry.local".to_string(),
            "localhost".into(),
            "10.1.2.3".into(),
            "::1".into(),
        ];
        let leaf = ca.issue_server(&names, Duration::from_secs(3600)).unwrap();
        let info = CertInfo::from_pem(&leaf.cert_pem).unwrap();
        assert!(!info.is_ca);
        assert_eq!(
            info.sans,
            vec![
                "DNS:registry.local",
                "DNS:localhost",
                "IP:10.1.2.3",
                "IP:::1"
            ]
        );
        assert!(info.issued_by(&CertInfo::from_pem(&ca.cert_pem).unwrap()));
        assert!(
            !info.issued_by(&CertInfo::from_pem(&Ca::generate("box1").unwrap().cert_pem).unwrap())
        );
        assert!(info.server_auth && !info.client_auth);
        let left = info.not_after - OffsetDateTime::now_utc();
        assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3500));
    }

    #[test]
    fn ca_survives_a_pem_round_trip_and_keeps_signing() {
        let ca = Ca::generate("box2").unwrap();
        let again = Ca::load(&ca.cert_pem, &ca.key_pem()).unwrap();
        let leaf = again
            .issue_client("robot", Duration::from_secs(60))
            .unwrap();
        let info = CertInfo::from_pem(&leaf.cert_pem).unwrap();
        assert!(info.client_auth && !info.server_auth);
        assert_eq!(
            info.issuer,
            CertInfo::from_pem(&ca.cert_pem).unwrap().subject
        );
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn rejects_bad_names() {
        let ca = Ca::generate("box3").unwrap();
        assert!(ca
            .issue_server(&["bad name!".into()], Duration::from_secs(60))
            .is_err());
    }
}
