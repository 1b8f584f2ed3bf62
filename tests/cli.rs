//! The command line as an operator meets it: what a mistake prints, what the environment
//! stands in for, and what the help says. Each test drives the real binary.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs edgeyard with `args`, `env` and `stdin`; nothing of the caller's EDGEYARD_* leaks in.
fn cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgeyard"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("EDGEYARD_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn offline_commands_refuse_a_missing_data_directory_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo");
    for args in [
        &["user", "list"][..],
        &["repo", "list"],
        &["gc", "--dry-run"],
        &["fsck"],
        &["access", "list"],
        &["trust", "key", "list"],
        &["cert", "show"],
        &["cert", "rotate-ca"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--data-dir", path(&missing)]);
        let o = cli(&all, &[], "");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let t = text(&o);
        assert!(
            t.contains(&format!("no data directory at {}", missing.display()))
                && t.contains("--data-dir")
                && t.contains("--server"),
            "{args:?}: {t}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

#[test]
fn import_of_a_file_that_is_not_a_bundle_says_so_and_leaves_no_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new-store");
    for (name, bytes, says) in [
        ("notes.txt", b"hello, not a bundle\n".to_vec(), "too short"),
        ("big.txt", vec![b'x'; 4096], "not a tar archive"),
        ("layers.tar.gz", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "gzip"),
    ] {
        let file = tmp.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let o = cli(&["import", path(&file), "--data-dir", path(&data)], &[], "");
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(
            t.contains("is not an image bundle") && t.contains(says),
            "{t}"
        );
        assert!(!t.contains("numeric field"), "parser text leaked: {t}");
        assert!(
            !data.exists(),
            "an empty store was left at {}",
            data.display()
        );
    }
}

#[test]
fn export_names_the_missing_image_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    put_image(&s, "team/app", "1", 3, 1000);
    assert!(s.terminate().success());
    let out = tmp.path().join("bundle.tar");
    let o = cli(
        &[
            "export",
            "team/app:1",
            "team/app:2",
            "-o",
            path(&out),
            "--data-dir",
            path(&dir),
        ],
        &[],
        "",
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("team/app:2: no such image"), "{t}");
    assert!(!out.exists() && !out.with_extension("partial").exists());
}

#[test]
fn listen_takes_a_bare_port_for_every_interface() {
    for form in ["{port}", ":{port}"] {
        let port = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tmp = tempfile::tempdir().unwrap();
        let listen = form.replace("{port}", &port.to_string());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeyard"));
        cmd.args(["serve", "--insecure-http", "--no-auth", "--listen", &listen])
            .arg("--data-dir")
            .arg(tmp.path().join("d"));
        let s = Server::launch(cmd, &tmp.path().join("d"));
        assert_eq!(s.addr, format!("0.0.0.0:{port}"), "--listen {listen}");
        // Reached on loopback, i.e. not bound to one address only.
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            c,
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        assert_eq!(read_response(&mut c, false).status, 200);
    }
    let o = cli(&["serve", "--listen", "localhost"], &[], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("PORT, :PORT or IP:PORT"), "{}", text(&o));
}

#[test]
fn plain_http_on_the_https_port_gets_a_readable_400() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_tls(&tmp.path().join("d"), &[]);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(c, "GET /v2/ HTTP/1.1\r\nHost: edge-box:5000\r\n\r\n").unwrap();
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 400);
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("speaks HTTPS") && body.contains("https://edge-box:5000/"),
        "{body}"
    );
    // TLS on the same port still works.
    assert!(served_fingerprint(&s.addr).len() > 20);
}

#[test]
fn edgeyard_server_in_the_environment_stands_in_for_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "root", "--password-stdin", "--admin"],
        "root-password\n",
    );
    let s = Server::start_auth(&dir, &[]);
    let env = [
        ("EDGEYARD_SERVER", format!("http://{}", s.addr)),
        ("EDGEYARD_USER", "root".to_string()),
        ("EDGEYARD_PASSWORD", "root-password".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The data directory is held by the server: only the API can answer.
    let o = cli(
        &["user", "add", "dana", "--password-stdin"],
        &env,
        "dana-password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["user", "list"], &env, "");
    assert!(text(&o).contains("dana"), "{}", text(&o));

    // user import-htpasswd through the server: bcrypt entries, then a login with one.
    let hash = bcrypt::hash("from-htpasswd", 4).unwrap();
    let file = tmp.path().join("htpasswd");
    std::fs::write(&file, format!("erin:{hash}\ndana:{hash}\nbroken line\n")).unwrap();
    let o = cli(&["user", "import-htpasswd", path(&file)], &env, "");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("imported 1 user(s), skipped 2"), "{t}");
    assert!(t.contains("dana") && t.contains("exists"), "{t}");
    let r = s
        .req("GET", "/token?service=edgeyard&scope=repository:x/y:pull")
        .auth(&basic("erin", "from-htpasswd"))
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn push_to_a_tls_target_it_cannot_verify_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    put_image(&s, "team/app", "1", 5, 1000);
    assert!(s.terminate().success());
    let target = Server::start_tls(&tmp.path().join("target"), &[]);
    let url = format!("https://{}", target.addr);
    let o = cli(
        &["push-to", &url, "team/app:1", "--data-dir", path(&dir)],
        &[],
        "",
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("--target-cacert") && t.contains("http://"),
        "{t}"
    );
    // Through a running server's API: the same advice, and no 500.
    let s = Server::start_in(&dir);
    let o = cli(
        &["push-to", &url, "team/app:1"],
        &[
            ("EDGEYARD_SERVER", &format!("http://{}", s.addr)),
            ("EDGEYARD_PASSWORD", "unused-without-auth"),
        ],
        "",
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("--target-cacert"), "{t}");
    assert!(!t.contains("500"), "{t}");
    // With the target's CA it goes through.
    let ca = tmp.path().join("target/tls/ca.crt");
    let o = cli(
        &["push-to", &url, "team/app:1", "--target-cacert", path(&ca)],
        &[
            ("EDGEYARD_SERVER", &format!("http://{}", s.addr)),
            ("EDGEYARD_PASSWORD", "unused-without-auth"),
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn offline_commands_as_root_give_files_back_to_the_data_directorys_owner() {
    if run(Command::new("id").arg("-u")).trim() != "0"
        && !unavailable("this test needs root (chown)")
    {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    // As a package install leaves it: the service's (dynamic) account owns the directory.
    std::os::unix::fs::chown(&dir, Some(61_234), Some(61_234)).unwrap();
    let o = cli(
        &[
            "user",
            "add",
            "ci",
            "--password-stdin",
            "--data-dir",
            path(&dir),
        ],
        &[],
        "ci-password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut stack = vec![dir.clone()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (61_234, 61_234),
                "{}",
                e.path().display()
            );
            seen += 1;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert!(seen > 0, "the command wrote nothing?");
}

#[test]
fn a_running_server_holding_the_store_is_named_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _s = Server::start_in(&dir);
    let o = cli(&["user", "list", "--data-dir", path(&dir)], &[], "");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("in use by another edgeyard process") && t.contains("--server"),
        "{t}"
    );
}

#[test]
fn config_check_takes_the_file_either_way() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/edgeyard.toml");
    let a = cli(&["config", "check", file], &[], "");
    let b = cli(&["config", "check", "-c", file], &[], "");
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(a.stdout, b.stdout);
    assert!(String::from_utf8_lossy(&a.stdout).contains("data_dir = \"/var/lib/edgeyard\""));
    let none = cli(&["config", "check"], &[], "");
    assert_eq!(none.status.code(), Some(2));
}

#[test]
fn times_are_for_people_and_rfc3339_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = path(&dir);
    let s = Server::start_tls(&dir, &[]);
    assert!(s.terminate().success());
    edgeyard(
        &dir,
        &[
            "robot",
            "add",
            "ci",
            "--grant",
            "a/**=pull",
            "--expires-days",
            "30",
        ],
        "",
    );
    let human = String::from_utf8_lossy(&cli(&["robot", "list", "--data-dir", d], &[], "").stdout)
        .into_owned();
    assert!(
        human.contains(" UTC (in 29 days)") || human.contains(" UTC (in 30 days)"),
        "{human}"
    );
    assert!(!human.contains("unix"), "{human}");
    let json: serde_json::Value =
        serde_json::from_slice(&cli(&["robot", "list", "--json", "--data-dir", d], &[], "").stdout)
            .unwrap();
    let exp = json[0]["expires_at"].as_str().unwrap();
    assert!(
        exp.len() == 20 && exp.ends_with('Z') && exp.as_bytes()[10] == b'T',
        "{exp}"
    );

    let o = cli(
        &["cert", "rotate-ca", "--overlap-days", "14", "--data-dir", d],
        &[],
        "",
    );
    let t = text(&o);
    assert!(o.status.success() && t.contains(" UTC (in 14 days)"), "{t}");
    let t = String::from_utf8_lossy(&cli(&["cert", "show", "--data-dir", d], &[], "").stdout)
        .into_owned();
    assert!(
        t.contains("takes over at ") && t.contains("(in 14 days)") && !t.contains("unix"),
        "{t}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&cli(&["cert", "show", "--json", "--data-dir", d], &[], "").stdout)
            .unwrap();
    assert_eq!(json["ca"][0]["is_ca"], true, "{json}");
    assert!(
        json["server"][0]["not_after"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{json}"
    );
    assert!(
        json["rotation_at"].as_str().unwrap().ends_with('Z'),
        "{json}"
    );
    assert_eq!(json["next_ca"].as_array().map(Vec::len), Some(1), "{json}");
}

#[test]
fn gc_reports_what_the_grace_period_holds_and_zero_means_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    let (r, old) = put_image(&s, "gc/app", "1", 1, 5000);
    assert_eq!(r.status, 201);
    let old = sha256(&old);
    // The tag moves on: the first image is an untagged manifest nothing refers to.
    assert_eq!(put_image(&s, "gc/app", "1", 2, 5000).0.status, 201);
    assert!(s.terminate().success());

    let d = path(&dir);
    let dry = edgeyard(&dir, &["gc", "--dry-run"], "");
    assert!(dry.contains("0 untagged manifests would go"), "{dry}");
    assert!(
        dry.contains(
            "held by the grace period (3600 s): 1 untagged manifests and 0 unreferenced blobs"
        ),
        "{dry}"
    );
    let dry = edgeyard(&dir, &["gc", "--dry-run", "--grace-secs", "0"], "");
    assert!(dry.contains("1 untagged manifests would go"), "{dry}");
    // With it go the old image's own config and layer.
    assert!(dry.contains("in 2 of 4 blobs"), "{dry}");
    assert!(!dry.contains("held by the grace period"), "{dry}");
    let run = cli(&["gc", "--grace-secs", "0", "--data-dir", d], &[], "");
    let t = text(&run);
    assert!(
        run.status.success() && t.contains("1 untagged manifests deleted"),
        "{t}"
    );
    let s = Server::start_in(&dir);
    let r = s.req("GET", &format!("/v2/gc/app/manifests/{old}")).send();
    assert_eq!(r.status, 404);
    assert_eq!(s.req("GET", "/v2/gc/app/manifests/1").send().status, 200);
}

#[test]
fn request_log_names_the_user_and_the_bytes_received_and_metrics_can_need_a_login() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin", "--admin"],
        "alice-password\n",
    );
    let config = tmp.path().join("edgeyard.toml");
    std::fs::write(&config, "[auth]\nmetrics_login = true\n").unwrap();
    let s = Server::start_auth(&dir, &["--config", path(&config)]);
    let alice = basic("alice", "alice-password");

    let r = s.req("GET", "/metrics").send();
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    let r = s.req("GET", "/metrics").auth(&alice).send();
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("edgeyard_"));
    // Health checks stay open.
    assert_eq!(s.req("GET", "/readyz").send().status, 200);

    let layer = bytes(12_345, 7);
    push_blob_as(&s, Some(&alice), "team/app", &layer);
    s.wait_log("bytes_in=12345");
    let log = s.log_text();
    let put = log
        .lines()
        .find(|l| l.contains("bytes_in=12345"))
        .unwrap_or_else(|| panic!("no PUT in the log:\n{log}"));
    assert!(
        put.contains("user=alice") || put.contains("user=\"alice\""),
        "{put}"
    );
    assert!(put.contains("bytes_in=12345"), "{put}");
    let anonymous = log
        .lines()
        .find(|l| l.contains("request") && l.contains("status=401"))
        .unwrap_or_else(|| panic!("no 401 in the log:\n{log}"));
    assert!(
        anonymous.contains("user=-") || anonymous.contains("user=\"-\""),
        "{anonymous}"
    );
}

#[test]
fn fsck_and_gc_show_progress_as_lines_and_on_a_terminal_as_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    for seed in 0..3 {
        put_image(&s, "progress/app", &seed.to_string(), seed, 2000);
    }
    assert!(s.terminate().success());
    let d = path(&dir);

    let o = cli(&["fsck", "--data-dir", d], &[], "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}", text(&o));
    assert!(err.contains("fsck: hashing blobs: 0 of 6 (0%)"), "{err}");
    assert!(
        err.contains("fsck: checking manifests, links and tags"),
        "{err}"
    );
    let o = cli(&["gc", "--dry-run", "--data-dir", d], &[], "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("gc: listing blobs"), "{err}");

    // On a terminal (script(1) gives the command one): one line, redrawn, then cleared.
    if !require_tool("script") {
        return;
    }
    let command = format!("{} fsck --data-dir {d}", env!("CARGO_BIN_EXE_edgeyard"));
    let o = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{all}");
    assert!(all.contains("\r\x1b[Kfsck: hashing blobs"), "{all:?}");
    assert!(
        !all.contains("fsck: hashing blobs: 0 of 6 (0%)\n"),
        "{all:?}"
    );
}

#[test]
fn exporting_a_mirrored_image_with_blobs_not_yet_fetched_refuses_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Server::start_in(&tmp.path().join("upstream"));
    let (r, manifest) = put_image(&upstream, "team/app", "1", 9, 3000);
    assert_eq!(r.status, 201);
    let config = tmp.path().join("edgeyard.toml");
    std::fs::write(
        &config,
        format!(
            "[[mirror]]\nname = \"up\"\nurl = \"http://{}\"\nprefix = \"up\"\n",
            upstream.addr
        ),
    )
    .unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_with(&dir, &["--config", path(&config)]);
    // The manifest comes through the mirror; its blobs are fetched only when pulled.
    let r = s
        .req("GET", "/v2/up/team/app/manifests/1")
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, manifest);
    assert!(s.terminate().success());

    let out = tmp.path().join("bundle.tar");
    let o = cli(
        &[
            "export",
            "up/team/app:1",
            "-o",
            path(&out),
            "--data-dir",
            path(&dir),
            "--config",
            path(&config),
        ],
        &[],
        "",
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("up/team/app:1: blob sha256:") && t.contains("is not stored here"),
        "{t}"
    );
    assert!(t.contains("nothing was exported"), "{t}");
    assert!(!out.exists() && !out.with_extension("partial").exists());

    // Through the running server's API: the same refusal, before any byte is sent.
    let s = Server::start_with(&dir, &["--config", path(&config)]);
    let o = cli(
        &["export", "up/team/app:1", "-o", path(&out)],
        &[
            ("EDGEYARD_SERVER", &format!("http://{}", s.addr)),
            ("EDGEYARD_PASSWORD", "unused-without-auth"),
        ],
        "",
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("is not stored here"), "{t}");
    assert!(!out.exists() && !out.with_extension("partial").exists());
}
