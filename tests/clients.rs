//! The client matrix: real third-party registry clients, each against edgeyard over HTTPS
//! with its own CA (verified by the client) and a login, each doing what it can of: push,
//! pull, a multi-arch index copy, tags with paging, catalog, delete, and an OCI 1.1
//! artifact (artifactType + subject) with its discovery through the referrers API.
//!
//! One `#[test]` per client against edgeyard. The same rows run against CNCF Distribution
//! 2.8 (Debian's docker-registry, over HTTPS with an htpasswd login) as `#[ignore]`d tests,
//! the reference the README's "Client compatibility" table quotes:
//!
//!     cargo test --test clients -- --ignored --nocapture
//!
//! The clients come from scripts/test: Debian packages (skopeo, podman, buildah, umoci,
//! containerd's ctr, docker, golang-go + golang-oras-oras-go-dev), PyPI (oras-py and
//! python-dxf in target/clients-venv) and crates.io (oci-client, a dev-dependency). The
//! Python and Go rows live in tests/clients/; each step there reports "ok" or the error it
//! met, and the row asserts every step, so a failure names the step and the registry's
//! answer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "admin";
const PASSWORD: &str = "clients-matrix-password-1";
const ARTIFACT_TYPE: &str = "application/vnd.edgeyard.test.sbom";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

// ---------------------------------------------------------------------------------------
// The registries under test
// ---------------------------------------------------------------------------------------

/// A registry over HTTPS with a login: edgeyard (token auth, as by default) or CNCF
/// Distribution 2.8 (htpasswd, HTTP Basic), both serving a certificate of the same kind of
/// CA (edgeyard's), which every client is given to verify.
struct Target {
    name: &'static str,
    addr: String,
    ca: PathBuf,
    tmp: tempfile::TempDir,
    _proc: Proc,
}

enum Proc {
    /// Held for its Drop, which stops the server.
    Edgeyard(#[allow(dead_code)] Server),
    Distribution(Child),
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Proc::Distribution(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A temporary directory whose path is all lower case: podman names an image it pulls
/// from an OCI layout after the layout's path, and image names must be lower case.
fn lowercase_tempdir() -> tempfile::TempDir {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tempfile::Builder::new()
        .prefix(&format!("edgeyard-clients-{}-{n}", std::process::id()))
        .rand_bytes(0)
        .tempdir()
        .unwrap()
}

impl Target {
    /// edgeyard as shipped: HTTPS with its own CA, authentication on, `admin` with a known
    /// first password.
    fn edgeyard() -> Target {
        let tmp = lowercase_tempdir();
        let data = tmp.path().join("data");
        let mut cmd = serve_cmd(&data, &[], &[]);
        cmd.env("EDGEYARD_ADMIN_PASSWORD", PASSWORD);
        let s = Server::launch(cmd, &data);
        Target {
            name: "edgeyard",
            addr: s.addr.clone(),
            ca: data.join("tls/ca.crt"),
            tmp,
            _proc: Proc::Edgeyard(s),
        }
    }

    /// CNCF Distribution 2.8 over HTTPS (a server certificate issued by an edgeyard data
    /// dir's CA, for 127.0.0.1) with an htpasswd login and deletion enabled.
    fn distribution() -> Option<Target> {
        if !require_tool("docker-registry") {
            return None;
        }
        let tmp = lowercase_tempdir();
        let certs = tmp.path().join("certs");
        // edgeyard makes its CA and server certificate on first start.
        drop(Server::start_tls(&certs, &[]));
        let hash = bcrypt::hash_with_result(PASSWORD, 5)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        std::fs::write(tmp.path().join("htpasswd"), format!("{USER}:{hash}\n")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = tmp.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
                 auth:\n  htpasswd:\n    realm: registry\n    path: {htpasswd}\n\
                 http:\n  addr: {addr}\n  tls:\n    certificate: {crt}\n    key: {key}\n",
                data = tmp.path().join("data").display(),
                htpasswd = tmp.path().join("htpasswd").display(),
                crt = certs.join("tls/server.crt").display(),
                key = certs.join("tls/server.key").display(),
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        let t = Target {
            name: "distribution",
            addr,
            ca: certs.join("tls/ca.crt"),
            tmp,
            _proc: Proc::Distribution(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&t.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(t)
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A request with curl (CA verified, HTTP Basic): status, headers (lower-case names)
    /// and body. The rows check the registry's state with it, independently of the client.
    fn api(&self, method: &str, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-X", method, "-D", "-"])
            .args(if method == "HEAD" { vec!["-I"] } else { vec![] })
            .arg("--cacert")
            .arg(&self.ca)
            .args(["-u", &format!("{USER}:{PASSWORD}"), "-H"])
            .arg(format!("Accept: {accept}"))
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let raw = out.stdout;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head, raw[split..].to_vec())
    }

    /// The digest the registry serves for a manifest reference (asserting 200).
    fn manifest_digest(&self, repo: &str, reference: &str) -> String {
        let (status, head, body) = self.api(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &format!("{OCI_MANIFEST}, {OCI_INDEX}"),
        );
        assert_eq!(
            status,
            200,
            "GET {repo}:{reference} on {}: {}",
            self.name,
            String::from_utf8_lossy(&body)
        );
        let d = sha256(&body);
        assert!(
            head.contains(&format!("docker-content-digest: {d}")),
            "{head}"
        );
        d
    }

    /// The tags the registry lists for a repository.
    fn tags(&self, repo: &str) -> Vec<String> {
        let (status, _, body) = self.api("GET", &format!("/v2/{repo}/tags/list"), "*/*");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        t.sort();
        t
    }
}

/// Prints how long a row took (the README and CI budget quote these).
struct Timer(&'static str, &'static str, Instant);

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!(
            "client matrix: {} against {}: {:.1} s",
            self.0,
            self.1,
            self.2.elapsed().as_secs_f64()
        );
    }
}

fn timer(row: &'static str, t: &Target) -> Timer {
    Timer(row, t.name, Instant::now())
}

/// Asserts that every step of a scripted row (Python, Go) reported "ok".
fn assert_steps(row: &str, t: &Target, summary: &serde_json::Value, want: &[&str]) {
    let steps = summary["steps"].as_object().expect("steps");
    let failed: Vec<String> = steps
        .iter()
        .filter(|(_, v)| v.as_str() != Some("ok"))
        .map(|(k, v)| format!("  {k}: {}", v.as_str().unwrap_or("?")))
        .collect();
    for w in want {
        assert!(steps.contains_key(*w), "{row}: no step {w}: {summary}");
    }
    assert!(
        failed.is_empty(),
        "{row} against {}: steps failed:\n{}",
        t.name,
        failed.join("\n")
    );
}

/// Runs a command with a deadline (the clients talk to a local registry: minutes mean
/// a hang); returns (success, stdout, stderr). The child is killed by PID on timeout.
fn run_bounded(cmd: &mut Command, secs: u64) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (o.join().unwrap(), e.join().unwrap());
    match status {
        Some(st) => (st.success(), stdout, stderr),
        None => panic!("{cmd:?} did not finish within {secs} s:\n{stdout}\n{stderr}"),
    }
}

/// Runs a bounded command that must succeed; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let (success, out, err) = run_bounded(cmd, 180);
    assert!(success, "{cmd:?} failed:\nstdout: {out}\nstderr: {err}");
    out
}

/// The JSON summary a scripted row prints last.
fn summary_of(row: &str, stdout: &str, stderr: &str) -> serde_json::Value {
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    match last.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(v)) => v,
        _ => panic!("{row} printed no summary:\nstdout: {stdout}\nstderr: {stderr}"),
    }
}

/// What a scripted row must have left in the registry: the pushed manifest by digest, the
/// copied index by tag, and no deleted tag.
fn check_registry_state(t: &Target, prefix: &str, summary: &serde_json::Value) {
    let app = format!("{prefix}/app");
    let manifest = summary["manifest"].as_str().expect("manifest digest");
    assert_eq!(t.manifest_digest(&app, manifest), manifest);
    let index = summary["index"].as_str().expect("index digest");
    assert_eq!(t.manifest_digest(&format!("{prefix}/multi"), "v1"), index);
    let tags = t.tags(&app);
    assert!(
        tags.contains(&"t1".to_string()) && !tags.contains(&"t5".to_string()),
        "{tags:?}"
    );
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// PyPI: python-dxf and oras-py (tests/clients/pyclients.py)
// ---------------------------------------------------------------------------------------

/// The virtual environment scripts/test installs tests/clients/requirements.txt into.
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("EDGEYARD_CLIENTS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/clients-venv"));
    let py = venv.join("bin/python");
    if py.exists() {
        Some(py)
    } else {
        unavailable(&format!(
            "the PyPI clients (tests/clients/requirements.txt) are not installed in {}",
            venv.display()
        ));
        None
    }
}

fn python_row(row: &'static str, which: &str, t: &Target, auth: &str) {
    let Some(py) = venv_python() else { return };
    let _time = timer(row, t);
    let layout = t.dir(&format!("{which}-layout"));
    oci_multi_arch_layout(&layout);
    let work = t.dir(&format!("{which}-work"));
    let prefix = format!("py{which}");
    let (_, out, err) = run_bounded(
        Command::new(py)
            .arg(repo_root().join("tests/clients/pyclients.py"))
            .args([which, &t.addr])
            .arg(&t.ca)
            .args([USER, PASSWORD])
            .arg(&layout)
            .arg(&work)
            .args([&prefix, auth])
            // nothing from the user's environment: no docker config, no proxies.
            .env("HOME", &work)
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY"),
        240,
    );
    let summary = summary_of(row, &out, &err);
    let mut want = vec![
        "push", "pull", "tags", "index", "catalog", "referrer", "delete",
    ];
    if which == "dxf" {
        want.push("mount");
    }
    assert_steps(row, t, &summary, &want);
    check_registry_state(t, &prefix, &summary);
}

#[test]
fn python_dxf_pushes_pulls_pages_copies_an_index_and_deletes() {
    // python-dxf follows the token challenge, including pull -> push escalation.
    python_row("python-dxf", "dxf", &Target::edgeyard(), "token");
}

/// oras-py with its `basic` backend: HTTP Basic on every request (after a first 401),
/// which edgeyard accepts on /v2/ as Distribution with htpasswd does.
#[test]
fn oras_py_pushes_pulls_pages_copies_an_index_and_deletes() {
    python_row("oras-py", "oras", &Target::edgeyard(), "basic");
}

/// oras-py 0.2.43's `token` backend: after a `401 insufficient_scope` (the spec's answer
/// when a pull token is used to push, as Distribution gives it) it re-sends the same
/// token instead of asking for the challenged scope; it asks again only after a 403.
/// So the first push fails. A client bug, kept here to see when oras-py fixes it.
#[test]
#[ignore = "oras-py 0.2.43 does not renew its token after 401 insufficient_scope (README, Client compatibility)"]
fn oras_py_token_backend_escalates_pull_to_push() {
    python_row("oras-py (token)", "oras", &Target::edgeyard(), "token");
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn python_dxf_against_distribution() {
    if let Some(t) = Target::distribution() {
        python_row("python-dxf", "dxf", &t, "basic");
    }
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn oras_py_against_distribution() {
    if let Some(t) = Target::distribution() {
        python_row("oras-py", "oras", &t, "basic");
    }
}

// ---------------------------------------------------------------------------------------
// Go: oras-go v1 from Debian, over Go's HTTP/2 client (tests/clients/orasgo)
// ---------------------------------------------------------------------------------------

/// Builds tests/clients/orasgo once per test process, offline, in GOPATH mode against
/// Debian's packaged Go sources; the Go build cache stays in target/ for the next run.
fn orasgo() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    if !require_tool("go") {
        return None;
    }
    let gopath = Path::new("/usr/share/gocode");
    if !gopath.join("src/oras.land/oras-go").is_dir() {
        unavailable("oras-go is not installed (Debian package golang-oras-oras-go-dev)");
        return None;
    }
    let built = BUILT.get_or_init(|| {
        let dir = repo_root().join("target/clients-go");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("orasgo");
        let (success, out, err) = run_bounded(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg(".")
                .current_dir(repo_root().join("tests/clients/orasgo"))
                .env("GOPATH", gopath)
                .env("GO111MODULE", "off")
                .env("GOFLAGS", "")
                .env("GOPROXY", "off")
                .env("GOTOOLCHAIN", "local")
                .env("GOCACHE", dir.join("cache")),
            300,
        );
        if success {
            Ok(bin)
        } else {
            Err(format!("go build failed:\n{out}\n{err}"))
        }
    });
    Some(built.clone().unwrap_or_else(|e| panic!("{e}")))
}

fn oras_go_row(t: &Target) {
    let Some(bin) = orasgo() else { return };
    let _time = timer("oras-go", t);
    let layout = t.dir("orasgo-layout");
    oci_multi_arch_layout(&layout);
    let (_, out, err) = run_bounded(
        Command::new(bin)
            .args([&t.addr, USER, PASSWORD])
            .arg(&layout)
            .arg("goras")
            .env("SSL_CERT_FILE", &t.ca)
            .env("HOME", t.dir("orasgo-home"))
            .env_remove("GODEBUG")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy"),
        240,
    );
    let summary = summary_of("oras-go", &out, &err);
    assert_steps(
        "oras-go",
        t,
        &summary,
        &[
            "push", "pull", "tags", "index", "catalog", "referrer", "delete", "head",
        ],
    );
    // Every answer came over HTTP/2: Go's client negotiated h2 with ALPN.
    let protos = summary["protocols"].as_object().expect("protocols");
    assert_eq!(
        protos.keys().collect::<Vec<_>>(),
        vec!["HTTP/2.0"],
        "answers by protocol: {protos:?}"
    );
    assert!(protos["HTTP/2.0"].as_u64().unwrap() > 20, "{protos:?}");
    check_registry_state(t, "goras", &summary);
}

#[test]
fn oras_go_over_http2_pushes_pulls_pages_copies_an_index_and_deletes() {
    oras_go_row(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn oras_go_against_distribution() {
    if let Some(t) = Target::distribution() {
        oras_go_row(&t);
    }
}

// ---------------------------------------------------------------------------------------
// Rust: the oci-client crate (a dev-dependency; rustls with the ring provider)
// ---------------------------------------------------------------------------------------

async fn oci_client_row(t: &Target) -> Vec<(&'static str, Result<(), String>)> {
    use oci_client::client::{
        Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer,
    };
    use oci_client::manifest::OciImageManifest;
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    // reqwest is built without a crypto provider of its own: use ring, as edgeyard does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ClientConfig {
        protocol: ClientProtocol::Https,
        // only edgeyard's CA: nothing from the system store can make TLS pass.
        tls_certs_only: vec![Certificate {
            encoding: CertificateEncoding::Pem,
            data: std::fs::read(&t.ca).unwrap(),
        }],
        read_timeout: Some(Duration::from_secs(60)),
        connect_timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    };
    let client = Client::try_from(config).expect("oci-client with the CA");
    let auth = RegistryAuth::Basic(USER.into(), PASSWORD.into());
    let r = |s: &str| Reference::try_from(format!("{}/{s}", t.addr)).unwrap();
    let mut steps = Vec::new();
    let err = |e: oci_client::errors::OciDistributionError| format!("{e:?}");
    let tags = ["t1", "t2", "t3", "t4", "t5"];
    let layer_bytes = bytes(300_000, 41);
    let layer = ImageLayer::new(
        layer_bytes.clone(),
        "application/vnd.oci.image.layer.v1.tar".into(),
        None,
    );
    let config = Config::new(
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );

    // push: layer, config and one manifest per tag.
    let mut pushed = std::collections::BTreeMap::new();
    let push = async {
        for (n, tag) in tags.iter().enumerate() {
            let ann = [("edgeyard.test.n".to_string(), n.to_string())].into();
            let m = OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(ann));
            client
                .push(
                    &r(&format!("rsoci/app:{tag}")),
                    std::slice::from_ref(&layer),
                    config.clone(),
                    &auth,
                    Some(m),
                )
                .await
                .map_err(err)?;
            let d = client
                .fetch_manifest_digest(&r(&format!("rsoci/app:{tag}")), &auth)
                .await
                .map_err(err)?;
            pushed.insert(*tag, d);
        }
        Ok(())
    };
    steps.push(("push", push.await));

    // pull: the layer comes back byte-equal, under the digest the registry named.
    let pull = async {
        let img = client
            .pull(
                &r("rsoci/app:t1"),
                &auth,
                vec!["application/vnd.oci.image.layer.v1.tar"],
            )
            .await
            .map_err(err)?;
        if img.layers.len() != 1 || img.layers[0].data.as_ref() != layer_bytes.as_slice() {
            return Err("layer not pulled back byte-equal".to_string());
        }
        if img.digest.as_deref() != pushed.get("t1").map(String::as_str) {
            return Err(format!(
                "pulled {:?}, pushed {:?}",
                img.digest,
                pushed.get("t1")
            ));
        }
        Ok(())
    };
    steps.push(("pull", pull.await));

    // tags, two per page, with `last` from the previous page.
    let paging = async {
        let (mut all, mut last, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page = client
                .list_tags(&r("rsoci/app"), &auth, Some(2), last.as_deref())
                .await
                .map_err(err)?;
            if page.tags.is_empty() {
                break;
            }
            pages += 1;
            if page.tags.len() > 2 || pages > 5 {
                return Err(format!("page {pages}: {:?}", page.tags));
            }
            last = page.tags.last().cloned();
            all.extend(page.tags);
        }
        if all != tags {
            return Err(format!("tags {all:?} in {pages} pages"));
        }
        Ok(())
    };
    steps.push(("tags", paging.await));

    // multi-arch index copy, byte for byte: blobs, child manifests, then the index.
    let layout = t.dir("oci-client-layout");
    let (idx_digest, index) = oci_multi_arch_layout(&layout);
    let copy = async {
        let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
        let idx: serde_json::Value = serde_json::from_slice(&index).unwrap();
        for child in idx["manifests"].as_array().unwrap() {
            let cd = child["digest"].as_str().unwrap();
            let m: serde_json::Value = serde_json::from_slice(&blob(cd)).unwrap();
            let mut descs = vec![m["config"].clone()];
            descs.extend(m["layers"].as_array().unwrap().iter().cloned());
            for d in descs {
                let d = d["digest"].as_str().unwrap();
                client
                    .push_blob(&r("rsoci/multi:v1"), blob(d), d)
                    .await
                    .map_err(err)?;
            }
            client
                .push_manifest_raw(
                    &r(&format!("rsoci/multi@{cd}")),
                    blob(cd),
                    OCI_MANIFEST.parse().unwrap(),
                )
                .await
                .map_err(err)?;
        }
        client
            .push_manifest_raw(
                &r("rsoci/multi:v1"),
                index.clone(),
                OCI_INDEX.parse().unwrap(),
            )
            .await
            .map_err(err)?;
        let (got, digest) = client
            .pull_manifest_raw(&r("rsoci/multi:v1"), &auth, &[OCI_INDEX])
            .await
            .map_err(err)?;
        if got.as_ref() != index.as_slice() || digest != idx_digest {
            return Err(format!("index read back as {digest}, pushed {idx_digest}"));
        }
        Ok(())
    };
    steps.push(("index", copy.await));

    // catalog, one repository per page.
    let catalog = async {
        let (mut all, mut last) = (Vec::new(), None::<String>);
        for _ in 0..20 {
            let page = client
                .catalog(&r("rsoci/app"), &auth, Some(1), last.as_deref())
                .await
                .map_err(err)?;
            if page.repositories.is_empty() {
                break;
            }
            last = page.repositories.last().cloned();
            all.extend(page.repositories);
        }
        if !all.contains(&"rsoci/app".to_string()) || !all.contains(&"rsoci/multi".to_string()) {
            return Err(format!("catalog {all:?}"));
        }
        Ok(())
    };
    steps.push(("catalog", catalog.await));

    // an artifact (artifactType, empty config, subject t1), and its discovery.
    let referrer = async {
        let t1 = pushed.get("t1").cloned().ok_or("no t1")?;
        let (t1_bytes, _) = client
            .pull_manifest_raw(&r("rsoci/app:t1"), &auth, &[OCI_MANIFEST])
            .await
            .map_err(err)?;
        let note = b"sbom of t1\n".to_vec();
        client
            .push_blob(&r("rsoci/app:t1"), b"{}".to_vec(), &sha256(b"{}"))
            .await
            .map_err(err)?;
        client
            .push_blob(&r("rsoci/app:t1"), note.clone(), &sha256(&note))
            .await
            .map_err(err)?;
        let art = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
            "layers": [{"mediaType": "text/plain", "digest": sha256(&note), "size": note.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": t1, "size": t1_bytes.len()},
        }))
        .unwrap();
        let ad = sha256(&art);
        client
            .push_manifest_raw(
                &r(&format!("rsoci/app@{ad}")),
                art,
                OCI_MANIFEST.parse().unwrap(),
            )
            .await
            .map_err(err)?;
        let refs = client
            .pull_referrers(&r(&format!("rsoci/app@{t1}")), Some(ARTIFACT_TYPE))
            .await
            .map_err(err)?;
        let got: Vec<(String, Option<String>)> = refs
            .manifests
            .iter()
            .map(|m| (m.digest.clone(), m.artifact_type.clone()))
            .collect();
        if got != vec![(ad.clone(), Some(ARTIFACT_TYPE.to_string()))] {
            return Err(format!("referrers {got:?}, want {ad}"));
        }
        Ok(())
    };
    steps.push(("referrer", referrer.await));
    steps
}

fn oci_client_check(t: &Target) {
    let _time = timer("oci-client", t);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let steps = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(180), oci_client_row(t))
            .await
            .expect("oci-client row within 180 s")
    });
    let failed: Vec<String> = steps
        .iter()
        .filter_map(|(k, v)| v.as_ref().err().map(|e| format!("  {k}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "oci-client against {}: steps failed:\n{}",
        t.name,
        failed.join("\n")
    );
    // The registry agrees: the index by tag, t1 listed.
    assert!(t.tags("rsoci/app").contains(&"t1".to_string()));
    t.manifest_digest("rsoci/multi", "v1");
}

#[test]
fn oci_client_crate_pushes_pulls_pages_copies_an_index_and_finds_referrers() {
    oci_client_check(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn oci_client_crate_against_distribution() {
    if let Some(t) = Target::distribution() {
        oci_client_check(&t);
    }
}

// ---------------------------------------------------------------------------------------
// Image fixtures with real tar layers (podman, buildah and containerd unpack them)
// ---------------------------------------------------------------------------------------

/// A tar archive with one file, `payload`, holding `data`.
fn tar_layer(data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append_data(&mut h, "payload", data).unwrap();
    b.into_inner().unwrap()
}

/// An OCI layout with two platform images (refs `amd64`, `arm64`, real tar layers), their
/// index (ref `multi`), and an artifact (ref `sbom`: artifactType, empty config, subject
/// the amd64 image). Returns the index digest and bytes and the amd64 manifest digest.
fn tar_layout(dir: &Path) -> (String, Vec<u8>, String) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut refs = Vec::new();
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let layer = tar_layer(&bytes(150_000 + i, 70 + i as u64));
        let (ld, ln) = layout_put(dir, &layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/payload"]},
            "rootfs": {"type": "layers", "diff_ids": [ld]}
        }))
        .unwrap();
        let (cd, cn) = layout_put(dir, &config);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ln}]
        }))
        .unwrap();
        let (md, mn) = layout_put(dir, &m);
        let desc = serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": md, "size": mn,
            "platform": {"architecture": arch, "os": "linux"}
        });
        children.push(desc.clone());
        let mut named = desc;
        named["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": arch});
        refs.push(named);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children
    }))
    .unwrap();
    let (xd, xn) = layout_put(dir, &index);
    refs.push(serde_json::json!({
        "mediaType": OCI_INDEX, "digest": xd, "size": xn,
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    }));
    let amd64 = refs[0].clone();
    let (ed, _) = layout_put(dir, b"{}");
    let (nd, nn) = layout_put(dir, b"sbom of the amd64 image\n");
    let art = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": nd, "size": nn}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": amd64["digest"], "size": amd64["size"]},
    }))
    .unwrap();
    let (ad, an) = layout_put(dir, &art);
    refs.push(serde_json::json!({
        "mediaType": OCI_MANIFEST, "digest": ad, "size": an, "artifactType": ARTIFACT_TYPE,
        "annotations": {"org.opencontainers.image.ref.name": "sbom"}
    }));
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": refs})).unwrap(),
    )
    .unwrap();
    (xd, index, amd64["digest"].as_str().unwrap().to_string())
}

/// A certs directory with the registry's CA, the layout skopeo, podman and buildah read
/// with `--cert-dir` (containers-certs.d(5)).
fn cert_dir(t: &Target) -> PathBuf {
    let d = t.dir("certs.d");
    std::fs::copy(&t.ca, d.join("ca.crt")).unwrap();
    d
}

/// The referrers the registry lists for `digest` in `repo`: (digest, artifactType).
fn referrers(t: &Target, repo: &str, digest: &str) -> (u16, Vec<(String, String)>) {
    let (status, _, body) = t.api("GET", &format!("/v2/{repo}/referrers/{digest}"), OCI_INDEX);
    if status != 200 {
        return (status, Vec::new());
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let list = v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["digest"].as_str().unwrap_or("").to_string(),
                m["artifactType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (status, list)
}

// ---------------------------------------------------------------------------------------
// skopeo (and umoci, which builds layouts and leaves the transport to skopeo)
// ---------------------------------------------------------------------------------------

fn skopeo(args: &[&str]) -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy").args(args);
    c
}

fn skopeo_row(t: &Target) {
    if !require_tool("skopeo") {
        return;
    }
    let _time = timer("skopeo", t);
    let certs = cert_dir(t);
    let certs = certs.to_str().unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    let src = t.dir("skopeo-src");
    let (idx, index, amd64) = tar_layout(&src);
    let to = |r: &str| format!("docker://{}/cli/{r}", t.addr);
    let from = |r: &str| format!("oci:{}:{r}", src.display());
    let push = |src_ref: String, dst: String| {
        ok(
            skopeo(&["copy", "--preserve-digests", "--dest-creds", &creds])
                .args(["--dest-cert-dir", certs])
                .arg(src_ref)
                .arg(dst),
        );
    };
    // push: t1..t4 the amd64 image, t5 the arm64 one; the index with --all.
    for tag in ["t1", "t2", "t3", "t4"] {
        push(from("amd64"), to(&format!("app:{tag}")));
    }
    push(from("arm64"), to("app:t5"));
    assert_eq!(t.manifest_digest("cli/app", "t1"), amd64);
    ok(skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-creds",
        &creds,
    ])
    .args(["--dest-cert-dir", certs])
    .arg(from("multi"))
    .arg(to("multi:v1")));
    assert_eq!(t.manifest_digest("cli/multi", "v1"), idx);
    // pull: the whole index back, every blob byte-equal.
    let dst = t.dir("skopeo-dst");
    ok(
        skopeo(&["copy", "--all", "--preserve-digests", "--src-creds", &creds])
            .args(["--src-cert-dir", certs])
            .arg(to("multi:v1"))
            .arg(format!("oci:{}:multi", dst.display())),
    );
    let (sent, back) = (layout_blobs(&src), layout_blobs(&dst));
    assert_eq!(
        back.len(),
        7,
        "index + 2 x (manifest, config, layer): {back:?}"
    );
    assert!(back.iter().all(|b| sent.contains(b)), "{back:?}");
    let raw = ok(
        skopeo(&["inspect", "--raw", "--creds", &creds, "--cert-dir", certs]).arg(to("multi:v1")),
    );
    assert_eq!(raw.as_bytes(), index.as_slice());
    // tags (skopeo follows the Link header if the registry pages).
    let tags: serde_json::Value = serde_json::from_str(&ok(skopeo(&[
        "list-tags",
        "--creds",
        &creds,
        "--cert-dir",
        certs,
    ])
    .arg(to("app"))))
    .unwrap();
    let mut got: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    got.sort();
    assert_eq!(got, ["t1", "t2", "t3", "t4", "t5"]);
    // delete: the manifest under t5 goes, by tag and by digest.
    let t5 = t.manifest_digest("cli/app", "t5");
    ok(skopeo(&["delete", "--creds", &creds, "--cert-dir", certs]).arg(to("app:t5")));
    assert_eq!(t.tags("cli/app"), ["t1", "t2", "t3", "t4"]);
    let (status, _, _) = t.api("GET", &format!("/v2/cli/app/manifests/{t5}"), OCI_MANIFEST);
    assert_eq!(status, 404);
    // an artifact with artifactType and a subject, copied as is; the registry lists it.
    push(from("sbom"), to("app:sbom"));
    let art = t.manifest_digest("cli/app", "sbom");
    assert_eq!(
        referrers(t, "cli/app", &amd64),
        (200, vec![(art, ARTIFACT_TYPE.to_string())])
    );
}

#[test]
fn skopeo_copies_an_index_lists_tags_deletes_and_copies_an_artifact() {
    skopeo_row(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn skopeo_against_distribution() {
    if let Some(t) = Target::distribution() {
        skopeo_row(&t);
    }
}

/// umoci builds an image in an OCI layout (init, new, insert); skopeo carries it to the
/// registry and back; umoci unpacks what came back and finds the file it inserted.
fn umoci_row(t: &Target) {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let _time = timer("umoci", t);
    let certs = cert_dir(t);
    let certs = certs.to_str().unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    let src = t.dir("umoci").join("layout");
    let image = format!("{}:img", src.display());
    ok(Command::new("umoci").args(["init", "--layout"]).arg(&src));
    ok(Command::new("umoci").args(["new", "--image", &image]));
    let payload = bytes(200_000, 91);
    let file = t.dir("umoci").join("payload");
    std::fs::write(&file, &payload).unwrap();
    ok(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(&file)
        .arg("/payload"));
    let remote = format!("docker://{}/cli/umoci:v1", t.addr);
    ok(skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-creds",
        &creds,
        "--dest-cert-dir",
        certs,
    ])
    .arg(format!("oci:{image}"))
    .arg(&remote));
    let back = t.dir("umoci").join("back");
    ok(skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-creds",
        &creds,
        "--src-cert-dir",
        certs,
    ])
    .arg(&remote)
    .arg(format!("oci:{}:img", back.display())));
    let bundle = t.dir("umoci").join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    ok(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:img", back.display())])
        .arg(&bundle));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/payload")).unwrap(),
        payload
    );
    // what came back is what umoci wrote (its layout also keeps the pre-insert image).
    let (sent, got) = (layout_blobs(&src), layout_blobs(&back));
    assert_eq!(got.len(), 3, "manifest, config, layer: {got:?}");
    assert!(got.iter().all(|b| sent.contains(b)), "{got:?}");
}

#[test]
fn umoci_images_go_through_the_registry_and_unpack() {
    umoci_row(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn umoci_against_distribution() {
    if let Some(t) = Target::distribution() {
        umoci_row(&t);
    }
}

// ---------------------------------------------------------------------------------------
// podman and buildah: private storage (vfs) and configuration under the test's directory
// ---------------------------------------------------------------------------------------

/// podman or buildah with storage, run state, policy, registries.conf and auth file of
/// the test's own: nothing under /var/lib/containers, /run/containers or /etc is used.
fn containers_tool(t: &Target, tool: &str, args: &[&str]) -> Command {
    let base = t.dir(&format!("{tool}-state"));
    let policy = base.join("policy.json");
    if !policy.exists() {
        std::fs::write(
            &policy,
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        std::fs::write(base.join("registries.conf"), b"").unwrap();
        std::fs::write(base.join("containers.conf"), b"").unwrap();
        std::fs::write(
            base.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                base.join("run").display(),
                base.join("root").display()
            ),
        )
        .unwrap();
        std::fs::write(base.join("auth.json"), br#"{"auths":{}}"#).unwrap();
    }
    let mut c = Command::new(tool);
    c.arg("--root")
        .arg(base.join("root"))
        .arg("--runroot")
        .arg(base.join("run"))
        .args(["--storage-driver", "vfs"]);
    if tool == "podman" {
        c.args([
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
            "--tmpdir",
        ])
        .arg(base.join("tmp"));
    }
    c.args(args)
        .env("CONTAINERS_REGISTRIES_CONF", base.join("registries.conf"))
        .env("CONTAINERS_CONF", base.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", base.join("storage.conf"))
        .env("REGISTRY_AUTH_FILE", base.join("auth.json"))
        .env("HOME", &base)
        .env("XDG_RUNTIME_DIR", base.join("run"))
        .env("TMPDIR", t.dir(&format!("{tool}-tmp")));
    c
}

fn policy_of(t: &Target, tool: &str) -> String {
    t.dir(&format!("{tool}-state"))
        .join("policy.json")
        .display()
        .to_string()
}

fn podman_row(t: &Target) {
    if !require_tool("podman") {
        return;
    }
    let _time = timer("podman", t);
    let certs = cert_dir(t);
    let certs = certs.to_str().unwrap();
    let src = t.dir("podman-src");
    tar_layout(&src);
    let p = |args: &[&str]| ok(&mut containers_tool(t, "podman", args));
    // Built with the first call (which writes the policy file).
    p(&["info", "--format", "{{.Store.GraphDriverName}}"]);
    let policy = policy_of(t, "podman");
    let image = format!("{}/cli/podman:t1", t.addr);
    p(&[
        "login",
        "--cert-dir",
        certs,
        "-u",
        USER,
        "-p",
        PASSWORD,
        &t.addr,
    ]);
    // push: images loaded from an OCI layout, under the registry's names.
    for (arch, tags) in [("amd64", &["t1", "t2"][..]), ("arm64", &["arm64"][..])] {
        let out = p(&[
            "pull",
            "-q",
            "--signature-policy",
            &policy,
            &format!("oci:{}:{arch}", src.display()),
        ]);
        let id = out.lines().last().unwrap_or("").trim().to_string();
        for tag in tags {
            let name = format!("{}/cli/podman:{tag}", t.addr);
            let digestfile = t.dir("podman-tmp").join(format!("digest-{tag}"));
            p(&["tag", &id, &name]);
            p(&[
                "push",
                "--signature-policy",
                &policy,
                "--cert-dir",
                certs,
                "--digestfile",
                digestfile.to_str().unwrap(),
                &name,
            ]);
            // podman rewrites the manifest as it pushes: the registry serves what it sent.
            let sent = std::fs::read_to_string(&digestfile).unwrap();
            assert_eq!(t.manifest_digest("cli/podman", tag), sent.trim());
        }
    }
    let t1 = t.manifest_digest("cli/podman", "t1");
    // pull: removed locally, pulled back, same digest.
    p(&["rmi", "-a", "-f"]);
    p(&[
        "pull",
        "--signature-policy",
        &policy,
        "--cert-dir",
        certs,
        &image,
    ]);
    let digest = p(&["image", "inspect", "--format", "{{.Digest}}", &image]);
    assert_eq!(digest.trim(), t1);
    // multi-arch: a manifest list of both platform images, pushed with --all.
    p(&["manifest", "create", "edgeyard-list"]);
    for tag in ["t1", "arm64"] {
        let from = format!("docker://{}/cli/podman:{tag}", t.addr);
        p(&[
            "manifest",
            "add",
            "--cert-dir",
            certs,
            "edgeyard-list",
            &from,
        ]);
    }
    let list = format!("{}/cli/podman-multi:v1", t.addr);
    // (no --signature-policy here: podman 4.3's manifest push has no such flag)
    p(&[
        "manifest",
        "push",
        "--all",
        "--cert-dir",
        certs,
        "edgeyard-list",
        &format!("docker://{list}"),
    ]);
    let d = t.manifest_digest("cli/podman-multi", "v1");
    let (_, _, body) = t.api(
        "GET",
        &format!("/v2/cli/podman-multi/manifests/{d}"),
        &format!("{OCI_INDEX}, application/vnd.docker.distribution.manifest.list.v2+json"),
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut archs: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);
    // tags and catalog through podman search (it has no --cert-dir: the CA comes from
    // SSL_CERT_FILE, which Go's certificate pool reads).
    let tags = ok(containers_tool(
        t,
        "podman",
        &[
            "search",
            "--list-tags",
            "--format",
            "{{.Tag}}",
            &format!("{}/cli/podman", t.addr),
        ],
    )
    .env("SSL_CERT_FILE", &t.ca));
    // (podman 4.3 prints a NAME TAG table whatever the --format)
    let mut tags: Vec<&str> = tags
        .lines()
        .skip_while(|l| l.starts_with("NAME"))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    tags.sort();
    assert_eq!(tags, ["arm64", "t1", "t2"]);
    let repos = ok(containers_tool(
        t,
        "podman",
        &["search", "--format", "{{.Name}}", &format!("{}/", t.addr)],
    )
    .env("SSL_CERT_FILE", &t.ca));
    assert!(
        repos.contains("cli/podman-multi") && repos.contains("cli/podman"),
        "{repos}"
    );
}

#[test]
fn podman_pushes_pulls_a_manifest_list_searches_tags_and_the_catalog() {
    podman_row(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn podman_against_distribution() {
    if let Some(t) = Target::distribution() {
        podman_row(&t);
    }
}

fn buildah_row(t: &Target) {
    if !require_tool("buildah") {
        return;
    }
    let _time = timer("buildah", t);
    let certs = cert_dir(t);
    let certs = certs.to_str().unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    let b = |args: &[&str]| ok(&mut containers_tool(t, "buildah", args));
    let payload = t.dir("buildah-files").join("payload");
    std::fs::write(&payload, bytes(120_000, 55)).unwrap();
    let policy = policy_of(t, "buildah");
    // build: from scratch, one file, one image per platform.
    let mut images = Vec::new();
    for arch in ["amd64", "arm64"] {
        let ctr = b(&[
            "from",
            "--arch",
            arch,
            "--signature-policy",
            &policy,
            "scratch",
        ])
        .trim()
        .to_string();
        b(&["copy", &ctr, payload.to_str().unwrap(), "/payload"]);
        let name = format!("localhost/edgeyard-{arch}");
        b(&["commit", "--signature-policy", &policy, &ctr, &name]);
        b(&["rm", &ctr]);
        images.push(name);
    }
    // push and pull back.
    let remote = format!("{}/cli/buildah:t1", t.addr);
    let pushed = t.dir("buildah-files").join("digest");
    b(&[
        "push",
        "--signature-policy",
        &policy,
        "--cert-dir",
        certs,
        "--creds",
        &creds,
        "--digestfile",
        pushed.to_str().unwrap(),
        &images[0],
        &format!("docker://{remote}"),
    ]);
    let digest = std::fs::read_to_string(&pushed).unwrap();
    assert_eq!(t.manifest_digest("cli/buildah", "t1"), digest.trim());
    b(&["rmi", "-a", "-f"]);
    b(&[
        "pull",
        "--signature-policy",
        &policy,
        "--cert-dir",
        certs,
        "--creds",
        &creds,
        &remote,
    ]);
    let (_, _, body) = t.api(
        "GET",
        "/v2/cli/buildah/manifests/t1",
        &format!("{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"),
    );
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let inspected = b(&[
        "inspect",
        "--type",
        "image",
        "--format",
        "{{.FromImageDigest}}",
        &remote,
    ]);
    assert_eq!(inspected.trim(), digest.trim(), "{m}");
    // multi-arch: rebuild both (rmi removed them), a manifest list, pushed with --all.
    for arch in ["amd64", "arm64"] {
        let ctr = b(&[
            "from",
            "--arch",
            arch,
            "--signature-policy",
            &policy,
            "scratch",
        ])
        .trim()
        .to_string();
        b(&["copy", &ctr, payload.to_str().unwrap(), "/payload"]);
        b(&[
            "commit",
            "--signature-policy",
            &policy,
            &ctr,
            &format!("localhost/edgeyard-{arch}"),
        ]);
    }
    b(&["manifest", "create", "edgeyard-list"]);
    for img in &images {
        b(&["manifest", "add", "edgeyard-list", img]);
    }
    let list = format!("docker://{}/cli/buildah-multi:v1", t.addr);
    b(&[
        "manifest",
        "push",
        "--all",
        "--signature-policy",
        &policy,
        "--cert-dir",
        certs,
        "--creds",
        &creds,
        "edgeyard-list",
        &list,
    ]);
    let d = t.manifest_digest("cli/buildah-multi", "v1");
    let (_, _, body) = t.api(
        "GET",
        &format!("/v2/cli/buildah-multi/manifests/{d}"),
        &format!("{OCI_INDEX}, application/vnd.docker.distribution.manifest.list.v2+json"),
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut archs: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);
}

#[test]
fn buildah_builds_pushes_pulls_and_pushes_a_manifest_list() {
    buildah_row(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn buildah_against_distribution() {
    if let Some(t) = Target::distribution() {
        buildah_row(&t);
    }
}

// ---------------------------------------------------------------------------------------
// containerd's ctr (through the containerd that scripts/test's dockerd starts)
// ---------------------------------------------------------------------------------------

fn ctr_row(t: &Target) {
    if !require_tool("ctr") {
        return;
    }
    let Ok(address) = std::env::var("EDGEYARD_CONTAINERD_ADDRESS") else {
        unavailable(
            "EDGEYARD_CONTAINERD_ADDRESS is not set (scripts/test's dockerd starts containerd)",
        );
        return;
    };
    let _time = timer("ctr", t);
    let ns = format!("edgeyard-clients-{}", std::process::id());
    let ctr = |args: &[&str]| {
        ok(Command::new("ctr")
            .args(["--address", &address, "-n", &ns])
            .args(args))
    };
    let src = t.dir("ctr-layout");
    let (idx, _, amd64) = tar_layout(&src);
    let tarball = t.dir("ctr").join("layout.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let base = format!("{}/cli/ctr", t.addr);
    ctr(&[
        "images",
        "import",
        "--all-platforms",
        "--no-unpack",
        "--base-name",
        &base,
        tarball.to_str().unwrap(),
    ]);
    let login = format!("{USER}:{PASSWORD}");
    // containerd's hosts.toml, as `edgeyard cert trust` writes it, but with the CA where
    // this test keeps it: without an https:// server entry containerd speaks plain HTTP
    // to 127.0.0.1.
    let hosts = t.dir("ctr-hosts");
    std::fs::create_dir_all(hosts.join(&t.addr)).unwrap();
    std::fs::write(
        hosts.join(&t.addr).join("hosts.toml"),
        format!(
            "server = \"https://{a}\"\n\n[host.\"https://{a}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = \"{ca}\"\n",
            a = t.addr,
            ca = t.ca.display()
        ),
    )
    .unwrap();
    let hosts = hosts.to_str().unwrap();
    let push = |name: &str| {
        ctr(&[
            "images",
            "push",
            "--user",
            &login,
            "--hosts-dir",
            hosts,
            name,
        ])
    };
    // push: the index with both platforms, and the amd64 image under a tag.
    push(&format!("{base}:multi"));
    assert_eq!(t.manifest_digest("cli/ctr", "multi"), idx);
    ctr(&[
        "images",
        "tag",
        &format!("{base}:amd64"),
        &format!("{base}:t1"),
    ]);
    push(&format!("{base}:t1"));
    assert_eq!(t.manifest_digest("cli/ctr", "t1"), amd64);
    // an artifact with artifactType and a subject: ctr pushes it like any manifest.
    push(&format!("{base}:sbom"));
    let art = t.manifest_digest("cli/ctr", "sbom");
    // pull: forget everything, pull the index for all platforms, same digest.
    let images = ctr(&["images", "ls", "-q"]);
    let mut rm = vec!["images", "rm", "--sync"];
    rm.extend(images.lines());
    ctr(&rm);
    ctr(&[
        "images",
        "pull",
        "--all-platforms",
        "--user",
        &login,
        "--hosts-dir",
        hosts,
        &format!("{base}:multi"),
    ]);
    let listed = ctr(&["images", "ls"]);
    assert!(listed.contains(&idx), "{listed}");
    let content = ctr(&["content", "ls", "-q"]);
    let sent = layout_blobs(&src);
    let mut held = 0;
    for (_, d) in &sent {
        held += content.lines().filter(|l| l.trim() == d).count();
    }
    assert!(
        held >= 7,
        "containerd holds the index, 2 manifests, 2 configs, 2 layers:\n{content}"
    );
    let images = ctr(&["images", "ls", "-q"]);
    let mut rm = vec!["images", "rm", "--sync"];
    rm.extend(images.lines());
    let _ = Command::new("ctr")
        .args(["--address", &address, "-n", &ns])
        .args(&rm)
        .output();
    let _ = Command::new("ctr")
        .args(["--address", &address, "namespaces", "rm", &ns])
        .output();
    // the registry lists the artifact among the amd64 image's referrers.
    assert_eq!(
        referrers(t, "cli/ctr", &amd64),
        (200, vec![(art, ARTIFACT_TYPE.to_string())])
    );
}

#[test]
fn ctr_pushes_and_pulls_an_index_and_pushes_an_artifact() {
    ctr_row(&Target::edgeyard());
}

#[test]
#[ignore = "reference run against CNCF Distribution 2.8: cargo test --test clients -- --ignored"]
fn ctr_against_distribution() {
    if let Some(t) = Target::distribution() {
        ctr_row(&t);
    }
}

// ---------------------------------------------------------------------------------------
// docker (the daemon scripts/test starts), verifying TLS from a test host
// ---------------------------------------------------------------------------------------

/// Docker skips TLS verification for 127.0.0.0/8, so for this row edgeyard runs in a
/// network namespace with an address of its own (as in tests/docker_tls.rs, on another
/// /30); removed on drop.
struct TestHost {
    ns: String,
    host_if: String,
}

const DOCKER_HOST_IP: &str = "10.254.78.1";
const DOCKER_REGISTRY_IP: &str = "10.254.78.2";

impl TestHost {
    fn create() -> Result<TestHost, String> {
        let id = std::process::id() % 100_000;
        let t = TestHost {
            ns: format!("eyclients-{id}"),
            host_if: format!("eych{id}"),
        };
        let ns_if = format!("eycn{id}");
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &t.ns])?;
        ip(&[
            "link", "add", &t.host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &t.ns])?;
        ip(&[
            "addr",
            "add",
            &format!("{DOCKER_HOST_IP}/30"),
            "dev",
            &t.host_if,
        ])?;
        ip(&["link", "set", &t.host_if, "up"])?;
        ip(&[
            "-n",
            &t.ns,
            "addr",
            "add",
            &format!("{DOCKER_REGISTRY_IP}/30"),
            "dev",
            &ns_if,
        ])?;
        ip(&["-n", &t.ns, "link", "set", &ns_if, "up"])?;
        ip(&["-n", &t.ns, "link", "set", "lo", "up"])?;
        Ok(t)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

#[test]
fn docker_logs_in_pushes_and_pulls_with_the_certificate_verified() {
    let Some(mut docker) = common::docker::Docker::from_env() else {
        return;
    };
    let trust_root = std::env::var("EDGEYARD_TRUST_ROOT")
        .expect("EDGEYARD_TRUST_ROOT: run scripts/test, which gives the daemon its certs.d there");
    let host = match TestHost::create() {
        Ok(h) => h,
        Err(e) => {
            unavailable(&format!("network namespaces: {e}"));
            return;
        }
    };
    let tmp = lowercase_tempdir();
    let data = tmp.path().join("data");
    let started = Instant::now();
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &host.ns,
        env!("CARGO_BIN_EXE_edgeyard"),
        "serve",
        "--listen",
    ])
    .arg(format!("{DOCKER_REGISTRY_IP}:5443"))
    .arg("--data-dir")
    .arg(&data)
    .env("EDGEYARD_ADMIN_PASSWORD", PASSWORD);
    let server = Server::launch(cmd, &data);
    let t = Target {
        name: "edgeyard",
        addr: server.addr.clone(),
        ca: data.join("tls/ca.crt"),
        tmp,
        _proc: Proc::Edgeyard(server),
    };
    let _time = Timer("docker", "edgeyard", started);
    docker.config = Some(t.dir("docker-config"));
    // Trusted the documented way: `edgeyard cert trust` into the daemon's certs.d.
    let certs = Path::new(&trust_root)
        .join("etc/docker/certs.d")
        .join(&t.addr);
    let _ = std::fs::remove_dir_all(&certs);
    ok(Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args([
            "cert",
            "trust",
            "--registry",
            &t.addr,
            "--root",
            &trust_root,
            "--data-dir",
        ])
        .arg(&data));
    let image = format!("{}/cli/docker:t1", t.addr);
    let tar = common::docker::make_rootfs(&t.dir("docker-rootfs"), 61);
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let id = docker.inspect(&image, "{{.Id}}");
    let (logged_in, out) = docker.login(&t.addr, USER, PASSWORD);
    assert!(logged_in, "{out}");
    let out = docker.run(&["push", &image]);
    let pushed = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in: {out}"))
        .to_string();
    assert_eq!(t.manifest_digest("cli/docker", "t1"), pushed);
    docker.run(&["tag", &image, &format!("{}/cli/docker:t2", t.addr)]);
    docker.run(&["push", &format!("{}/cli/docker:t2", t.addr)]);
    assert_eq!(t.tags("cli/docker"), ["t1", "t2"]);
    docker.run(&["rmi", &image, &format!("{}/cli/docker:t2", t.addr)]);
    docker.run(&["pull", &image]);
    assert_eq!(docker.inspect(&image, "{{.Id}}"), id);
    let digests = docker.inspect(&image, "{{json .RepoDigests}}");
    assert!(digests.contains(&pushed), "{digests}");
    let _ = docker.cmd(&["rmi", "-f", &image]).output();
    let _ = std::fs::remove_dir_all(&certs);
}
