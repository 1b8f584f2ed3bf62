//! Every hostile neighbour at once, while a victim works: a zero-window HTTP/2 connection
//! with 40 blob streams, slow readers, idle HTTP/2 connections from several addresses,
//! logins with huge user names from many addresses, a password-guessing loop against the
//! victim's account, and a pusher filling a small disk with 3 MiB manifests, all against one
//! edgeyard while the real Docker daemon logs in, pushes and pulls as the victim. The
//! victim's every operation must succeed within five times its unloaded time (plus two
//! seconds of slack for a two-core box that also runs the attackers); afterwards memory
//! is back near where it was (but for the manifests the filler got stored, which the
//! metadata store keeps in its cache) and `edgeyard fsck` finds the store clean. The figures are
//! printed (SECURITY.md, "load held while attacked").

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::docker::{make_rootfs, Docker};
use common::*;

const ROOT_PW: &str = "root-password-1";
const VICTIM_PW: &str = "victim-password-1";
const CI_PW: &str = "ci-password-1";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A TCP connection to the server from a loopback address of the attacker's choosing.
async fn connect_from(src: [u8; 4], port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind((std::net::Ipv4Addr::from(src), 0).into())?;
    sock.connect(([127, 0, 0, 1], port).into()).await
}

/// The victim's round: import a fresh image, push it, remove it locally, pull it back.
/// Returns the push and pull times.
fn victim_round(docker: &Docker, dir: &std::path::Path, addr: &str, round: u64) -> [Duration; 2] {
    let work = dir.join(format!("round{round}"));
    std::fs::create_dir_all(&work).unwrap();
    let tar = make_rootfs(&work, 1000 + round);
    let image = format!("{addr}/factory/line:r{round}");
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let id = docker.inspect(&image, "{{.Id}}");
    let t = Instant::now();
    docker.run(&["push", &image]);
    let push = t.elapsed();
    docker.run(&["rmi", &image]);
    let t = Instant::now();
    docker.run(&["pull", &image]);
    let pull = t.elapsed();
    assert_eq!(docker.inspect(&image, "{{.Id}}"), id, "round {round}");
    [push, pull]
}

#[test]
fn a_victim_works_while_every_attack_runs_at_once() {
    let Some(mut docker) = Docker::from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    docker.config = Some(tmp.path().join("docker-config"));
    let dir = tmp.path().join("data");
    let Some(_disk) = SmallDisk::mount(&dir, 160) else {
        return;
    };
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(
        &cfg,
        "[server]\nsend_timeout_secs = 3\nheader_read_timeout_secs = 5\n\
         [storage]\nmin_free_bytes = 33554432\n",
    )
    .unwrap();
    for (user, pw) in [("root", ROOT_PW), ("line3", VICTIM_PW), ("ci", CI_PW)] {
        let mut args = vec!["user", "add", user, "--password-stdin"];
        if user == "root" {
            args.push("--admin");
        }
        edgeyard(&dir, &args, &format!("{pw}\n"));
    }
    access_add(&dir, "user:line3", "factory/**", "push");
    access_add(&dir, "user:ci", "ci/**", "push");
    access_add(&dir, "anonymous", "pub/**", "pull");
    // The filler gets a namespace of its own with a bound: it fills that, not the disk.
    edgeyard(
        &dir,
        &[
            "repo",
            "quota",
            "add",
            "--repos",
            "ci/**",
            "--max-bytes",
            "12582912",
        ],
        "",
    );
    let s = Server::start_auth(&dir, &["--config", cfg.to_str().unwrap()]);
    let port = s.port();
    let root = basic("root", ROOT_PW);
    let big = bytes(40 << 20, 23);
    let big_digest = push_blob_as(&s, Some(&root), "pub/big", &big);
    let ci_config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let ci_cd = push_blob_as(&s, Some(&basic("ci", CI_PW)), "ci/filler", &ci_config);

    // Unloaded: the victim's times.
    let (ok, out) = docker.login(&s.addr, "line3", VICTIM_PW);
    assert!(ok, "{out}");
    let mut unloaded = Vec::new();
    for round in 0..2 {
        unloaded.extend(victim_round(&docker, tmp.path(), &s.addr, round));
    }
    let unloaded_max = unloaded.iter().max().copied().unwrap();
    std::thread::sleep(Duration::from_secs(12)); // the allocator trims after 10 quiet seconds
    let rss_before = rss_kib(s.pid());

    // The attackers.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let blob_path = format!("/v2/pub/big/blobs/{big_digest}");
    let mut attackers = Vec::new();
    {
        // a) One HTTP/2 connection, window 0, 40 blob streams never read; again when closed.
        let (stop, counts, path) = (stop.clone(), counts.clone(), blob_path.clone());
        attackers.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(io) = connect_from([127, 0, 3, 1], port).await else {
                        continue;
                    };
                    let Ok((mut send, conn)) = hyper::client::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .initial_stream_window_size(0)
                    .handshake(hyper_util::rt::TokioIo::new(io))
                    .await
                    else {
                        continue;
                    };
                    let conn = tokio::spawn(conn);
                    let mut held = Vec::new();
                    for _ in 0..40 {
                        let req = http::Request::get(format!("http://127.0.0.1:{port}{path}"))
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap();
                        if send.ready().await.is_err() {
                            break;
                        }
                        match send.send_request(req).await {
                            Ok(r) => held.push(r),
                            Err(_) => break,
                        }
                    }
                    counts[0].fetch_add(held.len() as u64, Ordering::Relaxed);
                    let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
                }
            });
        }));
    }
    {
        // b) 12 HTTP/1.1 slow readers of the big blob; each reconnects when closed.
        for i in 0..12u8 {
            let (stop, counts, path) = (stop.clone(), counts.clone(), blob_path.clone());
            attackers.push(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(c) = rt.block_on(connect_from([127, 0, 4, 1 + i], port)) else {
                        continue;
                    };
                    let mut c = c.into_std().unwrap();
                    let _ = c.set_nonblocking(false);
                    let _ = write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                    counts[1].fetch_add(1, Ordering::Relaxed);
                    // Never read; hold it 10 s (the server gives up on it after 3), then
                    // come back with another.
                    let held = Instant::now();
                    while !stop.load(Ordering::Relaxed) && held.elapsed() < Duration::from_secs(10)
                    {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    drop(c);
                }
            }));
        }
    }
    {
        // c) Idle HTTP/2 connections from 8 addresses, 16 each, made again when closed.
        let (stop, counts) = (stop.clone(), counts.clone());
        attackers.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conns = tokio::task::JoinSet::new();
                while !stop.load(Ordering::Relaxed) {
                    while conns.len() < 128 {
                        let n = conns.len() as u8;
                        let Ok(io) = connect_from([127, 0, 5, 1 + n % 8], port).await else {
                            break;
                        };
                        counts[2].fetch_add(1, Ordering::Relaxed);
                        conns.spawn(async move {
                            let Ok((mut send, conn)) = hyper::client::conn::http2::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            )
                            .handshake(hyper_util::rt::TokioIo::new(io))
                            .await
                            else {
                                return;
                            };
                            let conn = tokio::spawn(conn);
                            let req = http::Request::get(format!("http://127.0.0.1:{port}/v2/"))
                                .body(http_body_util::Empty::<bytes::Bytes>::new())
                                .unwrap();
                            let _ = send.send_request(req).await;
                            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
                        });
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(500), conns.join_next()).await;
                }
                conns.abort_all();
            });
        }));
    }
    {
        // d) Logins with 120 KB user names from 200 addresses, and e) a password-guessing
        //    loop against the victim's account from one address.
        let (stop, counts) = (stop.clone(), counts.clone());
        attackers.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let guess = i.is_multiple_of(4);
                let (src, auth) = if guess {
                    ([127, 0, 7, 1], basic("line3", &format!("guess-{i}")))
                } else {
                    let name = format!("{i:06}").repeat(20_000);
                    ([127, 0, 6 + (i % 200 / 250) as u8, (i % 200 + 1) as u8], basic(&name, "x"))
                };
                let Ok(c) = rt.block_on(connect_from(src, port)) else {
                    continue;
                };
                let mut c = c.into_std().unwrap();
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    c,
                    "GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
                );
                let mut sink = Vec::new();
                let _ = c.read_to_end(&mut sink);
                counts[if guess { 4 } else { 3 }].fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    {
        // f) The filler: 3 MiB manifests into its namespace until refused, then again.
        let (stop, counts, addr, cd) = (stop.clone(), counts.clone(), s.addr.clone(), ci_cd);
        let config_len = ci_config.len();
        attackers.push(std::thread::spawn(move || {
            let auth = basic("ci", CI_PW);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut m: serde_json::Value =
                    serde_json::from_slice(&image_manifest((&cd, config_len), &[])).unwrap();
                m["annotations"] = serde_json::json!({ "n": n.to_string(), "pad": "f".repeat(3 << 20) });
                let body = serde_json::to_vec(&m).unwrap();
                let mut c = match std::net::TcpStream::connect(&addr) {
                    Ok(c) => c,
                    Err(_) => continue,
                };
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                let head = format!(
                    "PUT /v2/ci/filler/manifests/t{n} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
                     Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(&body);
                let mut answer = Vec::new();
                let _ = c.read_to_end(&mut answer);
                if answer.starts_with(b"HTTP/1.1 201") {
                    counts[5].fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }));
    }

    // Let the attacks take hold, then the victim works.
    std::thread::sleep(Duration::from_secs(4));
    let started = Instant::now();
    let (ok, out) = docker.login(&s.addr, "line3", VICTIM_PW);
    assert!(ok, "the victim's login while attacked: {out}");
    let login = started.elapsed();
    let mut loaded = Vec::new();
    for round in 2..6 {
        loaded.extend(victim_round(&docker, tmp.path(), &s.addr, round));
    }
    let loaded_max = loaded.iter().max().copied().unwrap();
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.join();
    }
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    eprintln!(
        "attacked: victim push/pull unloaded max {unloaded_max:?}, attacked max {loaded_max:?} \
         (login {login:?}); attackers: {} zero-window streams, {} slow readers, {} idle HTTP/2 \
         connections, {} huge-name logins, {} guesses at the victim's password, {} filler \
         manifests accepted",
        c[0], c[1], c[2], c[3], c[4], c[5]
    );
    let bound = unloaded_max * 5 + Duration::from_secs(2);
    assert!(
        loaded_max <= bound,
        "attacked {loaded:?}, unloaded {unloaded:?}: over the bound {bound:?}"
    );
    assert!(
        c[0] > 0 && c[1] > 0 && c[2] > 0 && c[3] > 0 && c[4] > 0,
        "{c:?}"
    );

    // Memory back near where it was once the attackers are gone (the server hands freed
    // memory back after 10 to 20 quiet seconds).
    // What the filler got stored (up to its quota) may stay resident for a while (the
    // metadata store's page cache, the allocator's free lists), so three times its size is
    // allowed for. Measured: 44.9 MiB after with sled as the store, 43.0 MiB with redb.
    let stored_kib = c[5] * 3 * 1024 + 1024;
    let allowed = rss_before + 16 * 1024 + 3 * stored_kib;
    let quiet = Instant::now();
    let mut rss_after = rss_kib(s.pid());
    while rss_after > allowed && quiet.elapsed() < Duration::from_secs(45) {
        std::thread::sleep(Duration::from_secs(1));
        rss_after = rss_kib(s.pid());
    }
    eprintln!(
        "attacked: resident memory {rss_before} KiB before, {rss_after} KiB {:.0} s after \
         ({stored_kib} KiB of stored filler manifests allowed for)",
        quiet.elapsed().as_secs_f64()
    );
    assert!(
        rss_after <= allowed,
        "{rss_before} KiB before, {rss_after} KiB after, {allowed} KiB allowed"
    );
    // The filler filled its namespace, not the disk: the victim could push throughout.
    assert_eq!(s.req("GET", "/readyz").send().status, 200);
    assert_eq!(s.terminate().code(), Some(0));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(["fsck", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
