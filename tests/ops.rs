//! What an operator watches: /healthz, /readyz, /metrics, request ids in responses and logs.

mod common;

use common::*;

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[test]
fn health_readiness_and_metrics_move_with_traffic() {
    let s = Server::start();
    assert_eq!(s.req("GET", "/healthz").send().status, 200);
    let r = s.req("GET", "/readyz").send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["checks"]["storage"], "ok");

    let data = bytes(123_456, 8);
    let d = push_blob(&s, "ops/app", &data);
    for _ in 0..3 {
        assert_eq!(
            s.req("GET", &format!("/v2/ops/app/blobs/{d}")).send().body,
            data
        );
    }
    let r = s.req("GET", "/metrics").send();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    assert_eq!(
        metric(
            &text,
            "edgeyard_http_requests_total{route=\"blob\",method=\"GET\",status=\"200\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "edgeyard_http_requests_total{route=\"upload_start\",method=\"POST\",status=\"201\"}"
        ),
        1.0
    );
    assert!(metric(&text, "edgeyard_http_received_bytes_total") >= data.len() as f64);
    assert!(metric(&text, "edgeyard_http_sent_bytes_total") >= 3.0 * data.len() as f64);
    assert_eq!(
        metric(
            &text,
            "edgeyard_http_request_duration_seconds_count{route=\"blob\"}"
        ),
        3.0
    );
    assert_eq!(metric(&text, "edgeyard_storage_blobs"), 1.0);
    assert_eq!(
        metric(&text, "edgeyard_storage_blob_bytes"),
        data.len() as f64
    );
    assert_eq!(metric(&text, "edgeyard_uploads_in_flight"), 0.0);

    // Request ids: generated, or the client's own echoed; both in the log line.
    let r = s.req("GET", "/v2/").send();
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 16);
    let r = s
        .req("GET", "/v2/")
        .header("X-Request-Id", "trace-abc.123")
        .send();
    assert_eq!(r.header("x-request-id"), Some("trace-abc.123"));
    let r = s
        .req("GET", "/v2/")
        .header("X-Request-Id", "bad id\"with spaces")
        .send();
    assert_ne!(r.header("x-request-id"), Some("bad id\"with spaces"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let log = s.log_text();
    assert!(log.contains(&format!("id={id}")), "{log}");
    assert!(log.contains("id=trace-abc.123"));

    // Storage that cannot take writes makes the registry not ready.
    let uploads = s.data_dir.join("uploads");
    std::fs::remove_dir_all(&uploads).unwrap();
    std::fs::write(&uploads, b"not a directory").unwrap();
    let r = s.req("GET", "/readyz").send();
    assert_eq!(r.status, 503);
    assert_ne!(r.json()["checks"]["storage"], "ok");
    std::fs::remove_file(&uploads).unwrap();
    std::fs::create_dir(&uploads).unwrap();
    assert_eq!(s.req("GET", "/readyz").send().status, 200);
}
