//! The subcommands. Each returns `Result<(), Failure>`; `main` turns that into an exit code.

pub mod api_client;
pub mod bundle;
pub mod cert;
pub mod cert_trust;
pub mod clock;
pub mod config;
pub mod fsck;
pub mod gc;
pub mod install;
pub mod ownership;
pub mod progress;
pub mod push_to;
pub mod repos;
pub mod serve;
pub mod sync;
pub mod trust;
pub mod users;

use std::path::PathBuf;

use crate::cli::DataArgs;
use crate::config::{FileConfig, DEFAULT_DATA_DIR};

/// Why a command failed: bad usage/config (exit 2), a runtime failure (exit 1), or a check
/// that ran and found problems (exit 3), which scripts must tell apart from a check that
/// could not run.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Runtime(String),
    Problems(String),
}

/// A configuration that cannot be used is a usage error (exit 2).
impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::Usage(e.to_string())
    }
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Runtime(_) => 1,
            Failure::Problems(_) => 3,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Runtime(m) | Failure::Problems(m) => m,
        }
    }
}

/// A registry error as the command's failure: a refusal of what the operator asked for
/// (`INVALID`) is a usage error (exit 2), anything else a runtime one (exit 1).
pub fn refused(e: crate::error::Error) -> Failure {
    match e.error_code() {
        crate::error::ErrorCode::Invalid => Failure::Usage(e.to_string()),
        _ => Failure::Runtime(e.to_string()),
    }
}

/// The config file named by `--config`, or an empty one.
pub fn load_file(data: &DataArgs) -> Result<FileConfig, Failure> {
    match &data.config {
        Some(path) => FileConfig::load(path).map_err(Failure::from),
        None => Ok(FileConfig::default()),
    }
}

/// Opens the registry in the data directory for a command that works offline. The metadata store lets
/// one process at a time open it, so with a server running this fails; `hint` says what to do.
/// The configuration's `[trust]` section, when `--config` is given, is applied first (see
/// [`apply_trust`]).
pub fn open_registry(data: &DataArgs, hint: &str) -> Result<crate::registry::Registry, Failure> {
    let file = load_file(data)?;
    let dir = existing_data_dir(data, &file)?;
    open_registry_in(data, file, &dir, hint)
}

/// [`open_registry`] that creates the store when the data directory has none yet: for
/// `import`, which may seed a new store, and only once the input has been checked.
pub fn open_or_create_registry(
    data: &DataArgs,
    hint: &str,
) -> Result<crate::registry::Registry, Failure> {
    let file = load_file(data)?;
    let dir = data_dir(data, &file);
    ownership::note(&dir);
    open_registry_in(data, file, &dir, hint)
}

fn open_registry_in(
    data: &DataArgs,
    file: FileConfig,
    dir: &std::path::Path,
    hint: &str,
) -> Result<crate::registry::Registry, Failure> {
    let registry =
        crate::registry::Registry::open(dir).map_err(|e| match crate::meta::is_in_use(&e) {
            true => Failure::Runtime(format!("{e}\nstop the server first{hint}")),
            false => Failure::Runtime(e.to_string()),
        })?;
    if let Some(declared) = declared_trust(data, file.trust)? {
        registry
            .apply_declared_trust(&declared)
            .map_err(trust_refused)?;
    }
    Ok(registry)
}

/// The `[trust]` section a command applies to the data directory before it does anything,
/// as the server does when it starts: with `--config`, an offline import or sync meets the
/// policies the file declares; without, the ones stored by the last apply. `None` without
/// `--config` (an absent file must not remove what a configured server declared).
pub fn declared_trust(
    data: &DataArgs,
    trust: crate::config::TrustFileConfig,
) -> Result<Option<crate::registry::trust_declared::DeclaredTrust>, Failure> {
    match data.config {
        Some(_) => Ok(Some(trust.declared()?)),
        None => Ok(None),
    }
}

pub fn trust_refused(e: crate::error::Error) -> Failure {
    Failure::Usage(format!("the configuration's [trust] section: {e}"))
}

/// The data directory, which must exist, for offline commands that read or change a store.
/// A mistyped or missing path is an error naming it: opening would create an empty store
/// there, and `user list` would then report "no users" as if that were the registry. (An
/// existing empty directory is taken: provisioning users before the first start is fine.)
pub fn existing_data_dir(data: &DataArgs, file: &FileConfig) -> Result<PathBuf, Failure> {
    let dir = data_dir(data, file);
    if dir.is_dir() {
        ownership::note(&dir);
        return Ok(dir);
    }
    Err(Failure::Usage(format!(
        "no data directory at {}; name the registry's with --data-dir DIR or -c FILE \
         (a package install: -c /etc/edgeyard/edgeyard.toml), or use a running registry \
         with --server URL (or EDGEYARD_SERVER)",
        dir.display()
    )))
}

/// The data directory: flag, then config file, then the development default.
pub fn data_dir(data: &DataArgs, file: &FileConfig) -> PathBuf {
    data.data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}
