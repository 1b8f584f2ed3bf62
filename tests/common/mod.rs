//! Test harness: start the real `edgeyard` binary on a free loopback port with its own data
//! dir, talk to it with a small blocking HTTP/1.1 client, and stop it (by PID) on drop.

#![allow(dead_code)]

pub mod distribution;
pub mod docker;
pub mod pushload;
pub mod signing;
pub mod soft;
pub mod vm;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `edgeyard serve` on 127.0.0.1:0 with `data_dir`, the mode flags and extra flags.
pub fn serve_cmd(data_dir: &Path, mode: &[&str], extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeyard"));
    cmd.arg("serve")
        .args(mode)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra);
    cmd
}

pub struct Server {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts edgeyard on 127.0.0.1:0 with a fresh data dir.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir);
        s._tmp = Some(tmp);
        s
    }

    /// Starts edgeyard on an existing data dir (for restart tests).
    pub fn start_in(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Plain HTTP, authentication off, with extra `serve` flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Server::launch(
            serve_cmd(data_dir, &["--insecure-http", "--no-auth"], extra),
            data_dir,
        )
    }

    /// HTTPS (the default), authentication off, with extra `serve` flags.
    pub fn start_tls(data_dir: &Path, extra: &[&str]) -> Server {
        Server::launch(serve_cmd(data_dir, &["--no-auth"], extra), data_dir)
    }

    /// Plain HTTP with authentication on (the default), with extra `serve` flags.
    pub fn start_auth(data_dir: &Path, extra: &[&str]) -> Server {
        Server::launch(serve_cmd(data_dir, &["--insecure-http"], extra), data_dir)
    }

    /// Runs a prepared command (e.g. wrapped in `ip netns exec`) and waits for the
    /// "listening on" line.
    pub fn launch(mut cmd: Command, data_dir: &Path) -> Server {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edgeyard");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    // Text lines end the URL with a space, JSON lines with a quote.
                    let url = line[i + "listening on ".len()..]
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap_or("");
                    let addr = url
                        .split_once("://")
                        .map(|x| x.1)
                        .unwrap_or(url)
                        .to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "edgeyard did not report its address; log: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            log,
        }
    }

    /// The server's process id (for /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Sends a signal (e.g. "HUP") to the server process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (10 s at most) until the log holds `what` at least `n` times; the log is read
    /// by another thread.
    pub fn wait_log_count(&self, what: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.log_text().matches(what).count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} of {what:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (10 s at most) until the log contains `what`.
    pub fn wait_log(&self, what: &str) {
        self.wait_log_count(what, 1)
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        Req {
            addr: self.addr.clone(),
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Stops the process with SIGKILL (crash) and waits for it; the data dir stays.
    pub fn kill(mut self) -> Option<tempfile::TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self._tmp.take()
    }

    /// Stops with SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Req {
    addr: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first error code of a spec error body.
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Req {
    /// The request with an `Authorization` header (`basic(..)`, or `Bearer <token>`).
    pub fn auth(self, value: &str) -> Req {
        self.header("Authorization", value)
    }

    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = b.into();
        self
    }

    pub fn send(self) -> Resp {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.addr,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (e.g. 413) before reading a large body and close; the
        // answer is still there to read.
        let _ = s.write_all(&self.body);
        read_response(&mut s, self.method == "HEAD")
    }
}

pub fn read_response(s: &mut TcpStream, head_only: bool) -> Resp {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    if !head_only {
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        match len {
            Some(n) => {
                body.resize(n, 0);
                r.read_exact(&mut body).unwrap();
            }
            None if chunked => loop {
                // size line (hex), data, CRLF; a zero size ends the body.
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                let mut chunk = vec![0; size + 2];
                r.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            },
            None => {
                r.read_to_end(&mut body).unwrap();
            }
        }
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// Adds an access rule offline: `edgeyard access add --subject S --repos R --actions A`.
pub fn access_add(dir: &Path, subject: &str, repos: &str, actions: &str) -> String {
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
    )
}

/// Runs `edgeyard ARGS --data-dir DIR` with `stdin` as standard input; returns stdout.
/// (The data directory is created first: offline commands refuse a missing one, and tests
/// provision users before the first start, as an operator may in an image build.)
pub fn edgeyard(data_dir: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    std::fs::create_dir_all(data_dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run edgeyard");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "edgeyard {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Authorization: Basic ...` value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no rand crate.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Uploads a blob monolithically into `repo`; asserts 201.
pub fn push_blob(s: &Server, repo: &str, data: &[u8]) -> String {
    push_blob_as(s, None, repo, data)
}

/// [`push_blob`] with an Authorization header.
pub fn push_blob_as(s: &Server, auth: Option<&str>, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let mut req = s
        .req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(data.to_vec());
    if let Some(a) = auth {
        req = req.auth(a);
    }
    let r = req.send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    d
}

/// An OCI image manifest for a config and layers already pushed.
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .unwrap()
}

/// Every file under `dir`, with its bytes, for before/after comparisons of the store.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// Whether an external client needed by an end-to-end test is present. Missing tools fail
/// the test (the README's test command installs them) unless the developer explicitly opts
/// out with `EDGEYARD_E2E=skip`, in which case the skip is printed.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    found || unavailable(&format!("{tool} is not installed"))
}

/// For a test that cannot run without something (`what` says what is missing): `false`, to
/// skip, when EDGEYARD_E2E=skip asks for it (printed); otherwise a panic pointing at
/// scripts/test.
pub fn unavailable(what: &str) -> bool {
    if std::env::var("EDGEYARD_E2E").as_deref() == Ok("skip") {
        eprintln!("SKIPPED: {what} (EDGEYARD_E2E=skip)");
        return false;
    }
    panic!("{what}: run scripts/test, which installs it, or set EDGEYARD_E2E=skip");
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes an OCI image layout with one single-platform image (tag `img`) under `dir`;
/// returns the manifest digest.
pub fn oci_image_layout(dir: &Path, seed: u64) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        std::fs::write(dir.join("blobs/sha256").join(&d["sha256:".len()..]), data).unwrap();
        (d, data.len())
    };
    let layer = bytes(200_000, seed);
    let (ld, ln) = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ld]}
    }))
    .unwrap();
    let (cd, cn) = put(&config);
    let manifest = image_manifest((&cd, cn), &[(&ld, ln)]);
    let (md, mn) = put(&manifest);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md, "size": mn,
                "annotations": {"org.opencontainers.image.ref.name": "img"}
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    md
}

/// The SHA-256 fingerprint (`AB:CD:…`) of the certificate a TLS server presents.
pub fn served_fingerprint(addr: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .expect("openssl");
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim().rsplit('=').next().unwrap_or("").to_string()
}

/// File name and SHA-256 of every blob of an OCI layout, for comparing layouts (short
/// failure messages, unlike comparing the bytes themselves).
pub fn layout_blobs(root: &Path) -> Vec<(String, String)> {
    snapshot(&root.join("blobs"))
        .into_iter()
        .map(|(p, b)| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sha256(&b),
            )
        })
        .collect()
}

/// Writes a blob into an OCI layout and returns its descriptor fields.
pub fn layout_put(layout: &Path, data: &[u8]) -> (String, usize) {
    let d = sha256(data);
    let p = layout.join("blobs/sha256").join(&d["sha256:".len()..]);
    std::fs::write(p, data).unwrap();
    (d, data.len())
}

fn platform_image(layout: &Path, arch: &str, seed: u64) -> serde_json::Value {
    let layer = bytes(100_000 + seed as usize, seed);
    let (ld, ln) = layout_put(layout, &layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [ld]}
    }))
    .unwrap();
    let (cd, cn) = layout_put(layout, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ln}]
    }))
    .unwrap();
    let (md, mn) = layout_put(layout, &manifest);
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn,
        "platform": {"architecture": arch, "os": "linux"}
    })
}

/// An OCI layout (ref name `multi`) holding a two-platform index; returns its digest and bytes.
pub fn oci_multi_arch_layout(src: &Path) -> (String, Vec<u8>) {
    std::fs::create_dir_all(src.join("blobs/sha256")).unwrap();
    std::fs::write(src.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let children = vec![
        platform_image(src, "amd64", 1),
        platform_image(src, "arm64", 2),
    ];
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children
    }))
    .unwrap();
    let (idx_digest, idx_len) = layout_put(src, &index);
    std::fs::write(
        src.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": idx_digest, "size": idx_len,
                "annotations": {"org.opencontainers.image.ref.name": "multi"}
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    (idx_digest, index)
}

/// Pushes a config and a layer of `layer_len` bytes (both from `seed`) and PUTs an OCI
/// manifest for them under `tag`; returns the answer to the PUT and the manifest bytes.
pub fn put_image(
    s: &Server,
    repo: &str,
    tag: &str,
    seed: u64,
    layer_len: usize,
) -> (Resp, Vec<u8>) {
    put_image_as(s, None, repo, tag, seed, layer_len)
}

/// [`put_image`] with an Authorization header.
pub fn put_image_as(
    s: &Server,
    auth: Option<&str>,
    repo: &str,
    tag: &str,
    seed: u64,
    layer_len: usize,
) -> (Resp, Vec<u8>) {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let layer = bytes(layer_len, seed);
    let cd = push_blob_as(s, auth, repo, &config);
    let ld = push_blob_as(s, auth, repo, &layer);
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
    let mut req = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone());
    if let Some(a) = auth {
        req = req.auth(a);
    }
    (req.send(), m)
}

/// A tmpfs of `mib` MiB mounted for the test; unmounted on drop.
pub struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    pub fn mount(dir: &std::path::Path, mib: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(SmallDisk(dir.to_path_buf()));
        }
        if std::env::var("EDGEYARD_E2E").as_deref() == Ok("skip") {
            eprintln!("SKIPPED: cannot mount a tmpfs here (EDGEYARD_E2E=skip)");
            return None;
        }
        panic!("mounting a tmpfs failed: run the tests as root (scripts/test)");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The URL that closes an upload at `location` with `digest` (the Location may already
/// carry a query).
pub fn closing(location: &str, digest: impl std::fmt::Display) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}
