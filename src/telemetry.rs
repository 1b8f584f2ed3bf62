//! Logging setup: lines on stderr (journald picks them up under systemd), filtered
//! RUST_LOG-style, as text (colours only on a terminal) or as one JSON object per line. The
//! filter can be replaced later (SIGHUP reloads it from the configuration).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Replaces the log filter of the running process.
pub type FilterReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

fn parse(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

pub fn init(filter: &str, format: LogFormat) -> Result<FilterReload, String> {
    let filter = parse(filter)?;
    match format {
        LogFormat::Text => {
            let b = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_env_filter(filter)
                .with_filter_reloading();
            let handle = b.reload_handle();
            b.try_init().map_err(|e| e.to_string())?;
            Ok(Box::new(move |f| {
                handle.reload(parse(f)?).map_err(|e| e.to_string())
            }))
        }
        LogFormat::Json => {
            let b = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .json()
                .flatten_event(true)
                .with_env_filter(filter)
                .with_filter_reloading();
            let handle = b.reload_handle();
            b.try_init().map_err(|e| e.to_string())?;
            Ok(Box::new(move |f| {
                handle.reload(parse(f)?).map_err(|e| e.to_string())
            }))
        }
    }
}
