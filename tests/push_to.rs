//! `edgeyard push-to` copies images to CNCF Distribution 2.8 (Debian's docker-registry, the
//! reference server) over the standard API; skopeo reads them back byte for byte, and a
//! second push sends no blob again. Also to an edgeyard with authentication on.

mod common;

use std::process::Command;

use common::distribution::Distribution;
use common::*;

fn push_to(dir: &std::path::Path, url: &str, image: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgeyard"));
    c.args(["push-to", url, image, "--data-dir"]).arg(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn push_to_distribution_and_to_an_authenticated_edgeyard() {
    if !require_tool("skopeo") || !require_tool("docker-registry") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    oci_multi_arch_layout(&src);
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", src.display()))
        .arg(format!("docker://{}/edge/multi:v1", s.addr)));
    assert!(s.terminate().success());

    let dist = Distribution::start();
    let out = push_to(&dir, &format!("http://{}", dist.addr), "edge/multi:v1", &[]);
    assert!(
        out.contains("4 blobs sent, 0 already there, 3 manifests"),
        "{out}"
    );
    let dst = tmp.path().join("dst");
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{}/edge/multi:v1", dist.addr))
        .arg(format!("oci:{}:multi", dst.display())));
    assert_eq!(
        layout_blobs(&src),
        layout_blobs(&dst),
        "Distribution holds every byte"
    );
    let again = push_to(&dir, &format!("http://{}", dist.addr), "edge/multi:v1", &[]);
    assert!(again.contains("already up to date"), "{again}");

    // To an edgeyard that wants a login: token from its realm with the given credentials.
    let other = tmp.path().join("other");
    edgeyard(
        &other,
        &["user", "add", "pusher", "--password-stdin", "--admin"],
        "pusher-password\n",
    );
    let target = Server::start_auth(&other, &[]);
    let out = push_to(
        &dir,
        &format!("http://{}", target.addr),
        "edge/multi:v1",
        &[
            ("EDGEYARD_PUSH_USER", "pusher"),
            ("EDGEYARD_PUSH_PASSWORD", "pusher-password"),
        ],
    );
    assert!(out.contains("4 blobs sent"), "{out}");
    let r = target
        .req("GET", "/v2/edge/multi/manifests/v1")
        .auth(&basic("pusher", "pusher-password"))
        .send();
    assert_eq!(r.status, 200);
    // Without credentials the target refuses, and push-to says so.
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args([
            "push-to",
            &format!("http://{}", target.addr),
            "edge/multi:v1",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
