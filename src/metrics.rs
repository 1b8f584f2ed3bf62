//! Process-wide counters and histograms, rendered in the Prometheus text format at
//! `/metrics`. A leaf module: every layer may count here, nothing here calls back.
//!
//! Label values are bounded sets (route kinds, methods, status codes, failure reasons), never
//! repository names or user input, so the number of series stays small.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<HashMap<&'static str, Histogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    uploads_in_flight: AtomicI64,
    auth_failures: Mutex<HashMap<&'static str, u64>>,
    mirror: Mutex<HashMap<&'static str, u64>>,
    trust: Mutex<HashMap<&'static str, u64>>,
    gc_runs: AtomicU64,
    gc_blobs: AtomicU64,
    gc_bytes: AtomicU64,
    /// Requests answered since start (all routes), for housekeeping that waits for quiet.
    served: AtomicU64,
}

/// Values read at scrape time from other parts (storage, TLS).
pub struct Gauges {
    pub storage_bytes: Option<u64>,
    pub blob_count: Option<u64>,
    pub corrupt_blobs: Option<u64>,
    pub certificate_expiry: Option<i64>,
}

pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::default)
}

fn bump(counters: &Mutex<HashMap<&'static str, u64>>, label: &'static str) {
    *counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(label)
        .or_default() += 1;
}

/// A counter with one label, in label order.
fn labelled(
    s: &mut String,
    name: &str,
    help: &str,
    label: &str,
    counters: &Mutex<HashMap<&'static str, u64>>,
) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
    let mut all: Vec<_> = counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .into_iter()
        .collect();
    all.sort();
    for (v, n) in all {
        let _ = writeln!(s, "{name}{{{label}=\"{v}\"}} {n}");
    }
}

/// The method as a static label (anything unusual counts as `OTHER`).
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// The process's metrics as the registry's observer (`Registry::set_events`).
pub struct Observer;

impl crate::registry::Events for Observer {
    fn bytes_received(&self, n: u64) {
        global().bytes_in(n);
    }

    fn upload_started(&self) {
        global().uploads_in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn upload_ended(&self) {
        global().uploads_in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn gc_run(&self, blobs: u64, bytes: u64) {
        let m = global();
        m.gc_runs.fetch_add(1, Ordering::Relaxed);
        m.gc_blobs.fetch_add(blobs, Ordering::Relaxed);
        m.gc_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn mirror(&self, result: &'static str) {
        bump(&global().mirror, result);
    }

    fn trust(&self, result: &'static str) {
        bump(&global().trust, result);
    }
}

impl Metrics {
    pub fn request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        took: Duration,
        bytes_out: u64,
    ) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, method, status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut lat = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = lat.entry(route).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests have been answered since start.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub fn auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP edgeyard_http_requests_total Requests answered, by route kind, method and status.");
        let _ = writeln!(s, "# TYPE edgeyard_http_requests_total counter");
        let mut reqs: Vec<_> = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .into_iter()
            .collect();
        reqs.sort();
        for ((route, method, status), n) in reqs {
            let _ = writeln!(s, "edgeyard_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP edgeyard_http_request_duration_seconds Time to answer a request (until the response head; bodies stream after).");
        let _ = writeln!(s, "# TYPE edgeyard_http_request_duration_seconds histogram");
        let mut lat: Vec<_> = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .into_iter()
            .collect();
        lat.sort_by_key(|(r, _)| *r);
        for (route, h) in lat {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(s, "edgeyard_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(
                s,
                "edgeyard_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "edgeyard_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "edgeyard_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut s,
            "edgeyard_http_received_bytes_total",
            "Blob and manifest bytes received.",
            self.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "edgeyard_http_sent_bytes_total",
            "Response body bytes sent.",
            self.bytes_out.load(Ordering::Relaxed),
        );
        let gc = [
            (
                "edgeyard_gc_runs_total",
                "Garbage collection runs (dry runs not counted).",
                &self.gc_runs,
            ),
            (
                "edgeyard_gc_deleted_blobs_total",
                "Blobs deleted by garbage collection.",
                &self.gc_blobs,
            ),
            (
                "edgeyard_gc_freed_bytes_total",
                "Bytes freed by garbage collection.",
                &self.gc_bytes,
            ),
        ];
        for (name, help, v) in gc {
            counter(&mut s, name, help, v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            s,
            "# HELP edgeyard_uploads_in_flight Upload requests streaming now.\n# TYPE edgeyard_uploads_in_flight gauge\nedgeyard_uploads_in_flight {}",
            self.uploads_in_flight.load(Ordering::Relaxed)
        );
        labelled(
            &mut s,
            "edgeyard_auth_failures_total",
            "Refused logins and tokens, by reason.",
            "reason",
            &self.auth_failures,
        );
        labelled(
            &mut s,
            "edgeyard_mirror_requests_total",
            "Pull-through cache answers: hit (fresh in the cache), fetched (from the upstream), revalidated (upstream confirmed the cached tag), stale (upstream unreachable, cache served), failed.",
            "result",
            &self.mirror,
        );
        labelled(
            &mut s,
            "edgeyard_trust_checks_total",
            "Images a trust policy covers, asked for (manifest GET or HEAD) or imported: served (asked for, its policies met), accepted (an import, its policies met), refused (an enforced policy unmet), audit_unmet (an audit policy unmet, let through).",
            "result",
            &self.trust,
        );
        let gauge = |s: &mut String, name: &str, help: &str, v: Option<String>| {
            if let Some(v) = v {
                let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
        };
        gauge(
            &mut s,
            "edgeyard_storage_blob_bytes",
            "Bytes of blob files on disk (refreshed at most every 30 s).",
            g.storage_bytes.map(|v| v.to_string()),
        );
        gauge(
            &mut s,
            "edgeyard_storage_blobs",
            "Blob files on disk (refreshed at most every 30 s).",
            g.blob_count.map(|v| v.to_string()),
        );
        gauge(
            &mut s,
            "edgeyard_storage_corrupt_blobs",
            "Blobs recorded corrupt (by fsck or by a pull that read them back wrong) and refused until pushed again.",
            g.corrupt_blobs.map(|v| v.to_string()),
        );
        gauge(
            &mut s,
            "edgeyard_tls_certificate_expiry_timestamp_seconds",
            "When the served TLS certificate expires (unix time).",
            g.certificate_expiry.map(|v| v.to_string()),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("blob", "GET", 200, Duration::from_millis(3), 100);
        m.request("blob", "GET", 200, Duration::from_millis(300), 50);
        m.auth_failure("bad_credentials");
        m.bytes_in(7);
        let _g = m.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
        let text = m.render(&Gauges {
            storage_bytes: Some(5),
            blob_count: Some(1),
            corrupt_blobs: Some(0),
            certificate_expiry: None,
        });
        assert!(text.contains(
            "edgeyard_http_requests_total{route=\"blob\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "edgeyard_http_request_duration_seconds_bucket{route=\"blob\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "edgeyard_http_request_duration_seconds_bucket{route=\"blob\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("edgeyard_http_sent_bytes_total 150"));
        assert!(text.contains("edgeyard_http_received_bytes_total 7"));
        assert!(text.contains("edgeyard_auth_failures_total{reason=\"bad_credentials\"} 1"));
        assert!(text.contains("edgeyard_uploads_in_flight 1"));
        assert!(text.contains("edgeyard_storage_blobs 1"));
        assert!(text.contains("edgeyard_storage_corrupt_blobs 0"));
        assert!(!text.contains("certificate_expiry"));
    }
}
