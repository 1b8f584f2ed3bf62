//! `edgeyard cert trust`: install the registry's CA where every container runtime on a client
//! looks for it, optionally downloading it from a running edgeyard first. The download itself
//! cannot be verified (the client does not trust the CA yet); trust comes from the SHA-256
//! fingerprint the operator confirms or pins, checked on every certificate in the download.

use std::path::{Path, PathBuf};

use crate::storage::files;
use crate::tls::info::{fingerprint, normalize_fingerprint, pem_certs};

/// A `HOST[:PORT]` as clients name the registry; checked because it becomes a directory name.
pub fn validate_registry(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a registry address of the form HOST:PORT"
        ))
    }
}

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

fn put(path: &Path, bytes: &[u8]) -> std::io::Result<Written> {
    let old = files::read_opt(path)?;
    if old.as_deref() == Some(bytes) {
        return Ok(Written::Unchanged);
    }
    files::write_atomic(path, bytes, files::PUBLIC)?;
    Ok(if old.is_some() {
        Written::Updated
    } else {
        Written::Created
    })
}

/// Writes the CA for docker, containerd (and k3s) and podman/skopeo/cri-o under `root`.
/// Idempotent: files that already hold the same bytes are left alone.
pub fn install(
    root: &Path,
    registry: &str,
    ca_pem: &[u8],
) -> Result<Vec<(PathBuf, Written)>, String> {
    validate_registry(registry)?;
    if pem_certs(ca_pem).is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    let rel = |p: &str| PathBuf::from(p).join(registry);
    let containerd_dir = rel("etc/containerd/certs.d");
    // hosts.toml names the CA by its path on the client itself (without --root).
    let hosts_toml = format!(
        "# Written by `edgeyard cert trust`.\nserver = \"https://{registry}\"\n\n[host.\"https://{registry}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = \"/{}\"\n",
        containerd_dir.join("ca.crt").display()
    );
    let targets: Vec<(PathBuf, Vec<u8>)> = vec![
        (rel("etc/docker/certs.d").join("ca.crt"), ca_pem.to_vec()),
        (containerd_dir.join("ca.crt"), ca_pem.to_vec()),
        (containerd_dir.join("hosts.toml"), hosts_toml.into_bytes()),
        (
            rel("etc/containers/certs.d").join("ca.crt"),
            ca_pem.to_vec(),
        ),
    ];
    let mut out = Vec::new();
    for (p, bytes) in targets {
        let full = root.join(&p);
        let w = put(&full, &bytes).map_err(|e| format!("cannot write {}: {e}", full.display()))?;
        out.push((full, w));
    }
    Ok(out)
}

/// Fingerprints of every certificate in a PEM bundle.
pub fn bundle_fingerprints(pem: &[u8]) -> Vec<String> {
    pem_certs(pem).iter().map(|d| fingerprint(d)).collect()
}

/// Whether every certificate in the bundle is one of the pinned fingerprints: a bundle with
/// one pinned certificate and one unknown one must not slip the unknown one in.
pub fn all_pinned(pem: &[u8], pins: &[String]) -> bool {
    let pins: Vec<String> = pins.iter().map(|p| normalize_fingerprint(p)).collect();
    let fps = bundle_fingerprints(pem);
    !fps.is_empty() && fps.iter().all(|f| pins.contains(&normalize_fingerprint(f)))
}

/// Downloads `<base>/ca.crt` from a running edgeyard (`https://HOST:PORT`). The connection
/// is not verified (the CA is what we are fetching); the caller checks the fingerprint.
pub async fn fetch_ca(base: &str) -> Result<Vec<u8>, String> {
    let base = base.trim_end_matches('/');
    if !base.starts_with("https://") {
        return Err(format!("{base:?}: --from takes an https:// address"));
    }
    let (status, body) = crate::edge::client::request(
        "GET",
        &format!("{base}/ca.crt"),
        &[],
        Vec::new(),
        crate::edge::client::Verify::Unverified,
    )
    .await
    .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{base}/ca.crt answered {status}"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki::Ca;

    #[test]
    fn installs_for_every_runtime_idempotently() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::generate("t").unwrap();
        let out = install(tmp.path(), "registry.local:5000", ca.cert_pem.as_bytes()).unwrap();
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|(_, w)| *w == Written::Created));
        let docker = tmp
            .path()
            .join("etc/docker/certs.d/registry.local:5000/ca.crt");
        assert_eq!(std::fs::read(docker).unwrap(), ca.cert_pem.as_bytes());
        let hosts = std::fs::read_to_string(
            tmp.path()
                .join("etc/containerd/certs.d/registry.local:5000/hosts.toml"),
        )
        .unwrap();
        assert!(
            hosts.contains("ca = \"/etc/containerd/certs.d/registry.local:5000/ca.crt\""),
            "{hosts}"
        );
        assert!(tmp
            .path()
            .join("etc/containers/certs.d/registry.local:5000/ca.crt")
            .exists());
        let again = install(tmp.path(), "registry.local:5000", ca.cert_pem.as_bytes()).unwrap();
        assert!(again.iter().all(|(_, w)| *w == Written::Unchanged));
    }

    #[test]
    fn refuses_paths_and_empty_cas() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::generate("t").unwrap();
        for bad in ["../../etc", "a/b:1", "", "x y:1"] {
            assert!(
                install(tmp.path(), bad, ca.cert_pem.as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert!(install(tmp.path(), "ok:1", b"not a cert").is_err());
    }

    #[test]
    fn every_certificate_must_be_pinned() {
        let a = Ca::generate("a").unwrap();
        let b = Ca::generate("b").unwrap();
        let fa = fingerprint(&a.cert_der);
        let fb = fingerprint(&b.cert_der);
        let bundle = format!("{}{}", a.cert_pem, b.cert_pem);
        assert!(all_pinned(a.cert_pem.as_bytes(), std::slice::from_ref(&fa)));
        assert!(all_pinned(
            a.cert_pem.as_bytes(),
            &[normalize_fingerprint(&fa)]
        ));
        assert!(!all_pinned(bundle.as_bytes(), std::slice::from_ref(&fa)));
        assert!(all_pinned(bundle.as_bytes(), &[fa, fb.clone()]));
        assert!(!all_pinned(a.cert_pem.as_bytes(), &[fb]));
        assert!(!all_pinned(b"", &[]));
    }
}
