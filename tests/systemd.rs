//! Running as a systemd service: the unit file verifies and is hardened, the notification
//! protocol (READY, WATCHDOG, STOPPING) reaches a test NOTIFY_SOCKET, and SIGTERM in the
//! middle of an upload lets it finish, then exits cleanly with the upload resumable.

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The repository's unit with ExecStart pointing at the binary under test.
fn unit_for_test(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/edgeyard.service"
    ))
    .unwrap();
    let p = dir.join("edgeyard.service");
    std::fs::write(
        &p,
        text.replace("/usr/local/bin/edgeyard", env!("CARGO_BIN_EXE_edgeyard")),
    )
    .unwrap();
    p
}

#[test]
fn unit_file_verifies_and_is_hardened() {
    if !require_tool("systemd-analyze") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let unit = unit_for_test(tmp.path());
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("edgeyard.service"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for edgeyard.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"));
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} (README quotes 1.3)");
}

fn recv_until(sock: &UnixDatagram, want: &str, deadline: Instant) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within the deadline; got {seen:?}");
}

#[test]
fn notifications_reach_systemd() {
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let data = tmp.path().join("data");
    let mut cmd = serve_cmd(&data, &["--insecure-http", "--no-auth"], &[]);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000");
    let s = Server::launch(cmd, &data);
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = recv_until(&sock, "READY=1", deadline);
    assert!(
        ready
            .last()
            .unwrap()
            .contains(&format!("STATUS=serving on http://{}", s.addr)),
        "{ready:?}"
    );
    recv_until(&sock, "WATCHDOG=1", deadline);
    recv_until(&sock, "WATCHDOG=1", deadline);
    assert!(s.terminate().success());
    recv_until(&sock, "STOPPING=1", Instant::now() + Duration::from_secs(5));
}

#[test]
fn sigterm_during_an_upload_lets_it_finish_then_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data);
    let blob = bytes(3_000_000, 77);
    let loc = s
        .req("POST", "/v2/sig/term/blobs/uploads/")
        .send()
        .header("location")
        .unwrap()
        .to_string();
    // A PATCH whose body arrives in two halves, with SIGTERM in between.
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        conn,
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nContent-Range: 0-{}\r\n\r\n",
        s.addr,
        blob.len(),
        blob.len() - 1
    )
    .unwrap();
    conn.write_all(&blob[..1_000_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(&blob[1_000_000..]).unwrap();
    let resp = read_response(&mut conn, false);
    assert_eq!(resp.status, 202, "the in-flight chunk completes");
    drop(conn);
    assert!(s.terminate().success(), "exit 0 after draining");
    // Restarted, the upload continues from where it stood and verifies.
    let s = Server::start_in(&data);
    let st = s.req("GET", &loc).send();
    assert_eq!(
        st.header("range"),
        Some(format!("0-{}", blob.len() - 1).as_str())
    );
    let d = sha256(&blob);
    assert_eq!(
        s.req("PUT", &format!("{loc}?digest={d}")).send().status,
        201
    );
    assert_eq!(
        s.req("GET", &format!("/v2/sig/term/blobs/{d}")).send().body,
        blob
    );
}

#[test]
fn install_puts_binary_unit_and_config_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
            .arg("install")
            .args(args)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plan = run(&["--dry-run"]);
    assert!(
        plan.contains("would: install -m 755") && plan.contains("edgeyard.service"),
        "{plan}"
    );
    assert!(!root.exists(), "a dry run writes nothing");
    run(&[]);
    let repo = env!("CARGO_MANIFEST_DIR");
    assert_eq!(
        std::fs::read(root.join("usr/local/bin/edgeyard")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_edgeyard")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/systemd/system/edgeyard.service")).unwrap(),
        std::fs::read_to_string(format!("{repo}/systemd/edgeyard.service")).unwrap()
    );
    let config = root.join("etc/edgeyard/edgeyard.toml");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        std::fs::read_to_string(format!("{repo}/systemd/edgeyard.toml")).unwrap()
    );
    // An operator's configuration survives a re-install (an upgrade).
    std::fs::write(&config, "listen = \"0.0.0.0:443\"\n").unwrap();
    let again = run(&[]);
    assert!(again.contains("kept the existing"), "{again}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "listen = \"0.0.0.0:443\"\n"
    );
}
