//! `edgeyard serve`: open the store, set up TLS, serve until SIGINT/SIGTERM, flush, exit.

use crate::auth::Auth;
use crate::cli::ServeArgs;
use crate::config::{ServeConfig, ServeFlags};
use crate::http::App;
use crate::registry::Registry;
use crate::tls::{info, Tls, TlsPaths};

use super::{load_file, Failure};

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let file = load_file(&args.data)?;
    let config = ServeConfig::build(
        file,
        ServeFlags {
            listen: args.listen,
            data_dir: args.data.data_dir,
            insecure_http: args.insecure_http,
            log: args.log,
            log_format: args.log_format,
            tls_names: args.tls_names,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            client_auth: args.client_auth,
            no_auth: args.no_auth,
        },
    )
    .map_err(Failure::Usage)?;
    crate::telemetry::init(&config.log, config.log_format).map_err(Failure::Usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(config)).map_err(Failure::Runtime)
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    let registry = Registry::open(&config.data_dir).map_err(|e| {
        format!(
            "cannot open the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let tls = if config.insecure_http {
        tracing::warn!(
            "serving plain HTTP (--insecure-http): traffic can be read and altered on the network, \
             and every docker client must list this registry under insecure-registries"
        );
        None
    } else {
        let (dir, settings) = (config.data_dir.clone(), config.tls.clone());
        let tls = tokio::task::spawn_blocking(move || Tls::start(&dir, settings))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        Some(tls)
    };
    let auth = match &config.auth {
        None => {
            tracing::warn!(
                "authentication is OFF (--no-auth): anyone who can reach this port may push, \
                 pull and delete"
            );
            None
        }
        Some(settings) => {
            let (meta, dir, settings) = (
                registry.meta_handle(),
                config.data_dir.clone(),
                settings.clone(),
            );
            let auth = tokio::task::spawn_blocking(move || Auth::open(meta, &dir, settings))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("authentication setup failed: {e}"))?;
            Some(auth)
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(data_dir = %config.data_dir.display(), "edgeyard listening on {scheme}://{addr}");
    if let (Some(t), None) = (&tls, &config.tls.user_cert) {
        let ca = TlsPaths::new(&config.data_dir).ca_cert();
        let fp = t
            .ca_pem()
            .and_then(|pem| info::pem_certs(&pem).into_iter().next())
            .map(|der| info::fingerprint(&der))
            .unwrap_or_default();
        tracing::info!(
            ca = %ca.display(),
            fingerprint = %fp,
            "clients trust this registry with: edgeyard cert trust --registry HOST:{} --from https://HOST:{} --fingerprint {fp}",
            addr.port(),
            addr.port()
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let maintenance = tls.clone().map(|t| {
        let mut rx = stop_rx.clone();
        tokio::spawn(t.maintain(async move {
            let _ = rx.changed().await;
        }))
    });
    let app = App {
        registry: registry.clone(),
        tls,
        auth,
    };
    let watchdog =
        crate::systemd::watchdog_interval().map(|i| tokio::spawn(crate::systemd::watchdog(i)));
    crate::systemd::notify_logged(&format!("READY=1\nSTATUS=serving on {scheme}://{addr}"));
    crate::server::run(listener, app, async {
        shutdown_signal().await;
        crate::systemd::notify_logged("STOPPING=1");
    })
    .await;
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_tx.send(true);
    if let Some(m) = maintenance {
        let _ = m.await;
    }
    registry
        .close()
        .map_err(|e| format!("flushing metadata on shutdown: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
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
