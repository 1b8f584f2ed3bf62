//! Authentication and access control against the real binary: challenges, the token
//! endpoint, Basic on /v2/, throttling, the credential cache, the first admin account, and the
//! user/access/robot commands.

mod common;

use common::*;

const ALICE_PW: &str = "alice-password-1";

fn users(dir: &std::path::Path) {
    edgeyard(
        dir,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    );
    edgeyard(
        dir,
        &["user", "add", "bob", "--password-stdin", "--group", "ops"],
        "bob-password-1\n",
    );
    access_add(dir, "user:alice", "team/**", "push");
    access_add(dir, "group:ops", "team/**", "pull");
    access_add(dir, "anonymous", "public/**", "pull");
}

#[test]
fn challenge_token_and_basic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    users(&dir);
    let s = Server::start_auth(&dir, &[]);

    // Unauthenticated: 401 with a Bearer challenge pointing at /token.
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    let www = r.header("www-authenticate").unwrap().to_string();
    assert_eq!(
        www,
        format!(
            "Bearer realm=\"http://{}/token\",service=\"edgeyard\"",
            s.addr
        )
    );
    let r = s.req("GET", "/v2/team/app/tags/list").send();
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"repository:team/app:pull\""));

    // Token with Basic credentials: only what the rules grant.
    let r = s
        .req("GET", "/token?service=edgeyard&scope=repository:team/app:pull,push&scope=repository:other/x:pull&offline_token=true&client_id=docker")
        .auth(&basic("bob", "bob-password-1"))
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    let token = j["token"].as_str().unwrap().to_string();
    assert_eq!(j["access_token"], j["token"]);
    assert!(j["expires_in"].as_u64().unwrap() >= 60);
    assert!(j["refresh_token"].as_str().is_some());
    let bearer = format!("Bearer {token}");
    assert_eq!(s.req("GET", "/v2/").auth(&bearer).send().status, 200);
    // Pull granted (repository unknown yet: 404, not 401/403), push refused with DENIED.
    assert_eq!(
        s.req("GET", "/v2/team/app/tags/list")
            .auth(&bearer)
            .send()
            .status,
        404
    );
    let r = s
        .req("POST", "/v2/team/app/blobs/uploads/")
        .auth(&bearer)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    // A repository the token does not mention: a new challenge for that scope.
    let r = s
        .req("GET", "/v2/team/other/tags/list")
        .auth(&bearer)
        .send();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    // A tampered or foreign token is refused.
    let r = s.req("GET", "/v2/").auth(&format!("{bearer}x")).send();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));

    // Wrong password at the token endpoint.
    let r = s
        .req("GET", "/token?service=edgeyard")
        .auth(&basic("bob", "nope"))
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    assert!(!String::from_utf8_lossy(&r.body).contains("nope"));
    // Another service is refused.
    let r = s.req("GET", "/token?service=elsewhere").send();
    assert_eq!(r.status, 400);

    // OAuth2 POST: password grant, then refresh grant.
    let r = s
        .req("POST", "/token")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=password&username=alice&password={ALICE_PW}&service=edgeyard&client_id=test&access_type=offline&scope=repository%3Ateam%2Fapp%3Apush"))
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    let r = s
        .req("POST", "/token")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=refresh_token&refresh_token={refresh}&service=edgeyard&client_id=test&scope=repository%3Ateam%2Fapp%3Apull%2Cpush"))
        .send();
    assert_eq!(r.status, 200);
    let t = r.json()["access_token"].as_str().unwrap().to_string();
    let r = s
        .req("POST", "/v2/team/app/blobs/uploads/")
        .auth(&format!("Bearer {t}"))
        .send();
    assert_eq!(r.status, 202);
    let r = s
        .req("POST", "/token")
        .body("grant_type=refresh_token&refresh_token=forged&service=edgeyard")
        .send();
    assert_eq!(r.status, 401);

    // Basic directly on /v2/ (curl and scripts).
    let alice = basic("alice", ALICE_PW);
    let d = {
        let data = b"layer bytes".to_vec();
        let d = sha256(&data);
        let r = s
            .req("POST", &format!("/v2/team/app/blobs/uploads/?digest={d}"))
            .auth(&alice)
            .body(data)
            .send();
        assert_eq!(r.status, 201);
        d
    };
    let r = s
        .req("HEAD", &format!("/v2/team/app/blobs/{d}"))
        .auth(&basic("bob", "bob-password-1"))
        .send();
    assert_eq!(r.status, 200);
    let r = s
        .req("DELETE", &format!("/v2/team/app/blobs/{d}"))
        .auth(&alice)
        .send();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "DENIED"),
        "push does not imply delete"
    );
    // The catalog lists only what the caller may pull.
    let r = s.req("GET", "/v2/_catalog").auth(&alice).send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    let r = s
        .req("GET", "/v2/_catalog")
        .auth(&basic("bob", "bob-password-1"))
        .send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    // Secrets never reach the log.
    let log = s.log_text();
    for secret in [ALICE_PW, "bob-password-1", refresh.as_str(), token.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[test]
fn failed_logins_are_throttled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    users(&dir);
    let s = Server::start_auth(&dir, &[]);
    let mut codes = Vec::new();
    for _ in 0..7 {
        let r = s
            .req("GET", "/v2/")
            .auth(&basic("alice", "wrong-password"))
            .send();
        codes.push(r.status);
    }
    assert_eq!(&codes[..5], &[401; 5]);
    assert_eq!(codes[6], 429);
    let r = s.req("GET", "/v2/").auth(&basic("alice", ALICE_PW)).send();
    assert_eq!(
        r.status, 429,
        "while throttled even the right password waits"
    );
    assert_eq!(r.error_code(), "TOOMANYREQUESTS");
    assert!(r.header("retry-after").is_some());

    // Regression: the failures of one address locked alice out everywhere. From another
    // address her password works, on /v2/ and at /token (curl binds 127.0.0.2).
    if !require_tool("curl") {
        return;
    }
    for path in [
        "/v2/",
        "/token?service=edgeyard&scope=repository:team/app:pull",
    ] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--interface", "127.0.0.2"])
            .args(["-u", &format!("alice:{ALICE_PW}"), "-o", "/dev/null"])
            .args(["-w", "%{http_code}", &s.url(path)])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{path}");
    }
}

#[test]
fn two_hundred_heads_cost_one_password_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    users(&dir);
    let s = Server::start_auth(&dir, &["--log", "info,edgeyard::auth=debug"]);
    let alice = basic("alice", ALICE_PW);
    let data = bytes(1000, 3);
    let d = sha256(&data);
    let r = s
        .req("POST", &format!("/v2/team/heads/blobs/uploads/?digest={d}"))
        .auth(&alice)
        .body(data)
        .send();
    assert_eq!(r.status, 201);
    for _ in 0..200 {
        let r = s
            .req("HEAD", &format!("/v2/team/heads/blobs/{d}"))
            .auth(&alice)
            .send();
        assert_eq!(r.status, 200);
    }
    // Every request's line is in the log (each is logged after its hash check, if any).
    s.wait_log_count("method=HEAD", 200);
    let checks = s.log_text().matches("verified a password hash").count();
    assert_eq!(
        checks, 1,
        "argon2 ran {checks} times for 201 authenticated requests"
    );
}

#[test]
fn first_start_creates_admin_and_commands_manage_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_auth(&dir, &[]);
    let file = dir.join("admin-password");
    let pw = std::fs::read_to_string(&file).unwrap().trim().to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        s.log_text().contains("admin-password"),
        "the log says where the password is"
    );
    assert!(!s.log_text().contains(&pw), "but not the password");
    let r = s
        .req("GET", "/v2/_catalog")
        .auth(&basic("admin", &pw))
        .send();
    assert_eq!(r.status, 200);
    // The data directory is locked while the server runs; the command says to stop it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(["user", "list", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(s);

    // Offline management.
    let list = edgeyard(&dir, &["user", "list"], "");
    assert!(list.contains("admin\tadmin"), "{list}");
    edgeyard(
        &dir,
        &["user", "add", "carol", "--password-stdin"],
        "carol-password\n",
    );
    edgeyard(
        &dir,
        &["user", "passwd", "carol", "--password-stdin"],
        "carol-password-2\n",
    );
    let robot = edgeyard(
        &dir,
        &["robot", "add", "edge1", "--grant", "edge/**=pull"],
        "",
    );
    let secret = robot
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    assert!(edgeyard(&dir, &["robot", "list"], "").contains("robot$edge1\tedge/**=pull"));
    let rule = access_add(&dir, "user:carol", "edge/**", "push");
    let id = rule
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    // htpasswd from CNCF Distribution: bcrypt entries, others skipped.
    let ht = tmp.path().join("htpasswd");
    let hash = bcrypt::hash("legacy-password", 5).unwrap();
    std::fs::write(&ht, format!("legacy:{hash}\nmd5user:$apr1$abc$def\n")).unwrap();
    let out = edgeyard(&dir, &["user", "import-htpasswd", ht.to_str().unwrap()], "");
    assert!(out.contains("imported 1 user(s), skipped 1"), "{out}");
    assert!(edgeyard(&dir, &["user", "list"], "").contains("legacy\tbcrypt until next login"));

    let s = Server::start_auth(&dir, &[]);
    let carol = basic("carol", "carol-password-2");
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&basic("carol", "carol-password"))
            .send()
            .status,
        401
    );
    let data = b"edge layer".to_vec();
    let d = sha256(&data);
    let r = s
        .req("POST", &format!("/v2/edge/cam/blobs/uploads/?digest={d}"))
        .auth(&carol)
        .body(data)
        .send();
    assert_eq!(r.status, 201);
    let robot_auth = basic("robot$edge1", &secret);
    assert_eq!(
        s.req("HEAD", &format!("/v2/edge/cam/blobs/{d}"))
            .auth(&robot_auth)
            .send()
            .status,
        200
    );
    let r = s
        .req("POST", "/v2/edge/cam/blobs/uploads/")
        .auth(&robot_auth)
        .send();
    assert_eq!(r.status, 403, "the robot may only pull");
    assert_eq!(
        s.req("GET", "/v2/")
            .auth(&basic("legacy", "legacy-password"))
            .send()
            .status,
        200
    );
    assert!(s.terminate().success());
    // Revocations.
    edgeyard(&dir, &["robot", "del", "edge1"], "");
    edgeyard(&dir, &["access", "del", &id], "");
    let list = edgeyard(&dir, &["user", "list"], "");
    assert!(
        !list.contains("bcrypt"),
        "the imported hash was replaced by argon2id at login: {list}"
    );
    let s = Server::start_auth(&dir, &[]);
    assert_eq!(s.req("GET", "/v2/").auth(&robot_auth).send().status, 401);
    let r = s
        .req("POST", "/v2/edge/cam/blobs/uploads/")
        .auth(&carol)
        .send();
    assert_eq!(r.status, 403);
}

/// Runs an account command against a running server's admin API.
fn remote(
    dir: &std::path::Path,
    server: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(args)
        .args(["--server", server, "--data-dir"])
        .arg(dir)
        .env("EDGEYARD_PASSWORD", password)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn admin_api_and_commands_against_a_running_https_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pw_file = tmp.path().join("initial");
    std::fs::write(&pw_file, "initial-admin-pw\n").unwrap();
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nadmin_password_file = \"{}\"\n", pw_file.display()),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edgeyard"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
    ])
    .arg(&dir);
    let s = Server::launch(cmd, &dir);
    assert!(
        !dir.join("admin-password").exists(),
        "the configured password is used, no file written"
    );
    let server = format!("https://localhost:{}", s.port());

    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dave = ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["user", "add", "dave"],
        "",
    ));
    assert!(
        dave.contains("password: "),
        "a generated password is printed once: {dave}"
    );
    ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["user", "add", "erin", "--password-stdin"],
        "erin-password\n",
    ));
    let list = ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["user", "list"],
        "",
    ));
    assert!(
        list.contains("admin\tadmin") && list.contains("erin") && list.contains("dave"),
        "{list}"
    );
    ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &[
            "access",
            "add",
            "--subject",
            "user:erin",
            "--repos",
            "lab/**",
            "--actions",
            "pull",
        ],
        "",
    ));
    let robot = ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["robot", "add", "line3", "--grant", "lab/**=pull"],
        "",
    ));
    let secret = robot
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    assert!(ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["robot", "list"],
        ""
    ))
    .contains("robot$line3\tlab/**=pull"));

    // The changes are live: no restart.
    let curl = |auth: &str, url: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(dir.join("tls/ca.crt"))
            .args(["-u", auth, url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let tags = format!("{server}/v2/lab/app/tags/list");
    assert_eq!(
        curl("erin:erin-password", &tags),
        "404",
        "pull allowed, repository unknown"
    );
    assert_eq!(curl(&format!("robot$line3:{secret}"), &tags), "404");
    // Non-admins cannot use the admin API; wrong admin passwords neither.
    assert_eq!(
        curl("erin:erin-password", &format!("{server}/api/v1/users")),
        "403"
    );
    let denied = remote(&dir, &server, "wrong-password", &["user", "list"], "");
    assert!(!denied.status.success());
    // Password change and deletion take effect at once (the credential cache is cleared).
    ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["user", "passwd", "erin", "--password-stdin"],
        "erin-password-2\n",
    ));
    assert_eq!(curl("erin:erin-password", &tags), "401");
    assert_eq!(curl("erin:erin-password-2", &tags), "404");
    ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["robot", "del", "line3"],
        "",
    ));
    assert_eq!(curl(&format!("robot$line3:{secret}"), &tags), "401");
    ok(remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["user", "del", "erin"],
        "",
    ));
    assert_eq!(curl("erin:erin-password-2", &tags), "401");
    // Bad input gets the API's error.
    let bad = remote(
        &dir,
        &server,
        "initial-admin-pw",
        &["user", "add", "Bad Name", "--password-stdin"],
        "long-enough-pw\n",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("user names"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
