//! `edgeyard serve`: open the store, set up TLS, serve until SIGINT/SIGTERM, flush, exit.

use crate::auth::Auth;
use crate::cli::ServeArgs;
use std::path::PathBuf;

use crate::config::{FileConfig, ServeConfig, ServeFlags};
use crate::edge::Edge;
use crate::http::App;
use crate::registry::Registry;
use crate::telemetry::FilterReload;
use crate::tls::{info, Tls, TlsPaths};

use super::{load_file, Failure};

/// What a SIGHUP needs to rebuild the configuration: the file and the flags it was built from.
struct Reloader {
    file: Option<PathBuf>,
    flags: ServeFlags,
    log: FilterReload,
}

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    tune_malloc();
    let file = load_file(&args.data)?;
    let flags = ServeFlags {
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
    };
    let config = ServeConfig::build(file, flags.clone())?;
    let log = crate::telemetry::init(&config.log, config.log_format)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let reloader = Reloader {
        file: args.data.config.clone(),
        flags,
        log,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(serve(config, reloader));
    // Blocking tasks still running (a metadata write stuck on a full disk, say) must not
    // hold the exit: everything acknowledged is already durable.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map_err(Failure::Runtime)
}

/// How long a stop may take from the signal, whatever the store does; past it the process
/// exits (status 1) rather than hang until systemd kills it. Every acknowledged write was
/// made durable before its answer, so nothing acknowledged is lost by that.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Arms the backstop of [`SHUTDOWN_LIMIT`].
fn exit_if_stop_hangs() {
    std::thread::spawn(|| {
        std::thread::sleep(SHUTDOWN_LIMIT);
        tracing::error!(
            "stopping took longer than {} s (the store does not answer?): exiting now",
            SHUTDOWN_LIMIT.as_secs()
        );
        eprintln!(
            "edgeyard: stopping took longer than {} s: exiting now",
            SHUTDOWN_LIMIT.as_secs()
        );
        std::process::exit(1);
    });
}

/// Re-reads the configuration on every SIGHUP and applies what can change while serving:
/// the log filter and everything TLS (names, certificate files, client auth, intervals; the
/// certificate is reloaded or re-issued as needed). Other changes are reported as needing a
/// restart. A configuration that does not parse is refused and the running one kept.
async fn reload_on_hup(r: Reloader, mut current: ServeConfig, tls: Option<Tls>, edge: Edge) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration and certificates");
        let file = match &r.file {
            Some(p) => FileConfig::load(p),
            None => Ok(FileConfig::default()),
        };
        let new = match file.and_then(|f| ServeConfig::build(f, r.flags.clone())) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
                continue;
            }
        };
        if new.log != current.log {
            match (r.log)(&new.log) {
                Ok(()) => tracing::info!(filter = %new.log, "log filter changed"),
                Err(e) => tracing::error!(error = %e, "log filter not changed"),
            }
        }
        let restart = [
            ("listen", new.listen != current.listen),
            ("data_dir", new.data_dir != current.data_dir),
            ("insecure_http", new.insecure_http != current.insecure_http),
            ("log_format", new.log_format != current.log_format),
            ("[auth]", new.auth != current.auth),
            ("[server]", new.limits != current.limits),
        ];
        for (key, changed) in restart {
            if changed {
                tracing::warn!(
                    key,
                    "changed in the configuration: takes effect after a restart"
                );
            }
        }
        if let Some(t) = &tls {
            t.reconfigure(new.tls.clone()).await;
        }
        if new.mirrors != current.mirrors {
            edge.set_mirrors(new.mirrors.clone());
            tracing::info!(mirrors = new.mirrors.len(), "mirrors reconfigured");
        }
        if new.sync != current.sync {
            edge.set_sync_rules(new.sync.clone());
            tracing::info!(rules = new.sync.len(), "sync rules reconfigured");
        }
        if new.trust != current.trust {
            let (registry, declared) = (edge.registry().clone(), new.trust.clone());
            let applied =
                tokio::task::spawn_blocking(move || registry.apply_declared_trust(&declared)).await;
            match applied {
                Ok(Ok(a)) => log_applied(&a),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "[trust] not applied; the trust keys and policies stay as they were")
                }
                Err(e) => tracing::error!(error = %e, "[trust] not applied"),
            }
        }
        if new.replication != current.replication {
            edge.set_replication_rules(new.replication.clone());
            tracing::info!(
                rules = new.replication.len(),
                "replication rules reconfigured"
            );
        }
        current = new;
    }
}

/// One line for what the configuration's `[trust]` section changed, if anything.
pub(super) fn log_applied(a: &crate::registry::trust_declared::Applied) {
    if a.changed() {
        tracing::info!(
            keys_added = ?a.keys_added,
            keys_replaced = ?a.keys_replaced,
            keys_removed = ?a.keys_removed,
            policies_added = a.policies_added,
            policies_removed = a.policies_removed,
            "trust keys and policies declared in the configuration applied"
        );
    }
}

async fn serve(config: ServeConfig, reloader: Reloader) -> Result<(), String> {
    let registry = Registry::open(&config.data_dir).map_err(|e| {
        format!(
            "cannot open the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let applied = registry
        .apply_declared_trust(&config.trust)
        .map_err(|e| format!("the configuration's [trust] section: {e}"))?;
    log_applied(&applied);
    registry.set_disk_floor(config.disk_floor);
    registry.set_verify_pulls(config.verify_pulls);
    registry.set_events(std::sync::Arc::new(crate::metrics::Observer));
    registry.set_max_uploads_per_client(config.limits.max_uploads_per_client);
    let edge = Edge::new(registry.clone());
    edge.set_mirrors(config.mirrors.clone());
    edge.set_sync_rules(config.sync.clone());
    edge.set_replication_rules(config.replication.clone());
    for m in &config.mirrors {
        tracing::info!(name = %m.name, upstream = %m.url, namespace = m.prefix.as_deref().unwrap_or("(default)"), tag_ttl_secs = m.tag_ttl.as_secs(), "mirroring");
    }
    registry.set_explicit_creation(
        config.repository_creation == crate::config::RepositoryCreation::Explicit,
    );
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
            auth.count_refusals(std::sync::Arc::new(|reason| {
                crate::metrics::global().auth_failure(reason)
            }));
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
    let hup = tokio::spawn(reload_on_hup(
        reloader,
        config.clone(),
        tls.clone(),
        edge.clone(),
    ));
    let scheduled_sync = tokio::spawn(schedule(edge.clone()));
    let trim = tokio::spawn(return_freed_memory());
    let scheduled_gc = config.gc.map(|(every, options)| {
        let registry = registry.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // Retention first, so the tags it lets go are collected in the same run.
                if let Err(e) = registry.apply_retention(false).await {
                    tracing::error!(error = %e, "scheduled retention failed");
                }
                if let Err(e) = registry.gc(options).await {
                    tracing::error!(error = %e, "scheduled garbage collection failed");
                }
            }
        })
    });
    let app = App {
        accounts: crate::auth::Accounts::new(registry.meta_handle()),
        registry: registry.clone(),
        edge,
        tls,
        auth,
        body_read_timeout: config.limits.body_read_timeout,
    };
    let (restart_tx, mut restart_rx) = tokio::sync::watch::channel(None::<String>);
    let supervisor = tokio::spawn(supervise_store(
        registry.clone(),
        crate::systemd::watchdog_interval(),
        std::env::var_os("NOTIFY_SOCKET").is_some(),
        restart_tx,
    ));
    crate::systemd::notify_logged(&format!("READY=1\nSTATUS=serving on {scheme}://{addr}"));
    crate::server::run(listener, app, config.limits, async {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = restart_rx.wait_for(|r| r.is_some()) => {}
        }
        exit_if_stop_hangs();
        crate::systemd::notify_logged("STOPPING=1");
    })
    .await;
    supervisor.abort();
    hup.abort();
    scheduled_sync.abort();
    trim.abort();
    if let Some(g) = scheduled_gc {
        g.abort();
    }
    let _ = stop_tx.send(true);
    if let Some(m) = maintenance {
        let _ = m.await;
    }
    let restart = restart_rx.borrow().clone();
    if let Some(why) = restart {
        // Exit status 1: systemd's Restart=on-failure starts a fresh process, whose store
        // opens cleanly now that the disk has room.
        return Err(format!("stopped to be restarted: {why}"));
    }
    registry
        .close()
        .map_err(|e| format!("flushing metadata on shutdown: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Watches the metadata store and pings systemd's watchdog while it is sound.
///
/// After a failed write (a full disk) the store refuses every later write until it is
/// reopened. While the disk is still full the process stays up, not ready (`/readyz` says
/// why), serving pulls. Once the disk has room again the store is reopened in place and
/// writes work again, with no restart. Only if that reopen fails, or writes hang, does a
/// process run by systemd stop cleanly with status 1 (`restart`) for systemd's
/// `Restart=on-failure` to start a fresh one; without systemd it says, once a minute, that
/// it needs a restart.
async fn supervise_store(
    registry: Registry,
    watchdog: Option<std::time::Duration>,
    under_systemd: bool,
    restart: tokio::sync::watch::Sender<Option<String>>,
) {
    use crate::registry::MetadataHealth;
    let every = watchdog.map_or(std::time::Duration::from_secs(5), |w| w / 2);
    let mut tick = tokio::time::interval(every);
    let mut last_said: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let broken =
            match registry.metadata_health().await {
                MetadataHealth::Ok => None,
                MetadataHealth::Hung => Some("metadata writes do not finish".to_string()),
                MetadataHealth::Failing(e) => {
                    match registry.free_space().await {
                        Ok((avail, floor)) if avail >= floor => {
                            match registry.reopen_metadata().await {
                        Ok(()) => None,
                        Err(reopen) => Some(format!(
                            "metadata cannot be written ({e}) though the disk has room again, and reopening the store failed ({reopen})"
                        )),
                    }
                        }
                        _ => None,
                    }
                }
            };
        match broken {
            None => {
                if watchdog.is_some() {
                    crate::systemd::notify_logged("WATCHDOG=1");
                }
            }
            Some(why) if under_systemd => {
                tracing::error!("{why}: stopping, for systemd to start edgeyard afresh");
                let _ = restart.send(Some(why));
                return;
            }
            Some(why) => {
                if last_said.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                    tracing::error!("{why}: restart edgeyard to recover");
                    last_said = Some(std::time::Instant::now());
                }
            }
        }
    }
}

/// Runs each `[[sync]]` and `[[replication]]` rule that has an interval: once at start,
/// then every interval. The rules are read from the edge each round, so a SIGHUP can
/// change them.
async fn schedule(edge: Edge) {
    use std::collections::HashMap;
    use std::time::Instant;
    let mut last: HashMap<String, Instant> = HashMap::new();
    let mut due = |key: String, every: std::time::Duration| {
        if last.get(&key).is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        last.insert(key, Instant::now());
        true
    };
    loop {
        for rule in edge.sync_rules().iter() {
            match rule.interval {
                Some(every) if due(format!("sync {rule:?}"), every) => {}
                _ => continue,
            }
            let progress: crate::edge::SyncProgress =
                std::sync::Arc::new(|line: &str| tracing::debug!("sync: {line}"));
            match edge.sync(rule, progress).await {
                Ok(r) => {
                    for f in &r.failures {
                        tracing::warn!(mirror = %rule.mirror, failure = %f, "scheduled sync: not synced");
                    }
                    tracing::info!(mirror = %rule.mirror, images = r.images.len(), blobs_fetched = r.blobs_fetched, blobs_present = r.blobs_present, bytes = r.bytes_fetched, failures = r.failures.len(), "scheduled sync done");
                }
                Err(e) => {
                    tracing::error!(mirror = %rule.mirror, error = %e, "scheduled sync failed")
                }
            }
        }
        for rule in edge.replication_rules().iter() {
            match rule.interval {
                Some(every) if due(format!("replication {rule:?}"), every) => {}
                _ => continue,
            }
            match edge.replicate(rule).await {
                Ok(r) => {
                    for f in &r.failures {
                        tracing::warn!(rule = %rule.name, failure = %f, "scheduled replication: not pushed");
                    }
                    let sent: u64 = r.pushed.iter().map(|p| p.blobs_sent).sum();
                    let unchanged = r.pushed.iter().filter(|p| p.unchanged).count();
                    tracing::info!(rule = %rule.name, target = %rule.url, images = r.pushed.len(), unchanged, blobs_sent = sent, failures = r.failures.len(), "scheduled replication done");
                }
                Err(e) => {
                    tracing::error!(rule = %rule.name, error = %e, "scheduled replication failed")
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

/// glibc gives each thread that allocates its own heap arena and keeps their free memory:
/// with the blocking threads a burst of pulls or pushes starts, that is tens of megabytes
/// held after the burst. Two arenas serve this server's few allocating threads as well.
///
/// And glibc raises its mmap threshold to the size of any large block freed: after the first
/// login frees argon2's 19 MiB, every buffer below 19 MiB comes from the heap, where the
/// metadata database's small long-lived allocations pin it in place. A 150-second soak of
/// pushes, pulls, deletes and GC then grew from 44 to 85 MiB resident. With the threshold
/// fixed at 512 KiB, large rare blocks (argon2, manifests, upload write buffers) are mapped
/// and unmapped whole and the same soak stays level (26 to 29 MiB); request read buffers,
/// at most 256 KiB (`server`), stay on the heap where they are reused. (At 1 MiB, a zeroed
/// block the database allocates at start came from the heap and cost 5 MiB at idle.)
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc allocator parameters. It runs first thing in `serve`,
    // before the runtime starts any thread, so no allocation races with the change.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 10);
    }
}

/// Hands heap memory freed after a burst of work back to the system once the server goes
/// quiet. glibc keeps freed memory inside its arenas (fragmented by the metadata database's
/// many small allocations, it cannot return most of it by itself): after 60,000 small-blob
/// pushes the process held 100 MiB resident, 64 MiB after a trim. Trimming only when no
/// request arrived for a whole interval keeps the short pause it takes (arena locks held
/// while pages are released) away from busy moments.
async fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const QUIET: std::time::Duration = std::time::Duration::from_secs(10);
        let metrics = crate::metrics::global();
        let mut seen = metrics.served();
        let mut worked = false;
        loop {
            tokio::time::sleep(QUIET).await;
            let now = metrics.served();
            if now != seen {
                (seen, worked) = (now, true);
            } else if worked {
                worked = false;
                // SAFETY: malloc_trim takes no pointers; it only releases free pages that
                // glibc's allocator owns, under the allocator's own locks.
                let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
            }
        }
    }
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
