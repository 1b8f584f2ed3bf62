//! Pull-through mirrors and sync, with CNCF Distribution 2.8 (Debian's `docker-registry`) as
//! the upstream: the real Docker daemon pulls through edgeyard (by prefix, and as a
//! `registry-mirrors` entry for Docker Hub names), containerd's `ctr` pulls through it as a
//! `hosts.toml` mirror, cached tags are revalidated after their TTL and served when the
//! upstream is gone, and `edgeyard sync` stages tags for a node that then goes offline.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::distribution::Distribution;
use common::docker::{make_rootfs, Docker};
use common::*;

const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn write_config(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("edgeyard.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// edgeyard on plain HTTP without authentication, with its data in `data` and the
/// configuration `text` written under `etc`.
fn start_configured(etc: &Path, data: &Path, text: &str) -> Server {
    let cfg = write_config(etc, text);
    Server::start_with(data, &["--config", cfg.to_str().unwrap()])
}

/// The digest edgeyard answers for a manifest, or the failed response.
fn manifest_digest(s: &Server, repo: &str, reference: &str) -> Result<String, Resp> {
    let r = s
        .req("GET", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Accept", MANIFEST_ACCEPT)
        .send();
    if r.status == 200 {
        Ok(r.header("docker-content-digest").unwrap().to_string())
    } else {
        Err(r)
    }
}

fn metric(s: &Server, result: &str) -> u64 {
    let text = String::from_utf8(s.req("GET", "/metrics").send().body).unwrap();
    let key = format!("edgeyard_mirror_requests_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

fn skopeo_to(layout: &Path, reference: &str, dest: &str) {
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{reference}", layout.display()))
        .arg(format!("docker://{dest}")));
}

#[test]
fn docker_pulls_through_a_mirror_then_from_cache_when_the_upstream_is_gone() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    if !require_tool("docker-registry") {
        return;
    }
    let dist = Distribution::start();
    let tmp = tempfile::tempdir().unwrap();
    let upstream_ref = format!("{}/team/app:1", dist.addr);
    let tar = make_rootfs(&tmp.path().join("a"), 71);
    docker.run(&["import", tar.to_str().unwrap(), &upstream_ref]);
    let id1 = docker.inspect(&upstream_ref, "{{.Id}}");
    docker.run(&["push", &upstream_ref]);
    // The image the upstream's tag moves to later, pushed now under another tag, so that
    // moving the tag then is one quick manifest PUT, well within the mirror's tag TTL.
    let next_ref = format!("{}/team/app:next", dist.addr);
    let tar2 = make_rootfs(&tmp.path().join("b"), 72);
    docker.run(&["import", tar2.to_str().unwrap(), &next_ref]);
    let id2 = docker.inspect(&next_ref, "{{.Id}}");
    assert_ne!(id1, id2);
    docker.run(&["push", &next_ref]);

    let s = start_configured(
        &tmp.path().join("etc"),
        &tmp.path().join("data"),
        &format!(
            "[[mirror]]\nname = \"central\"\nurl = \"http://{}\"\nprefix = \"central\"\ntag_ttl_secs = 4\n",
            dist.addr
        ),
    );
    let via = format!("{}/central/team/app:1", s.addr);
    docker.run(&["rmi", &upstream_ref]);
    docker.run(&["pull", &via]);
    assert_eq!(docker.inspect(&via, "{{.Id}}"), id1, "pulled through");
    assert!(
        metric(&s, "fetched") >= 3,
        "manifest, config and layer came from upstream"
    );
    let d1 = manifest_digest(&s, "central/team/app", "1").unwrap();

    // The upstream's tag moves. Within the TTL the cache answers as before; after it,
    // the tag is revalidated and the new image is served.
    docker.run(&["tag", &next_ref, &upstream_ref]);
    docker.run(&["push", &upstream_ref]);
    docker.run(&["rmi", &upstream_ref, &next_ref]);
    assert_eq!(
        manifest_digest(&s, "central/team/app", "1").unwrap(),
        d1,
        "within the TTL"
    );
    std::thread::sleep(Duration::from_millis(4500));
    let d2 = manifest_digest(&s, "central/team/app", "1").unwrap();
    assert_ne!(d2, d1, "after the TTL the moved tag is fetched");
    std::thread::sleep(Duration::from_millis(4500));
    let revalidated = metric(&s, "revalidated");
    assert_eq!(manifest_digest(&s, "central/team/app", "1").unwrap(), d2);
    assert_eq!(
        metric(&s, "revalidated"),
        revalidated + 1,
        "an unchanged tag is only confirmed"
    );
    docker.run(&["rmi", &via]);
    docker.run(&["pull", &via]);
    assert_eq!(docker.inspect(&via, "{{.Id}}"), id2);

    // The mirrored namespace is read-only, and docker says why.
    let mine = format!("{}/central/team/app:mine", s.addr);
    docker.run(&["tag", &via, &mine]);
    let out = docker.fails(&["push", &mine]);
    assert!(out.contains("read-only mirror"), "{out}");
    docker.run(&["rmi", &mine]);

    // The upstream goes away; a daemon without the image pulls it from the cache.
    drop(dist);
    docker.run(&["rmi", &via]);
    std::thread::sleep(Duration::from_millis(4500)); // the TTL runs out: revalidation fails
    let stale = metric(&s, "stale");
    docker.run(&["pull", &via]);
    assert_eq!(docker.inspect(&via, "{{.Id}}"), id2, "served from cache");
    assert!(metric(&s, "stale") > stale, "served stale, not failed");
    s.wait_log("serving a cached tag that could not be confirmed upstream");
    docker.run(&["rmi", &via]);
}

/// Restores the daemon's configuration (no mirrors) when the test ends, however it ends.
struct DaemonMirrors {
    config: String,
    pid: String,
}

impl DaemonMirrors {
    fn set(config: &str, pid: &str, json: &str) -> DaemonMirrors {
        std::fs::write(config, json).unwrap();
        run(Command::new("kill").args(["-HUP", pid]));
        DaemonMirrors {
            config: config.into(),
            pid: pid.into(),
        }
    }
}

impl Drop for DaemonMirrors {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.config, "{}\n");
        let _ = Command::new("kill").args(["-HUP", &self.pid]).status();
    }
}

#[test]
fn docker_registry_mirrors_entry_serves_library_images() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    if !require_tool("docker-registry") {
        return;
    }
    let (Ok(config), Ok(pid)) = (
        std::env::var("EDGEYARD_DOCKERD_CONFIG"),
        std::env::var("EDGEYARD_DOCKERD_PID"),
    ) else {
        panic!("EDGEYARD_DOCKERD_CONFIG and EDGEYARD_DOCKERD_PID are not set: run scripts/test");
    };
    let dist = Distribution::start();
    let tmp = tempfile::tempdir().unwrap();
    // What Docker Hub would hold as the official image `edgeyard-mirror-probe:1`.
    let upstream_ref = format!("{}/library/edgeyard-mirror-probe:1", dist.addr);
    let tar = make_rootfs(tmp.path(), 81);
    docker.run(&["import", tar.to_str().unwrap(), &upstream_ref]);
    let id = docker.inspect(&upstream_ref, "{{.Id}}");
    docker.run(&["push", &upstream_ref]);
    docker.run(&["rmi", &upstream_ref]);

    // The default mirror (no prefix) for `library/*`, as docker's registry-mirrors asks.
    let s = start_configured(
        &tmp.path().join("etc"),
        &tmp.path().join("data"),
        &format!(
            "[[mirror]]\nname = \"hub\"\nurl = \"http://{}\"\nrepositories = [\"library/*\"]\n",
            dist.addr
        ),
    );
    let _restore = DaemonMirrors::set(
        &config,
        &pid,
        &format!("{{\"registry-mirrors\": [\"http://{}\"]}}\n", s.addr),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !docker
        .run(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"])
        .contains(&s.addr)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "dockerd did not take the mirror"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    docker.run(&["pull", "edgeyard-mirror-probe:1"]);
    assert_eq!(docker.inspect("edgeyard-mirror-probe:1", "{{.Id}}"), id);
    s.wait_log("repo=\"library/edgeyard-mirror-probe\"");
    docker.run(&["rmi", "edgeyard-mirror-probe:1"]);
}

#[test]
fn containerd_pulls_through_a_hosts_toml_mirror() {
    if Docker::from_env().is_none() {
        return;
    }
    if !require_tool("docker-registry") || !require_tool("ctr") || !require_tool("skopeo") {
        return;
    }
    let address = std::env::var("EDGEYARD_CONTAINERD_ADDRESS")
        .expect("EDGEYARD_CONTAINERD_ADDRESS is not set: run scripts/test");
    let dist = Distribution::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let digest = oci_image_layout(&layout, 91);
    skopeo_to(&layout, "img", &format!("{}/team/ctr:1", dist.addr));

    let s = start_configured(
        &tmp.path().join("etc"),
        &tmp.path().join("data"),
        &format!(
            "[[mirror]]\nname = \"central\"\nurl = \"http://{}\"\nprefix = \"central\"\ntag_ttl_secs = 1\n",
            dist.addr
        ),
    );
    // containerd's mirror configuration for the upstream: try edgeyard first.
    let hosts = tmp.path().join("certs.d");
    std::fs::create_dir_all(hosts.join(&dist.addr)).unwrap();
    std::fs::write(
        hosts.join(&dist.addr).join("hosts.toml"),
        format!(
            "server = \"http://{}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            dist.addr, s.addr
        ),
    )
    .unwrap();
    let image = format!("{}/team/ctr:1", dist.addr);
    let ctr = |args: &[&str]| {
        run(Command::new("ctr")
            .args(["--address", &address, "-n", "edgeyard-mirror-test"])
            .args(args))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap(),
    )
    .unwrap();
    let mut content = vec![digest.clone()];
    content.push(manifest["config"]["digest"].as_str().unwrap().to_string());
    content.push(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    // `content fetch` downloads like a pull, without unpacking (the test layer is no tar).
    ctr(&[
        "content",
        "fetch",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        &image,
    ]);
    // containerd named the upstream in ?ns=, and edgeyard kept it in the mirror's namespace.
    assert_eq!(
        manifest_digest(&s, "central/team/ctr", "1").unwrap(),
        digest
    );
    let held = ctr(&["content", "ls", "-q"]);
    for d in &content {
        assert!(held.contains(d.as_str()), "containerd holds {d}");
    }
    let mut rm = vec!["content", "rm"];
    rm.extend(content.iter().map(String::as_str));
    ctr(&rm);

    // The upstream goes away: containerd's fallback to it fails, edgeyard's cache answers.
    drop(dist);
    std::thread::sleep(Duration::from_millis(1200));
    ctr(&[
        "content",
        "fetch",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        &image,
    ]);
    let held = ctr(&["content", "ls", "-q"]);
    for d in &content {
        assert!(held.contains(d.as_str()), "containerd holds {d} again");
    }
    assert!(metric(&s, "stale") >= 1, "the tag came from the cache");
    ctr(&rm);
    let _ = Command::new("ctr")
        .args([
            "--address",
            &address,
            "-n",
            "edgeyard-mirror-test",
            "images",
            "rm",
            &image,
        ])
        .output();
}

#[test]
fn sync_stages_tags_and_platforms_for_offline_pulls() {
    if !require_tool("docker-registry") || !require_tool("skopeo") {
        return;
    }
    let dist = Distribution::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut layouts = Vec::new();
    for (tag, seed) in [("1", 101), ("2", 102), ("3", 103)] {
        let layout = tmp.path().join(format!("layout-{tag}"));
        let digest = oci_image_layout(&layout, seed);
        skopeo_to(&layout, "img", &format!("{}/team/app:{tag}", dist.addr));
        layouts.push((tag, layout, digest));
    }
    let multi = tmp.path().join("multi");
    let (index_digest, index) = oci_multi_arch_layout(&multi);
    skopeo_to(&multi, "multi", &format!("{}/team/multi:v1", dist.addr));
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let child = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let data = tmp.path().join("data");
    let cfg = write_config(
        &tmp.path().join("etc"),
        &format!(
            r#"[[mirror]]
name = "central"
url = "http://{}"
prefix = "central"
tag_ttl_secs = 1

[[sync]]
mirror = "central"
repositories = ["team/app"]
tags = ["1", "2"]

[[sync]]
mirror = "central"
repositories = ["team/multi"]
platforms = ["linux/arm64"]
"#,
            dist.addr
        ),
    );
    let sync = |expect_fetched: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
            .args(["sync", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("central/team/app:1") && text.contains("central/team/app:2"),
            "{text}"
        );
        assert!(!text.contains("central/team/app:3"), "{text}");
        assert_eq!(text.contains(" 0 blobs fetched"), !expect_fetched, "{text}");
        text
    };
    let first = sync(true);
    assert!(
        first.contains("2 images, 2 manifests, 4 blobs fetched"),
        "{first}"
    );
    // Index and the arm64 child; its config and layer.
    assert!(
        first.contains("1 images, 2 manifests, 2 blobs fetched"),
        "{first}"
    );
    // Run again: nothing is fetched twice.
    let again = sync(false);
    assert!(again.contains("4 already here"), "{again}");

    // The node goes offline.
    drop(dist);
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1200)); // past the TTL: pulls must serve stale
    for (tag, layout, digest) in &layouts[..2] {
        assert_eq!(
            &manifest_digest(&s, "central/team/app", tag).unwrap(),
            digest
        );
        let out = tmp.path().join(format!("pulled-{tag}"));
        run(Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}/central/team/app:{tag}", s.addr))
            .arg(format!("oci:{}:img", out.display())));
        assert_eq!(
            layout_blobs(layout),
            layout_blobs(&out),
            "tag {tag}: every byte"
        );
    }
    let r = manifest_digest(&s, "central/team/app", "3").unwrap_err();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("not in the cache"),
        "{:?}",
        r.body
    );
    assert_eq!(
        manifest_digest(&s, "central/team/multi", "v1").unwrap(),
        index_digest
    );
    assert!(manifest_digest(&s, "central/team/multi", &child("arm64")).is_ok());
    assert!(
        manifest_digest(&s, "central/team/multi", &child("amd64")).is_err(),
        "only the chosen platform was synced"
    );

    // Synced tags are pinned: a retention policy that keeps one tag deletes none of them.
    let pins = s.req("GET", "/api/v1/pins").send().json();
    assert_eq!(pins.as_array().unwrap().len(), 3, "{pins}");
    let r = s
        .req("POST", "/api/v1/retention")
        .body(r#"{"repos":"central/**","keep_last":1}"#)
        .send();
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let expired = s
        .req("POST", "/api/v1/retention/apply")
        .body(r#"{"dry_run":false}"#)
        .send()
        .json();
    assert_eq!(expired, serde_json::json!([]), "pinned tags are kept");
    // Unpinned, one of the two would go.
    for tag in ["1", "2"] {
        let r = s
            .req("DELETE", &format!("/api/v1/pins/central/team/app:{tag}"))
            .send();
        assert_eq!(r.status, 204);
    }
    let r = s.req("DELETE", "/api/v1/pins/central/team/app:1").send();
    assert_eq!((r.status, r.error_code().as_str()), (404, "NOT_FOUND"));
    let expired = s
        .req("POST", "/api/v1/retention/apply")
        .body(r#"{"dry_run":true}"#)
        .send()
        .json();
    assert_eq!(expired.as_array().unwrap().len(), 1, "{expired}");
}

#[test]
fn upstream_token_auth_is_handled() {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    let (layer_digest, layer) = {
        let up = Server::start_in(&up_dir);
        let (r, m) = put_image(&up, "team/img", "v1", 7, 300_000);
        assert_eq!(r.status, 201);
        let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
        let d = m["layers"][0]["digest"].as_str().unwrap().to_string();
        assert!(up.terminate().success());
        (d, bytes(300_000, 7))
    };
    edgeyard(
        &up_dir,
        &["user", "add", "puller", "--password-stdin"],
        "puller-password\n",
    );
    access_add(&up_dir, "user:puller", "team/**", "pull");
    let up = Server::start_auth(&up_dir, &[]);
    let etc = tmp.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("up.password"), "puller-password\n").unwrap();
    let s = start_configured(
        &etc,
        &tmp.path().join("data"),
        &format!(
            "[[mirror]]\nname = \"up\"\nurl = \"http://{a}\"\nprefix = \"up\"\nusername = \"puller\"\npassword_file = \"{}\"\n\n[[mirror]]\nname = \"anon\"\nurl = \"http://{a}\"\nprefix = \"anon\"\n",
            etc.join("up.password").display(),
            a = up.addr
        ),
    );
    assert!(manifest_digest(&s, "up/team/img", "v1").is_ok());
    let r = s
        .req("GET", &format!("/v2/up/team/img/blobs/{layer_digest}"))
        .send();
    assert_eq!(r.status, 200);
    assert!(r.body == layer, "the layer's bytes");
    up.wait_log("route=\"token\"");
    // Without credentials the upstream refuses, and the error says so.
    let r = manifest_digest(&s, "anon/team/img", "v1").unwrap_err();
    assert_eq!(r.status, 404);
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("refused (401)") || text.contains("refused (403)"),
        "{text}"
    );
    // The password never reaches the log.
    assert!(!s.log_text().contains("puller-password"));
}

/// Pulls an image through `s` over the API; returns its layer's bytes.
fn pull_through(s: &Server, repo: &str, tag: &str) -> Result<Vec<u8>, Resp> {
    let r = s
        .req("GET", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Accept", MANIFEST_ACCEPT)
        .send();
    if r.status != 200 {
        return Err(r);
    }
    let m = r.json();
    let config = m["config"]["digest"].as_str().unwrap();
    assert_eq!(
        s.req("GET", &format!("/v2/{repo}/blobs/{config}"))
            .send()
            .status,
        200
    );
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let r = s.req("GET", &format!("/v2/{repo}/blobs/{layer}")).send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(sha256(&r.body), layer, "the layer's bytes");
    Ok(r.body)
}

#[test]
fn the_disk_guard_evicts_unpinned_cached_images_first() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_disk) = SmallDisk::mount(&tmp.path().join("fs"), 40) else {
        return;
    };
    // The upstream: another edgeyard, on the ordinary disk, with four 9 MiB images.
    let up = Server::start_in(&tmp.path().join("upstream"));
    for (tag, seed) in [("1", 11), ("2", 12), ("3", 13), ("4", 14)] {
        let (r, _) = put_image(&up, "team/app", tag, seed, 9 << 20);
        assert_eq!(r.status, 201);
    }
    let s = start_configured(
        &tmp.path().join("etc"),
        &tmp.path().join("fs/data"),
        &format!(
            "[storage]\nmin_free_bytes = 14680064\n\n[[mirror]]\nname = \"up\"\nurl = \"http://{}\"\nprefix = \"up\"\n",
            up.addr
        ),
    );
    let one = pull_through(&s, "up/team/app", "1").unwrap();
    assert_eq!(
        s.req("PUT", "/api/v1/pins/up/team/app:1").send().status,
        204
    );
    for tag in ["2", "3"] {
        std::thread::sleep(Duration::from_millis(1100)); // distinct "last used" seconds
        pull_through(&s, "up/team/app", tag).unwrap();
    }
    assert!(!s.log_text().contains("evicted"), "room for three so far");
    // The fourth does not fit above the floor: the least recently used unpinned tag (2)
    // goes, the pinned one (1) stays although it is older.
    std::thread::sleep(Duration::from_millis(1100));
    pull_through(&s, "up/team/app", "4").unwrap();
    s.wait_log("evicted a cached mirror tag");
    let log = s.log_text();
    assert!(log.contains("tag=2"), "{log}");
    assert!(!log.contains("tag=1 ") && !log.contains("tag=3"), "{log}");

    // Offline, the cache shows what it kept.
    assert!(up.terminate().success());
    assert_eq!(
        pull_through(&s, "up/team/app", "1").unwrap(),
        one,
        "pinned: kept"
    );
    pull_through(&s, "up/team/app", "3").unwrap();
    pull_through(&s, "up/team/app", "4").unwrap();
    let r = pull_through(&s, "up/team/app", "2").unwrap_err();
    assert_eq!(r.status, 404, "evicted");
}

#[test]
fn corrupt_upstream_bytes_are_never_served_whole_nor_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    // An upstream that serves what its disk holds, unchecked (as CNCF Distribution does;
    // edgeyard's own pulls would cut the transfer themselves).
    let up_cfg = tmp.path().join("upstream.toml");
    std::fs::write(&up_cfg, "[storage]\nverify_pulls = false\n").unwrap();
    let up = Server::start_with(&up_dir, &["--config", up_cfg.to_str().unwrap()]);
    let (r, m) = put_image(&up, "team/app", "1", 21, 3 << 20);
    assert_eq!(r.status, 201);
    let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let hex = &layer["sha256:".len()..];
    // The upstream's disk rots: one byte of the layer flips.
    let path = up_dir.join("blobs/sha256").join(&hex[..2]).join(hex);
    let mut data = std::fs::read(&path).unwrap();
    data[1 << 20] ^= 0x01;
    std::fs::write(&path, &data).unwrap();

    let data_dir = tmp.path().join("data");
    let s = start_configured(
        &tmp.path().join("etc"),
        &data_dir,
        &format!(
            "[[mirror]]\nname = \"up\"\nurl = \"http://{}\"\nprefix = \"up\"\n",
            up.addr
        ),
    );
    let fetch = || {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{size_download}"])
            .arg(s.url(&format!("/v2/up/team/app/blobs/{layer}")))
            .output()
            .unwrap()
    };
    let out = fetch();
    assert!(
        !out.status.success(),
        "the transfer must fail, not end cleanly"
    );
    let got: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        got < 3 << 20,
        "the client never has the whole (bad) blob: {got}"
    );
    s.wait_log("mirrored blob refused");
    assert!(
        !data_dir
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .exists(),
        "not cached"
    );
    assert_eq!(
        std::fs::read_dir(data_dir.join("uploads")).unwrap().count(),
        0,
        "no partial file left"
    );
    // Asked again, it is fetched again and refused again: nothing bad was kept.
    assert!(!fetch().status.success());
}

#[test]
fn scheduled_sync_and_sync_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Server::start_in(&tmp.path().join("upstream"));
    let (r, m) = put_image(&up, "team/app", "v1", 31, 100_000);
    assert_eq!(r.status, 201);
    put_image(&up, "team/app", "dev", 32, 100_000);
    let s = start_configured(
        &tmp.path().join("etc"),
        &tmp.path().join("data"),
        &format!(
            "[[mirror]]\nname = \"up\"\nurl = \"http://{}\"\nprefix = \"up\"\n\n[[sync]]\nmirror = \"up\"\nrepositories = [\"team/app\"]\ntags = [\"v*\"]\ninterval_secs = 3600\n",
            up.addr
        ),
    );
    // The schedule runs a rule once at start, then every interval.
    s.wait_log("scheduled sync done");
    let log = s.log_text();
    assert!(
        log.contains("images=1") && log.contains("blobs_fetched=2"),
        "{log}"
    );
    // Now, through the admin API: everything is already here.
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(["sync", "--server", &format!("http://{}", s.addr)])
        .env("EDGEYARD_PASSWORD", "unused-without-auth")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 images, 1 manifests, 0 blobs fetched (0 bytes), 2 already here"),
        "{text}"
    );
    assert!(up.terminate().success());
    assert_eq!(
        manifest_digest(&s, "up/team/app", "v1").unwrap(),
        sha256(&m)
    );
    assert!(
        manifest_digest(&s, "up/team/app", "dev").is_err(),
        "not matched by v*"
    );
}
