//! The built-in CA's files under `<data-dir>/tls/` (see the drawing in `tls/mod.rs`):
//! loading or creating the CA, and the CA rotation (a next CA that takes over at a set time,
//! the previous one kept as retired).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::pki::{Ca, PkiError};
use super::{info, names};
use crate::storage::files;

/// Paths of the built-in CA's files.
pub struct TlsPaths {
    pub dir: PathBuf,
}

impl TlsPaths {
    pub fn new(data_dir: &Path) -> TlsPaths {
        TlsPaths {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn next_cert(&self) -> PathBuf {
        self.dir.join("ca-next.crt")
    }
    pub fn next_key(&self) -> PathBuf {
        self.dir.join("ca-next.key")
    }
    pub fn retired_cert(&self) -> PathBuf {
        self.dir.join("ca-retired.crt")
    }
    pub fn rotation(&self) -> PathBuf {
        self.dir.join("rotation.json")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

pub(super) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.display().to_string();
    move |e| PkiError(format!("{what} {path}: {e}"))
}

pub(super) fn read_string(path: &Path) -> Result<Option<String>, PkiError> {
    files::read_opt(path)
        .map_err(io_err("cannot read", path))?
        .map(|b| {
            String::from_utf8(b)
                .map_err(|_| PkiError(format!("{} is not PEM text", path.display())))
        })
        .transpose()
}

/// Loads the CA, creating it (named after this host) on first use.
pub fn load_or_create_ca(paths: &TlsPaths) -> Result<Ca, PkiError> {
    match (
        read_string(&paths.ca_cert())?,
        read_string(&paths.ca_key())?,
    ) {
        (Some(c), Some(k)) => Ca::load(&c, &k),
        (None, None) => {
            let ca = Ca::generate(&names::hostname())?;
            // Key first: a CA certificate without its key would be useless.
            files::write_atomic(&paths.ca_key(), ca.key_pem().as_bytes(), files::SECRET)
                .map_err(io_err("cannot write", &paths.ca_key()))?;
            files::write_atomic(&paths.ca_cert(), ca.cert_pem.as_bytes(), files::PUBLIC)
                .map_err(io_err("cannot write", &paths.ca_cert()))?;
            tracing::info!(
                path = %paths.ca_cert().display(),
                fingerprint = %info::fingerprint(&ca.cert_der),
                "created the registry CA; clients trust it with `edgeyard cert trust`"
            );
            Ok(ca)
        }
        _ => Err(PkiError(format!(
            "{} and {} must both exist or both be absent",
            paths.ca_cert().display(),
            paths.ca_key().display()
        ))),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Rotation {
    activate_at: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts a CA rotation: a new CA is created now and takes over after `overlap`. Returns the
/// new CA and the activation time (unix seconds).
pub fn start_rotation(paths: &TlsPaths, overlap: Duration) -> Result<(Ca, u64), PkiError> {
    if paths.next_cert().exists() {
        return Err(PkiError(
            "a CA rotation is already in progress (see `edgeyard cert show`)".into(),
        ));
    }
    load_or_create_ca(paths)?;
    let next = Ca::generate(&names::hostname())?;
    let at = unix_now() + overlap.as_secs();
    files::write_atomic(&paths.next_key(), next.key_pem().as_bytes(), files::SECRET)
        .map_err(io_err("cannot write", &paths.next_key()))?;
    files::write_atomic(&paths.next_cert(), next.cert_pem.as_bytes(), files::PUBLIC)
        .map_err(io_err("cannot write", &paths.next_cert()))?;
    let rot = serde_json::to_vec(&Rotation { activate_at: at }).unwrap_or_default();
    files::write_atomic(&paths.rotation(), &rot, files::PUBLIC)
        .map_err(io_err("cannot write", &paths.rotation()))?;
    Ok((next, at))
}

/// When a pending rotation activates (unix seconds), if one is pending.
pub fn rotation_due(paths: &TlsPaths) -> Result<Option<u64>, PkiError> {
    match files::read_opt(&paths.rotation()).map_err(io_err("cannot read", &paths.rotation()))? {
        None => Ok(None),
        Some(b) => serde_json::from_slice::<Rotation>(&b)
            .map(|r| Some(r.activate_at))
            .map_err(|e| PkiError(format!("{}: {e}", paths.rotation().display()))),
    }
}

/// Completes a due rotation: the next CA becomes the CA; the old one is kept as retired.
pub(super) fn promote_if_due(paths: &TlsPaths) -> Result<bool, PkiError> {
    match rotation_due(paths)? {
        Some(at) if at <= unix_now() && paths.next_cert().exists() => {
            let mv = |a: PathBuf, b: PathBuf| {
                std::fs::rename(&a, &b).map_err(io_err("cannot rename", &a))
            };
            mv(paths.ca_cert(), paths.retired_cert())?;
            mv(paths.next_key(), paths.ca_key())?;
            mv(paths.next_cert(), paths.ca_cert())?;
            std::fs::remove_file(paths.rotation())
                .map_err(io_err("cannot remove", &paths.rotation()))?;
            tracing::warn!("CA rotation completed: the new CA now signs the server certificate");
            Ok(true)
        }
        _ => Ok(false),
    }
}
