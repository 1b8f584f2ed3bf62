//! Hostile neighbours: what one client or one account's history must not cost the others,
//! against the real binary. Each test runs the reproduction a review found it with.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

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
    access_add(&dir, "user:alice", "team/**", "push");
    access_add(&dir, "group:ops", "team/**", "pull");
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
    access_add(&dir, "user:bob", "team/**", "push");
    let s = Server::start_auth(&dir, &[]);
    let root = basic("root", "root-password-1");
    let r = s.req("DELETE", "/api/v1/users/bob").auth(&root).send();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .req("POST", "/api/v1/users")
        .auth(&root)
        .header("Content-Type", "application/json")
        .body(r#"{"name":"bob","password":"another-password-2"}"#)
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .req("POST", "/v2/team/app/blobs/uploads/")
        .auth(&basic("bob", "another-password-2"))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    let r = s.req("GET", "/api/v1/rules").auth(&root).send();
    assert!(!String::from_utf8_lossy(&r.body).contains("user:bob"));
}

/// Regression: under umask 022 the data directory was created 0755 and the metadata 0644, so
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
        assert!(files.iter().any(|f| f.ends_with("store.redb")), "{files:?}");
        for f in files {
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
        .auth(&basic("alice", "alice-password-1"))
        .send();
    assert_eq!(r.status, 200);
}

/// A server whose connections are closed after 3 s of sending nothing, with one 40 MiB blob
/// in `pub/big` (anonymous pull needs no login: authentication is off).
fn big_blob_server(tmp: &Path) -> (Server, String, Vec<u8>) {
    let cfg = tmp.join("edgeyard.toml");
    std::fs::write(&cfg, "[server]\nsend_timeout_secs = 3\n").unwrap();
    let s = Server::start_with(&tmp.join("data"), &["--config", cfg.to_str().unwrap()]);
    let data = bytes(40 << 20, 17);
    let d = push_blob(&s, "pub/big", &data);
    (s, d, data)
}

/// A pull from `src` (a loopback address of its own), read whole; panics when nothing comes
/// for 60 s.
fn victim_pull(s: &Server, src: [u8; 4], digest: &str) -> (Vec<u8>, std::time::Duration) {
    let t = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = s.port();
    let path = format!("/v2/pub/big/blobs/{digest}");
    let body = rt.block_on(async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind((std::net::Ipv4Addr::from(src), 0).into())
            .unwrap();
        let stream = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let mut c = stream.into_std().unwrap();
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut c, false).body
    });
    (body, t.elapsed())
}

/// Regression: about a dozen HTTP/1.1 connections that asked for a 40 MiB blob and never
/// read held every shared read buffer, and every other client's blob pull hung (over 150 s)
/// until they left. Another client's pull now goes at once, and the stalled connections are
/// closed after the send timeout, freeing what they held.
#[test]
fn slow_readers_never_hold_up_other_clients_pulls() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, d, data) = big_blob_server(tmp.path());
    let mut attackers = Vec::new();
    for _ in 0..16 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        write!(c, "GET /v2/pub/big/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        attackers.push(c); // never read
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (got, took) = victim_pull(&s, [127, 0, 0, 2], &d);
    assert!(got == data, "the victim's pull came back whole");
    assert!(
        took < std::time::Duration::from_secs(10),
        "another client's pull waited {took:?}"
    );
    // A pull from the attacker's own address shares the attacker's buffers, so it waits
    // while the send timeout closes the stalled connections a few at a time (3 s each
    // round), then goes.
    let (got, took) = victim_pull(&s, [127, 0, 0, 1], &d);
    assert!(got == data);
    assert!(took < std::time::Duration::from_secs(45), "{took:?}");
    // The victim could only go once stalled connections were closed (their pieces held the
    // share): reading the attackers' sockets now, some end short of the blob. (Those that
    // never got a piece may still be open, and reading them lets them finish.)
    let mut ended = 0;
    for mut c in attackers {
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut sink = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match c.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        if total < data.len() {
            ended += 1;
        }
    }
    assert!(ended >= 1, "no stalled connection was cut short");
}

/// Regression: one HTTP/2 connection that set its flow-control window to 0 and opened 40
/// streams of blob GETs it never read stalled every other client's blob pull until it
/// left. It now holds at most its connection's share, and is closed after the send timeout.
#[test]
fn an_http2_connection_with_a_zero_window_holds_only_its_share() {
    use http_body_util::Empty;
    let tmp = tempfile::tempdir().unwrap();
    let (s, d, data) = big_blob_server(tmp.path());
    let port = s.port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let path = format!("/v2/pub/big/blobs/{d}");
    let (held, conn_task) = rt.block_on(async move {
        let io = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .initial_stream_window_size(0)
                .initial_connection_window_size(65_535)
                .handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        let conn_task = tokio::spawn(conn);
        let mut held = Vec::new();
        for _ in 0..40 {
            let req = http::Request::get(format!("http://127.0.0.1:{port}{path}"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            send.ready().await.unwrap();
            held.push(send.send_request(req).await.unwrap()); // bodies never read
        }
        (held, conn_task)
    });
    assert_eq!(held.len(), 40);
    assert!(held.iter().all(|r| r.status() == 200));
    let (got, took) = victim_pull(&s, [127, 0, 0, 3], &d);
    assert!(got == data);
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    // After the send timeout the server closes the stalled connection.
    let closed = rt.block_on(async move {
        tokio::time::timeout(std::time::Duration::from_secs(15), conn_task).await
    });
    assert!(closed.is_ok(), "the zero-window connection is still open");
    drop(held);
}

/// Regression: an HTTP/2 connection that made one request and then only answered pings
/// stayed open for ever (1,024 of them locked everyone out). A connection with nothing in
/// flight is closed after the header read timeout, as an idle HTTP/1.1 one is.
#[test]
fn idle_http2_connections_are_closed() {
    use http_body_util::Empty;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, "[server]\nheader_read_timeout_secs = 2\n").unwrap();
    let s = Server::start_with(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let port = s.port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let took = rt.block_on(async move {
        let io = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(std::time::Duration::from_millis(500))
                .keep_alive_while_idle(true)
                .handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        let conn_task = tokio::spawn(conn);
        let req = http::Request::get(format!("http://127.0.0.1:{port}/v2/"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        drop(r);
        let t = std::time::Instant::now();
        tokio::time::timeout(std::time::Duration::from_secs(20), conn_task)
            .await
            .expect("the idle connection was never closed")
            .unwrap()
            .ok();
        t.elapsed()
    });
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
}

/// Regression: manifests were accepted below the disk floor (a pusher filled the disk with
/// 4 MiB indexes until the metadata store failed). A manifest PUT is refused with 507 below
/// the floor, as uploads are, and nothing is stored.
#[test]
fn manifests_are_refused_below_the_disk_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    let cfg = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let cd = push_blob(&s, "ci/app", &cfg);
    drop(s);
    // A floor no disk here can meet.
    let toml = tmp.path().join("floor.toml");
    std::fs::write(&toml, "[storage]\nmin_free_bytes = 1125899906842624\n").unwrap();
    let s = Server::start_with(&dir, &["--config", toml.to_str().unwrap()]);
    let m = image_manifest((&cd, cfg.len()), &[]);
    let r = s
        .req("PUT", "/v2/ci/app/manifests/v1")
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send();
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("nearly full"));
    assert_eq!(s.req("GET", "/v2/ci/app/manifests/v1").send().status, 404);
    // Reading goes on.
    assert_eq!(
        s.req("GET", &format!("/v2/ci/app/blobs/{cd}")).send().body,
        cfg
    );
}

/// Regression: with `v*` immutable, deleting the tag was refused, but deleting a child
/// manifest of the index `v1` points at, and a layer blob of the image `v2`, answered 202,
/// and the immutable images no longer pulled. Everything reachable from an immutable tag
/// is immutable; what no immutable tag reaches is deleted as before.
#[test]
fn what_an_immutable_tag_reaches_cannot_be_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &[
            "repo",
            "immutable",
            "add",
            "--repos",
            "prod/**",
            "--tags",
            "v*",
        ],
        "",
    );
    let s = Server::start_in(&dir);
    let sha = |b: &[u8]| sha256(b);
    // Two platform images under mutable tags, and an index of both under `v1`.
    let (r, c1) = put_image(&s, "prod/app", "c1", 1, 1000);
    assert_eq!(r.status, 201);
    let (r, c2) = put_image(&s, "prod/app", "c2", 2, 1000);
    assert_eq!(r.status, 201);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&c1),
              "size": c1.len(), "platform": { "architecture": "amd64", "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&c2),
              "size": c2.len(), "platform": { "architecture": "arm64", "os": "linux" } },
        ]
    })
    .to_string();
    let r = s
        .req("PUT", "/v2/prod/app/manifests/v1")
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index.clone())
        .send();
    assert_eq!(r.status, 201);
    let (r, v2) = put_image(&s, "prod/app", "v2", 3, 1000);
    assert_eq!(r.status, 201);
    let v2_layer = serde_json::from_slice::<serde_json::Value>(&v2).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let refused = |path: String| {
        let r = s.req("DELETE", &path).send();
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "DENIED"),
            "{path}"
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains("immutable"),
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    };
    refused(format!("/v2/prod/app/manifests/{}", sha(&c1)));
    refused(format!("/v2/prod/app/blobs/{v2_layer}"));
    let c2_config = serde_json::from_slice::<serde_json::Value>(&c2).unwrap()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    refused(format!("/v2/prod/app/blobs/{c2_config}"));
    // Both images still pull whole.
    assert_eq!(
        s.req("GET", "/v2/prod/app/manifests/v1").send().body,
        index.as_bytes()
    );
    assert_eq!(
        s.req("GET", &format!("/v2/prod/app/manifests/{}", sha(&c1)))
            .send()
            .body,
        c1
    );
    assert_eq!(
        s.req("GET", &format!("/v2/prod/app/blobs/{v2_layer}"))
            .send()
            .status,
        200
    );
    // The mutable tags themselves may go (the manifests stay, held by `v1`), and what no
    // immutable tag reaches may be deleted.
    assert_eq!(
        s.req("DELETE", "/v2/prod/app/manifests/c1").send().status,
        202
    );
    let (r, free) = put_image(&s, "prod/app", "scratch", 4, 1000);
    assert_eq!(r.status, 201);
    let r = s
        .req("DELETE", &format!("/v2/prod/app/manifests/{}", sha(&free)))
        .send();
    assert_eq!(r.status, 202);
}

/// `blobs/` bind-mounted read-only over itself for the test; unmounted on drop.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> Option<ReadOnly> {
        let ok = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["--bind"]) {
            unavailable("bind mounts (the test must run as root: scripts/test)");
            return None;
        }
        let guard = ReadOnly(dir.to_path_buf());
        let remounted = std::process::Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(remounted, "remounting {} read-only", dir.display());
        Some(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Regression: with `blobs/` read-only, `/readyz` said ready and every push ended in a 500.
/// Readiness now probes where commits write, and the push is refused with 507.
#[test]
fn read_only_blob_storage_is_not_ready_and_refuses_pushes_with_507() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    push_blob(&s, "ci/app", b"before");
    assert_eq!(s.req("GET", "/readyz").send().status, 200);
    let Some(_ro) = ReadOnly::mount(&dir.join("blobs")) else {
        return;
    };
    let r = s.req("GET", "/readyz").send();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["checks"]["storage"]
        .as_str()
        .unwrap()
        .contains("blobs/"));
    let data = b"after".to_vec();
    let r = s
        .req(
            "POST",
            &format!("/v2/ci/app/blobs/uploads/?digest={}", sha256(&data)),
        )
        .body(data)
        .send();
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    // What is stored still pulls.
    let d = sha256(b"before");
    assert_eq!(
        s.req("GET", &format!("/v2/ci/app/blobs/{d}")).send().body,
        b"before"
    );
}

/// Regression: a pusher that filled the disk left the metadata store refusing every write
/// (the store's failure after ENOSPC lasted the life of the process) while `/readyz` said
/// ready, and only `kill -9` got out of it; later a restart by systemd was the way out. Now
/// the failure is answered 507 and flips readiness, and once space is back the store is
/// reopened in place: writes work again in the same process, and a later start has
/// everything acknowledged.
#[test]
fn a_metadata_store_that_ran_out_of_disk_recovers_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let Some(_disk) = SmallDisk::mount(&dir, 12) else {
        return;
    };
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, "[storage]\nmin_free_bytes = 0\n").unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let _sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let mut cmd = serve_cmd(
        &dir,
        &["--insecure-http", "--no-auth"],
        &["--config", cfg.to_str().unwrap()],
    );
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let s = Server::launch(cmd, &dir);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let cd = push_blob(&s, "ci/app", &config);
    let manifest = |n: usize, pad: usize| {
        let mut m: serde_json::Value =
            serde_json::from_slice(&image_manifest((&cd, config.len()), &[])).unwrap();
        m["annotations"] = serde_json::json!({ "n": n.to_string(), "pad": "x".repeat(pad) });
        serde_json::to_vec(&m).unwrap()
    };
    let put = |tag: &str, body: Vec<u8>| {
        s.req("PUT", &format!("/v2/ci/app/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
    };
    let v1 = manifest(0, 0);
    assert_eq!(put("v1", v1.clone()).status, 201);

    // Fill the disk but for a few KiB, then push manifests until the store runs out.
    let free_kib = {
        let out = std::process::Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(&dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    std::fs::write(dir.join("filler"), vec![0u8; (free_kib - 48) << 10]).unwrap();
    let mut refused = None;
    for n in 1..200 {
        let r = put(&format!("t{n}"), manifest(n, 3000));
        if r.status != 201 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the disk never filled");
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    let ready = s.req("GET", "/readyz").send();
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["checks"]["metadata"]
            .as_str()
            .unwrap()
            .contains("cannot be written"),
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    // Pulls go on meanwhile.
    assert_eq!(s.req("GET", "/v2/ci/app/manifests/v1").send().body, v1);

    // Space is back: the same process takes writes again.
    std::fs::remove_file(dir.join("filler")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.req("GET", "/readyz").send().status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready again: {}",
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(s
        .log_text()
        .contains("the metadata store was reopened and takes writes again"));
    assert_eq!(put_after(&s, "after", manifest(999, 0)), 201);
    assert_eq!(s.req("GET", "/v2/ci/app/manifests/v1").send().body, v1);
    assert!(s.terminate().success());

    // A later start has everything acknowledged.
    let s = Server::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(s.req("GET", "/readyz").send().status, 200);
    assert_eq!(s.req("GET", "/v2/ci/app/manifests/v1").send().body, v1);
    assert_eq!(
        s.req("GET", "/v2/ci/app/manifests/after").send().body,
        manifest(999, 0)
    );
}

fn put_after(s: &Server, tag: &str, body: Vec<u8>) -> u16 {
    s.req("PUT", &format!("/v2/ci/app/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(body)
        .send()
        .status
}
