//! The web console: its sessions and CSRF defence through the real binary, the endpoints it
//! added to the admin API, and the whole console in headless Chromium (Debian's `chromium`,
//! driven by playwright-core from `tests/console/`) after a push by the real Docker daemon.
//! Screenshots of that run are kept in `target/console-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::*;
use common::*;

const ADMIN_PW: &str = "root-password";
const VIEWER_PW: &str = "viewer-password";

/// An admin `root` and a user `viewer` who may pull `e2e/**`, in the data directory `dir`.
fn add_users(dir: &Path) {
    edgeyard(
        dir,
        &["user", "add", "root", "--admin", "--password-stdin"],
        &format!("{ADMIN_PW}\n"),
    );
    edgeyard(
        dir,
        &["user", "add", "viewer", "--password-stdin"],
        &format!("{VIEWER_PW}\n"),
    );
    access_add(dir, "user:viewer", "e2e/**", "pull");
}

/// A server with authentication and the users of [`add_users`].
fn server_with_users(tmp: &Path) -> Server {
    let dir = tmp.join("data");
    add_users(&dir);
    Server::start_auth(&dir, &[])
}

/// A console session: the cookie to send and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn sign_in(s: &Server, user: &str, password: &str) -> (Resp, Option<Session>) {
    let r = s
        .req("POST", "/api/v1/session")
        .auth(&basic(user, password))
        .send();
    let session = (r.status == 201).then(|| {
        let set = r.header("set-cookie").expect("Set-Cookie").to_string();
        Session {
            cookie: set.split(';').next().unwrap().to_string(),
            csrf: r.json()["csrf_token"].as_str().unwrap().to_string(),
        }
    });
    (r, session)
}

impl Session {
    fn req(&self, s: &Server, method: &str, path: &str) -> Req {
        s.req(method, path).header("Cookie", &self.cookie)
    }

    /// A state-changing request as the console's page makes it.
    fn change(&self, s: &Server, method: &str, path: &str) -> Req {
        self.req(s, method, path)
            .header("X-CSRF-Token", &self.csrf)
            .header("Origin", &format!("http://{}", s.addr))
            .header("Sec-Fetch-Site", "same-origin")
    }
}

#[test]
fn sign_in_sets_a_strict_session_cookie_and_answers_who_am_i() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    let (r, session) = sign_in(&s, "root", ADMIN_PW);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let set = r.header("set-cookie").unwrap();
    let parts: Vec<&str> = set.split("; ").collect();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(parts.contains(&flag), "{set} lacks {flag}");
    }
    let session = session.unwrap();
    assert_eq!(session.cookie.len(), "edgeyard_session=".len() + 43);
    let me = session.req(&s, "GET", "/api/v1/session").send();
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(
        (me["user"].as_str(), me["admin"].as_bool()),
        (Some("root"), Some(true))
    );
    assert_eq!(me["csrf_token"].as_str(), Some(session.csrf.as_str()));
    // Reads need no token; the cookie is a login for the whole API.
    assert_eq!(session.req(&s, "GET", "/api/v1/users").send().status, 200);
    assert_eq!(session.req(&s, "GET", "/v2/_catalog").send().status, 200);
    // Neither passwords nor session ids reach the log.
    let log = s.log_text();
    assert!(!log.contains(ADMIN_PW) && !log.contains(&session.cookie[17..]));
    // Without a session: 401, and a made-up cookie is no session.
    assert_eq!(s.req("GET", "/api/v1/session").send().status, 401);
    let fake = s
        .req("GET", "/api/v1/session")
        .header("Cookie", &format!("edgeyard_session={}", "A".repeat(43)))
        .send();
    assert_eq!(fake.status, 401);
    // Wrong passwords: 401, the same answer as for unknown users.
    let (r, none) = sign_in(&s, "root", "wrong");
    assert!(none.is_none());
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    assert!(r.header("set-cookie").is_none());
    // Only a password opens a session, not a session.
    let r = session.change(&s, "POST", "/api/v1/session").send();
    assert_eq!(r.status, 401);
}

#[test]
fn state_changing_requests_need_the_csrf_token_and_the_same_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    let root = basic("root", ADMIN_PW);
    let (r, _) = put_image_as(&s, Some(&root), "e2e/app", "v1", 1, 1000);
    assert_eq!(r.status, 201);
    let session = sign_in(&s, "root", ADMIN_PW).1.unwrap();
    let path = "/api/v1/repositories/e2e/app/description";
    let body = r#"{"description":"forged"}"#;
    let refused = |r: Resp, what: &str| {
        assert_eq!(
            r.status,
            403,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert_eq!(v["errors"][0]["code"], "DENIED", "{what}");
        assert_eq!(v["errors"][0]["detail"]["reason"], "csrf", "{what}");
    };
    refused(session.req(&s, "PUT", path).body(body).send(), "no token");
    refused(
        session
            .req(&s, "PUT", path)
            .header("X-CSRF-Token", "wrong")
            .body(body)
            .send(),
        "wrong token",
    );
    refused(
        session
            .req(&s, "PUT", path)
            .header("X-CSRF-Token", &session.csrf)
            .header("Origin", "https://evil.example")
            .body(body)
            .send(),
        "another origin",
    );
    refused(
        session
            .req(&s, "PUT", path)
            .header("X-CSRF-Token", &session.csrf)
            .header("Sec-Fetch-Site", "cross-site")
            .body(body)
            .send(),
        "a cross-site request",
    );
    // Deletes and the registry API itself are guarded too.
    refused(
        session.req(&s, "DELETE", "/v2/e2e/app/manifests/v1").send(),
        "a /v2/ delete",
    );
    refused(
        session.req(&s, "DELETE", "/api/v1/session").send(),
        "sign-out",
    );
    let info = s
        .req("GET", "/api/v1/repositories/e2e/app")
        .auth(&root)
        .send()
        .json();
    assert_eq!(info["description"], "", "nothing changed");
    let r = session
        .change(&s, "PUT", path)
        .body(r#"{"description":"the real one"}"#)
        .send();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let info = session
        .req(&s, "GET", "/api/v1/repositories/e2e/app")
        .send()
        .json();
    assert_eq!(info["description"], "the real one");
    // Clients with credentials in a header (docker, curl) need no token.
    let r = s
        .req("PUT", path)
        .auth(&root)
        .body(r#"{"description":"by curl"}"#)
        .send();
    assert_eq!(r.status, 204);
}

#[test]
fn pull_only_users_get_no_admin_rights_through_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    let root = basic("root", ADMIN_PW);
    for repo in ["e2e/app", "secret/app"] {
        let (r, _) = put_image_as(&s, Some(&root), repo, "v1", 2, 1000);
        assert_eq!(r.status, 201);
    }
    let viewer = sign_in(&s, "viewer", VIEWER_PW).1.unwrap();
    let me = viewer.req(&s, "GET", "/api/v1/session").send().json();
    assert_eq!(me["admin"], false);
    // Only what the viewer may pull is listed, with what they may do on it.
    let repos = viewer.req(&s, "GET", "/api/v1/repositories").send().json();
    assert_eq!(repos.as_array().unwrap().len(), 1, "{repos}");
    assert_eq!(repos[0]["name"], "e2e/app");
    assert_eq!(repos[0]["actions"], serde_json::json!(["pull"]));
    for path in [
        "/api/v1/repositories/e2e/app",
        "/api/v1/repositories/e2e/app/tags",
        "/api/v1/repositories/e2e/app/tags/v1",
        "/api/v1/storage",
        "/api/v1/ca",
    ] {
        assert_eq!(viewer.req(&s, "GET", path).send().status, 200, "{path}");
    }
    assert_eq!(
        viewer
            .req(&s, "GET", "/api/v1/repositories/secret/app/tags")
            .send()
            .status,
        403
    );
    for (method, path, body) in [
        ("GET", "/api/v1/users", ""),
        ("GET", "/api/v1/rules", ""),
        ("GET", "/api/v1/gc", ""),
        ("POST", "/api/v1/gc", r#"{"dry_run":true}"#),
        (
            "POST",
            "/api/v1/users",
            r#"{"name":"mallory","password":"mallory-password"}"#,
        ),
        (
            "PUT",
            "/api/v1/repositories/e2e/app/description",
            r#"{"description":"x"}"#,
        ),
        (
            "PATCH",
            "/api/v1/repositories/e2e/app",
            r#"{"public":true}"#,
        ),
        ("DELETE", "/api/v1/repositories/e2e/app/tags/v1", ""),
        ("DELETE", "/api/v1/repositories/e2e/app", ""),
    ] {
        let r = viewer.change(&s, method, path).body(body).send();
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "DENIED"),
            "{method} {path}"
        );
    }
    // The same user with a password in a header gets the same answers.
    let r = s
        .req("GET", "/api/v1/users")
        .auth(&basic("viewer", VIEWER_PW))
        .send();
    assert_eq!(r.status, 403);
    assert_eq!(
        s.req("GET", "/v2/e2e/app/manifests/v1")
            .auth(&root)
            .send()
            .status,
        200,
        "nothing was deleted"
    );
}

#[test]
fn sign_out_and_account_changes_end_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    let root = basic("root", ADMIN_PW);
    // Sign-out revokes the session on the server, not only the cookie in the browser.
    let a = sign_in(&s, "root", ADMIN_PW).1.unwrap();
    let r = a.change(&s, "DELETE", "/api/v1/session").send();
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(a.req(&s, "GET", "/api/v1/session").send().status, 401);
    // A password change ends the user's sessions.
    let v = sign_in(&s, "viewer", VIEWER_PW).1.unwrap();
    assert_eq!(v.req(&s, "GET", "/api/v1/session").send().status, 200);
    let r = s
        .req("PUT", "/api/v1/users/viewer/password")
        .auth(&root)
        .body(r#"{"password":"viewer-password-2"}"#)
        .send();
    assert_eq!(r.status, 204);
    assert_eq!(v.req(&s, "GET", "/api/v1/session").send().status, 401);
    // So does deletion.
    let v = sign_in(&s, "viewer", "viewer-password-2").1.unwrap();
    let r = s.req("DELETE", "/api/v1/users/viewer").auth(&root).send();
    assert_eq!(r.status, 204);
    assert_eq!(v.req(&s, "GET", "/api/v1/session").send().status, 401);
    // Sessions live in memory: a restart signs everyone out.
    let b = sign_in(&s, "root", ADMIN_PW).1.unwrap();
    let dir = s.data_dir.clone();
    drop(s);
    let s = Server::start_auth(&dir, &[]);
    assert_eq!(b.req(&s, "GET", "/api/v1/session").send().status, 401);
}

#[test]
fn console_sign_in_is_throttled_like_docker_login() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    for _ in 0..5 {
        assert_eq!(sign_in(&s, "viewer", "guess").0.status, 401);
    }
    let (r, _) = sign_in(&s, "viewer", "guess");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "TOOMANYREQUESTS")
    );
    assert!(r.header("retry-after").is_some());
}

#[test]
fn tags_in_detail_and_deleted_through_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    let root = basic("root", ADMIN_PW);
    let (r, manifest) = put_image_as(&s, Some(&root), "e2e/app", "v1", 3, 5000);
    assert_eq!(r.status, 201);
    let digest = sha256(&manifest);
    put_image_as(&s, Some(&root), "e2e/app", "scratch", 4, 100);
    let d = s
        .req("GET", "/api/v1/repositories/e2e/app/tags/v1")
        .auth(&root)
        .send()
        .json();
    assert_eq!(d["digest"], digest);
    assert_eq!(d["layers"][0]["size"], 5000);
    assert_eq!(
        d["config"]["media_type"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(d["size"], manifest.len() + 5000 + r#"{"seed":3}"#.len());
    assert_eq!(d["immutable"], serde_json::Value::Null);
    assert_eq!(d["referrers"], serde_json::json!([]));
    // An immutable tag cannot be deleted; the answer names the rule.
    let r = s
        .req("POST", "/api/v1/immutability")
        .auth(&root)
        .body(r#"{"repos":"e2e/**","tags":"v*"}"#)
        .send();
    assert_eq!(r.status, 201);
    let rule = r.json()["id"].as_u64().unwrap();
    let r = s
        .req("DELETE", "/api/v1/repositories/e2e/app/tags/v1")
        .auth(&root)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("immutability rule {rule}")),
        "{message}"
    );
    let tags = s
        .req("GET", "/api/v1/repositories/e2e/app/tags")
        .auth(&root)
        .send()
        .json();
    let v1 = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "v1")
        .unwrap();
    assert_eq!(
        (v1["immutable"].as_bool(), v1["referrers"].as_u64()),
        (Some(true), Some(0))
    );
    // Another tag goes; the image it pointed at stays until garbage collection.
    let r = s
        .req("DELETE", "/api/v1/repositories/e2e/app/tags/scratch")
        .auth(&root)
        .send();
    assert_eq!(r.status, 204);
    assert_eq!(
        s.req("GET", "/v2/e2e/app/manifests/scratch")
            .auth(&root)
            .send()
            .status,
        404
    );
    let r = s
        .req("DELETE", "/api/v1/repositories/e2e/app/tags/scratch")
        .auth(&root)
        .send();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    // Storage and CA summaries (plain HTTP here: no CA).
    let st = s.req("GET", "/api/v1/storage").auth(&root).send().json();
    assert!(st["blob_bytes"].as_u64().unwrap() >= 5000, "{st}");
    assert!(st["free_bytes"].as_u64().unwrap() > 0);
    let ca = s.req("GET", "/api/v1/ca").auth(&root).send().json();
    assert_eq!(ca["available"], false);
}

#[test]
fn console_files_are_served_with_a_strict_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server_with_users(tmp.path());
    let r = s.req("GET", "/").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(String::from_utf8_lossy(&r.body).contains("/console/app.js"));
    let js = s.req("GET", "/console/app.js").send();
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let etag = js.header("etag").unwrap().to_string();
    let again = s
        .req("GET", "/console/app.js")
        .header("If-None-Match", &etag)
        .send();
    assert_eq!(again.status, 304);
    assert_eq!(s.req("GET", "/console/nope.js").send().status, 404);
    assert_eq!(s.req("POST", "/").send().status, 405);
}

// ---------------------------------------------------------------------------
// The browser test

/// Whether Chromium, node and the test's npm packages are there; without them the test
/// fails with a pointer to scripts/test (which installs them), unless EDGEYARD_E2E=skip.
fn browser_ready(test_dir: &Path) -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<String> = [
        (Path::new(&chromium).exists(), chromium.clone()),
        (
            Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "node".into(),
        ),
        (
            test_dir.join("node_modules/playwright-core").exists(),
            "tests/console/node_modules (npm ci)".into(),
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    missing.is_empty() || unavailable(&format!("missing {missing:?}"))
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

/// Width and height of a PNG file.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{}", path.display());
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Runs a command for at most `limit`, stopping it by PID (TERM, then KILL) if it overruns.
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdout(out_file.reopen().unwrap())
        .stderr(out_file.reopen().unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("start node");
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > limit {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(out_file.path()).unwrap_or_default();
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("{text}\n(stopped after {limit:?})")),
    }
}

/// docker pushes an image to an edgeyard with TLS and logins; the console, in headless
/// Chromium, lists it with the digest docker recorded, edits the description, is refused
/// deleting the immutable tag, downloads the CA (equal to /ca.crt), refuses requests without
/// the CSRF token, fits 800x480, and shows a pull-only user no admin actions.
#[test]
fn the_console_in_headless_chromium() {
    let test_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let Some(docker) = Docker::from_env() else {
        return;
    };
    if !browser_ready(&test_dir) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_users(&dir);
    edgeyard(
        &dir,
        &[
            "repo",
            "immutable",
            "add",
            "--repos",
            "e2e/**",
            "--tags",
            "v*",
        ],
        "",
    );
    // A trust policy in audit mode: pulls go on, the console marks the image unsigned.
    common::signing::p256_key_pair(tmp.path(), "release");
    let key = tmp.path().join("release.key");
    let public = tmp.path().join("release.pub");
    edgeyard(
        &dir,
        &["trust", "key", "add", "release", public.to_str().unwrap()],
        "",
    );
    edgeyard(
        &dir,
        &[
            "trust", "policy", "add", "--repos", "e2e/**", "--key", "release", "--mode", "audit",
        ],
        "",
    );
    // A second key, added and removed through the console's signing page.
    common::signing::p256_key_pair(tmp.path(), "second");
    let second_key = tmp.path().join("second.key");
    let second_pem = std::fs::read_to_string(tmp.path().join("second.pub")).unwrap();
    // HTTPS with the built-in CA (the default), logins on.
    let s = Server::launch(serve_cmd(&dir, &[], &[]), &dir);
    let url = format!("https://{}", s.addr);

    // Docker skips certificate checks for 127.0.0.0/8; it still logs in.
    let docker = Docker {
        config: Some(tmp.path().join("docker-config")),
        ..docker
    };
    let (ok, text) = docker.login(&s.addr, "root", ADMIN_PW);
    assert!(ok, "docker login: {text}");
    let image = format!("{}/e2e/app:v1", s.addr);
    let tar = make_rootfs(tmp.path(), 7);
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let out = docker.run(&["push", &image]);
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    let repo_digest = docker.inspect(&image, "{{index .RepoDigests 0}}");
    let digest = repo_digest.rsplit('@').next().unwrap().to_string();

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let download = tmp.path().join("downloaded-ca.crt");
    let mut cmd = Command::new("node");
    cmd.arg("console.test.mjs")
        .current_dir(&test_dir)
        .env("EDGEYARD_URL", &url)
        .env("ADMIN_USER", "root")
        .env("ADMIN_PASSWORD", ADMIN_PW)
        .env("VIEWER_USER", "viewer")
        .env("VIEWER_PASSWORD", VIEWER_PW)
        .env("REPO", "e2e/app")
        .env("TAG", "v1")
        .env("DIGEST", &digest)
        .env("SCREENSHOT_DIR", &shots)
        .env("DOWNLOAD_PATH", &download)
        .env("SECOND_PEM", &second_pem);
    let (ok, output) = run_bounded(cmd, Duration::from_secs(240));
    let _ = docker.cmd(&["rmi", "-f", &image]).output();
    assert!(ok, "the browser test failed:\n{output}");
    let result: serde_json::Value = output
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no RESULT line:\n{output}"));
    eprintln!("{output}");

    // The CA the browser downloaded is the registry's CA file, and the page showed its
    // fingerprint as openssl computes it.
    let downloaded = std::fs::read(&download).unwrap();
    assert_eq!(downloaded, std::fs::read(dir.join("tls/ca.crt")).unwrap());
    let fp = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&download));
    assert_eq!(
        fp.trim().rsplit('=').next().unwrap(),
        result["fingerprint"].as_str().unwrap()
    );
    // The signing page showed each key's fingerprint as openssl computes it (SHA-256 of the
    // DER public key), and what it added and deleted is gone from the API too.
    for (name, key, shown) in [
        ("release", &key, "release_fingerprint"),
        ("second", &second_key, "second_fingerprint"),
    ] {
        let der = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(key)
            .output()
            .unwrap()
            .stdout;
        assert_eq!(
            result[shown].as_str(),
            Some(format!("SHA256:{}", &sha256(&der)["sha256:".len()..]).as_str()),
            "{name}"
        );
    }
    let admin_get = |path: &str| -> serde_json::Value {
        let out = run(Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(dir.join("tls/ca.crt"))
            .args(["-u", &format!("root:{ADMIN_PW}"), &format!("{url}{path}")]));
        serde_json::from_str(&out).unwrap()
    };
    let keys = admin_get("/api/v1/trust/keys");
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["release"]);
    let policies = admin_get("/api/v1/trust/policies");
    assert_eq!(policies.as_array().unwrap().len(), 1, "{policies}");
    // Screenshots at both sizes, kept as artifacts.
    let files: Vec<String> = result["screenshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for size in [(1280, 800), (800, 480)] {
        for page in [
            "repositories",
            "repository",
            "tag",
            "certificate",
            "storage",
            "signing",
            "signin",
        ] {
            let f = shots.join(format!("{page}-{}x{}.png", size.0, size.1));
            assert!(
                files.contains(&f.display().to_string()),
                "{f:?} in {files:?}"
            );
            assert_eq!(png_size(&f), size, "{}", f.display());
        }
    }
    assert!(result["a11y_pages"].as_u64().unwrap() >= 15, "{result}");
    assert!(result["refusal"]
        .as_str()
        .unwrap()
        .contains("immutability rule"));
}
