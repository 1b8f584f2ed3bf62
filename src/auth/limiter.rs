//! Failed-login throttling per client address and per user name: after a few failures,
//! each further attempt must wait an exponentially growing time (capped), answered with 429.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before throttling starts.
const FREE_FAILURES: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Entries forgotten after this long without failures.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
const MAX_ENTRIES: usize = 10_000;

/// The address a client counts as, for throttling and per-client bounds: IPv4 addresses as
/// they are, IPv6 by /64 (one host usually holds a whole /64), IPv4-mapped IPv6 as IPv4.
pub fn client_address(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            std::net::IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last: Instant,
}

#[derive(Default)]
pub struct Limiter {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Limiter {
    /// How long `key` must still wait, if it is throttled.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| e.blocked_until > now)
            .map(|e| e.blocked_until - now)
    }

    pub fn failure(&self, key: &str, now: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if map.len() >= MAX_ENTRIES {
                // Under a flood of distinct keys, forget the least recent half.
                let mut lasts: Vec<Instant> = map.values().map(|e| e.last).collect();
                lasts.sort();
                let cut = lasts[lasts.len() / 2];
                map.retain(|_, e| e.last > cut);
            }
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last: now,
        });
        e.failures += 1;
        e.last = now;
        if e.failures >= FREE_FAILURES {
            let exp = (e.failures - FREE_FAILURES).min(10);
            e.blocked_until = now + Duration::from_secs(1 << exp).min(MAX_BACKOFF);
        }
    }

    pub fn success(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_after_failures_and_resets_on_success() {
        let l = Limiter::default();
        let t = Instant::now();
        for _ in 0..4 {
            l.failure("ip:1", t);
            assert_eq!(l.wait("ip:1", t), None);
        }
        l.failure("ip:1", t);
        assert_eq!(l.wait("ip:1", t), Some(Duration::from_secs(1)));
        l.failure("ip:1", t);
        assert_eq!(l.wait("ip:1", t), Some(Duration::from_secs(2)));
        assert_eq!(l.wait("ip:1", t + Duration::from_secs(3)), None);
        assert_eq!(l.wait("ip:2", t), None);
        l.success("ip:1");
        assert_eq!(l.wait("ip:1", t), None);
    }
}
