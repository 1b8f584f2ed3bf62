//! `edgeyard fsck` on the real binary: a clean store, a flipped byte found offline and
//! through a running server's admin API, the corrupt blob refused to every client (docker
//! included) from then on, quarantine, repair by a new push, and the metadata checks. And
//! a flipped byte found by the pull that reads it (`[storage] verify_pulls`): the client
//! never gets a clean end of wrong bytes, and the blob is recorded corrupt as fsck would.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::*;
use common::*;

/// `edgeyard fsck ARGS --data-dir DIR`: (exit code, stdout, stderr).
fn fsck(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .arg("fsck")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `edgeyard fsck --server URL ARGS` against a server without authentication.
fn fsck_server(s: &Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .arg("fsck")
        .args(args)
        .args(["--server", &format!("http://{}", s.addr)])
        .env("EDGEYARD_PASSWORD", "unused-without-auth")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn blob_file(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Flips one bit of the byte at `at` in a file, in place.
fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

/// The digests of an image manifest's layers, as the registry serves it.
fn layers(s: &Server, repo: &str, tag: &str) -> Vec<String> {
    let r = s
        .req("GET", &format!("/v2/{repo}/manifests/{tag}"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// A GET of a blob recorded corrupt: refused with 409 UNSUPPORTED and a message, never
/// a byte of the blob; a HEAD says the blob is not there.
fn assert_refused(s: &Server, repo: &str, digest: &str, bad: &[u8]) {
    let r = s.req("GET", &format!("/v2/{repo}/blobs/{digest}")).send();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "UNSUPPORTED"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("corrupt") && message.contains(digest),
        "{message}"
    );
    assert!(r.body.len() < 1024 && !contains(&r.body, &bad[..64]));
    let r = s
        .req("GET", &format!("/v2/{repo}/blobs/{digest}"))
        .header("Range", "bytes=0-99")
        .send();
    assert_eq!(r.status, 409);
    let r = s.req("HEAD", &format!("/v2/{repo}/blobs/{digest}")).send();
    assert_eq!(r.status, 404, "a push must upload the blob again");
}

/// Every file under `dir` with the SHA-256 of its bytes (short failure messages).
fn hashes(dir: &Path) -> Vec<(PathBuf, String)> {
    snapshot(dir)
        .into_iter()
        .map(|(p, b)| (p, sha256(&b)))
        .collect()
}

/// Polls `done` for up to 10 s.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The problem lines of a human report: (severity, kind, object).
fn problems(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .filter(|l| l.starts_with("error") || l.starts_with("warning"))
        .map(|l| {
            let mut w = l.split_whitespace();
            let sev = w.next().unwrap().to_string();
            let kind = w.next().unwrap().to_string();
            let object = w.next().unwrap().trim_end_matches(':').to_string();
            (sev, kind, object)
        })
        .collect()
}

fn has(out: &str, kind: &str, object: &str) -> bool {
    problems(out)
        .iter()
        .any(|(_, k, o)| k == kind && o == object)
}

#[test]
fn a_clean_store_checks_out_with_its_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    put_image(&s, "clean/a", "v1", 1, 50_000);
    put_image(&s, "clean/b", "v1", 2, 70_000);
    // A layer shared by a second repository: one file, two links.
    let (_, m) = put_image(&s, "clean/a", "v2", 2, 70_000);
    let online = fsck_server(&s, &["--json"]);
    assert_eq!(online.0, 0, "{}{}", online.1, online.2);
    let report: serde_json::Value = serde_json::from_str(&online.1).unwrap();
    assert!(s.terminate().success());

    let (code, out, err) = fsck(&dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(problems(&out).is_empty(), "{out}");
    // Blobs: two configs and two layers (seed 2's are shared).
    let summary = out.lines().last().unwrap();
    assert!(
        summary.starts_with("checked 4 blobs (")
            && summary.contains(", 3 manifests, 6 links, 3 tags, 0 uploads in ")
            && summary.ends_with(": 0 errors, 0 warnings"),
        "{out}"
    );
    let bytes: u64 = summary["checked 4 blobs (".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Configs are `{"seed":N}`: 10 bytes each.
    assert_eq!(bytes, 50_000 + 70_000 + 10 + 10);
    assert_eq!(report["bytes_hashed"], bytes);
    assert_eq!(report["blobs_checked"], 4);
    assert_eq!(report["manifests_checked"], 3);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert!(!m.is_empty());
    // Nothing was quarantined or moved.
    assert!(!dir.join("quarantine").exists());
    // Warnings alone do not fail the check.
    std::fs::write(dir.join("blobs/stray.tmp"), b"x").unwrap();
    let (code, out, err) = fsck(&dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(problems(&out).len(), 1, "{out}");
    assert!(out.ends_with(": 0 errors, 1 warning\n"), "{out}");
}

#[test]
fn a_flipped_byte_is_found_refused_everywhere_and_repaired_by_a_push() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    let (r, m) = put_image(&s, "flip/app", "v1", 11, 100_000);
    assert_eq!(r.status, 201);
    let layer = bytes(100_000, 11);
    let digest = sha256(&layer);
    // The same layer in another repository, by mount.
    let r = s
        .req(
            "POST",
            &format!("/v2/flip/other/blobs/uploads/?mount={digest}&from=flip/app"),
        )
        .send();
    assert_eq!(r.status, 201);
    let file = blob_file(&dir, &digest);
    flip(&file, 5_000);
    let bad = std::fs::read(&file).unwrap();

    // Through the running server's admin API.
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(has(&out, "blob_corrupt", &digest), "{out}");
    assert!(
        has(
            &out,
            "reference_corrupt",
            &format!("flip/app@{}", sha256(&m))
        ),
        "{out}"
    );
    assert!(err.contains("the store has 2 problems"), "{err}");
    assert_eq!(problems(&out).len(), 2, "{out}");
    // The corrupt file is never served, in any repository.
    assert_refused(&s, "flip/app", &digest, &bad);
    assert_refused(&s, "flip/other", &digest, &bad);
    // A mount does not vouch for it either: the client is asked for the bytes.
    let r = s
        .req(
            "POST",
            &format!("/v2/flip/third/blobs/uploads/?mount={digest}&from=flip/app"),
        )
        .send();
    assert_eq!(r.status, 202);
    // The rest of the image is served as before.
    assert_eq!(
        s.req("GET", "/v2/flip/app/manifests/v1").send().body,
        m,
        "the manifest itself is sound"
    );

    // Detection sticks across a restart.
    assert!(s.terminate().success());
    let s = Server::start_in(&dir);
    assert_refused(&s, "flip/app", &digest, &bad);

    // A push of the right bytes repairs it.
    push_blob(&s, "flip/app", &layer);
    let r = s.req("GET", &format!("/v2/flip/app/blobs/{digest}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), digest);
    assert!(r.body == layer);
    let r = s
        .req("GET", &format!("/v2/flip/other/blobs/{digest}"))
        .send();
    assert_eq!((r.status, sha256(&r.body)), (200, digest.clone()));
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(problems(&out).is_empty(), "{out}");
}

/// A whole-blob GET over HTTP/1.1 read to the end: (the promised length, what arrived).
fn raw_get(s: &Server, path: &str) -> (usize, Vec<u8>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let (mut line, mut promised) = (String::new(), None);
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim_end().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            promised = v.trim().parse().ok();
        }
    }
    let mut body = Vec::new();
    // The server ends a body it cannot finish by closing (or resetting) the connection.
    let _ = r.read_to_end(&mut body);
    (promised.expect("content-length"), body)
}

#[test]
fn a_pull_that_reads_a_flipped_byte_ends_in_an_error_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    // Several read pieces (256 KiB each), the flip in the first: only the last is held.
    let layer = bytes(1_000_000, 31);
    let (r, _) = put_image(&s, "rot/app", "v1", 31, 1_000_000);
    assert_eq!(r.status, 201);
    let digest = sha256(&layer);
    let (other, old) = (bytes(600_000, 33), bytes(400_000, 34));
    let other_digest = push_blob(&s, "rot/app", &other);
    let old_digest = push_blob(&s, "rot/app", &old);
    // Two blobs as an older version stored them, with no checksum recorded: their pulls
    // check the digest.
    assert!(s.terminate().success());
    with_store(&dir, |tx| {
        let mut sums = tx.open_table(table("checksums")).unwrap();
        for d in [&digest, &other_digest, &old_digest] {
            assert!(
                sums.get(d.as_bytes()).unwrap().is_some(),
                "recorded at push"
            );
        }
        sums.remove(other_digest.as_bytes()).unwrap();
        sums.remove(old_digest.as_bytes()).unwrap();
    });
    let s = Server::start_in(&dir);

    let path = format!("/v2/rot/app/blobs/{digest}");
    let (promised, body) = raw_get(&s, &path);
    assert_eq!((promised, body == layer), (layer.len(), true), "sound");
    let file = blob_file(&dir, &digest);
    flip(&file, 1_000);
    let bad = std::fs::read(&file).unwrap();

    // Checked against the checksum recorded at push.
    let (promised, body) = raw_get(&s, &path);
    assert_eq!(promised, layer.len());
    assert!(
        body.len() < promised && body.len() + (256 << 10) >= promised,
        "all but the last piece, never the whole: got {} of {promised}",
        body.len()
    );
    assert!(body[..] == bad[..body.len()]);
    // Checked against its digest, with the same result: curl, as any HTTP client, sees a
    // transfer that did not finish (exit 18: partial file).
    flip(&blob_file(&dir, &other_digest), 599_999);
    let curl = Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .arg(s.url(&format!("/v2/rot/app/blobs/{other_digest}")))
        .output()
        .unwrap();
    assert_eq!(
        curl.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // Over HTTP/2 the stream is reset, never ended cleanly (curl exit 92).
    let h2 = push_blob(&s, "rot/app", &bytes(300_000, 35));
    flip(&blob_file(&dir, &h2), 7);
    let curl = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
        .arg(s.url(&format!("/v2/rot/app/blobs/{h2}")))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&curl.stderr);
    assert_eq!(curl.status.code(), Some(92), "{stderr}");
    assert!(stderr.contains("INTERNAL_ERROR"), "{stderr}");

    // The finding sticks, as a scrub's does: refused from now on (across a restart too),
    // fsck reports it, and a push of the right bytes repairs it.
    for d in [&digest, &other_digest, &h2] {
        let p = format!("/v2/rot/app/blobs/{d}");
        wait_until("the blob recorded corrupt", || {
            s.req("GET", &p).send().status == 409
        });
    }
    assert!(s.log_text().contains("a pull read the blob back wrong"));
    // And a sound digest check records the checksum, for the next pulls.
    let (_, body) = raw_get(&s, &format!("/v2/rot/app/blobs/{old_digest}"));
    assert!(body == old);
    assert!(s.terminate().success());
    with_store(&dir, |tx| {
        let sums = tx.open_table(table("checksums")).unwrap();
        let got = sums.get(old_digest.as_bytes()).unwrap();
        assert_eq!(
            got.map(|v| v.value().len()),
            Some(4),
            "recorded by the pull"
        );
    });
    let s = Server::start_in(&dir);
    assert_refused(&s, "rot/app", &digest, &bad);
    let metrics = String::from_utf8(s.req("GET", "/metrics").send().body).unwrap();
    assert!(
        metrics.contains("\nedgeyard_storage_corrupt_blobs 3\n"),
        "{metrics}"
    );
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(has(&out, "blob_corrupt", &digest), "{out}");
    push_blob(&s, "rot/app", &layer);
    let (promised, body) = raw_get(&s, &path);
    assert_eq!((promised, body == layer), (layer.len(), true), "repaired");
    // A range is not verified (the server cannot hash what it does not read), but it reads
    // the repaired file.
    let r = s.req("GET", &path).header("Range", "bytes=0-9").send();
    assert_eq!((r.status, &r.body[..]), (206, &layer[..10]));
}

#[test]
fn with_pull_verification_off_a_flipped_byte_is_served_until_fsck_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, "[storage]\nverify_pulls = false\n").unwrap();
    let s = Server::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    let layer = bytes(300_000, 32);
    assert_eq!(put_image(&s, "rot/off", "v1", 32, 300_000).0.status, 201);
    let digest = sha256(&layer);
    flip(&blob_file(&dir, &digest), 299_999);
    let bad = std::fs::read(blob_file(&dir, &digest)).unwrap();
    let path = format!("/v2/rot/off/blobs/{digest}");
    let (promised, body) = raw_get(&s, &path);
    assert_eq!((promised, body == bad), (bad.len(), true));
    assert_eq!(s.req("GET", &path).send().status, 200, "nothing recorded");
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert_refused(&s, "rot/off", &digest, &bad);
}

#[test]
fn offline_detection_reaches_the_server_started_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    put_image(&s, "off/app", "v1", 21, 60_000);
    let layer = bytes(60_000, 21);
    let digest = sha256(&layer);
    assert!(s.terminate().success());
    flip(&blob_file(&dir, &digest), 0);
    let bad = std::fs::read(blob_file(&dir, &digest)).unwrap();

    let (code, out, err) = fsck(&dir, &["--json"]);
    assert_eq!(code, 3, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["errors"], 2);
    let first = &report["problems"][0];
    assert_eq!(first["kind"], "blob_corrupt");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["object"], digest);
    assert!(first["message"]
        .as_str()
        .unwrap()
        .contains(&format!("hashes to {}", sha256(&bad))));

    let s = Server::start_in(&dir);
    assert_refused(&s, "off/app", &digest, &bad);
    // While it runs, offline fsck says why it cannot (exit 1, not "problems found").
    let (code, _, err) = fsck(&dir, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--server"), "{err}");
}

#[test]
fn quarantine_moves_the_file_intact_and_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    put_image(&s, "q/app", "v1", 31, 80_000);
    put_image(&s, "q/app", "v2", 32, 80_000);
    let layer = bytes(80_000, 31);
    let digest = sha256(&layer);
    assert!(s.terminate().success());
    let file = blob_file(&dir, &digest);
    flip(&file, 79_999);
    let bad = std::fs::read(&file).unwrap();
    let before = hashes(&dir.join("blobs"));

    let (code, out, err) = fsck(&dir, &["--quarantine"]);
    assert_eq!(code, 3, "{out}{err}");
    let moved = dir
        .join("quarantine/sha256")
        .join(&digest["sha256:".len()..]);
    assert!(out.contains(&moved.display().to_string()), "{out}");
    assert_eq!(
        sha256(&std::fs::read(&moved).unwrap()),
        sha256(&bad),
        "the same bytes"
    );
    assert!(!file.exists());
    // Every other blob file is where it was, byte for byte.
    let after = hashes(&dir.join("blobs"));
    let expected: Vec<_> = before.into_iter().filter(|(p, _)| p != &file).collect();
    assert_eq!(after, expected);

    // Still a problem until repaired; the quarantined copy is never touched again.
    let (code, out, _) = fsck(&dir, &["--quarantine"]);
    assert_eq!(code, 3, "{out}");
    assert!(has(&out, "blob_corrupt", &digest), "{out}");
    assert!(out.contains("found corrupt earlier"), "{out}");
    let s = Server::start_in(&dir);
    assert_refused(&s, "q/app", &digest, &bad);
    let r = s.req("GET", "/v2/q/app/manifests/v2").send();
    assert_eq!(r.status, 200, "other images are unaffected");

    push_blob(&s, "q/app", &layer);
    let r = s.req("GET", &format!("/v2/q/app/blobs/{digest}")).send();
    assert_eq!((r.status, sha256(&r.body)), (200, digest.clone()));
    assert!(s.terminate().success());
    let (code, out, err) = fsck(&dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        sha256(&std::fs::read(&moved).unwrap()),
        sha256(&bad),
        "kept for inspection"
    );
}

use redb::ReadableTable;

/// Raw surgery on the metadata, to make damage the API cannot: one durable transaction.
fn with_store(dir: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::open(dir.join("meta/store.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    f(&tx);
    tx.commit().unwrap();
}

/// One of the metadata tables (byte keys, byte values).
fn table(name: &str) -> redb::TableDefinition<'_, &'static [u8], &'static [u8]> {
    redb::TableDefinition::new(name)
}

#[test]
fn missing_blobs_manifests_and_truncated_blobs_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    // Image 1: its layer file will vanish.
    let (_, m1) = put_image(&s, "miss/one", "v1", 41, 30_000);
    // Image 2: its manifest record will vanish, leaving its tag dangling and the index that
    // lists it incomplete.
    let (_, m2) = put_image(&s, "miss/two", "v1", 42, 30_000);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&m2), "size": m2.len(),
            "platform": {"architecture": "arm64", "os": "linux"}
        }]
    }))
    .unwrap();
    let r = s
        .req("PUT", "/v2/miss/two/manifests/multi")
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index.clone())
        .send();
    assert_eq!(r.status, 201);
    // Image 3: its layer will be cut short.
    let (_, m3) = put_image(&s, "miss/three", "v1", 43, 30_000);
    // Image 4: its stored manifest content will be altered.
    let (_, m4) = put_image(&s, "miss/four", "v1", 44, 30_000);
    assert!(s.terminate().success());
    let (l1, l3) = (sha256(&bytes(30_000, 41)), sha256(&bytes(30_000, 43)));
    std::fs::remove_file(blob_file(&dir, &l1)).unwrap();
    let f3 = blob_file(&dir, &l3);
    let short = std::fs::read(&f3).unwrap()[..12_345].to_vec();
    std::fs::write(&f3, &short).unwrap();
    let (d1, d2, d3, d4) = (sha256(&m1), sha256(&m2), sha256(&m3), sha256(&m4));
    with_store(&dir, |tx| {
        let mut manifests = tx.open_table(table("manifests")).unwrap();
        assert!(manifests
            .remove(format!("miss/two\0{d2}").as_bytes())
            .unwrap()
            .is_some());
        let mut bytes = tx.open_table(table("manifest_bytes")).unwrap();
        let mut altered = m4.clone();
        altered[10] ^= 1;
        bytes.insert(d4.as_bytes(), altered.as_slice()).unwrap();
    });
    // A leftover upload file (old enough to be a crash's) and a stray file: warnings only.
    let stray = dir.join("blobs/sha256/notes.txt");
    std::fs::write(&stray, b"x").unwrap();
    let leftover = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.join("uploads").join(leftover), b"partial").unwrap();
    run(Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(dir.join("uploads").join(leftover)));

    let (code, out, err) = fsck(&dir, &[]);
    assert_eq!(code, 3, "{out}{err}");
    let one = format!("miss/one@{d1} (tagged v1)");
    let p = problems(&out);
    for (kind, object) in [
        ("reference_missing", format!("miss/one@{d1}")),
        ("link_dangling", format!("miss/one@{l1}")),
        ("tag_dangling", "miss/two:v1".to_string()),
        ("reference_missing", format!("miss/two@{}", sha256(&index))),
        ("blob_corrupt", l3.clone()),
        ("reference_corrupt", format!("miss/three@{d3}")),
        ("manifest_corrupt", format!("miss/four@{d4}")),
    ] {
        assert!(
            p.iter()
                .any(|(sev, k, o)| sev == "error" && k == kind && o == &object),
            "{kind} {object}:\n{out}"
        );
    }
    assert!(out.contains(&one), "tags are named: {out}");
    assert!(
        out.contains("12345 bytes where 30000 were stored"),
        "truncation is spelled out: {out}"
    );
    assert!(
        has(&out, "stray_file", &stray.display().to_string()),
        "{out}"
    );
    assert!(
        p.iter()
            .any(|(sev, k, _)| sev == "warning" && k == "stray_file"),
        "{out}"
    );
    assert!(
        p.contains(&(
            "warning".into(),
            "upload_file_without_record".into(),
            leftover.into()
        )),
        "{out}"
    );
    assert!(stray.exists(), "strays are left alone");
    assert!(dir.join("uploads").join(leftover).exists());
    assert_eq!(p.iter().filter(|(s, ..)| s == "error").count(), 7, "{out}");
    assert_eq!(
        p.iter().filter(|(s, ..)| s == "warning").count(),
        2,
        "{out}"
    );

    // The altered manifest is not served; the truncated layer neither.
    let s = Server::start_in(&dir);
    let r = s.req("GET", "/v2/miss/four/manifests/v1").send();
    assert_eq!((r.status, r.error_code().as_str()), (409, "UNSUPPORTED"));
    let r = s.req("HEAD", "/v2/miss/four/manifests/v1").send();
    assert_eq!(r.status, 409);
    assert_refused(&s, "miss/three", &l3, &bytes(30_000, 43));
    // Pushing the image again repairs both.
    let (r, _) = put_image(&s, "miss/four", "v1", 44, 30_000);
    assert_eq!(r.status, 201);
    assert_eq!(s.req("GET", "/v2/miss/four/manifests/v1").send().body, m4);
    put_image(&s, "miss/three", "v1", 43, 30_000);
    let r = s.req("GET", &format!("/v2/miss/three/blobs/{l3}")).send();
    assert_eq!((r.status, sha256(&r.body)), (200, l3.clone()));
}

#[test]
fn a_mirror_fetches_a_corrupt_cached_blob_again_from_its_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Server::start();
    let (_, m) = put_image(&up, "team/app", "v1", 51, 40_000);
    let layer = bytes(40_000, 51);
    let digest = sha256(&layer);
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[mirror]]\nname = \"up\"\nurl = \"http://{}\"\nprefix = \"up\"\n",
            up.addr
        ),
    )
    .unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(s.req("GET", "/v2/up/team/app/manifests/v1").send().body, m);
    let path = format!("/v2/up/team/app/blobs/{digest}");
    assert_eq!(s.req("GET", &path).send().body, layer);
    let file = blob_file(&dir, &digest);
    // The cache file is committed once the client has its bytes.
    wait_until("the blob is cached", || file.exists());
    flip(&file, 1);
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(has(&out, "blob_corrupt", &digest), "{out}");
    // The cache's bad copy is never served: the upstream's bytes are, and they replace it.
    let r = s.req("GET", &path).send();
    assert_eq!((r.status, sha256(&r.body)), (200, digest.clone()));
    // The fetched copy replaces the bad one once the client has its bytes.
    wait_until("the bad copy is replaced", || {
        sha256(&std::fs::read(&file).unwrap_or_default()) == digest
    });
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn docker_pull_of_a_corrupt_layer_fails_loudly_whoever_finds_it_and_a_push_repairs_it() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = format!("{}/fsck/app:1", s.addr);
    let tar = make_rootfs(tmp.path(), 77);
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    docker.run(&["push", &image]);
    let layer = layers(&s, "fsck/app", "1").remove(0);
    let file = blob_file(&s.data_dir, &layer);
    let good = std::fs::read(&file).unwrap();
    flip(&file, good.len() / 2);
    let bad = std::fs::read(&file).unwrap();

    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(has(&out, "blob_corrupt", &layer), "{out}");
    assert_refused(&s, "fsck/app", &layer, &bad);

    // The pull fails at once, saying why.
    docker.run(&["rmi", &image]);
    let started = std::time::Instant::now();
    let pulled = docker.fails(&["pull", &image]);
    assert!(
        pulled.contains(&format!(
            "unsupported: blob {layer} is corrupt in this registry"
        )),
        "{pulled}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "no retries: {pulled}"
    );

    // Pushing the image again uploads the layer (the registry no longer claims it), which
    // repairs it; the pull then works.
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let pushed = docker.run(&["push", &image]);
    assert_eq!(layers(&s, "fsck/app", "1"), vec![layer.clone()], "{pushed}");
    let r = s.req("GET", &format!("/v2/fsck/app/blobs/{layer}")).send();
    assert_eq!((r.status, sha256(&r.body)), (200, layer.clone()));
    assert!(r.body == good);
    docker.run(&["rmi", &image]);
    docker.run(&["pull", &image]);
    let (code, out, err) = fsck_server(&s, &[]);
    assert_eq!(code, 0, "{out}{err}");

    // Rot again, and no scrub this time: the pull that reads the layer finds it. docker
    // sees its download cut short, never a whole layer of wrong bytes, and its retry is
    // refused as corrupt; it stores nothing.
    docker.run(&["rmi", &image]);
    flip(&file, 10);
    let pulled = docker.fails(&["pull", &image]);
    assert!(pulled.contains("corrupt"), "{pulled}");
    assert!(
        docker
            .cmd(&["image", "inspect", &image])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0),
        "no image from a failed pull"
    );
    assert_refused(&s, "fsck/app", &layer, &std::fs::read(&file).unwrap());
    assert!(s.log_text().contains("a pull read the blob back wrong"));
    let _ = docker.cmd(&["rmi", "-f", &image]).output();
}

/// A metadata file damaged on disk (every page but the header overwritten): redb trusts a
/// cleanly closed file and panicked on its first read. Now the damage is found by checking
/// every page, and what cannot be repaired is said plainly, by fsck and by a server start,
/// with what to do; nothing is served from it.
#[test]
fn a_damaged_metadata_file_is_named_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    let (r, _) = put_image(&s, "dmg/app", "v1", 71, 10_000);
    assert_eq!(r.status, 201);
    assert!(s.terminate().success());
    let (code, out, err) = fsck(&dir, &[]);
    assert_eq!(code, 0, "sound before: {out}{err}");

    let file = dir.join("meta/store.redb");
    let mut b = std::fs::read(&file).unwrap();
    for x in &mut b[4096..] {
        *x ^= 0x5a;
    }
    std::fs::write(&file, &b).unwrap();
    let (code, out, err) = fsck(&dir, &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("store.redb is damaged and could not be repaired")
            && err.contains("restore it from a backup")
            && !err.contains("stop the server"),
        "{err}"
    );
    let serve = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args([
            "serve",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success());
    assert!(
        text.contains("store.redb is damaged and could not be repaired"),
        "{text}"
    );
}
