//! The accept loop: one task per connection, HTTP/1.1 and h2c via hyper-util's auto builder,
//! bounds on what one client can hold (connections, time to send a request, its share of the
//! read buffers pulls use), a watchdog that closes idle and stalled connections
//! (`activity`), a lingering close so that early refusals reach their client (`linger`), and
//! graceful shutdown that lets in-flight requests finish (within a bound) before returning.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::http::gate::client_address;
use crate::http::App;
use crate::storage::ReadShare;

mod activity;
mod linger;
mod plain_http;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest read buffer of an HTTP/1.1 connection, which also bounds a request's headers.
/// Uploads arrive in reads of up to this size. 1 MiB buffers took 38 MiB at the peak of
/// four 512 MiB pushes in a row; 256 KiB ones 23 MiB, for about the same CPU per byte.
const READ_BUFFER: usize = 256 << 10;
/// Most header lines one HTTP/1.1 request may carry (more: 431).
const MAX_HEADERS: usize = 100;

/// What one client may hold: the `[server]` table of the configuration. Every bound is there
/// so that a slow, broken or hostile client costs a fixed amount of memory, descriptors and
/// time, whatever it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must be complete within this. A new connection must deliver its
    /// first request's headers within it too, and an HTTP/1.1 connection idle for this long
    /// between requests is closed.
    pub header_read_timeout: Duration,
    /// A request body that delivers no byte for this long is abandoned (and an upload's
    /// session is released for the client to resume).
    pub body_read_timeout: Duration,
    /// A connection whose answers take no byte for this long while being sent is closed, and
    /// the read buffers its answers held are freed: a client that stops reading (or holds
    /// an HTTP/2 window at 0) cannot keep them.
    pub send_timeout: Duration,
    /// Open connections in all; more are closed at once.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 /64 counts as one address).
    pub max_connections_per_client: usize,
    /// Upload sessions one client (user, or address when anonymous) may have open at once.
    pub max_uploads_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_client: 128,
            max_uploads_per_client: 64,
        }
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Counts {
    total: usize,
    /// Open connections per client, and the read buffers the client's pulls share.
    per_client: HashMap<IpAddr, (usize, Arc<tokio::sync::Semaphore>)>,
    /// When a refusal was last logged: one warning per interval, not one per connection.
    last_warned: Option<Instant>,
    refused_since_warned: u64,
}

#[derive(Clone)]
struct Tracker {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_client: usize,
}

/// One admitted connection; gives its place back when dropped (the connection's task ends).
struct Slot {
    counts: Arc<Mutex<Counts>>,
    client: IpAddr,
    /// The read buffers this client's connections share (see [`ReadShare`]).
    buffers: Arc<tokio::sync::Semaphore>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What one client may hold once three quarters of all slots are taken.
    fn busy_share(&self) -> usize {
        (self.max_total / 64).max(4)
    }

    /// A slot for a new connection from `peer`, or `None` when a bound is reached.
    fn admit(&self, peer: IpAddr) -> Option<Slot> {
        let client = client_address(peer);
        let mut c = self.lock();
        let mine = c.per_client.get(&client).map_or(0, |(n, _)| *n);
        let refusal = if c.total >= self.max_total {
            Some("max_connections")
        } else if mine >= self.max_per_client {
            Some("max_connections_per_client")
        } else if c.total >= self.max_total / 4 * 3 && mine >= self.busy_share() {
            // The last quarter of the slots is kept for clients that hold few: a handful of
            // addresses at their per-client bound cannot lock everyone else out.
            Some("max_connections (the last quarter is kept for clients holding few)")
        } else {
            None
        };
        if let Some(bound) = refusal {
            c.refused_since_warned += 1;
            let due = c
                .last_warned
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if due {
                tracing::warn!(
                    client = %client,
                    open = c.total,
                    from_client = mine,
                    refused = c.refused_since_warned,
                    "connection refused: {bound} reached (the connection is closed at once)"
                );
                c.last_warned = Some(Instant::now());
                c.refused_since_warned = 0;
            }
            return None;
        }
        c.total += 1;
        let (n, buffers) = c
            .per_client
            .entry(client)
            .or_insert_with(|| (0, ReadShare::client_semaphore()));
        *n += 1;
        let buffers = buffers.clone();
        Some(Slot {
            counts: self.counts.clone(),
            client,
            buffers,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some((n, _)) = c.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.client);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: App,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(READ_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        // Pings find peers that vanished (a device unplugged mid-connection), so their
        // connections do not hold a client's slots for ever.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let tracker = Tracker {
        counts: Arc::default(),
        max_total: limits.max_connections,
        max_per_client: limits.max_connections_per_client,
    };
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Over a bound, the connection is dropped (closed) before anything is read.
        let Some(slot) = tracker.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = activity::Activity::new();
        let stream = linger::Lingering::new(stream, Some(activity.clone()));
        let started = Arc::new(AtomicBool::new(false));
        let share = ReadShare::new(slot.buffers.clone(), limits.send_timeout);
        let service = {
            let (app, started, activity) = (app.clone(), started.clone(), activity.clone());
            service_fn(move |mut req| {
                started.store(true, Ordering::Relaxed);
                let request = activity.begin();
                req.extensions_mut().insert(share.clone());
                let app = app.clone();
                async move {
                    let resp = crate::http::serve(app, peer, req).await?;
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|body| activity::Tracked::new(body, request)),
                    )
                }
            })
        };
        let tls = app.tls.as_ref().map(|t| t.server_config());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let serving =
                async {
                    match tls {
                        None => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            first_request_within(
                                watcher.watch(conn.into_owned()),
                                limits.header_read_timeout,
                                &started,
                            )
                            .await
                        }
                        Some(config) => {
                            // The handshake runs in the connection's own task, bounded in time, so a
                            // slow or silent client never holds up the accept loop.
                            // One bound for the first bytes and the handshake together.
                            let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
                            let mut stream = stream;
                            if plain_http::answered(&mut stream, HANDSHAKE_TIMEOUT).await {
                                return Some(Ok(()));
                            }
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            let stream =
                                match tokio::time::timeout_at(deadline, acceptor.accept(stream))
                                    .await
                                {
                                    Ok(Ok(s)) => s,
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                        return Some(Ok(()));
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        return Some(Ok(()));
                                    }
                                };
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            first_request_within(
                                watcher.watch(conn.into_owned()),
                                limits.header_read_timeout,
                                &started,
                            )
                            .await
                        }
                    }
                };
            // Whichever comes first: the connection ends, or it idles or stalls (dropping
            // it closes it and frees whatever its answers held).
            let result = tokio::select! {
                r = serving => r,
                verdict = activity.watch(limits.header_read_timeout, limits.send_timeout) => {
                    tracing::debug!(%peer, ?verdict, "connection closed by the watchdog");
                    Some(Ok(()))
                }
            };
            match result {
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended with an error")
                }
                None => {
                    tracing::debug!(%peer, "connection closed: no request within the header read timeout")
                }
                Some(Ok(())) => {}
            }
        });
    }
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
}

/// Runs a connection, closing it (`None`) when its first request has not started within
/// `timeout`. hyper's own header timeout only starts once it knows the protocol, and telling
/// HTTP/1.1 from HTTP/2 waits for the client's first bytes: a client that connects and sends
/// nothing (or half an HTTP/2 preface) would otherwise hold its connection for ever. After
/// the first request, hyper's header timeout (HTTP/1.1) and keep-alive pings (HTTP/2) apply.
async fn first_request_within<F, E>(
    conn: F,
    timeout: Duration,
    started: &AtomicBool,
) -> Option<Result<(), E>>
where
    F: Future<Output = Result<(), E>>,
{
    let mut conn = std::pin::pin!(conn);
    let early = tokio::select! {
        r = &mut conn => Some(r),
        _ = tokio::time::sleep(timeout) => None,
    };
    match early {
        Some(r) => Some(r),
        None if started.load(Ordering::Relaxed) => Some(conn.await),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_address(a), client_address(b));
        assert_ne!(client_address(a), client_address(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            client_address(mapped),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn tracker_bounds_per_client_and_in_all_and_gives_slots_back() {
        let t = Tracker {
            counts: Arc::default(),
            max_total: 3,
            max_per_client: 2,
        };
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        let a1 = t.admit(a).unwrap();
        let _a2 = t.admit(a).unwrap();
        assert!(t.admit(a).is_none(), "third from one client");
        let _b1 = t.admit(b).unwrap();
        assert!(t.admit(c).is_none(), "fourth in all");
        drop(a1);
        assert!(t.admit(c).is_some());
        assert_eq!(t.lock().per_client.get(&a).map(|(n, _)| *n), Some(1));
    }

    /// Regression: 1,024 idle connections from 8 addresses (128 each, the per-client
    /// bound) took every slot. Past three quarters, a client holding its busy share gets
    /// no more, and the rest stays for clients holding few.
    #[test]
    fn the_last_quarter_of_slots_is_kept_for_clients_holding_few() {
        let t = Tracker {
            counts: Arc::default(),
            max_total: 1024,
            max_per_client: 128,
        };
        let mut held = Vec::new();
        for i in 0..8u8 {
            let ip: IpAddr = [10, 0, 0, i].into();
            while let Some(s) = t.admit(ip) {
                held.push(s);
            }
        }
        assert!(
            held.len() < 1024 - 200,
            "{} taken by 8 addresses",
            held.len()
        );
        for i in 0..200u8 {
            let newcomer: IpAddr = [10, 1, 0, i].into();
            held.push(t.admit(newcomer).expect("a slot for a newcomer"));
        }
    }
}
