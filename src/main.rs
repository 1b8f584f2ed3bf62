//! Entry point: parse the command line, build the validated config, run the subcommand.
//! Every exit code is decided here: 0 success, 1 runtime failure, 2 bad usage or config.

use std::process::ExitCode;

use clap::Parser;
use edgeyard::cli::{Cli, Command, ServeArgs};
use edgeyard::config::{FileConfig, ServeConfig, ServeFlags};
use edgeyard::registry::Registry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let file = match &args.config {
        Some(path) => match FileConfig::load(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("edgeyard: {e}");
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let config = ServeConfig::build(
        file,
        ServeFlags {
            listen: args.listen,
            data_dir: args.data_dir,
            insecure_http: args.insecure_http,
            log: args.log,
        },
    );
    if let Err(e) = edgeyard::telemetry::init(&config.log) {
        eprintln!("edgeyard: {e}");
        return ExitCode::from(2);
    }
    if !config.insecure_http {
        tracing::error!(
            "HTTPS is not available in this build yet: start with --insecure-http \
             (or insecure_http = true in the config) to serve plain HTTP"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ServeConfig) -> Result<(), String> {
    let registry = Registry::open(&config.data_dir).map_err(|e| {
        format!(
            "cannot open the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    tracing::warn!(
        "serving plain HTTP (--insecure-http): anyone on the network can read and alter traffic"
    );
    tracing::info!(data_dir = %config.data_dir.display(), "edgeyard listening on http://{addr}");
    edgeyard::server::run(listener, registry.clone(), shutdown_signal()).await;
    registry
        .close()
        .map_err(|e| format!("flushing metadata on shutdown: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
