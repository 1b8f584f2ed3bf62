//! Logging setup: lines on stderr (journald picks them up under systemd), filtered by a
//! `target=level` list in RUST_LOG's common syntax (`info`, `edgeyard=debug,hyper=warn`), as
//! text (colours only on a terminal) or as one JSON object per line. The filter can be
//! replaced later (SIGHUP reloads it from the configuration).
//!
//! `Targets` rather than `EnvFilter`: the span and field-value matching EnvFilter adds
//! brings a regex engine, a quarter of a megabyte of binary no operator has asked for.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, reload};

use crate::config::LogFormat;

/// Why logging could not be set up or its filter changed.
#[derive(Debug)]
pub enum LogError {
    /// The filter is not in RUST_LOG's syntax.
    BadFilter { filter: String, why: String },
    /// Logging was set up already, or its filter is gone.
    Subscriber(String),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::BadFilter { filter, why } => {
                write!(f, "invalid log filter {filter:?}: {why}")
            }
            LogError::Subscriber(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LogError {}

/// Replaces the log filter of the running process.
pub type FilterReload = Box<dyn Fn(&str) -> Result<(), LogError> + Send + Sync>;

fn parse(filter: &str) -> Result<Targets, LogError> {
    filter.parse::<Targets>().map_err(|e| LogError::BadFilter {
        filter: filter.to_string(),
        why: e.to_string(),
    })
}

pub fn init(filter: &str, format: LogFormat) -> Result<FilterReload, LogError> {
    let (filter, handle) = reload::Layer::new(parse(filter)?);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true),
            )
            .try_init(),
    };
    installed.map_err(|e| LogError::Subscriber(e.to_string()))?;
    Ok(Box::new(move |f| {
        handle
            .reload(parse(f)?)
            .map_err(|e| LogError::Subscriber(e.to_string()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_rust_log_syntax() {
        for ok in [
            "info",
            "warn,edgeyard=debug",
            "edgeyard::http=trace,hyper=off",
            "",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        assert!(parse("edgeyard=loud").is_err());
    }
}
