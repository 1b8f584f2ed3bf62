//! Hostile neighbours: what one client or one account's history must not cost the others,
//! against the real binary. Each test runs the reproduction a review found it with.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn access(dir: &Path, subject: &str, repos: &str, actions: &str) {
    edgeyard(
        dir,
        &[
            "access",
            "add",
            "--subject",
            subject,
            "--repos",
            repos,
            "--actions",
            actions,
        ],
        "",
    );
}

/// Regression: the access rules of a deleted user stayed, and a new user of the same name
/// inherited them. Deleting an account deletes the rules that name it, offline and through
/// the admin API.
#[test]
fn a_new_account_never_inherits_a_deleted_ones_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "root", "--admin", "--password-stdin"],
        "root-password-1\n",
    );
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin"],
        "alice-password-1\n",
    );
    access(&dir, "user:alice", "team/**", "push");
    access(&dir, "group:ops", "team/**", "pull");
    edgeyard(&dir, &["user", "del", "alice"], "");
    let rules = edgeyard(&dir, &["access", "list"], "");
    assert!(!rules.contains("user:alice"), "{rules}");
    assert!(rules.contains("group:ops"), "other rules stay: {rules}");

    // Through the admin API of a running server.
    edgeyard(
        &dir,
        &["user", "add", "bob", "--password-stdin"],
        "bob-password-1\n",
    );
    access(&dir, "user:bob", "team/**", "push");
    let s = Server::start_auth(&dir, &[]);
    let root = basic("root", "root-password-1");
    let r = s
        .req("DELETE", "/api/v1/users/bob")
        .header("Authorization", &root)
        .send();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .req("POST", "/api/v1/users")
        .header("Authorization", &root)
        .header("Content-Type", "application/json")
        .body(r#"{"name":"bob","password":"another-password-2"}"#)
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .req("POST", "/v2/team/app/blobs/uploads/")
        .header("Authorization", &basic("bob", "another-password-2"))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    let r = s
        .req("GET", "/api/v1/rules")
        .header("Authorization", &root)
        .send();
    assert!(!String::from_utf8_lossy(&r.body).contains("user:bob"));
}

/// Regression: under umask 022 the data directory was created 0755 and `meta/db` 0644, so
/// every local user could read the argon2 hashes. Everything is private whatever the umask,
/// and a store made by an older version is made private at the next start.
#[test]
fn the_data_directory_is_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = tmp.path().join("fresh");
    let old = tmp.path().join("old");
    // An older store: world-readable directories.
    for d in [old.clone(), old.join("meta"), old.join("blobs")] {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for dir in [&fresh, &old] {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("umask 022; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_edgeyard"))
            .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir);
        let s = Server::launch(cmd, dir);
        assert_eq!(s.req("GET", "/healthz").send().status, 200);
        s.terminate();
        for d in [dir.to_path_buf(), dir.join("meta"), dir.join("blobs")] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        let mut files = vec![dir.join("admin-password")];
        for e in std::fs::read_dir(dir.join("meta")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                files.push(p);
            }
        }
        assert!(files.iter().any(|f| f.ends_with("db")), "{files:?}");
        for f in files {
            if dir == &old && f.ends_with("db") {
                // sled's file from before: private through its directory.
                continue;
            }
            assert_eq!(mode(&f) & 0o077, 0, "{}", f.display());
        }
    }
}

/// Regression: failed logins with huge user names from many addresses grew the server's
/// memory without bound (180 KB names, 8 -> 356 MiB) and wrote the names whole into the
/// log. A name no account can have is refused without being kept or logged whole.
#[test]
fn huge_user_names_from_many_addresses_cost_no_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin"],
        "alice-password-1\n",
    );
    let s = Server::start_auth(&dir, &[]);
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    };
    // Warm up: a few ordinary requests, so the baseline holds the runtime's buffers.
    for _ in 0..5 {
        s.req("GET", "/v2/").send();
    }
    let before = rss();
    let port = s.port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<u16> = rt.block_on(async move {
        let mut out = Vec::new();
        for i in 0..300u32 {
            // A different source address each time (127.0.1.0/24 and up), as a botnet would.
            let src = std::net::Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, (i % 250 + 1) as u8);
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind((src, 0).into()).unwrap();
            let mut c = sock
                .connect(([127, 0, 0, 1], port).into())
                .await
                .unwrap()
                .into_std()
                .unwrap();
            c.set_nonblocking(false).unwrap();
            let name: String = format!("{i:06}").repeat(20_000);
            let auth = basic(&name, "guess");
            let req = format!(
                "GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
            );
            c.write_all(req.as_bytes()).unwrap();
            let mut head = [0u8; 12];
            c.read_exact(&mut head).unwrap();
            out.push(
                std::str::from_utf8(&head[9..12])
                    .unwrap()
                    .parse::<u16>()
                    .unwrap(),
            );
        }
        out
    });
    assert!(statuses.iter().all(|&c| c == 401), "{statuses:?}");
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 16 << 10,
        "resident memory grew {grown} KiB after 300 logins with 120 KB names"
    );
    // The log holds no name whole.
    let log = s.log_text();
    assert!(
        log.lines().all(|l| l.len() < 4096),
        "a log line of {} bytes",
        log.lines().map(str::len).max().unwrap_or(0)
    );
    // Alice is not slowed by any of it.
    let r = s
        .req("GET", "/v2/")
        .header("Authorization", &basic("alice", "alice-password-1"))
        .send();
    assert_eq!(r.status, 200);
}
