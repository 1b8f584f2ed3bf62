//! The systemd notification protocol (`sd_notify`), written out because it is one datagram:
//! `READY=1` once the listener, storage and TLS are up, `WATCHDOG=1` at half the watchdog
//! interval while the runtime is alive, `STOPPING=1` when shutdown begins. Outside systemd
//! (no `NOTIFY_SOCKET`) every call does nothing.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification; `Ok(false)` when not running under a notify-type unit.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): the name follows the '@'.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

/// Logs instead of failing: a lost notification must not stop the registry.
pub fn notify_logged(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!(error = %e, state, "could not notify systemd");
    }
}

/// The watchdog interval systemd asked for, if it is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}
