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
