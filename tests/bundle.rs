//! Image bundles for air-gapped sites: export to an OCI layout tarball and import it into
//! another edgeyard (skopeo compares every byte), import of `docker save` (the daemon pulls
//! back the same image ID), and a corrupted bundle refused with nothing imported.

mod common;

use std::process::Command;

use common::docker::*;
use common::*;

fn skopeo(args: &[&str]) -> Command {
    let mut c = Command::new("skopeo");
    c.args(["--insecure-policy"]).args(args);
    c
}

/// Stops a server and returns nothing: bundles work on a stopped data directory.
fn stop(s: Server) {
    assert!(s.terminate().success());
}

#[test]
fn export_then_import_into_another_registry_byte_for_byte_and_refuse_corruption() {
    if !require_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (idx_digest, _) = oci_multi_arch_layout(&src);
    let one = tmp.path().join("one");
    let s = Server::start_in(&one);
    run(skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
    ])
    .arg(format!("oci:{}:multi", src.display()))
    .arg(format!("docker://{}/edge/multi:v1", s.addr)));
    stop(s);

    let bundle = tmp.path().join("bundle.tar");
    let out = edgeyard(
        &one,
        &["export", "edge/multi:v1", "-o", bundle.to_str().unwrap()],
        "",
    );
    assert!(out.contains("exported edge/multi:v1"), "{out}");

    let two = tmp.path().join("two");
    let out = edgeyard(&two, &["import", bundle.to_str().unwrap()], "");
    assert!(out.contains("imported edge/multi:v1"), "{out}");
    // Idempotent: a second import changes nothing and succeeds.
    edgeyard(&two, &["import", bundle.to_str().unwrap()], "");
    let s = Server::start_in(&two);
    let r = s.req("GET", "/v2/edge/multi/manifests/v1").send();
    assert_eq!(
        r.header("docker-content-digest"),
        Some(idx_digest.as_str()),
        "the index is kept whole"
    );
    let dst = tmp.path().join("dst");
    run(skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
    ])
    .arg(format!("docker://{}/edge/multi:v1", s.addr))
    .arg(format!("oci:{}:multi", dst.display())));
    assert_eq!(
        layout_blobs(&src),
        layout_blobs(&dst),
        "every manifest and blob byte-equal"
    );
    stop(s);

    // Flip one byte inside a layer of the bundle: the import names the digest and stores
    // nothing.
    let mut tar = std::fs::read(&bundle).unwrap();
    let layer = bytes(100_001, 1); // the amd64 layer of oci_multi_arch_layout
    let layer_digest = sha256(&layer);
    let at = tar
        .windows(64)
        .position(|w| w == &layer[1000..1064])
        .expect("layer bytes in the tar");
    tar[at + 10] ^= 0xff;
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, &tar).unwrap();
    let three = tmp.path().join("three");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(["import", bad.to_str().unwrap(), "--data-dir"])
        .arg(&three)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") && err.contains(&layer_digest),
        "{err}"
    );
    assert!(snapshot(&three.join("blobs")).is_empty(), "no blob stored");
    assert_eq!(
        std::fs::read_dir(three.join("uploads")).unwrap().count(),
        0,
        "no staging file left"
    );
    let s = Server::start_in(&three);
    assert_eq!(
        s.req("GET", "/v2/_catalog").send().json()["repositories"],
        serde_json::json!([])
    );
}

#[test]
fn docker_save_imports_and_pulls_back_the_same_image() {
    let Some(mut docker) = Docker::from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    docker.config = Some(tmp.path().join("docker-config"));
    let tar = make_rootfs(tmp.path(), 31);
    let image = "edgeyard-bundle-test/saved:1";
    docker.run(&["import", tar.to_str().unwrap(), image]);
    let id = docker.inspect(image, "{{.Id}}");
    let saved = tmp.path().join("saved.tar");
    docker.run(&["save", "-o", saved.to_str().unwrap(), image]);
    docker.run(&["rmi", image]);

    let dir = tmp.path().join("data");
    let out = edgeyard(&dir, &["import", saved.to_str().unwrap()], "");
    assert!(
        out.contains("imported edgeyard-bundle-test/saved:1"),
        "{out}"
    );
    let s = Server::start_in(&dir);
    let remote = format!("{}/edgeyard-bundle-test/saved:1", s.addr);
    docker.run(&["pull", &remote]);
    assert_eq!(
        docker.inspect(&remote, "{{.Id}}"),
        id,
        "the same image ID as before the save"
    );
    let _ = docker.cmd(&["rmi", "-f", &remote]).output();
}

/// Runs edgeyard with the admin's credentials in the environment; returns whether it
/// succeeded and what it printed (stdout then stderr).
fn online(args: &[&str], user: &str, password: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(args)
        .env("EDGEYARD_USER", user)
        .env("EDGEYARD_PASSWORD", password)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn export_import_and_push_to_through_a_running_servers_api() {
    if !require_tool("skopeo") || !require_tool("docker-registry") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (idx_digest, _) = oci_multi_arch_layout(&src);
    let start = |name: &str| {
        let dir = tmp.path().join(name);
        edgeyard(
            &dir,
            &["user", "add", "ops", "--password-stdin", "--admin"],
            "ops-password\n",
        );
        Server::start_auth(&dir, &[])
    };
    let one = start("one");
    run(skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        "ops:ops-password",
    ])
    .arg(format!("oci:{}:multi", src.display()))
    .arg(format!("docker://{}/edge/multi:v1", one.addr)));

    // Export while the server runs.
    let bundle = tmp.path().join("bundle.tar");
    let server_one = format!("http://{}", one.addr);
    let (ok, out) = online(
        &[
            "export",
            "edge/multi:v1",
            "-o",
            bundle.to_str().unwrap(),
            "--server",
            &server_one,
        ],
        "ops",
        "ops-password",
    );
    assert!(ok, "{out}");
    assert!(!tmp.path().join("bundle.partial").exists());
    // An unknown image is a clean refusal, and no file is left behind.
    let nothing = tmp.path().join("nothing.tar");
    let (ok, out) = online(
        &[
            "export",
            "edge/none:v1",
            "-o",
            nothing.to_str().unwrap(),
            "--server",
            &server_one,
        ],
        "ops",
        "ops-password",
    );
    assert!(!ok && out.contains("404"), "{out}");
    assert!(!nothing.exists() && !tmp.path().join("nothing.partial").exists());

    // Import into another running server; skopeo reads back every byte.
    let two = start("two");
    let server_two = format!("http://{}", two.addr);
    let (ok, out) = online(
        &["import", bundle.to_str().unwrap(), "--server", &server_two],
        "ops",
        "ops-password",
    );
    assert!(ok && out.contains("imported edge/multi:v1"), "{out}");
    let dst = tmp.path().join("dst");
    run(skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        "ops:ops-password",
    ])
    .arg(format!("docker://{}/edge/multi:v1", two.addr))
    .arg(format!("oci:{}:multi", dst.display())));
    assert_eq!(layout_blobs(&src), layout_blobs(&dst), "every byte");

    // A corrupted bundle sent to the running server: refused with the digest named,
    // nothing new stored, no staging file left.
    let mut tar = std::fs::read(&bundle).unwrap();
    let layer = bytes(100_001, 1);
    let at = tar
        .windows(64)
        .position(|w| w == &layer[1000..1064])
        .unwrap();
    tar[at + 10] ^= 0xff;
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, &tar).unwrap();
    let blobs_before = snapshot(&tmp.path().join("two/blobs")).len();
    let (ok, out) = online(
        &[
            "import",
            bad.to_str().unwrap(),
            "--repo",
            "other/x",
            "--server",
            &server_two,
        ],
        "ops",
        "ops-password",
    );
    assert!(!ok && out.contains(&sha256(&layer)), "{out}");
    assert_eq!(snapshot(&tmp.path().join("two/blobs")).len(), blobs_before);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("two/uploads"))
            .unwrap()
            .count(),
        0,
        "no staging file left"
    );
    // Without admin rights the API refuses.
    let (ok, out) = online(
        &["import", bundle.to_str().unwrap(), "--server", &server_two],
        "ops",
        "wrong-password",
    );
    assert!(!ok && out.contains("401"), "{out}");

    // push-to through the running server, to CNCF Distribution.
    let dist = common::distribution::Distribution::start();
    let (ok, out) = online(
        &[
            "push-to",
            &format!("http://{}", dist.addr),
            "edge/multi:v1",
            "--server",
            &server_one,
        ],
        "ops",
        "ops-password",
    );
    assert!(
        ok && out.contains("4 blobs sent, 0 already there, 3 manifests"),
        "{out}"
    );
    let r = Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "Accept: application/vnd.oci.image.index.v1+json"])
        .arg(format!(
            "http://{}/v2/edge/multi/manifests/{idx_digest}",
            dist.addr
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "200");
}

#[test]
fn a_replication_rule_pushes_new_tags_on_its_schedule() {
    if !require_tool("docker-registry") {
        return;
    }
    let dist = common::distribution::Distribution::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[replication]]\nname = \"central\"\nurl = \"http://{}\"\nrepositories = [\"line/**\"]\ntags = [\"v*\"]\ninterval_secs = 1\n",
            dist.addr
        ),
    )
    .unwrap();
    let s = Server::start_with(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let (r, m) = put_image(&s, "line/cam", "v1", 5, 50_000);
    assert_eq!(r.status, 201);
    put_image(&s, "line/cam", "dev", 6, 50_000);
    put_image(&s, "other/app", "v1", 7, 50_000);
    let digest = sha256(&m);
    let get = |repo: &str, tag: &str| {
        let out = Command::new("curl")
            .args(["-s", "-D-", "-o", "/dev/null"])
            .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
            .arg(format!("http://{}/v2/{repo}/manifests/{tag}", dist.addr))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !get("line/cam", "v1").contains(&digest) {
        assert!(
            std::time::Instant::now() < deadline,
            "not replicated in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    s.wait_log("scheduled replication done");
    assert!(get("line/cam", "dev").contains(" 404"), "tag glob v* only");
    assert!(
        get("other/app", "v1").contains(" 404"),
        "repository glob line/** only"
    );
    // Run now through the API: everything is already there.
    let (ok, out) = online(
        &["replicate", "--server", &format!("http://{}", s.addr)],
        "admin",
        "unused-without-auth",
    );
    assert!(
        ok && out.contains("line/cam:v1: already up to date"),
        "{out}"
    );
}
