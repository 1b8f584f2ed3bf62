//! Content-trust rules: the public keys the operator trusts to sign images, and the
//! policies that say which repositories need which signatures. Like the other governance
//! rules, the functions on a bare `Meta` serve the offline commands, and the `Registry`
//! methods serve the admin API and reload what the registry holds (see `trusted`).

use super::Registry;
use crate::error::{Error, ErrorCode, Result};
pub use crate::meta::{IndexTrust, KeyPurpose, Require, TrustMode, TrustPolicyRecord, TrustSource};
use crate::meta::{Meta, TrustKeyRecord};
use crate::oci::glob::check_glob;
use crate::trust::keys::TrustAnchor;
use crate::trust::x509chain;

/// An installed key or certificate as it is shown: never the material alone, always its
/// fingerprint (what an operator compares with the signer's `cosign.pub` or CA).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TrustKeyInfo {
    pub name: String,
    /// `ecdsa-p256`, `ecdsa-p384`, `rsa`, `ed25519`, `x509-certificate`.
    pub kind: String,
    /// `SHA256:<hex>` of the key's DER SubjectPublicKeyInfo, or of the certificate.
    pub fingerprint: String,
    pub added_at: u64,
    pub pem: String,
    #[serde(default)]
    pub purpose: KeyPurpose,
    /// `config`: declared in the configuration file, and changed there only.
    #[serde(default)]
    pub source: TrustSource,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TrustPolicyInfo {
    pub id: u64,
    #[serde(flatten)]
    pub policy: TrustPolicyRecord,
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::api(ErrorCode::Invalid, message.to_string())
}

/// Key names appear in policies, logs and refusals: short, plain, unambiguous.
pub(super) fn check_key_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name:?} is not a key name: use 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
        )))
    }
}

/// Installs a public key (PEM `PUBLIC KEY`, as in `cosign.pub`) under `name`.
pub fn add_key(meta: &Meta, name: &str, pem: &str, purpose: KeyPurpose) -> Result<TrustKeyInfo> {
    check_key_name(name)?;
    let key =
        TrustAnchor::from_pem(pem.as_bytes()).map_err(|e| invalid(format!("key {name:?}: {e}")))?;
    if let Some((other, _)) = key_infos(meta)?
        .into_iter()
        .map(|k| (k.name.clone(), k))
        .find(|(_, k)| k.fingerprint == key.fingerprint())
    {
        return Err(Error::api(
            ErrorCode::Conflict,
            format!("this key is already installed as {other:?}"),
        ));
    }
    let rec = TrustKeyRecord {
        pem: pem.trim().to_string() + "\n",
        added_at: crate::meta::now(),
        purpose,
        source: TrustSource::Manual,
    };
    if !meta.add_trust_key(name, &rec)? {
        return Err(Error::api(
            ErrorCode::Conflict,
            format!("a key named {name:?} is already installed (delete it first to replace it)"),
        ));
    }
    Ok(info(name.to_string(), rec, &key))
}

fn info(name: String, rec: TrustKeyRecord, key: &TrustAnchor) -> TrustKeyInfo {
    TrustKeyInfo {
        name,
        kind: key.kind().to_string(),
        fingerprint: key.fingerprint(),
        added_at: rec.added_at,
        pem: rec.pem,
        purpose: rec.purpose,
        source: rec.source,
    }
}

/// The refusal to change, through the CLI or the admin API, what the configuration file
/// declares: the next start (or reload) would put it back.
fn declared_elsewhere(what: String) -> Error {
    Error::api(
        ErrorCode::Conflict,
        format!("{what} is declared in the configuration file's [trust] section: change it there, then reload the server"),
    )
}

/// A stored key parsed, or `None` with a log line when it no longer parses (it then
/// verifies nothing).
pub(super) fn parse_stored(name: &str, rec: &TrustKeyRecord) -> Option<TrustAnchor> {
    match TrustAnchor::from_pem(rec.pem.as_bytes()) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::error!(key = %name, error = %e, "a stored trusted key does not parse: it verifies nothing");
            None
        }
    }
}

/// The installed keys that parse, with their fingerprints.
fn parsed_keys(meta: &Meta) -> Result<Vec<(String, TrustKeyRecord, TrustAnchor)>> {
    Ok(meta
        .trust_keys()?
        .into_iter()
        .filter_map(|(name, rec)| parse_stored(&name, &rec).map(|k| (name, rec, k)))
        .collect())
}

pub fn key_infos(meta: &Meta) -> Result<Vec<TrustKeyInfo>> {
    Ok(parsed_keys(meta)?
        .into_iter()
        .map(|(name, rec, key)| info(name, rec, &key))
        .collect())
}

/// Removes a key; refused while a policy names it (the policy would silently stop passing
/// anything, or, worse, be edited to pass with fewer signers than the operator meant).
pub fn delete_key(meta: &Meta, name: &str) -> Result<bool> {
    if meta
        .trust_keys()?
        .iter()
        .any(|(n, k)| n == name && k.source == TrustSource::Config)
    {
        return Err(declared_elsewhere(format!("key {name:?}")));
    }
    let users: Vec<String> = meta
        .trust_policies()?
        .into_iter()
        .filter(|(_, p)| p.keys.iter().any(|k| k == name))
        .map(|(id, p)| format!("{id} ({})", p.repos))
        .collect();
    if !users.is_empty() {
        return Err(Error::api(
            ErrorCode::Conflict,
            format!(
                "key {name:?} is named by trust policy {}: delete or change the policy first",
                users.join(", ")
            ),
        ));
    }
    meta.delete_trust_key(name)
}

/// Adds a policy; every key it names must be installed.
pub fn add_policy(meta: &Meta, mut p: TrustPolicyRecord) -> Result<u64> {
    p.source = TrustSource::Manual;
    let installed: Vec<(String, KeyPurpose)> = meta
        .trust_keys()?
        .into_iter()
        .map(|(n, k)| (n, k.purpose))
        .collect();
    check_policy(&p, &installed)?;
    meta.add_trust_policy(&p)
}

/// Removes a policy the CLI or the admin API added.
pub fn delete_policy(meta: &Meta, id: u64) -> Result<bool> {
    if meta
        .trust_policies()?
        .iter()
        .any(|(i, p)| *i == id && p.source == TrustSource::Config)
    {
        return Err(declared_elsewhere(format!("trust policy {id}")));
    }
    meta.delete_trust_policy(id)
}

/// A policy's glob, identities and keys make sense, and each key is one of `installed`
/// and signs images.
pub(super) fn check_policy(
    p: &TrustPolicyRecord,
    installed: &[(String, KeyPurpose)],
) -> Result<()> {
    check_glob(&p.repos).map_err(invalid)?;
    for id in p.identities.iter().filter(|i| i.trim() != "*") {
        x509chain::parse_identity(id).map_err(|e| invalid(e.0))?;
    }
    if p.keys.is_empty() {
        return Err(invalid(
            "a trust policy names at least one key (install one with `edgeyard trust key add`)",
        ));
    }
    if let Some(k) = p.keys.iter().find(|k| {
        installed
            .iter()
            .any(|(n, purpose)| n == *k && *purpose == KeyPurpose::TrustUpdates)
    }) {
        return Err(invalid(format!(
            "key {k:?} signs trust updates, not images: a trust policy cannot name it"
        )));
    }
    let installed: Vec<&str> = installed.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(missing) = p.keys.iter().find(|k| !installed.contains(&k.as_str())) {
        return Err(invalid(format!(
            "no key named {missing:?} is installed (installed: {})",
            if installed.is_empty() {
                "none".to_string()
            } else {
                installed.join(", ")
            }
        )));
    }
    Ok(())
}

pub fn list_policies(meta: &Meta) -> Result<Vec<TrustPolicyInfo>> {
    Ok(meta
        .trust_policies()?
        .into_iter()
        .map(|(id, policy)| TrustPolicyInfo { id, policy })
        .collect())
}

impl Registry {
    pub fn trust_keys(&self) -> Result<Vec<TrustKeyInfo>> {
        key_infos(self.meta())
    }
    pub fn add_trust_key(
        &self,
        name: &str,
        pem: &str,
        purpose: KeyPurpose,
    ) -> Result<TrustKeyInfo> {
        let k = add_key(self.meta(), name, pem, purpose)?;
        self.reload_trust()?;
        Ok(k)
    }
    pub fn delete_trust_key(&self, name: &str) -> Result<bool> {
        let gone = delete_key(self.meta(), name)?;
        self.reload_trust()?;
        Ok(gone)
    }
    pub fn trust_policies(&self) -> Result<Vec<TrustPolicyInfo>> {
        list_policies(self.meta())
    }
    pub fn add_trust_policy(&self, p: TrustPolicyRecord) -> Result<u64> {
        let id = add_policy(self.meta(), p)?;
        self.reload_trust()?;
        Ok(id)
    }
    pub fn delete_trust_policy(&self, id: u64) -> Result<bool> {
        let gone = delete_policy(self.meta(), id)?;
        self.reload_trust()?;
        Ok(gone)
    }
}

/// A policy over `repos` needing one signature by any of `keys`, enforced: for tests.
#[cfg(test)]
pub(super) fn test_policy(repos: &str, keys: &[&str]) -> TrustPolicyRecord {
    TrustPolicyRecord {
        repos: repos.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        require: Require::Any,
        mode: TrustMode::Enforce,
        index: IndexTrust::Whole,
        identities: Vec::new(),
        source: TrustSource::Manual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> (tempfile::TempDir, Meta) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path()).unwrap();
        (dir, meta)
    }

    fn policy(keys: &[&str]) -> TrustPolicyRecord {
        test_policy("prod/**", keys)
    }

    #[test]
    fn keys_are_checked_named_once_and_held_while_a_policy_names_them() {
        let (_d, meta) = meta();
        let signer = crate::trust::testkit::signer();
        let p256 = signer.pem.as_str();
        let k = add_key(&meta, "release", p256, KeyPurpose::Images).unwrap();
        assert_eq!(k.fingerprint, signer.key.fingerprint());
        assert_eq!(k.kind, "ecdsa-p256");
        assert!(k.fingerprint.starts_with("SHA256:"), "{}", k.fingerprint);
        // The same name twice, the same key twice, a bad name, a bad key: all refused.
        for (name, pem) in [
            ("release", p256),
            ("other", p256),
            ("-x", p256),
            ("bad", "not a key"),
        ] {
            let e = add_key(&meta, name, pem, KeyPurpose::Images).unwrap_err();
            assert!(
                matches!(e.error_code(), ErrorCode::Conflict | ErrorCode::Invalid),
                "{name}: {e}"
            );
        }
        assert!(add_policy(&meta, policy(&["nobody"])).is_err());
        assert!(add_policy(&meta, policy(&[])).is_err());
        let id = add_policy(&meta, policy(&["release"])).unwrap();
        let e = delete_key(&meta, "release").unwrap_err();
        assert!(e.to_string().contains(&format!("policy {id}")), "{e}");
        assert!(meta.delete_trust_policy(id).unwrap());
        assert!(delete_key(&meta, "release").unwrap());
        assert!(key_infos(&meta).unwrap().is_empty());
    }

    #[test]
    fn a_policy_record_reads_with_defaults_and_refuses_unknown_fields() {
        let p: TrustPolicyRecord =
            serde_json::from_str(r#"{"repos":"prod/**","keys":["a"]}"#).unwrap();
        assert_eq!(
            (p.require, p.mode, p.index),
            (Require::Any, TrustMode::Enforce, IndexTrust::Whole)
        );
        let p: TrustPolicyRecord = serde_json::from_str(
            r#"{"repos":"a/*","keys":["a","b"],"require":"each","mode":"audit","index":"platforms"}"#,
        )
        .unwrap();
        assert_eq!(
            (p.require, p.mode, p.index),
            (Require::Each, TrustMode::Audit, IndexTrust::Platforms)
        );
        assert!(serde_json::from_str::<TrustPolicyRecord>(
            r#"{"repos":"a/*","keys":["a"],"mode":"enforced"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<TrustPolicyRecord>(
            r#"{"repos":"a/*","keys":["a"],"signed":true}"#
        )
        .is_err());
    }
}
