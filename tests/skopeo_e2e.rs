//! skopeo copies a multi-arch OCI index (two platform images, built here as an OCI layout)
//! into edgeyard with `--all` and back out; every manifest and blob must come back byte-equal.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Writes a blob into an OCI layout and returns its descriptor fields.
fn put(layout: &Path, data: &[u8]) -> (String, usize) {
    let d = sha256(data);
    let p = layout.join("blobs/sha256").join(&d["sha256:".len()..]);
    std::fs::write(p, data).unwrap();
    (d, data.len())
}

fn platform_image(layout: &Path, arch: &str, seed: u64) -> serde_json::Value {
    let layer = bytes(100_000 + seed as usize, seed);
    let (ld, ln) = put(layout, &layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [ld]}
    }))
    .unwrap();
    let (cd, cn) = put(layout, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ln}]
    }))
    .unwrap();
    let (md, mn) = put(layout, &manifest);
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn,
        "platform": {"architecture": arch, "os": "linux"}
    })
}

#[test]
fn skopeo_copies_a_multi_arch_index_both_ways_byte_for_byte() {
    if !require_tool("skopeo") {
        return;
    }
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("blobs/sha256")).unwrap();
    std::fs::write(src.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let children = vec![
        platform_image(&src, "amd64", 1),
        platform_image(&src, "arm64", 2),
    ];
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children
    }))
    .unwrap();
    let (idx_digest, idx_len) = put(&src, &index);
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
