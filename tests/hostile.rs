//! Hostile input against the real binary: path traversal, header injection, oversized heads
//! and bodies, slow clients, too many connections and uploads, absurd pagination, malformed
//! and duplicate-key JSON, self-referencing manifests, and secrets in logs. Every case asserts
//! the exact answer (status and OCI error code, or a closed connection), then that the server
//! still answers, its resident memory stayed bounded and nothing stored changed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

// ---- helpers ----------------------------------------------------------------------------

/// A server with authentication off on plain HTTP, with `config` as its configuration file.
fn start(config: &str) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, config).unwrap();
    let s = Server::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    (tmp, s)
}

/// A memory figure of a process from /proc/PID/status, KiB: `VmRSS` (resident now) or
/// `VmHWM` (the most it was ever resident, which catches a body buffered and freed again).
fn mem_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// An answer read off a raw connection: status, the header block as sent, body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        });
        v["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends `bytes` on a fresh connection and reads until the server closes it; `None` when it
/// closed (or reset) without answering.
fn raw(s: &Server, bytes: &[u8]) -> Option<Raw> {
    raw_within(s, bytes, Duration::from_secs(20))
}

/// [`raw`], failing the test when no answer came within `limit`.
fn raw_within(s: &Server, bytes: &[u8], limit: Duration) -> Option<Raw> {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(limit)).unwrap();
    // The server may answer and close before taking everything (431, 413): keep going.
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!(
                    "no answer within {limit:?} to {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )
            }
            Err(_) => break,
        }
    }
    parse_raw(&out)
}

fn parse_raw(out: &[u8]) -> Option<Raw> {
    let end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Raw {
        status,
        head,
        body: out[end + 4..].to_vec(),
    })
}

/// A GET of `target` (sent verbatim) as raw bytes.
fn get(s: &Server, method: &str, target: &str) -> Option<Raw> {
    raw(
        s,
        format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", s.addr)
            .as_bytes(),
    )
}

/// What a test pushed before attacking, to prove afterwards that nothing changed.
struct Seed {
    repo: String,
    manifest: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Peak resident memory after the seed, KiB.
    peak_before: u64,
}

/// Pushes an image (`seed/app:v1`) and records the blob files and the memory in use.
fn seed(s: &Server) -> Seed {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = bytes(300_000, 7);
    let cd = push_blob(s, "seed/app", &config);
    let ld = push_blob(s, "seed/app", &layer);
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
    let r = s
        .req("PUT", "/v2/seed/app/manifests/v1")
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201);
    Seed {
        repo: "seed/app".into(),
        manifest: m,
        blobs: vec![(cd, config), (ld, layer)],
        files: snapshot(&s.data_dir.join("blobs")),
        peak_before: mem_kib(s.pid(), "VmHWM"),
    }
}

/// The server answers, its peak memory grew by less than `slack_mib`, every blob file is still
/// there with its bytes, and the seeded image reads back byte for byte.
fn assert_intact(s: &Server, seed: &Seed, slack_mib: u64) {
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 200, "the server stopped answering /v2/");
    let peak = mem_kib(s.pid(), "VmHWM");
    eprintln!(
        "peak resident memory {} KiB -> {peak} KiB (now {} KiB)",
        seed.peak_before,
        mem_kib(s.pid(), "VmRSS")
    );
    assert!(
        peak < seed.peak_before + slack_mib * 1024,
        "peak resident memory grew from {} KiB to {peak} KiB",
        seed.peak_before
    );
    let now: std::collections::HashMap<_, _> =
        snapshot(&s.data_dir.join("blobs")).into_iter().collect();
    for (path, bytes) in &seed.files {
        assert!(now.get(path) == Some(bytes), "{} changed", path.display());
    }
    let r = s
        .req("GET", &format!("/v2/{}/manifests/v1", seed.repo))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send();
    assert_eq!((r.status, &r.body), (200, &seed.manifest));
    for (d, b) in &seed.blobs {
        let r = s.req("GET", &format!("/v2/{}/blobs/{d}", seed.repo)).send();
        assert_eq!((r.status, sha256(&r.body)), (200, sha256(b)));
    }
}

/// Every file under `root`, relative, outside `data` (which the server owns).
fn files_outside_data(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(root.join("data")))
        .collect()
}

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

// ---- path traversal ---------------------------------------------------------------------

#[test]
fn path_traversal_in_names_digests_tags_uploads_and_admin_paths_is_refused() {
    let (tmp, s) = start("");
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    std::fs::write(tmp.path().join("outside/secret"), b"outside secret").unwrap();
    let seed = seed(&s);
    let outside_before = files_outside_data(tmp.path());
    let up = s.req("POST", "/v2/seed/app/blobs/uploads/").send();
    assert_eq!(up.status, 202);
    let id = up.header("docker-upload-uuid").unwrap().to_string();

    let hex = "a".repeat(64);
    #[rustfmt::skip]
    let cases: Vec<(&str, String, u16, &str)> = vec![
        // Repository names.
        ("GET", "/v2/../../etc/passwd/tags/list".into(), 400, "NAME_INVALID"),
        ("GET", "/v2/%2e%2e/%2e%2e/etc/tags/list".into(), 400, "NAME_INVALID"),
        ("GET", "/v2/seed%2f..%2f..%2foutside/tags/list".into(), 400, "NAME_INVALID"),
        ("GET", "/v2/seed/%00/tags/list".into(), 400, "NAME_INVALID"),
        ("GET", "/v2//etc/passwd/tags/list".into(), 400, "NAME_INVALID"),
        ("GET", "/v2/seed/./app/tags/list".into(), 400, "NAME_INVALID"),
        ("GET", "/v2/seed/../outside/manifests/v1".into(), 400, "NAME_INVALID"),
        ("GET", "/v2/seed%5c..%5coutside/tags/list".into(), 400, "NAME_INVALID"),
        ("POST", "/v2/../outside/blobs/uploads/".into(), 400, "NAME_INVALID"),
        ("GET", format!("/v2/{}/tags/list", "a".repeat(300)), 400, "NAME_INVALID"),
        // Digests.
        ("GET", "/v2/seed/app/blobs/sha256:..".into(), 400, "DIGEST_INVALID"),
        ("GET", "/v2/seed/app/blobs/sha256:..%2f..%2foutside%2fsecret".into(), 400, "DIGEST_INVALID"),
        ("GET", "/v2/seed/app/blobs/sha256:../../../outside/secret".into(), 404, "NAME_UNKNOWN"),
        ("GET", format!("/v2/seed/app/blobs/sha256:{}", "A".repeat(64)), 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/seed/app/blobs/sha256:{}", "a".repeat(63)), 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/seed/app/blobs/sha256:{}", "a".repeat(65)), 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/seed/app/blobs/md5:{hex}"), 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/seed/app/blobs/sha256:{hex}%00"), 400, "DIGEST_INVALID"),
        ("GET", "/v2/seed/app/blobs/%2fetc%2fpasswd".into(), 400, "DIGEST_INVALID"),
        ("DELETE", "/v2/seed/app/blobs/sha256:..".into(), 400, "DIGEST_INVALID"),
        ("GET", "/v2/seed/app/referrers/sha256:..".into(), 400, "DIGEST_INVALID"),
        // Tags and references: no manifest can be found by one that breaks the grammar
        // (404, as the spec's conformance suite expects); none can be stored under it (400).
        ("GET", "/v2/seed/app/manifests/..".into(), 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/seed/app/manifests/%2e%2e".into(), 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/seed/app/manifests/..%2f..%2fsecret".into(), 404, "MANIFEST_UNKNOWN"),
        ("PUT", "/v2/seed/app/manifests/%00".into(), 400, "TAG_INVALID"),
        ("PUT", "/v2/seed/app/manifests/..".into(), 400, "TAG_INVALID"),
        ("DELETE", "/v2/seed/app/manifests/sha256:..".into(), 404, "MANIFEST_UNKNOWN"),
        ("PUT", "/v2/seed/app/manifests/sha256:..".into(), 400, "DIGEST_INVALID"),
        ("GET", format!("/v2/seed/app/manifests/{}", "t".repeat(129)), 404, "MANIFEST_UNKNOWN"),
        ("PUT", format!("/v2/seed/app/manifests/{}", "t".repeat(129)), 400, "TAG_INVALID"),
        // Upload ids.
        ("GET", "/v2/seed/app/blobs/uploads/../../x".into(), 404, "NAME_UNKNOWN"),
        ("PATCH", "/v2/seed/app/blobs/uploads/..".into(), 404, "BLOB_UPLOAD_UNKNOWN"),
        ("PUT", "/v2/seed/app/blobs/uploads/..%2f..%2foutside".into(), 404, "BLOB_UPLOAD_UNKNOWN"),
        ("DELETE", "/v2/seed/app/blobs/uploads/%2e%2e".into(), 404, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", format!("/v2/seed/app/blobs/uploads/{}", id.to_uppercase()), 404, "BLOB_UPLOAD_UNKNOWN"),
        // Another repository's session is not reachable through this one.
        ("GET", format!("/v2/other/repo/blobs/uploads/{id}"), 404, "BLOB_UPLOAD_UNKNOWN"),
        // Query values.
        ("PUT", format!("/v2/seed/app/blobs/uploads/{id}?digest=sha256:..%2f..%2fsecret"), 400, "DIGEST_INVALID"),
        ("POST", "/v2/seed/app/blobs/uploads/?digest=..%2F..%2Foutside".into(), 400, "DIGEST_INVALID"),
        ("POST", format!("/v2/seed/app/blobs/uploads/?mount={}&from=..%2F..%2Foutside", d('a')), 400, "NAME_INVALID"),
        ("POST", "/v2/seed/app/blobs/uploads/?mount=..%2Fx".into(), 400, "DIGEST_INVALID"),
        // Admin API paths and query values (authentication is off: the admin API is open).
        ("GET", "/api/v1/repositories/..%2F..%2Foutside".into(), 400, "NAME_INVALID"),
        ("GET", "/api/v1/repositories/seed/../../outside/tags".into(), 400, "NAME_INVALID"),
        ("DELETE", "/api/v1/users/..%2F..%2Fetc%2Fpasswd".into(), 404, "NAME_UNKNOWN"),
        ("DELETE", "/api/v1/users/%2e%2e".into(), 404, "NOT_FOUND"),
        ("PUT", "/api/v1/pins/..%2Foutside:v1".into(), 400, "NAME_INVALID"),
        ("DELETE", "/api/v1/rules/..".into(), 404, "NAME_UNKNOWN"),
        ("POST", "/api/v1/import?repo=..%2F..%2Foutside".into(), 400, "NAME_INVALID"),
        ("GET", "/..%2f..%2fetc%2fpasswd".into(), 404, "NAME_UNKNOWN"),
        ("GET", "/v2/../../../etc/passwd".into(), 404, "NAME_UNKNOWN"),
    ];
    for (method, path, status, code) in &cases {
        let r = get(&s, method, path).unwrap_or_else(|| panic!("{method} {path}: closed"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (*status, *code),
            "{method} {path}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("outside secret"));
    }
    // What no HTTP client would send: raw NUL, backslashes and spaces in the request line.
    // The HTTP parser refuses those lines before any route is looked at.
    for line in [
        &b"GET /v2/seed/app\0/tags/list HTTP/1.1\r\n"[..],
        b"GET /v2/seed\\..\\..\\outside/tags/list HTTP/1.1\r\n",
        b"GET /v2/seed/app/blobs/sha256:..\\..\\secret HTTP/1.1\r\n",
        b"GET /v2/seed/app/manifests/a b HTTP/1.1\r\n",
    ] {
        let mut req = line.to_vec();
        req.extend_from_slice(b"Host: x\r\nConnection: close\r\n\r\n");
        match raw(&s, &req) {
            None => {}
            Some(r) => assert!(
                matches!(r.status, 400 | 404),
                "{:?}: {}",
                String::from_utf8_lossy(line),
                r.head
            ),
        }
    }
    // Export of a traversal name through the admin API.
    let r = s
        .req("POST", "/api/v1/export")
        .body(r#"{"images":["../../outside:secret"]}"#)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (400, "NAME_INVALID"));
    // The upload opened above is untouched and still completes.
    let r = s
        .req(
            "PUT",
            &format!("/v2/seed/app/blobs/uploads/{id}?digest={}", sha256(b"ok")),
        )
        .body(b"ok".to_vec())
        .send();
    assert_eq!(r.status, 201);

    assert_eq!(
        files_outside_data(tmp.path()),
        outside_before,
        "a file outside the data dir changed"
    );
    assert_intact(&s, &seed, 48);
}

#[test]
fn token_scopes_naming_a_traversal_grant_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin", "--admin"],
        "alice-password-1\n",
    );
    let s = Server::start_auth(&dir, &[]);
    let alice = basic("alice", "alice-password-1");
    for scope in [
        "repository:../../etc:pull,push",
        "repository:seed/..%2F..%2Fetc:pull",
        "repository:/etc/passwd:pull",
        "repository:seed/app/../../x:push",
    ] {
        let q: String = form_urlencoded_pair("scope", scope);
        let r = s
            .req("GET", &format!("/token?service=edgeyard&{q}"))
            .auth(&alice)
            .send();
        assert_eq!(r.status, 200, "{scope}");
        let token = r.json()["token"].as_str().unwrap().to_string();
        let claims = jwt_claims(&token);
        assert_eq!(claims["access"], serde_json::json!([]), "{scope}: {claims}");
        // The token cannot reach anything through a traversal path either.
        let r = s
            .req("GET", "/v2/../../etc/tags/list")
            .auth(&format!("Bearer {token}"))
            .send();
        assert_eq!((r.status, r.error_code().as_str()), (400, "NAME_INVALID"));
    }
    // A traversal as a user name is just a wrong login.
    let r = s
        .req("GET", "/v2/")
        .auth(&basic("../../etc/passwd", "x"))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    assert!(!tmp.path().join("etc").exists());
}

fn form_urlencoded_pair(k: &str, v: &str) -> String {
    let enc: String = v
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{k}={enc}")
}

/// The payload of a JWT, decoded.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---- header injection -------------------------------------------------------------------

#[test]
fn header_injection_never_reaches_a_response_and_request_ids_are_sanitised() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let no_injection = |r: &Raw, what: &str| {
        let h = r.head.to_ascii_lowercase();
        assert!(
            !h.contains("x-injected") && !h.contains("set-cookie"),
            "{what}: injected header in {}",
            r.head
        );
    };
    // A CR LF in X-Request-Id only ends that header line: the next line is a request header of
    // its own, never echoed.
    let r = raw(
        &s,
        format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Request-Id: abc\r\nX-Injected: 1\r\nConnection: close\r\n\r\n", s.addr).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id").as_deref(), Some("abc"));
    no_injection(&r, "CRLF in a request id");
    // Request ids that are not sane tokens are replaced by a fresh one.
    for bad in [
        &b"a b"[..],
        b"\"quoted\"",
        b"id\xff\xfe",
        b"<script>",
        b"x%0d%0aX-Injected:%201",
        &[b'a'; 200],
    ] {
        let mut req = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Request-Id: ",
            s.addr
        )
        .into_bytes();
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n\r\n");
        let r = raw(&s, &req).unwrap();
        assert_eq!(r.status, 200);
        let id = r.header("x-request-id").unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{:?} became {id:?}",
            String::from_utf8_lossy(bad)
        );
        no_injection(&r, "odd request id");
    }
    // Control characters in a header value: the HTTP parser refuses the request.
    let r = raw(
        &s,
        format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Request-Id: a\x01b\rX-Injected: 1\r\nConnection: close\r\n\r\n", s.addr).as_bytes(),
    );
    if let Some(r) = r {
        assert_eq!(r.status, 400, "{}", r.head);
        no_injection(&r, "control characters");
    }
    // Values that would end up in Location, Docker-Content-Digest or a tag: refused at parse.
    for (method, target, status, code) in [
        (
            "POST",
            "/v2/seed/app%0d%0aX-Injected:%201/blobs/uploads/",
            400,
            "NAME_INVALID",
        ),
        (
            "POST",
            "/v2/seed/app/blobs/uploads/?digest=sha256:aa%0d%0aX-Injected:%201",
            400,
            "DIGEST_INVALID",
        ),
        (
            "PUT",
            "/v2/seed/app/manifests/v1%0d%0aSet-Cookie:%20a=b",
            400,
            "DIGEST_INVALID",
        ),
        (
            "PUT",
            "/v2/seed/app/manifests/v1%0d%0aX-Injected%3a%201",
            400,
            "TAG_INVALID",
        ),
        (
            "GET",
            "/v2/seed/app/blobs/sha256:%0d%0aX-Injected:%201",
            400,
            "DIGEST_INVALID",
        ),
    ] {
        let r = get(&s, method, target).unwrap();
        assert_eq!((r.status, r.code().as_str()), (status, code), "{target}");
        no_injection(&r, target);
    }
    // An upload's Location is built from validated parts only.
    let r = get(
        &s,
        "POST",
        "/v2/seed/app/blobs/uploads/?x=%0d%0aX-Injected:%201",
    )
    .unwrap();
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("/v2/seed/app/blobs/uploads/")
            && loc.len() == "/v2/seed/app/blobs/uploads/".len() + 32,
        "{loc}"
    );
    no_injection(&r, "upload location");
    assert_intact(&s, &seed, 48);
}

#[test]
fn challenge_realm_takes_only_a_plain_host_from_the_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_auth(&dir, &[]);
    for host in ["evil\",scope=\"repository:x:push", "a\\", "a b", "x\x7f"] {
        let r = raw(
            &s,
            format!(
                "GET /v2/seed/app/tags/list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let Some(r) = r else { continue };
        if r.status == 400 && r.body.is_empty() {
            continue; // refused by the HTTP parser
        }
        assert_eq!(r.status, 401, "{host:?}: {}", r.head);
        let www = r.header("www-authenticate").unwrap();
        assert_eq!(
            www,
            "Bearer realm=\"http://localhost/token\",service=\"edgeyard\",scope=\"repository:seed/app:pull\"",
            "{host:?}"
        );
    }
    // The challenge's scope comes from the path, which is a validated name or refused first.
    let r = get(&s, "GET", "/v2/seed%22,realm%3D%22x/tags/list").unwrap();
    assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID"));
    assert_eq!(r.header("www-authenticate"), None);
    // A sane Host is used as it is.
    let r = raw(
        &s,
        b"GET /v2/ HTTP/1.1\r\nHost: registry.local:5000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("realm=\"http://registry.local:5000/token\""));
}

// ---- oversized heads and bodies ---------------------------------------------------------

#[test]
fn oversized_headers_get_431_or_a_clean_close_without_memory_growth() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    // Many headers: more than the 100 allowed.
    let mut req = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        s.addr
    );
    for i in 0..150 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(raw(&s, req.as_bytes()).map(|r| r.status), Some(431));
    // One huge header, a few times: 431 (or a reset while we are still sending), memory flat.
    for _ in 0..8 {
        let mut req = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Big: ", s.addr).into_bytes();
        req.extend(std::iter::repeat_n(b'a', 3 << 20));
        req.extend_from_slice(b"\r\n\r\n");
        if let Some(r) = raw(&s, &req) {
            assert_eq!(r.status, 431);
        }
    }
    // A request line longer than any path.
    let long = format!("/v2/{}/tags/list", "a/".repeat(40_000));
    let r = get(&s, "GET", &long);
    if let Some(r) = r {
        assert!(matches!(r.status, 400 | 414), "{}", r.head);
    }
    assert_intact(&s, &seed, 48);
}

/// A chunked request whose body is `total` bytes of `b'x'`, sent in 64 KiB chunks.
fn chunked(head: &str, total: usize) -> Vec<u8> {
    let mut req = head.as_bytes().to_vec();
    let piece = vec![b'x'; 65536];
    let mut left = total;
    while left > 0 {
        let n = left.min(piece.len());
        req.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        req.extend_from_slice(&piece[..n]);
        req.extend_from_slice(b"\r\n");
        left -= n;
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[test]
fn oversized_bodies_are_refused_while_streaming() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let t = Instant::now();
    // A manifest that says it is 5 MiB: refused before a byte of it is read.
    let r = raw(
        &s,
        format!("PUT /v2/seed/app/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 5 << 20).as_bytes(),
    )
    .unwrap();
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    // Without a length: refused once 4 MiB have come, never held whole (64 MiB sent).
    for _ in 0..2 {
        let req = chunked(
            "PUT /v2/seed/app/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            64 << 20,
        );
        if let Some(r) = raw(&s, &req) {
            assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
        }
    }
    // Token and admin JSON bodies are bounded too (64 KiB).
    let big_form = format!(
        "grant_type=password&username=a&password={}",
        "p".repeat(1 << 20)
    );
    let r = s.req("POST", "/token").body(big_form).send();
    assert_eq!(r.status, 404, "authentication is off: no token endpoint");
    let big_json = format!(
        "{{\"name\":\"x\",\"password\":\"{}\"}}",
        "p".repeat(1 << 20)
    );
    let r = s.req("POST", "/api/v1/users").body(big_json.clone()).send();
    assert_eq!((r.status, r.error_code().as_str()), (413, "SIZE_INVALID"));
    let req = chunked(
        "POST /api/v1/gc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        8 << 20,
    );
    if let Some(r) = raw(&s, &req) {
        assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    }
    // A chunk longer than its Content-Range: refused, nothing past the range is written,
    // and the session goes on from what it holds.
    let up = s.req("POST", "/v2/seed/app/blobs/uploads/").send();
    let loc = up.header("location").unwrap().to_string();
    let data = bytes(1000, 3);
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "0-99")
        .body(data[..500].to_vec())
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (400, "SIZE_INVALID"));
    let st = s.req("GET", &loc).send();
    assert_eq!(st.status, 204);
    let held: usize = match st.header("range").unwrap() {
        "0-0" => 0,
        r => r.trim_start_matches("0-").parse::<usize>().unwrap() + 1,
    };
    assert!(held <= 100, "{held} bytes held past the promised range");
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", &format!("{held}-999"))
        .body(data[held..].to_vec())
        .send();
    assert_eq!(r.status, 202);
    let r = s
        .req("PUT", &format!("{loc}?digest={}", sha256(&data)))
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_intact(&s, &seed, 48);
}

/// Regression: token forms and admin API bodies over their 64 KiB bound were answered 400
/// (UNSUPPORTED, INVALID) as if they were malformed, and only after reading 64 KiB of a body
/// whose Content-Length already said it was too large.
#[test]
fn token_and_admin_bodies_over_64_kib_get_413() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin", "--admin"],
        "alice-password-1\n",
    );
    let s = Server::start_auth(&dir, &[]);
    let admin = basic("alice", "alice-password-1");
    let pad = "p".repeat(1 << 20);
    let r = s
        .req("POST", "/token")
        .body(format!("grant_type=password&username=a&password={pad}"))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (413, "SIZE_INVALID"));
    let r = s
        .req("POST", "/api/v1/users")
        .auth(&admin)
        .body(format!("{{\"name\":\"x\",\"password\":\"{pad}\"}}"))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (413, "SIZE_INVALID"));
    // Just under the bound is read and judged on its content (a password that long is not
    // one).
    let r = s
        .req("POST", "/api/v1/users")
        .auth(&admin)
        .body(format!(
            "{{\"name\":\"x\",\"password\":\"{}\"}}",
            &pad[..60_000]
        ))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (400, "INVALID"));
    assert!(String::from_utf8_lossy(&r.body).contains("passwords need"));
    assert_eq!(s.req("GET", "/healthz").send().status, 200);
}

// ---- slow clients and connection bounds -------------------------------------------------

/// Whether the server has closed `c` (EOF, reset, or an answer followed by EOF).
fn closed(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let r = loop {
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    c.set_nonblocking(false).unwrap();
    r
}

/// Waits (up to 8 s) until the server has closed every connection, writing `drip` to each
/// still open every 200 ms and checking that `/v2/` answers meanwhile; returns how long it took.
fn until_all_closed(s: &Server, conns: &mut [TcpStream], drip: Option<&[u8]>) -> Duration {
    let t = Instant::now();
    let mut open: Vec<&mut TcpStream> = conns.iter_mut().collect();
    while !open.is_empty() && t.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(d) = drip {
            for c in open.iter_mut() {
                let _ = c.write_all(d);
            }
        }
        open.retain_mut(|c| !closed(c));
        assert_eq!(s.req("GET", "/v2/").send().status, 200);
    }
    assert!(
        open.is_empty(),
        "{} slow connections still open after {:?}",
        open.len(),
        t.elapsed()
    );
    t.elapsed()
}

#[test]
fn slow_loris_dripping_headers_are_cut_by_the_header_read_timeout() {
    let (_tmp, s) =
        start("[server]\nheader_read_timeout_secs = 1\nmax_connections_per_client = 200\n");
    let seed = seed(&s);
    let mut drips: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();
    for c in &mut drips {
        c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    let took = until_all_closed(&s, &mut drips, Some(b"X-Drip: 1\r\n"));
    assert!(took < Duration::from_secs(4), "closing took {took:?}");
    assert_intact(&s, &seed, 48);
}

/// Regression: hyper-util tells HTTP/1.1 from HTTP/2 by the first bytes and waits for them
/// without a timeout, and hyper's header timeout only starts after that, so a connection that
/// sent nothing (or half an HTTP/2 preface, or a whole preface and no request) stayed open
/// for ever.
#[test]
fn silent_and_half_http2_connections_are_closed_before_their_first_request() {
    let (_tmp, s) =
        start("[server]\nheader_read_timeout_secs = 1\nmax_connections_per_client = 200\n");
    let seed = seed(&s);
    let connect = |first: &[u8]| {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.write_all(first).unwrap();
        c
    };
    let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(b"")).collect();
    conns.extend((0..10).map(|_| connect(b"PRI * HTTP/2.0\r\n")));
    conns.extend((0..5).map(|_| connect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")));
    let took = until_all_closed(&s, &mut conns, None);
    assert!(took < Duration::from_secs(4), "closing took {took:?}");
    assert_intact(&s, &seed, 48);
}

/// Regression: a client that stopped sending in the middle of a chunk held the upload
/// session's lock for ever, so nobody (the client itself included, on a new connection)
/// could ask where the upload stood or resume it.
#[test]
fn upload_stalled_mid_body_releases_its_session_for_resume() {
    let (_tmp, s) = start("[server]\nbody_read_timeout_secs = 1\n");
    let seed = seed(&s);
    let up = s.req("POST", "/v2/seed/app/blobs/uploads/").send();
    let loc = up.header("location").unwrap().to_string();
    let data = bytes(1000, 11);
    // Promise 1000 bytes, send 100, stall (the connection stays open).
    let mut stalled = TcpStream::connect(&s.addr).unwrap();
    stalled
        .write_all(
            format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").as_bytes(),
        )
        .unwrap();
    stalled.write_all(&data[..100]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The session is busy only until the body timeout: its status answers within bounds.
    let status = format!("GET {loc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let st = raw_within(&s, status.as_bytes(), Duration::from_secs(5)).unwrap();
    assert_eq!(st.status, 204);
    assert_eq!(st.header("range").as_deref(), Some("0-99"));
    // The stalled request was answered and its connection closed.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let answer = parse_raw(&answer).expect("an answer to the stalled request");
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (400, "BLOB_UPLOAD_INVALID")
    );
    // Resume where it stands and finish: the blob is whole.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "100-999")
        .body(data[100..].to_vec())
        .send();
    assert_eq!(r.status, 202);
    let r = s
        .req("PUT", &format!("{loc}?digest={}", sha256(&data)))
        .send();
    assert_eq!(r.status, 201);
    let r = s
        .req("GET", &format!("/v2/seed/app/blobs/{}", sha256(&data)))
        .send();
    assert_eq!(r.body, data);
    // A manifest body that stalls is dropped the same way.
    let mut stalled = TcpStream::connect(&s.addr).unwrap();
    stalled
        .write_all(b"PUT /v2/seed/app/manifests/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"schema")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let answer = parse_raw(&answer).expect("an answer to the stalled manifest");
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (400, "MANIFEST_INVALID")
    );
    assert_intact(&s, &seed, 48);
}

/// A connection that has had one request answered and stays open (keep-alive). Retried
/// while the connections of earlier requests are still being given back.
fn kept_alive(s: &Server) -> TcpStream {
    for _ in 0..50 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut first = [0u8; 1];
        if matches!(c.peek(&mut first), Ok(1)) {
            assert_eq!(read_response(&mut c, false).status, 200);
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no connection was admitted");
}

#[test]
fn connections_over_the_per_client_bound_are_closed_at_once() {
    let (_tmp, s) =
        start("[server]\nmax_connections_per_client = 6\nheader_read_timeout_secs = 20\n");
    let seed = seed(&s);
    // Six kept-alive connections from this address fill its share (each answers once, so it
    // surely holds a place).
    let mut held: Vec<TcpStream> = (0..6).map(|_| kept_alive(&s)).collect();
    for _ in 0..3 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = Vec::new();
        let t = Instant::now();
        let _ = c.read_to_end(&mut out);
        assert!(
            out.is_empty(),
            "answered over the bound: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(t.elapsed() < Duration::from_secs(2), "not closed at once");
    }
    s.wait_log("max_connections_per_client");
    // The held ones still work.
    held[0]
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut held[0], false);
    assert_eq!(r.status, 200);
    // Giving connections back lets new ones in.
    held.clear();
    std::thread::sleep(Duration::from_millis(300));
    assert_intact(&s, &seed, 48);
}

#[test]
fn connections_over_the_total_bound_are_closed_at_once() {
    let (_tmp, s) = start("[server]\nmax_connections = 4\nheader_read_timeout_secs = 20\n");
    let held: Vec<TcpStream> = (0..4).map(|_| kept_alive(&s)).collect();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert!(out.is_empty());
    s.wait_log("max_connections reached");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}

// ---- upload sessions per client ---------------------------------------------------------

#[test]
fn too_many_open_uploads_per_client_get_429_and_open_ones_go_on() {
    let (_tmp, s) = start("[server]\nmax_uploads_per_client = 3\n");
    let seed = seed(&s);
    let locs: Vec<String> = (0..3)
        .map(|_| {
            let r = s.req("POST", "/v2/seed/app/blobs/uploads/").send();
            assert_eq!(r.status, 202);
            r.header("location").unwrap().to_string()
        })
        .collect();
    let r = s.req("POST", "/v2/seed/app/blobs/uploads/").send();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "TOOMANYREQUESTS")
    );
    assert_eq!(r.header("retry-after"), Some("10"));
    // Monolithic uploads open a session too.
    let r = s
        .req(
            "POST",
            &format!("/v2/seed/app/blobs/uploads/?digest={}", sha256(b"m")),
        )
        .body(b"m".to_vec())
        .send();
    assert_eq!(r.status, 429);
    // The open ones still take data and complete.
    let data = bytes(5000, 5);
    let r = s.req("PATCH", &locs[0]).body(data.clone()).send();
    assert_eq!(r.status, 202);
    let r = s
        .req("PUT", &format!("{}?digest={}", locs[0], sha256(&data)))
        .send();
    assert_eq!(r.status, 201);
    // A completed (or cancelled) session frees its place.
    assert_eq!(
        s.req("POST", "/v2/seed/app/blobs/uploads/").send().status,
        202
    );
    assert_eq!(
        s.req("POST", "/v2/seed/app/blobs/uploads/").send().status,
        429
    );
    assert_eq!(s.req("DELETE", &locs[1]).send().status, 204);
    assert_eq!(
        s.req("POST", "/v2/seed/app/blobs/uploads/").send().status,
        202
    );
    assert_intact(&s, &seed, 48);
}

#[test]
fn upload_bound_counts_per_user_when_logged_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin", "--admin"],
        "alice-password-1\n",
    );
    edgeyard(
        &dir,
        &["user", "add", "bob", "--password-stdin", "--admin"],
        "bob-password-1\n",
    );
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, "[server]\nmax_uploads_per_client = 2\n").unwrap();
    let s = Server::start_auth(&dir, &["--config", cfg.to_str().unwrap()]);
    let (alice, bob) = (
        basic("alice", "alice-password-1"),
        basic("bob", "bob-password-1"),
    );
    let post = |who: &str| {
        s.req("POST", "/v2/team/app/blobs/uploads/")
            .auth(who)
            .send()
    };
    assert_eq!(post(&alice).status, 202);
    assert_eq!(post(&alice).status, 202);
    let r = post(&alice);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "TOOMANYREQUESTS")
    );
    // Bob, from the same address, has his own bound.
    assert_eq!(post(&bob).status, 202);
}

// ---- pagination -------------------------------------------------------------------------

#[test]
fn absurd_page_sizes_and_last_values_get_exact_answers() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let m = seed.manifest.clone();
    for t in ["a1", "b2", "c3", "d4"] {
        let r = s
            .req("PUT", &format!("/v2/seed/app/manifests/{t}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(m.clone())
            .send();
        assert_eq!(r.status, 201);
    }
    let all = ["a1", "b2", "c3", "d4", "v1"];
    let tags = |q: &str| {
        let r = s.req("GET", &format!("/v2/seed/app/tags/list?{q}")).send();
        let tags: Vec<String> = if r.status == 200 {
            serde_json::from_value(r.json()["tags"].clone()).unwrap()
        } else {
            vec![]
        };
        (r, tags)
    };
    for q in ["n=-1", "n=abc", "n=1e3", "n=0x10", "n=%20", "n=1.5", "n=-0"] {
        let (r, _) = tags(q);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "SIZE_INVALID"),
            "{q}"
        );
    }
    let (r, t) = tags("n=0");
    assert_eq!((r.status, t.len(), r.header("link")), (200, 0, None));
    for q in [
        "n=99999999999999999999",
        "n=18446744073709551616",
        "n=10001",
        "n=",
    ] {
        let (r, t) = tags(q);
        assert_eq!(
            (r.status, t),
            (
                200,
                all.to_vec()
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
            ),
            "{q}"
        );
        assert_eq!(r.header("link"), None);
    }
    // Repeated n: the first counts.
    let (r, t) = tags("n=2&n=500");
    assert_eq!(t, ["a1", "b2"]);
    assert_eq!(
        r.header("link"),
        Some("</v2/seed/app/tags/list?last=b2&n=2>; rel=\"next\"")
    );
    // last need not be a tag: it is a position in lexical order.
    for (q, expect) in [
        ("last=../../etc", &all[..]),
        ("last=%00", &all[..]),
        ("last=c", &all[2..]),
        ("last=zzzz", &[][..]),
        ("last=%ff%fe", &[][..]),
    ] {
        let (r, t) = tags(q);
        assert_eq!(
            (r.status, t),
            (
                200,
                expect.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ),
            "{q}"
        );
    }
    let long = format!("last={}", "z".repeat(10_000));
    assert_eq!(tags(&long).0.status, 200);
    // The catalog, alike.
    let cat = |q: &str| s.req("GET", &format!("/v2/_catalog?{q}")).send();
    for q in ["n=-1", "n=abc"] {
        let r = cat(q);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "SIZE_INVALID"),
            "{q}"
        );
    }
    assert_eq!(cat("n=0").json()["repositories"], serde_json::json!([]));
    for q in [
        "n=99999999999999999999",
        "last=..%2F..",
        "last=%00&n=5&n=-1",
    ] {
        let r = cat(q);
        assert_eq!(r.status, 200, "{q}");
        assert_eq!(
            r.json()["repositories"],
            serde_json::json!(["seed/app"]),
            "{q}"
        );
    }
    // A repository that does not exist, whatever the page.
    let r = s
        .req("GET", "/v2/nope/nope/tags/list?n=99999999999999999999")
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (404, "NAME_UNKNOWN"));
    assert_intact(&s, &seed, 48);
}

// ---- malformed manifests ----------------------------------------------------------------

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn put_manifest(s: &Server, tag: &str, content_type: Option<&str>, body: Vec<u8>) -> Resp {
    let mut r = s
        .req("PUT", &format!("/v2/seed/app/manifests/{tag}"))
        .body(body);
    if let Some(ct) = content_type {
        r = r.header("Content-Type", ct);
    }
    r.send()
}

/// PUTs `body` under `tag`, expecting 400 with `code`, within 5 s.
fn refused(s: &Server, what: &str, ct: Option<&str>, body: Vec<u8>, code: &str) {
    let t = Instant::now();
    let r = put_manifest(s, "bad", ct, body);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, code),
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what} took {:?}",
        t.elapsed()
    );
}

#[test]
fn malformed_manifests_get_manifest_invalid_and_deep_nesting_cannot_overflow_the_stack() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let good = String::from_utf8(seed.manifest.clone()).unwrap();
    let config_len = seed.blobs[0].1.len();
    // The seeded manifest with one edit.
    let edit = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1).into_bytes()
    };
    let size = format!("\"size\":{config_len}");
    let top = "\"schemaVersion\":2";
    let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
    let not_utf8 = {
        let mut b = edit(top, &format!("{top},\"annotations\":{{\"k\":\"\u{1}\"}}"));
        let i = b.iter().position(|&c| c == 1).unwrap();
        b[i] = 0xff;
        b
    };
    let media = format!("\"mediaType\":\"{OCI_MANIFEST}\",");
    let oci = Some(OCI_MANIFEST);
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("truncated", oci, good.as_bytes()[..good.len() / 2].to_vec()),
        ("empty", oci, vec![]),
        ("not an object", oci, b"[1,2,3]".to_vec()),
        ("trailing garbage", oci, [good.as_bytes(), b" {}"].concat()),
        ("string schemaVersion", oci, edit(top, "\"schemaVersion\":\"2\"")),
        ("schemaVersion 3", oci, edit(top, "\"schemaVersion\":3")),
        ("layers an object", oci, edit("\"layers\":[", "\"layers\":{},\"x\":[")),
        ("size a string", oci, edit(&size, &format!("\"size\":\"{config_len}\""))),
        ("negative size", oci, edit(&size, "\"size\":-1")),
        ("float size", oci, edit(&size, "\"size\":1e300")),
        ("size over u64", oci, edit(&size, "\"size\":99999999999999999999999")),
        ("digest with a path", oci, edit("sha256:", "sha256:../../")),
        ("not UTF-8", oci, not_utf8),
        ("raw NUL in a string", oci, edit(top, &format!("{top},\"annotations\":{{\"k\":\"a\u{0}b\"}}"))),
        ("deep top level", oci, deep(100_000).into_bytes()),
        ("deep annotation", oci, edit(top, &format!("{top},\"annotations\":{{\"k\":{}}}", deep(100_000)))),
        ("deep unknown field", oci, edit(top, &format!("{top},\"x\":{}", deep(100_000)))),
        ("deep objects", oci, edit(top, &format!("{top},\"x\":{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)))),
        // Media types.
        ("unknown Content-Type", Some("text/plain"), good.clone().into_bytes()),
        ("Content-Type against mediaType", Some("application/vnd.oci.image.index.v1+json"), good.clone().into_bytes()),
        ("Docker type, no mediaType", Some("application/vnd.docker.distribution.manifest.v2+json"), edit(&media, "")),
        ("unknown mediaType", None, edit(OCI_MANIFEST, "application/x-evil")),
        ("schema1", Some("application/vnd.docker.distribution.manifest.v1+prettyjws"), good.clone().into_bytes()),
        ("no way to tell", None, br#"{"schemaVersion":2}"#.to_vec()),
    ];
    for (what, ct, body) in cases {
        refused(&s, what, ct, body, "MANIFEST_INVALID");
    }
    // A layer nobody pushed.
    let ld = &seed.blobs[1].0;
    refused(
        &s,
        "unknown layer",
        oci,
        edit(ld, &d('e')),
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_eq!(
        s.req("GET", "/v2/seed/app/manifests/bad").send().status,
        404
    );
    // Without mediaType and Content-Type, an OCI manifest is recognised by its shape.
    assert_eq!(
        put_manifest(&s, "shape", None, edit(&media, "")).status,
        201
    );
    assert_intact(&s, &seed, 48);
}

/// Regression: duplicate keys were taken as the last value (inside annotations, platforms
/// and unknown fields), so the registry and a client reading the same manifest with another
/// parser could see different content. Every duplicate is refused now, escaped or not.
#[test]
fn duplicate_json_keys_in_a_manifest_are_refused() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let good = String::from_utf8(seed.manifest.clone()).unwrap();
    let cd = &seed.blobs[0].0;
    let edit = |from: &str, to: &str| good.replacen(from, to, 1).into_bytes();
    let top = "\"schemaVersion\":2";
    let other_config = format!(
        "\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{}\",\"size\":1}},\"layers\":",
        d('b')
    );
    #[rustfmt::skip]
    let cases = [
        ("top-level key", edit(top, &format!("{top},{top}"))),
        ("config", edit("\"layers\":", &other_config)),
        ("digest in a descriptor", edit(&format!("\"digest\":\"{cd}\""), &format!("\"digest\":\"{}\",\"digest\":\"{cd}\"", d('c')))),
        ("annotation", edit(top, &format!("{top},\"annotations\":{{\"a\":\"1\",\"a\":\"2\"}}"))),
        ("escaped key", edit(top, &format!("{top},\"annotations\":{{\"a\":\"1\",\"\\u0061\":\"2\"}}"))),
        ("unknown key", edit(top, &format!("{top},\"x\":1,\"x\":2"))),
        ("nested unknown key", edit(top, &format!("{top},\"x\":[{{\"y\":1,\"y\":1}}]"))),
    ];
    for (what, body) in cases {
        refused(&s, what, Some(OCI_MANIFEST), body, "MANIFEST_INVALID");
    }
    assert_intact(&s, &seed, 48);
}

/// Regression: descriptor sizes were not compared with what they name, so a manifest could
/// claim a layer of 2^64-1 bytes (or one byte more than it has), which clients only find out
/// when the pull fails.
#[test]
fn descriptor_sizes_that_differ_from_the_content_are_refused() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let good = String::from_utf8(seed.manifest.clone()).unwrap();
    let layer_len = seed.blobs[1].1.len();
    let size = format!("\"size\":{layer_len}");
    for wrong in [
        "18446744073709551615".to_string(),
        (layer_len + 1).to_string(),
        "0".to_string(),
    ] {
        let body = good
            .replacen(&size, &format!("\"size\":{wrong}"), 1)
            .into_bytes();
        refused(&s, &wrong, Some(OCI_MANIFEST), body, "MANIFEST_INVALID");
    }
    // An index whose child's size is off.
    let index = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{{\"mediaType\":\"{OCI_MANIFEST}\",\"digest\":\"{}\",\"size\":{}}}]}}",
        sha256(&seed.manifest),
        seed.manifest.len() + 7
    );
    let ct = Some("application/vnd.oci.image.index.v1+json");
    refused(
        &s,
        "index child",
        ct,
        index.into_bytes(),
        "MANIFEST_INVALID",
    );
    assert_intact(&s, &seed, 48);
}

#[test]
fn a_manifest_listing_one_layer_twenty_thousand_times_costs_bounded_work() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    let (cd, config) = &seed.blobs[0];
    let (ld, layer) = &seed.blobs[1];
    let layers: Vec<(&str, usize)> = (0..20_000).map(|_| (ld.as_str(), layer.len())).collect();
    let m = image_manifest((cd, config.len()), &layers);
    assert!(m.len() < 4 << 20);
    let t = Instant::now();
    let r = put_manifest(&s, "wide", Some(OCI_MANIFEST), m.clone());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .req("GET", "/v2/seed/app/manifests/wide")
        .header("Accept", OCI_MANIFEST)
        .send();
    assert_eq!(r.body, m);
    let r = s
        .req("POST", "/api/v1/gc")
        .body(r#"{"grace_secs":0}"#)
        .send();
    assert_eq!(r.status, 200);
    let r = s
        .req("POST", "/api/v1/export")
        .body(r#"{"images":["seed/app:wide"]}"#)
        .send();
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_intact(&s, &seed, 64);
}

// ---- manifests that reference themselves ------------------------------------------------

fn oci_json(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn desc(media_type: &str, digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

#[test]
fn self_referencing_indexes_and_referrer_chains_terminate_everywhere() {
    let (_tmp, s) = start("");
    let seed = seed(&s);
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let put = |reference: &str, media: &str, body: &[u8]| {
        let r = s
            .req("PUT", &format!("/v2/seed/app/manifests/{reference}"))
            .header("Content-Type", media)
            .body(body.to_vec())
            .send();
        assert_eq!(
            r.status,
            201,
            "{reference}: {}",
            String::from_utf8_lossy(&r.body)
        );
        sha256(body)
    };
    let md = sha256(&seed.manifest);
    let image = desc(OCI_MANIFEST, &md, seed.manifest.len());
    // An index of the image.
    let index =
        oci_json(serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [image]}));
    let id = put("idx", INDEX, &index);
    let index_desc = desc(INDEX, &id, index.len());
    // An index that lists the index and is its referrer too: child and subject are the same.
    let loop1 = oci_json(serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": [index_desc.clone()], "subject": index_desc.clone(),
    }));
    let l1 = put(&sha256(&loop1), INDEX, &loop1);
    let loop1_desc = desc(INDEX, &l1, loop1.len());
    // And one level more: an index listing that one, whose subject is also that one.
    let loop2 = oci_json(serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": [loop1_desc.clone(), index_desc.clone()], "subject": loop1_desc,
    }));
    let l2 = put("loop2", INDEX, &loop2);
    // A chain of 40 referrers, each the subject of the next, starting at the index.
    let (cd, config) = &seed.blobs[0];
    let mut subject = index_desc.clone();
    let mut chain = vec![];
    for i in 0..40 {
        let m = oci_json(serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.chain",
            "config": desc("application/vnd.oci.image.config.v1+json", cd, config.len()),
            "layers": [], "subject": subject, "annotations": {"n": i.to_string()},
        }));
        let md = put(&sha256(&m), OCI_MANIFEST, &m);
        subject = desc(OCI_MANIFEST, &md, m.len());
        chain.push(md);
    }
    // A referrer of something that does not exist (allowed: the subject may come later).
    let dangling = oci_json(serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.sig",
        "config": desc("application/vnd.oci.image.config.v1+json", cd, config.len()),
        "layers": [], "subject": desc(OCI_MANIFEST, &d('f'), 10),
    }));
    put(&sha256(&dangling), OCI_MANIFEST, &dangling);
    // An index that lists a digest it does not hold (such as its own, which cannot be known
    // before it is written): refused, nothing stored.
    let selfish = oci_json(serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": [desc(INDEX, &d('9'), 100)],
    }));
    let r = put_manifest(&s, "selfish", Some(INDEX), selfish);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );

    let t = Instant::now();
    // Referrers of the index: the loop and the chain's first link.
    let r = s.req("GET", &format!("/v2/seed/app/referrers/{id}")).send();
    assert_eq!(r.status, 200);
    let mut found: Vec<String> = r.json()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    let mut want = vec![l1.clone(), chain[0].clone()];
    want.sort();
    assert_eq!(found, want);
    // Export follows children (the loop's child is the index, already taken) and terminates.
    for image in ["seed/app:loop2", "seed/app:idx"] {
        let r = s
            .req("POST", "/api/v1/export")
            .body(format!("{{\"images\":[\"{image}\"]}}"))
            .send();
        assert_eq!(r.status, 200, "{image}");
        assert!(r.body.len() > 1024);
    }
    // GC with nothing in grace (what was pushed this second is still in it): everything
    // tagged or reachable stays.
    std::thread::sleep(Duration::from_millis(1100));
    let r = s
        .req("POST", "/api/v1/gc")
        .body(r#"{"grace_secs":0}"#)
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["manifests_deleted"],
        1,
        "only the dangling referrer goes: {}",
        r.json()
    );
    for dg in chain.iter().chain([&l1, &l2, &id]) {
        assert_eq!(
            s.req("HEAD", &format!("/v2/seed/app/manifests/{dg}"))
                .send()
                .status,
            200
        );
    }
    // Deleting the index by digest (and so its tag): the loop and the chain are unreachable
    // from it now, but loop2 is still tagged, which keeps loop1 and the index as children.
    let r = s
        .req("DELETE", &format!("/v2/seed/app/manifests/{id}"))
        .send();
    assert_eq!(r.status, 202);
    let r = s.req("GET", &format!("/v2/seed/app/referrers/{id}")).send();
    assert_eq!(r.status, 200);
    let r = s.req("DELETE", "/v2/seed/app/manifests/loop2").send();
    assert_eq!(r.status, 202);
    let r = s
        .req("POST", "/api/v1/gc")
        .body(r#"{"grace_secs":0}"#)
        .send();
    assert_eq!(r.status, 200);
    assert!(
        r.json()["manifests_deleted"].as_u64().unwrap() >= 42,
        "{}",
        r.json()
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_intact(&s, &seed, 48);
}

// ---- secrets in logs --------------------------------------------------------------------

/// Logs in every way there is, right and wrong, and returns every secret that went over the
/// wire: passwords, tokens, refresh tokens, a robot secret, Basic header values.
fn log_in_every_way(s: &Server) -> Vec<String> {
    let good = "Sup3r-secret-pw-good";
    let wrong = "Wr0ng-secret-pw-bad";
    let mut secrets = vec![good.to_string(), wrong.to_string()];
    let admin = basic("alice", good);
    let bad = basic("alice", wrong);
    secrets.push(admin["Basic ".len()..].to_string());
    secrets.push(bad["Basic ".len()..].to_string());
    assert_eq!(s.req("GET", "/v2/").auth(&admin).send().status, 200);
    assert_eq!(s.req("GET", "/v2/").auth(&bad).send().status, 401);
    // Token endpoint, GET with Basic.
    let r = s
        .req(
            "GET",
            "/token?service=edgeyard&scope=repository:team/app:pull,push&offline_token=true",
        )
        .auth(&admin)
        .send();
    assert_eq!(r.status, 200);
    let j = r.json();
    let token = j["token"].as_str().unwrap().to_string();
    let refresh = j["refresh_token"].as_str().unwrap().to_string();
    secrets.push(token.clone());
    secrets.push(refresh.clone());
    assert_eq!(
        s.req("GET", "/token?service=edgeyard")
            .auth(&bad)
            .send()
            .status,
        401
    );
    // Token endpoint, POST with the password and the refresh grants.
    let form = |body: String| {
        s.req("POST", "/token")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let r = form(format!("grant_type=password&username=alice&password={good}&service=edgeyard&access_type=offline&client_id=t&scope=repository:team/app:pull"));
    assert_eq!(r.status, 200);
    secrets.push(r.json()["token"].as_str().unwrap().to_string());
    secrets.push(r.json()["refresh_token"].as_str().unwrap().to_string());
    assert_eq!(
        form(format!(
            "grant_type=password&username=alice&password={wrong}&service=edgeyard"
        ))
        .status,
        401
    );
    let r = form(format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=edgeyard&client_id=t"
    ));
    assert_eq!(r.status, 200);
    secrets.push(r.json()["token"].as_str().unwrap().to_string());
    let forged = format!("{refresh}x");
    secrets.push(forged.clone());
    assert_eq!(
        form(format!(
            "grant_type=refresh_token&refresh_token={forged}&service=edgeyard"
        ))
        .status,
        401
    );
    // Bearer, right and forged.
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&format!("Bearer {token}"))
            .send()
            .status,
        200
    );
    let bogus = "eyJhbGciOiJFUzI1NiJ9.Zm9yZ2VkLXRva2VuLXNlY3JldA.c2lnbmF0dXJl";
    secrets.push(bogus.to_string());
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&format!("Bearer {bogus}"))
            .send()
            .status,
        401
    );
    // Admin API: a user with a password, a password change, a robot and its secret.
    let new_pw = "N3w-user-secret-pw";
    let changed_pw = "Ch4nged-user-secret-pw";
    secrets.push(new_pw.into());
    secrets.push(changed_pw.into());
    let r = s
        .req("POST", "/api/v1/users")
        .auth(&admin)
        .body(format!("{{\"name\":\"carol\",\"password\":\"{new_pw}\"}}"))
        .send();
    assert_eq!(r.status, 201);
    let r = s
        .req("PUT", "/api/v1/users/carol/password")
        .auth(&admin)
        .body(format!("{{\"password\":\"{changed_pw}\"}}"))
        .send();
    assert_eq!(r.status, 204);
    let r = s
        .req("POST", "/api/v1/users")
        .auth(&admin)
        .body(format!(
            "{{\"name\":\"dave\",\"password\":\"short\",\"bogus\":\"{new_pw}\"}}"
        ))
        .send();
    assert_eq!(r.status, 400);
    let r = s
        .req("POST", "/api/v1/robots")
        .auth(&admin)
        .body(r#"{"name":"ci","grants":[{"repos":"team/**","actions":["pull"]}]}"#)
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let robot = r.json()["name"].as_str().unwrap().to_string();
    let robot_secret = r.json()["secret"].as_str().unwrap().to_string();
    secrets.push(robot_secret.clone());
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&basic(&robot, &robot_secret))
            .send()
            .status,
        200
    );
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&basic("carol", changed_pw))
            .send()
            .status,
        200
    );
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&basic("carol", new_pw))
            .send()
            .status,
        401
    );
    // A push-to with credentials for the target (which does not answer).
    let push_pw = "T4rget-secret-pw";
    secrets.push(push_pw.into());
    let r = s
        .req("POST", "/api/v1/push-to")
        .auth(&admin)
        .body(format!("{{\"url\":\"https://127.0.0.1:1\",\"images\":[\"team/app:v1\"],\"username\":\"u\",\"password\":\"{push_pw}\"}}"))
        .send();
    assert!(r.status >= 400);
    secrets
}

#[test]
fn secrets_never_reach_the_logs_in_text_or_json() {
    for format in ["text", "json"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        edgeyard(
            &dir,
            &["user", "add", "alice", "--password-stdin", "--admin"],
            "Sup3r-secret-pw-good\n",
        );
        let s = Server::start_auth(&dir, &["--log-format", format, "--log", "trace"]);
        let secrets = log_in_every_way(&s);
        std::thread::sleep(Duration::from_millis(200));
        let log = s.log_text();
        assert!(
            log.contains("login failed"),
            "{format}: the log is not the one expected"
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{format}: a secret is in the log: {secret}"
            );
        }
        // Nothing looking like a token either.
        assert!(!log.contains("eyJ"), "{format}: a JWT is in the log");
    }
}
