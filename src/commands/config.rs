//! `edgeyard config check FILE`.

use crate::config::{FileConfig, ServeConfig, ServeFlags};

use super::Failure;

pub fn check(file: &std::path::Path) -> Result<(), Failure> {
    let parsed = FileConfig::load(file)?;
    let flags = ServeFlags {
        listen: env_parse("EDGEYARD_LISTEN")?,
        data_dir: std::env::var_os("EDGEYARD_DATA_DIR").map(Into::into),
        log: std::env::var("EDGEYARD_LOG").ok(),
        ..ServeFlags::default()
    };
    let config = ServeConfig::build(parsed, flags)?;
    println!("# {} is valid; effective configuration:", file.display());
    print!("{}", config.describe());
    Ok(())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>, Failure> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Failure::Usage(format!("${name}={v:?} cannot be parsed"))),
        Err(_) => Ok(None),
    }
}
