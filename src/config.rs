//! The validated configuration: defaults, then the TOML file, then command-line flags.
//! Nothing downstream sees raw strings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod file;
mod listen;
mod mirrors;
mod trust;

pub use file::{
    AuthFileConfig, FileConfig, GcFileConfig, LogFormat, RepositoryCreation, ServerFileConfig,
    StorageFileConfig, TlsFileConfig,
};
pub use listen::parse_listen;
pub use mirrors::{
    build as mirrors_of, replication_rules, MirrorFileConfig, ReplicationFileConfig, SyncFileConfig,
};

pub use trust::{TrustFileConfig, TrustKeyFileConfig};

use crate::auth::AuthSettings;
use crate::tls::{ClientAuth, TlsSettings, UserCert};

/// A configuration the server cannot run with: the message names the table or key and says
/// what is wrong, for the operator who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError(message.to_string())
    }
}

/// Where data lives when nothing says otherwise: a folder in the working directory, so a
/// developer's first `edgeyard serve` needs no root and no setup.
pub const DEFAULT_DATA_DIR: &str = "edgeyard-data";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5000";

/// The `[server]` table, checked: timeouts of 1 s to an hour, counts up to a million.
fn server_limits(file: ServerFileConfig) -> Result<crate::server::Limits, ConfigError> {
    let d = crate::server::Limits::default();
    let secs = |v: Option<u64>, default: Duration, key: &str| match v {
        None => Ok(default),
        Some(s) if (1..=3600).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ConfigError(format!("server.{key} must be 1 to 3600"))),
    };
    let count = |v: Option<usize>, default: usize, key: &str| match v {
        None => Ok(default),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n),
        Some(_) => Err(ConfigError(format!("server.{key} must be 1 to 1000000"))),
    };
    Ok(crate::server::Limits {
        header_read_timeout: secs(
            file.header_read_timeout_secs,
            d.header_read_timeout,
            "header_read_timeout_secs",
        )?,
        body_read_timeout: secs(
            file.body_read_timeout_secs,
            d.body_read_timeout,
            "body_read_timeout_secs",
        )?,
        send_timeout: secs(file.send_timeout_secs, d.send_timeout, "send_timeout_secs")?,
        max_connections: count(file.max_connections, d.max_connections, "max_connections")?,
        max_connections_per_client: count(
            file.max_connections_per_client,
            d.max_connections_per_client,
            "max_connections_per_client",
        )?,
        max_uploads_per_client: count(
            file.max_uploads_per_client,
            d.max_uploads_per_client,
            "max_uploads_per_client",
        )?,
    })
}

/// What `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub insecure_http: bool,
    pub log: String,
    pub log_format: LogFormat,
    pub tls: TlsSettings,
    /// `None` when authentication is off.
    pub auth: Option<AuthSettings>,
    /// Scheduled garbage collection: how often, and with what options (`None`: off).
    pub gc: Option<(Duration, crate::registry::GcOptions)>,
    pub disk_floor: crate::registry::DiskFloor,
    pub verify_pulls: bool,
    pub limits: crate::server::Limits,
    pub repository_creation: RepositoryCreation,
    pub mirrors: Vec<crate::edge::MirrorSettings>,
    pub sync: Vec<crate::edge::SyncRule>,
    pub replication: Vec<crate::edge::ReplicationRule>,
    /// The `[trust]` section, applied to the data directory at start and on reload.
    pub trust: crate::registry::trust_declared::DeclaredTrust,
}

/// Flags from the command line; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct ServeFlags {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub insecure_http: bool,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
    pub tls_names: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_auth: Option<ClientAuth>,
    pub no_auth: bool,
}

fn auth_settings(
    file: AuthFileConfig,
    flags: &ServeFlags,
) -> Result<Option<AuthSettings>, ConfigError> {
    if flags.no_auth || file.enabled == Some(false) {
        return Ok(None);
    }
    let d = AuthSettings::default();
    let admin_password = match &file.admin_password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("auth.admin_password_file {}: {e}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("EDGEYARD_ADMIN_PASSWORD").ok(),
    };
    if admin_password.as_ref().is_some_and(|p| p.len() < 8) {
        return Err("the initial admin password must have at least 8 characters".into());
    }
    if let Some(r) = &file.realm {
        if !(r.starts_with("https://") || r.starts_with("http://")) || r.contains('"') {
            return Err(format!("auth.realm {r:?} must be an http(s) URL").into());
        }
    }
    Ok(Some(AuthSettings {
        service: file.service.unwrap_or(d.service),
        realm: file.realm,
        token_lifetime: match file.token_lifetime_secs {
            None => d.token_lifetime,
            Some(s) if (10..=86_400).contains(&s) => Duration::from_secs(s),
            Some(_) => return Err("auth.token_lifetime_secs must be 10 to 86400".into()),
        },
        admin_password,
        metrics_login: file.metrics_login.unwrap_or(false),
        ..d
    }))
}

fn tls_settings(file: TlsFileConfig, flags: &ServeFlags) -> Result<TlsSettings, ConfigError> {
    let d = TlsSettings::default();
    let mut names = file.names.unwrap_or_default();
    names.extend(flags.tls_names.iter().cloned());
    for n in &names {
        if n.parse::<std::net::IpAddr>().is_err() && !crate::tls::pki::valid_dns_name(n) {
            return Err(format!("tls name {n:?} is neither an IP address nor a DNS name").into());
        }
    }
    let cert = flags.tls_cert.clone().or(file.cert_file);
    let key = flags.tls_key.clone().or(file.key_file);
    let user_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(UserCert {
            cert,
            key,
            client_ca: file.client_ca_file,
        }),
        (None, None) => None,
        _ => {
            return Err(
                "a TLS certificate file and key file go together: give both or neither".into(),
            )
        }
    };
    let client_auth = flags.client_auth.or(file.client_auth).unwrap_or_default();
    if client_auth != ClientAuth::None && user_cert.as_ref().is_some_and(|u| u.client_ca.is_none())
    {
        return Err("client_auth with your own certificate needs client_ca_file".into());
    }
    let secs = |v: Option<u64>, default: Duration, key: &str| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(0) => Err(format!("tls.{key} must be above 0").into()),
            Some(s) => Ok(Duration::from_secs(s)),
        }
    };
    Ok(TlsSettings {
        names,
        interface_addresses: file.interface_addresses.unwrap_or(d.interface_addresses),
        user_cert,
        client_auth,
        server_cert_lifetime: secs(
            file.server_cert_lifetime_secs,
            d.server_cert_lifetime,
            "server_cert_lifetime_secs",
        )?,
        check_every: secs(
            file.check_interval_secs,
            d.check_every,
            "check_interval_secs",
        )?,
    })
}

impl ServeConfig {
    /// Flags win over the file, the file over defaults.
    pub fn build(file: FileConfig, flags: ServeFlags) -> Result<ServeConfig, ConfigError> {
        let tls = tls_settings(file.tls, &flags)?;
        let auth = auth_settings(file.auth, &flags)?;
        let gc = {
            let d = crate::registry::GcOptions::default();
            let interval = file.gc.interval_secs.unwrap_or(86_400);
            let options = crate::registry::GcOptions {
                dry_run: false,
                grace: file
                    .gc
                    .grace_secs
                    .map(Duration::from_secs)
                    .unwrap_or(d.grace),
                upload_ttl: file
                    .gc
                    .upload_ttl_secs
                    .map(Duration::from_secs)
                    .unwrap_or(d.upload_ttl),
            };
            (interval > 0).then(|| (Duration::from_secs(interval), options))
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 5000)));
        let d = crate::registry::DiskFloor::default();
        let disk_floor = crate::registry::DiskFloor {
            bytes: file.storage.min_free_bytes.unwrap_or(d.bytes),
            percent: match file.storage.min_free_percent {
                Some(p) if p > 90 => return Err("storage.min_free_percent must be 0 to 90".into()),
                Some(p) => p,
                None => d.percent,
            },
        };
        let (mirrors, sync) = mirrors::build(file.mirror, file.sync)?;
        let replication = mirrors::replication_rules(file.replication)?;
        let limits = server_limits(file.server)?;
        let trust = file.trust.declared()?;
        Ok(ServeConfig {
            trust,
            limits,
            replication,
            mirrors,
            sync,
            tls,
            auth,
            gc,
            disk_floor,
            verify_pulls: file.storage.verify_pulls.unwrap_or(true),
            repository_creation: file.repository_creation.unwrap_or_default(),
            listen: flags.listen.or(file.listen).unwrap_or(default_listen),
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            insecure_http: flags.insecure_http || file.insecure_http.unwrap_or(false),
            log: flags
                .log
                .or(file.log)
                .or_else(|| std::env::var("RUST_LOG").ok())
                .unwrap_or_else(|| "info".into()),
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// The effective configuration as TOML, for `edgeyard config check`. Secrets are not
    /// printed, only whether they are set.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let q = |s: &str| format!("{s:?}");
        let mut s = String::new();
        // An unset optional key is shown as a comment, so the output stays valid TOML.
        let line = |s: &mut String, key: &str, value: Option<String>| {
            let _ = match value {
                Some(v) => writeln!(s, "{key} = {v}"),
                None => writeln!(s, "# {key}: not set"),
            };
        };
        // Credentials show as a comment: the output stays a valid file without the secret.
        let credentials = |s: &mut String, c: &Option<(String, String)>| {
            let _ = match c {
                Some((u, _)) => writeln!(s, "# username = {} (password set, not shown)", q(u)),
                None => writeln!(s, "# username: not set"),
            };
        };
        let user = self.tls.user_cert.as_ref();
        let path = |p: Option<&PathBuf>| p.map(|p| q(&p.display().to_string()));
        line(&mut s, "listen", Some(q(&self.listen.to_string())));
        line(&mut s, "data_dir", path(Some(&self.data_dir)));
        line(
            &mut s,
            "insecure_http",
            Some(self.insecure_http.to_string()),
        );
        line(&mut s, "log", Some(q(&self.log)));
        let fmt = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        line(&mut s, "log_format", Some(q(fmt)));
        let creation = match self.repository_creation {
            RepositoryCreation::Implicit => "implicit",
            RepositoryCreation::Explicit => "explicit",
        };
        line(&mut s, "repository_creation", Some(q(creation)));
        s.push_str("\n[tls]\n");
        let names: Vec<String> = self.tls.names.iter().map(|n| q(n)).collect();
        line(&mut s, "names", Some(format!("[{}]", names.join(", "))));
        line(
            &mut s,
            "interface_addresses",
            Some(self.tls.interface_addresses.to_string()),
        );
        line(&mut s, "cert_file", path(user.map(|u| &u.cert)));
        line(&mut s, "key_file", path(user.map(|u| &u.key)));
        line(
            &mut s,
            "client_ca_file",
            path(user.and_then(|u| u.client_ca.as_ref())),
        );
        let ca = match self.tls.client_auth {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        };
        line(&mut s, "client_auth", Some(q(ca)));
        line(
            &mut s,
            "server_cert_lifetime_secs",
            Some(self.tls.server_cert_lifetime.as_secs().to_string()),
        );
        line(
            &mut s,
            "check_interval_secs",
            Some(self.tls.check_every.as_secs().to_string()),
        );
        s.push_str("\n[storage]\n");
        line(
            &mut s,
            "min_free_bytes",
            Some(self.disk_floor.bytes.to_string()),
        );
        line(
            &mut s,
            "min_free_percent",
            Some(self.disk_floor.percent.to_string()),
        );
        line(&mut s, "verify_pulls", Some(self.verify_pulls.to_string()));
        s.push_str("\n[server]\n");
        let l = &self.limits;
        for (key, value) in [
            (
                "header_read_timeout_secs",
                l.header_read_timeout.as_secs() as usize,
            ),
            (
                "body_read_timeout_secs",
                l.body_read_timeout.as_secs() as usize,
            ),
            ("send_timeout_secs", l.send_timeout.as_secs() as usize),
            ("max_connections", l.max_connections),
            ("max_connections_per_client", l.max_connections_per_client),
            ("max_uploads_per_client", l.max_uploads_per_client),
        ] {
            line(&mut s, key, Some(value.to_string()));
        }
        s.push_str("\n[gc]\n");
        match &self.gc {
            None => line(&mut s, "interval_secs", Some("0".into())),
            Some((every, o)) => {
                line(&mut s, "interval_secs", Some(every.as_secs().to_string()));
                line(&mut s, "grace_secs", Some(o.grace.as_secs().to_string()));
                line(
                    &mut s,
                    "upload_ttl_secs",
                    Some(o.upload_ttl.as_secs().to_string()),
                );
            }
        }
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter().map(|x| q(x)).collect::<Vec<_>>().join(", ")
            )
        };
        for m in &self.mirrors {
            s.push_str("\n[[mirror]]\n");
            line(&mut s, "name", Some(q(&m.name)));
            line(&mut s, "url", Some(q(&m.url)));
            line(&mut s, "prefix", m.prefix.as_deref().map(q));
            line(&mut s, "repositories", Some(list(&m.repositories)));
            line(&mut s, "aliases", Some(list(&m.aliases)));
            credentials(&mut s, &m.credentials);
            line(
                &mut s,
                "tag_ttl_secs",
                Some(m.tag_ttl.as_secs().to_string()),
            );
        }
        for r in &self.sync {
            s.push_str("\n[[sync]]\n");
            line(&mut s, "mirror", Some(q(&r.mirror)));
            line(&mut s, "repositories", Some(list(&r.repositories)));
            line(&mut s, "tags", Some(list(&r.tags)));
            line(&mut s, "platforms", Some(list(&r.platforms)));
            line(
                &mut s,
                "interval_secs",
                Some(r.interval.map(|d| d.as_secs()).unwrap_or(0).to_string()),
            );
            line(&mut s, "pin", Some(r.pin.to_string()));
        }
        for r in &self.replication {
            s.push_str("\n[[replication]]\n");
            line(&mut s, "name", Some(q(&r.name)));
            line(&mut s, "url", Some(q(&r.url)));
            credentials(&mut s, &r.credentials);
            line(&mut s, "repositories", Some(list(&r.repositories)));
            line(&mut s, "tags", Some(list(&r.tags)));
            line(
                &mut s,
                "interval_secs",
                Some(r.interval.map(|d| d.as_secs()).unwrap_or(0).to_string()),
            );
        }
        // The records' own spellings (`any`, `enforce`, `whole`, ...).
        let word = |v: serde_json::Value| v.as_str().map(q);
        for k in &self.trust.keys {
            s.push_str("\n[[trust.key]]\n");
            line(&mut s, "name", Some(q(&k.name)));
            if let Ok(a) = crate::trust::keys::TrustAnchor::from_pem(k.pem.as_bytes()) {
                let _ = writeln!(s, "# {} {}", a.kind(), a.fingerprint());
            }
            line(&mut s, "pem", Some(q(k.pem.trim())));
            line(&mut s, "purpose", word(serde_json::json!(k.purpose)));
        }
        for p in &self.trust.policies {
            s.push_str("\n[[trust.policy]]\n");
            line(&mut s, "repos", Some(q(&p.repos)));
            line(&mut s, "keys", Some(list(&p.keys)));
            line(&mut s, "require", word(serde_json::json!(p.require)));
            line(&mut s, "mode", word(serde_json::json!(p.mode)));
            line(&mut s, "index", word(serde_json::json!(p.index)));
            line(&mut s, "identities", Some(list(&p.identities)));
        }
        s.push_str("\n[auth]\n");
        match &self.auth {
            None => line(&mut s, "enabled", Some("false".into())),
            Some(a) => {
                line(&mut s, "enabled", Some("true".into()));
                line(&mut s, "service", Some(q(&a.service)));
                line(&mut s, "realm", a.realm.as_deref().map(q));
                line(
                    &mut s,
                    "token_lifetime_secs",
                    Some(a.token_lifetime.as_secs().to_string()),
                );
                line(&mut s, "metrics_login", Some(a.metrics_login.to_string()));
                let pw = if a.admin_password.is_some() {
                    "set (not shown)"
                } else {
                    "random, written to <data_dir>/admin-password on first start"
                };
                let _ = writeln!(s, "# initial admin password: {pw}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_flags() {
        let c = ServeConfig::build(FileConfig::default(), ServeFlags::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(!c.insecure_http);

        let file = FileConfig::parse(
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/e\"\ninsecure_http = true\n",
        )
        .unwrap();
        let flags = ServeFlags {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        let c = ServeConfig::build(file, flags).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.data_dir, PathBuf::from("/srv/e"));
        assert!(c.insecure_http);
    }

    #[test]
    fn tls_table() {
        let file = FileConfig::parse(
            "[tls]\nnames = [\"registry.factory.local\", \"10.0.0.5\"]\nclient_auth = \"optional\"\ninterface_addresses = false\n",
        )
        .unwrap();
        let c = ServeConfig::build(file, ServeFlags::default()).unwrap();
        assert_eq!(c.tls.names, vec!["registry.factory.local", "10.0.0.5"]);
        assert_eq!(c.tls.client_auth, ClientAuth::Optional);
        assert!(!c.tls.interface_addresses);
        let bad = FileConfig::parse("[tls]\nnames = [\"bad name\"]\n").unwrap();
        assert!(ServeConfig::build(bad, ServeFlags::default()).is_err());
        let half = FileConfig::parse("[tls]\ncert_file = \"/x.pem\"\n").unwrap();
        assert!(ServeConfig::build(half, ServeFlags::default()).is_err());
        assert!(FileConfig::parse("[tls]\nclient_auth = \"sometimes\"\n").is_err());
    }

    #[test]
    fn server_table_bounds_are_checked() {
        let c = ServeConfig::build(FileConfig::default(), ServeFlags::default()).unwrap();
        assert_eq!(c.limits, crate::server::Limits::default());
        let file = FileConfig::parse(
            "[server]\nheader_read_timeout_secs = 2\nmax_uploads_per_client = 3\n",
        )
        .unwrap();
        let c = ServeConfig::build(file, ServeFlags::default()).unwrap();
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.limits.max_uploads_per_client, 3);
        assert!(c.describe().contains("max_uploads_per_client = 3"));
        for bad in [
            "header_read_timeout_secs = 0",
            "body_read_timeout_secs = 99999",
            "max_connections = 0",
        ] {
            let f = FileConfig::parse(&format!("[server]\n{bad}\n")).unwrap();
            let e = ServeConfig::build(f, ServeFlags::default()).unwrap_err();
            assert!(
                e.to_string().contains(bad.split(' ').next().unwrap()),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = FileConfig::parse("listen = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
        assert!(e.contains("line 2") || e.contains("2 |"), "{e}");
    }
}
