//! The configuration file as written: every table and key optional, unknown keys refused.
//! `ServeConfig::build` (in `config.rs`) turns it, with the flags, into what the server
//! runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, MirrorFileConfig, ReplicationFileConfig, SyncFileConfig};
use crate::tls::ClientAuth;

/// The config file as written; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, deserialize_with = "super::listen::deserialize_opt")]
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
    /// "implicit": a push creates its repository; "explicit": only administrators do.
    pub repository_creation: Option<RepositoryCreation>,
    #[serde(default)]
    pub tls: TlsFileConfig,
    #[serde(default)]
    pub auth: AuthFileConfig,
    #[serde(default)]
    pub gc: GcFileConfig,
    #[serde(default)]
    pub storage: StorageFileConfig,
    #[serde(default)]
    pub server: ServerFileConfig,
    /// `[[mirror]]`: upstream registries served through this one.
    #[serde(default)]
    pub mirror: Vec<MirrorFileConfig>,
    /// `[[sync]]`: what to fetch from them ahead of time.
    #[serde(default)]
    pub sync: Vec<SyncFileConfig>,
    /// `[[replication]]`: other registries to push images to.
    #[serde(default)]
    pub replication: Vec<ReplicationFileConfig>,
    /// `[trust]`: keys trusted to sign images and the policies that require them.
    #[serde(default)]
    pub trust: super::TrustFileConfig,
}

/// The `[storage]` table: the free-space floor below which uploads are refused, and whether
/// pulls verify what they send.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFileConfig {
    /// Bytes that must stay free (default 256 MiB).
    pub min_free_bytes: Option<u64>,
    /// Share of the filesystem that must stay free, percent (default 0); the larger wins.
    pub min_free_percent: Option<u8>,
    /// Hash every whole-blob pull as it is sent and end it in an error, not a clean end,
    /// if the bytes on disk no longer match the digest (default true).
    pub verify_pulls: Option<bool>,
}

/// The `[server]` table: what one client may hold (see `server::Limits`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFileConfig {
    /// Seconds a client has to send a request's headers (default 30).
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request body may deliver nothing before it is abandoned (default 60).
    pub body_read_timeout_secs: Option<u64>,
    /// Seconds a connection's answers may take nothing while they are being sent before the
    /// connection is closed (default 30).
    pub send_timeout_secs: Option<u64>,
    /// Open connections in all (default 1024).
    pub max_connections: Option<usize>,
    /// Open connections from one client address (default 128).
    pub max_connections_per_client: Option<usize>,
    /// Open upload sessions per client: user, or address when anonymous (default 64).
    pub max_uploads_per_client: Option<usize>,
}

/// The `[gc]` table: scheduled garbage collection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcFileConfig {
    /// Seconds between runs; 0 turns scheduled runs off (default one day).
    pub interval_secs: Option<u64>,
    /// Keep anything committed, linked or referenced this recently (default one hour).
    pub grace_secs: Option<u64>,
    /// Expire upload sessions older than this (default one day).
    pub upload_ttl_secs: Option<u64>,
}

/// The `[auth]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFileConfig {
    /// Authentication is on unless this is false (or `serve --no-auth`).
    pub enabled: Option<bool>,
    /// The service name tokens are issued for (default "edgeyard").
    pub service: Option<String>,
    /// Token endpoint URL to announce (default: `https://<Host>/token` of each request).
    pub realm: Option<String>,
    /// Access token lifetime, seconds (default 300).
    pub token_lifetime_secs: Option<u64>,
    /// A file holding the initial admin password (else `$EDGEYARD_ADMIN_PASSWORD`, else random).
    pub admin_password_file: Option<PathBuf>,
    /// `/metrics` for logged-in callers only (default false: open, like /healthz).
    pub metrics_login: Option<bool>,
}

/// The `[tls]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    /// Extra DNS names or IP addresses the server certificate must cover.
    pub names: Option<Vec<String>>,
    /// Whether every interface address goes into the certificate (default true).
    pub interface_addresses: Option<bool>,
    /// Operator-supplied certificate chain and key (PEM), replacing the built-in CA.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// CA for client certificates when `cert_file` is used with client auth.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: Option<ClientAuth>,
    /// Lifetime of generated server certificates, seconds (default 90 days).
    pub server_cert_lifetime_secs: Option<u64>,
    /// How often certificates are checked for renewal or change, seconds (default 3600).
    pub check_interval_secs: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        FileConfig::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }
}

/// Who creates repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryCreation {
    /// The first push creates the repository.
    #[default]
    Implicit,
    /// Only administrators create repositories; pushes to others are refused.
    Explicit,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}
