//! TLS: the registry's own CA, the server certificate it signs, automatic renewal and
//! re-issue without restart, user-supplied certificates with reload, optional client
//! certificates (mutual TLS), and the CA rotation scheme.
//!
//! ```text
//! <data-dir>/tls/
//! ├── ca.crt  ca.key            the CA clients trust (ECDSA P-256, 20 years); key 0600
//! ├── server.crt  server.key    signed by the CA; re-issued when names change or a third
//! │                             of its lifetime is left; key 0600
//! ├── ca-next.crt  ca-next.key  during a rotation: the CA that takes over at activation
//! ├── rotation.json             during a rotation: {"activate_at": unix seconds}
//! └── ca-retired.crt            after a rotation: the previous CA, kept for reference
//! ```
//!
//! `GET /ca.crt` serves `ca.crt` followed by `ca-next.crt` while a rotation is pending, so
//! clients that fetch it during the overlap trust both and never see a break.

mod ca_files;
pub mod info;
pub mod names;
pub mod pki;

use crate::storage::files;
use ca_files::{io_err, promote_if_due, read_string};
pub use ca_files::{load_or_create_ca, rotation_due, start_rotation, TlsPaths};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use info::CertInfo;
use pki::{Ca, PkiError};

/// Whether clients must present a certificate signed by the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Required,
}

/// A certificate and key supplied by the operator instead of the built-in CA.
#[derive(Clone, Debug)]
pub struct UserCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs client certificates when client auth is on (optional).
    pub client_ca: Option<PathBuf>,
}

/// Validated TLS settings.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub names: Vec<String>,
    pub interface_addresses: bool,
    pub user_cert: Option<UserCert>,
    pub client_auth: ClientAuth,
    pub server_cert_lifetime: Duration,
    pub check_every: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            names: Vec::new(),
            interface_addresses: true,
            user_cert: None,
            client_auth: ClientAuth::None,
            server_cert_lifetime: Duration::from_secs(90 * 24 * 3600),
            check_every: Duration::from_secs(3600),
        }
    }
}

/// A certificate resolver whose certificate can be replaced while connections are served:
/// each handshake takes the current one, atomically.
#[derive(Debug)]
pub struct SwapResolver(RwLock<Arc<CertifiedKey>>);

impl SwapResolver {
    pub fn new(key: Arc<CertifiedKey>) -> SwapResolver {
        SwapResolver(RwLock::new(key))
    }

    pub fn swap(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for SwapResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls certified key from PEM certificate chain and key.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, PkiError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PkiError(format!("unreadable certificate PEM: {e:?}")))?;
    if certs.is_empty() {
        return Err(PkiError("no certificate in the PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| PkiError(format!("unreadable private key PEM: {e:?}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| PkiError(format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(certs, signer);
    ck.keys_match()
        .map_err(|e| PkiError(format!("certificate and key do not belong together: {e}")))?;
    Ok(ck)
}

/// What the server is presenting now, to decide on renewal.
#[derive(Default)]
struct Served {
    names: Vec<String>,
    fingerprint: String,
    not_after: Option<i64>,
    user_mtimes: Option<(SystemTime, SystemTime)>,
    roots: Vec<Vec<u8>>,
}

/// The running TLS state: certificate resolver, current server config and the CA bundle
/// served at `/ca.crt`. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<TlsInner>,
}

struct TlsInner {
    paths: TlsPaths,
    /// Replaced when SIGHUP reloads the configuration.
    settings: RwLock<TlsSettings>,
    resolver: Arc<SwapResolver>,
    config: RwLock<Arc<ServerConfig>>,
    ca_bundle: RwLock<Option<Bytes>>,
    served: Mutex<Served>,
}

fn build_config(
    resolver: Arc<SwapResolver>,
    client_auth: ClientAuth,
    roots: &[Vec<u8>],
) -> Result<ServerConfig, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| PkiError(format!("TLS setup: {e}")))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut store = RootCertStore::empty();
            for r in roots {
                store
                    .add(CertificateDer::from(r.clone()))
                    .map_err(|e| PkiError(format!("client CA: {e}")))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider);
            if client_auth == ClientAuth::Optional {
                v = v.allow_unauthenticated();
            }
            let v = v
                .build()
                .map_err(|e| PkiError(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn mtime(p: &Path) -> Result<SystemTime, PkiError> {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .map_err(io_err("cannot read", p))
}

impl Tls {
    /// Loads or creates everything under `<data_dir>/tls` and returns the ready state.
    pub fn start(data_dir: &Path, settings: TlsSettings) -> Result<Tls, PkiError> {
        let paths = TlsPaths::new(data_dir);
        // A placeholder key until the first refresh installs the real one.
        let placeholder = {
            let ca = Ca::generate("placeholder")?;
            let leaf = ca.issue_server(&["localhost".into()], Duration::from_secs(60))?;
            certified_key(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())?
        };
        let resolver = Arc::new(SwapResolver::new(Arc::new(placeholder)));
        let config = build_config(resolver.clone(), ClientAuth::None, &[])?;
        let tls = Tls {
            inner: Arc::new(TlsInner {
                paths,
                settings: RwLock::new(settings),
                resolver,
                config: RwLock::new(Arc::new(config)),
                ca_bundle: RwLock::new(None),
                served: Mutex::new(Served::default()),
            }),
        };
        tls.refresh(true)?;
        Ok(tls)
    }

    /// The server config for the next connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// PEM of the CA(s) clients should trust, for `GET /ca.crt`.
    pub fn ca_pem(&self) -> Option<Bytes> {
        self.inner
            .ca_bundle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When the certificate served now expires (unix seconds).
    pub fn served_expiry(&self) -> Option<i64> {
        self.inner
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .not_after
    }

    /// SHA-256 fingerprint of the certificate served now.
    pub fn served_fingerprint(&self) -> String {
        self.inner
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fingerprint
            .clone()
    }

    /// Brings the served certificate up to date: renews, re-issues for changed names,
    /// completes a due CA rotation, or reloads a changed user certificate. `force` reloads
    /// even if nothing seems to have changed (start, SIGHUP).
    pub fn refresh(&self, force: bool) -> Result<(), PkiError> {
        let inner = &self.inner;
        let settings = self.settings();
        let mut served = inner.served.lock().unwrap_or_else(|p| p.into_inner());
        let (key, roots, bundle) = match &settings.user_cert {
            Some(user) => {
                let mtimes = (mtime(&user.cert)?, mtime(&user.key)?);
                if !force && served.user_mtimes == Some(mtimes) {
                    return Ok(());
                }
                let cert = std::fs::read(&user.cert).map_err(io_err("cannot read", &user.cert))?;
                let key = std::fs::read(&user.key).map_err(io_err("cannot read", &user.key))?;
                let ck = certified_key(&cert, &key)?;
                served.user_mtimes = Some(mtimes);
                let client_ca = match &user.client_ca {
                    Some(p) => std::fs::read(p).map_err(io_err("cannot read", p))?,
                    None => Vec::new(),
                };
                let bundle = (!client_ca.is_empty()).then(|| Bytes::from(client_ca.clone()));
                (Some(ck), info::pem_certs(&client_ca), bundle)
            }
            None => {
                let paths = &inner.paths;
                let promoted = promote_if_due(paths)?;
                let ca = load_or_create_ca(paths)?;
                let next = read_string(&paths.next_cert())?;
                let retired = read_string(&paths.retired_cert())?;
                let mut bundle = ca.cert_pem.clone();
                if let Some(n) = &next {
                    bundle.push_str(n);
                }
                let mut roots = vec![ca.cert_der.to_vec()];
                for extra in [&next, &retired].into_iter().flatten() {
                    roots.extend(info::pem_certs(extra.as_bytes()));
                }
                let names = names::server_names(&settings.names, settings.interface_addresses);
                let key = self.server_key(&ca, &names, force || promoted, &mut served)?;
                (key, roots, Some(Bytes::from(bundle)))
            }
        };
        if let Some(ck) = key {
            served.fingerprint = ck
                .end_entity_cert()
                .map(|c| info::fingerprint(c))
                .unwrap_or_default();
            served.not_after = ck
                .end_entity_cert()
                .ok()
                .and_then(|c| CertInfo::from_der(c).ok())
                .map(|i| i.not_after.unix_timestamp());
            inner.resolver.swap(Arc::new(ck));
        }
        if force || served.roots != roots {
            let cfg = build_config(inner.resolver.clone(), settings.client_auth, &roots)?;
            *inner.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
            served.roots = roots;
        }
        *inner.ca_bundle.write().unwrap_or_else(|p| p.into_inner()) = bundle;
        Ok(())
    }

    /// The server certificate to present if it must change: the one on disk when still good,
    /// else a freshly issued one.
    fn server_key(
        &self,
        ca: &Ca,
        names: &[String],
        force: bool,
        served: &mut Served,
    ) -> Result<Option<CertifiedKey>, PkiError> {
        let paths = &self.inner.paths;
        let lifetime = self.settings().server_cert_lifetime;
        let on_disk = match (
            read_string(&paths.server_cert())?,
            read_string(&paths.server_key())?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        };
        let ca_info = CertInfo::from_der(&ca.cert_der)?;
        let usable = on_disk
            .as_ref()
            .and_then(|(c, _)| CertInfo::from_pem(c).ok())
            .filter(|i| {
                let left = i.not_after - time::OffsetDateTime::now_utc();
                let mut want: Vec<String> = names.to_vec();
                want.sort();
                let mut have: Vec<String> = i
                    .sans
                    .iter()
                    .map(|s| s.split_once(':').map(|x| x.1).unwrap_or(s).to_string())
                    .collect();
                have.sort();
                left > lifetime / 3 && i.issued_by(&ca_info) && want == have
            });
        if let (Some(_), Some((c, k))) = (&usable, &on_disk) {
            if !force && served.names == names && !served.fingerprint.is_empty() {
                return Ok(None);
            }
            served.names = names.to_vec();
            return certified_key(c.as_bytes(), k.as_bytes()).map(Some);
        }
        let issued = ca.issue_server(names, lifetime)?;
        files::write_atomic(
            &paths.server_key(),
            issued.key_pem.as_bytes(),
            files::SECRET,
        )
        .map_err(io_err("cannot write", &paths.server_key()))?;
        files::write_atomic(
            &paths.server_cert(),
            issued.cert_pem.as_bytes(),
            files::PUBLIC,
        )
        .map_err(io_err("cannot write", &paths.server_cert()))?;
        let info = CertInfo::from_pem(&issued.cert_pem)?;
        tracing::info!(
            names = %names.join(","),
            fingerprint = %info.fingerprint,
            "issued a new server certificate"
        );
        served.names = names.to_vec();
        certified_key(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes()).map(Some)
    }

    fn settings(&self) -> TlsSettings {
        self.inner
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// New settings (names, certificate files, client auth, intervals) from a configuration
    /// reload, applied at once: the certificate is reloaded or re-issued as they require.
    pub async fn reconfigure(&self, settings: TlsSettings) {
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = settings;
        self.refresh_logged(true).await;
    }

    async fn refresh_logged(&self, force: bool) {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.refresh(force)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "certificate refresh failed; still serving the previous certificate")
            }
            Err(e) => tracing::error!(error = %e, "certificate refresh panicked"),
        }
    }

    /// Keeps the certificate fresh until `stop` resolves (SIGHUP comes through `reconfigure`).
    pub async fn maintain(self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            let every = self.settings().check_every;
            tokio::select! {
                _ = tokio::time::sleep(every) => {},
                _ = &mut stop => return,
            };
            self.refresh_logged(false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TlsSettings {
        TlsSettings {
            names: vec!["registry.test".into()],
            interface_addresses: false,
            ..Default::default()
        }
    }

    #[test]
    fn first_start_creates_ca_and_later_starts_reuse_it() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Tls::start(tmp.path(), settings()).unwrap();
        let ca1 = t.ca_pem().unwrap();
        let fp1 = t.served_fingerprint();
        use std::os::unix::fs::PermissionsExt;
        for key in ["tls/ca.key", "tls/server.key"] {
            let mode = std::fs::metadata(tmp.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        drop(t);
        let t = Tls::start(tmp.path(), settings()).unwrap();
        assert_eq!(t.ca_pem().unwrap(), ca1);
        assert_eq!(
            t.served_fingerprint(),
            fp1,
            "a valid server certificate is reused"
        );
    }

    #[test]
    fn changed_names_reissue_and_swap() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Tls::start(tmp.path(), settings()).unwrap();
        let before = t.inner.resolver.current();
        let fp = t.served_fingerprint();
        let mut s = settings();
        s.names.push("new.name.test".into());
        let t2 = Tls::start(tmp.path(), s).unwrap();
        assert_ne!(t2.served_fingerprint(), fp);
        let info = CertInfo::from_pem(
            &std::fs::read_to_string(tmp.path().join("tls/server.crt")).unwrap(),
        )
        .unwrap();
        assert!(info.sans.contains(&"DNS:new.name.test".to_string()));
        // The old state still holds its own certificate: swaps affect only new handshakes.
        assert!(Arc::ptr_eq(&before, &t.inner.resolver.current()));
    }

    #[test]
    fn short_lifetime_renews_on_refresh() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = settings();
        s.server_cert_lifetime = Duration::from_secs(3);
        let t = Tls::start(tmp.path(), s).unwrap();
        let fp = t.served_fingerprint();
        t.refresh(false).unwrap();
        assert_eq!(t.served_fingerprint(), fp, "fresh certificate kept");
        std::thread::sleep(Duration::from_millis(2200));
        t.refresh(false).unwrap();
        assert_ne!(
            t.served_fingerprint(),
            fp,
            "renewed with a third of its life left"
        );
    }

    #[test]
    fn rotation_serves_both_cas_then_promotes() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Tls::start(tmp.path(), settings()).unwrap();
        let paths = TlsPaths::new(tmp.path());
        let old = t.ca_pem().unwrap();
        let (next, _) = start_rotation(&paths, Duration::from_secs(0)).unwrap();
        assert!(start_rotation(&paths, Duration::from_secs(0)).is_err());
        // Overlap of zero: the next refresh promotes.
        t.refresh(false).unwrap();
        assert_eq!(t.ca_pem().unwrap(), Bytes::from(next.cert_pem.clone()));
        assert_eq!(std::fs::read(paths.retired_cert()).unwrap(), old);
        let info =
            CertInfo::from_pem(&std::fs::read_to_string(paths.server_cert()).unwrap()).unwrap();
        assert!(info.issued_by(&CertInfo::from_pem(&next.cert_pem).unwrap()));
        assert!(!info.issued_by(&CertInfo::from_pem(std::str::from_utf8(&old).unwrap()).unwrap()));
        assert!(!paths.rotation().exists());
    }

    #[test]
    fn rotation_overlap_bundles_both() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Tls::start(tmp.path(), settings()).unwrap();
        let paths = TlsPaths::new(tmp.path());
        start_rotation(&paths, Duration::from_secs(3600)).unwrap();
        t.refresh(false).unwrap();
        assert_eq!(info::pem_certs(&t.ca_pem().unwrap()).len(), 2);
    }
}
