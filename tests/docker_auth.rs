//! `docker login`, push and pull with users and rules, against the real Docker daemon and
//! skopeo: the flow of the Docker Trusted Registry docs, verbatim.

mod common;

use std::process::Command;

use common::docker::*;
use common::*;

#[test]
fn docker_login_push_pull_and_denials() {
    let Some(mut docker) = Docker::from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    docker.config = Some(tmp.path().join("docker-config"));
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin"],
        "alice-password-1\n",
    );
    edgeyard(
        &dir,
        &["user", "add", "bob", "--password-stdin"],
        "bob-password-1\n",
    );
    access_add(&dir, "user:alice", "team/**", "push");
    access_add(&dir, "user:alice", "public/**", "push");
    access_add(&dir, "user:bob", "team/**", "pull");
    access_add(&dir, "anonymous", "public/**", "pull");
    let s = Server::start_auth(&dir, &[]);
    let reg = s.addr.clone();
    let app = format!("{reg}/team/app:1");
    let public = format!("{reg}/public/base:1");
    let other = format!("{reg}/other/app:1");

    let tar = make_rootfs(tmp.path(), 9);
    docker.run(&["import", tar.to_str().unwrap(), &app]);
    docker.run(&["tag", &app, &public]);
    docker.run(&["tag", &app, &other]);
    let id = docker.inspect(&app, "{{.Id}}");

    // Without login, push is refused.
    let err = docker.fails(&["push", &app]);
    assert!(
        err.contains("unauthorized")
            || err.contains("denied")
            || err.contains("authentication required"),
        "{err}"
    );

    // Wrong password, then the right one.
    let (ok, out) = docker.login(&reg, "alice", "not-her-password");
    assert!(!ok, "{out}");
    assert!(
        out.contains("incorrect username or password") || out.contains("unauthorized"),
        "{out}"
    );
    let (ok, out) = docker.login(&reg, "alice", "alice-password-1");
    assert!(ok, "{out}");
    // docker keeps an identity (refresh) token, not the password.
    let cfg = std::fs::read_to_string(tmp.path().join("docker-config/config.json")).unwrap();
    assert!(cfg.contains("identitytoken"), "{cfg}");
    assert!(!cfg.contains("alice-password-1"));
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:alice-password-1");
        assert!(!cfg.contains(&b64), "the password is stored: {cfg}");
    }

    let out = docker.run(&["push", &app]);
    assert!(out.contains("Pushed"), "{out}");
    docker.run(&["push", &public]);
    let err = docker.fails(&["push", &other]);
    assert!(
        err.contains("denied: requested access to the resource is denied"),
        "{err}"
    );
    // Regression: with a null error detail docker retried a denied push five times (50 s).
    // One refusal per mount candidate (docker tries the repositories it knows the layer
    // from) is expected; a retry loop would show five times as many.
    let denied = s
        .log_text()
        .lines()
        .filter(|l| {
            l.contains("route=\"upload_start\" repo=\"other/app\"") && l.contains(" status=403")
        })
        .count();
    assert!(
        (1..=3).contains(&denied),
        "docker retried a denied push: {denied} refusals"
    );

    // bob may pull team/ but not push there.
    docker.run(&["logout", &reg]);
    let (ok, out) = docker.login(&reg, "bob", "bob-password-1");
    assert!(ok, "{out}");
    docker.run(&["rmi", &app]);
    docker.run(&["pull", &app]);
    assert_eq!(docker.inspect(&app, "{{.Id}}"), id);
    let bob_tag = format!("{reg}/team/app:bob");
    docker.run(&["tag", &app, &bob_tag]);
    let err = docker.fails(&["push", &bob_tag]);
    assert!(
        err.contains("denied: requested access to the resource is denied"),
        "{err}"
    );

    // After logout: public pulls anonymously, team does not.
    docker.run(&["logout", &reg]);
    docker.run(&["rmi", &app, &public, &bob_tag]);
    docker.run(&["pull", &public]);
    let err = docker.fails(&["pull", &app]);
    assert!(
        err.contains("unauthorized")
            || err.contains("denied")
            || err.contains("authentication required"),
        "{err}"
    );

    let _ = docker.cmd(&["rmi", "-f", &app, &public, &other]).output();
}

#[test]
fn skopeo_with_credentials_and_robot_secret() {
    if !require_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin"],
        "alice-password-1\n",
    );
    access_add(&dir, "user:alice", "ci/**", "push");
    let robot = edgeyard(&dir, &["robot", "add", "edge", "--grant", "ci/**=pull"], "");
    let secret = robot
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    let s = Server::start_auth(&dir, &[]);
    let src = tmp.path().join("src");
    oci_image_layout(&src, 12);
    let remote = format!("docker://{}/ci/app:1", s.addr);
    let skopeo = |args: &[&str]| {
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy"]).args(args);
        c
    };
    run(skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-password-1",
    ])
    .arg(format!("oci:{}:img", src.display()))
    .arg(&remote));
    let dst = tmp.path().join("dst");
    let robot_creds = format!("robot$edge:{secret}");
    run(skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        &robot_creds,
    ])
    .arg(&remote)
    .arg(format!("oci:{}:img", dst.display())));
    assert_eq!(layout_blobs(&src), layout_blobs(&dst));
    // The robot cannot push, and without credentials nothing is readable.
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &robot_creds,
    ])
    .arg(format!("oci:{}:img", src.display()))
    .arg(format!("docker://{}/ci/robot:1", s.addr))
    .output()
    .unwrap();
    assert!(!out.status.success());
    let out = skopeo(&["inspect", "--tls-verify=false", "--no-creds"])
        .arg(&remote)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
