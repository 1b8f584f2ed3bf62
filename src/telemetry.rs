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

/// Replaces the log filter of the running process.
pub type FilterReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

fn parse(filter: &str) -> Result<Targets, String> {
    filter
        .parse::<Targets>()
        .map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

pub fn init(filter: &str, format: LogFormat) -> Result<FilterReload, String> {
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
    installed.map_err(|e| e.to_string())?;
    Ok(Box::new(move |f| {
        handle.reload(parse(f)?).map_err(|e| e.to_string())
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
