//! skopeo copies a multi-arch OCI index (two platform images, built here as an OCI layout)
//! into edgeyard with `--all` and back out; every manifest and blob must come back byte-equal.

mod common;

use std::process::Command;

use common::*;

#[test]
fn skopeo_copies_a_multi_arch_index_both_ways_byte_for_byte() {
    if !require_tool("skopeo") {
        return;
    }
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (idx_digest, index) = oci_multi_arch_layout(&src);
    let remote = format!("docker://{}/edge/multi:v1", s.addr);
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", src.display()))
        .arg(&remote));

    // The index is served as pushed.
    let r = s.req("GET", "/v2/edge/multi/manifests/v1").send();
    assert_eq!(r.body, index);
    assert_eq!(r.header("docker-content-digest"), Some(idx_digest.as_str()));

    let dst = tmp.path().join("dst");
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(&remote)
        .arg(format!("oci:{}:multi", dst.display())));

    let (a, b) = (layout_blobs(&src), layout_blobs(&dst));
    assert_eq!(a.len(), 7, "index + 2 x (manifest, config, layer)");
    assert_eq!(a, b, "every manifest and blob comes back byte-equal");
    let out_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        out_index["manifests"][0]["digest"],
        serde_json::json!(idx_digest)
    );

    // skopeo inspect of one platform through the registry agrees.
    let raw = run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--override-arch",
            "arm64",
        ])
        .arg(&remote));
    assert_eq!(raw.as_bytes(), index.as_slice());
}
