//! The validated configuration: defaults, then the TOML file, then command-line flags.
//! Nothing downstream sees raw strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where data lives when nothing says otherwise: a folder in the working directory, so a
/// developer's first `edgeyard serve` needs no root and no setup.
pub const DEFAULT_DATA_DIR: &str = "edgeyard-data";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5000";

/// The config file as written; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    pub log: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        FileConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// What `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub insecure_http: bool,
    pub log: String,
}

/// Flags from the command line; `None` means "not given".
#[derive(Debug, Default)]
pub struct ServeFlags {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub insecure_http: bool,
    pub log: Option<String>,
}

impl ServeConfig {
    /// Flags win over the file, the file over defaults.
    pub fn build(file: FileConfig, flags: ServeFlags) -> ServeConfig {
        let default_listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 5000)));
        ServeConfig {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_flags() {
        let c = ServeConfig::build(FileConfig::default(), ServeFlags::default());
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
        let c = ServeConfig::build(file, flags);
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.data_dir, PathBuf::from("/srv/e"));
        assert!(c.insecure_http);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = FileConfig::parse("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(e.contains("lisen"), "{e}");
        assert!(e.contains("line 2") || e.contains("2 |"), "{e}");
    }
}
