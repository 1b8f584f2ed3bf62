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
    s.wait_log("id=trace-abc.123");
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

fn edgeyard_cmd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_edgeyard"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn config_check_validates_the_shipped_file_and_names_mistakes() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/edgeyard.toml");
    let out = edgeyard_cmd(&["config", "check", shipped], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective = String::from_utf8(out.stdout).unwrap();
    assert!(effective.contains("listen = \"0.0.0.0:5000\""));
    // The printed configuration is itself a valid file.
    let tmp = tempfile::tempdir().unwrap();
    let again = tmp.path().join("effective.toml");
    std::fs::write(&again, &effective).unwrap();
    assert!(
        edgeyard_cmd(&["config", "check", again.to_str().unwrap()], &[])
            .status
            .success()
    );
    // The environment overrides the file.
    let out = edgeyard_cmd(
        &["config", "check", shipped],
        &[("EDGEYARD_LISTEN", "127.0.0.1:7000")],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"127.0.0.1:7000\""));
    // Unknown keys name the key and the line; exit code 2.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:1\"\n[tls]\nnmes = [\"x\"]\n").unwrap();
    let out = edgeyard_cmd(&["config", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nmes") && err.contains("line 3"), "{err}");
}

#[test]
fn json_logs_carry_one_object_per_line_with_request_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_with(&dir, &["--log-format", "json"]);
    let r = s
        .req("GET", "/v2/")
        .header("X-Request-Id", "json-req-1")
        .send();
    assert_eq!(r.status, 200);
    s.wait_log("json-req-1");
    let log = s.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let req = lines
        .iter()
        .find(|l| l["id"] == "json-req-1")
        .expect("the request line");
    assert_eq!(req["route"], "base");
    assert_eq!(req["status"], 200);
    assert_eq!(req["method"], "GET");
}

#[test]
fn sighup_reloads_log_filter_and_tls_names_and_refuses_a_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("edgeyard.toml");
    let write = |log: &str, names: &str| {
        std::fs::write(
            &cfg,
            format!("log = \"{log}\"\n[tls]\nnames = [{names}]\ninterface_addresses = false\n"),
        )
        .unwrap()
    };
    // Request lines (target edgeyard::http) off at first; the start-up lines stay.
    write("info,edgeyard::http=warn", "\"first.test\"");
    let s = Server::start_tls(&dir, &["--config", cfg.to_str().unwrap()]);
    let show = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeyard"))
            .args(["cert", "show", "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(show().contains("DNS:first.test") && !show().contains("DNS:second.test"));
    // Waits until `what` has been logged at least `n` times.
    let wait_for_n = |what: &str, n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while s.log_text().matches(what).count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} in the log:\n{}",
                s.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let wait_for = |what: &str| wait_for_n(what, 1);

    let curl = |host: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(dir.join("tls/ca.crt"))
            .arg(format!("https://{host}:{}/v2/", s.port()))
            .args(["--resolve", &format!("{host}:{}:127.0.0.1", s.port())])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("first.test"), "200");
    assert_ne!(
        curl("second.test"),
        "200",
        "not a name of the certificate yet"
    );
    assert!(
        !s.log_text().contains("route=\"base\""),
        "request lines are filtered out"
    );

    write("info", "\"first.test\", \"second.test\"");
    s.signal("HUP");
    wait_for("log filter changed");
    // The first issue was at start; the reload issues the second.
    wait_for_n("issued a new server certificate", 2);
    assert!(show().contains("DNS:second.test"), "{}", show());
    assert_eq!(
        curl("second.test"),
        "200",
        "the new name is served without a restart"
    );
    wait_for("route=\"base\"");

    // A broken file is refused; the registry keeps serving with what it had.
    std::fs::write(&cfg, "listen = [broken\n").unwrap();
    s.signal("HUP");
    wait_for("configuration reload refused");
    assert_eq!(curl("second.test"), "200");
}
