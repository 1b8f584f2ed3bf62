//! Repository governance: immutable tags refuse to move or be deleted, with a message naming
//! the rule; identical re-pushes succeed; rules change live through the admin API.

mod common;

use common::docker::*;
use common::*;

fn put_image(s: &Server, repo: &str, tag: &str, seed: u64) -> (u16, String, String) {
    let (r, m) = common::put_image(s, repo, tag, seed, 2000);
    let msg = if r.status >= 400 {
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    } else {
        String::new()
    };
    (r.status, sha256(&m), msg)
}

#[test]
fn immutable_tags_cannot_move_or_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = edgeyard(
        &dir,
        &[
            "repo",
            "immutable",
            "add",
            "--repos",
            "prod/**",
            "--tags",
            "v*",
        ],
        "",
    );
    let id = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let s = Server::start_in(&dir);

    let (st, v1, _) = put_image(&s, "prod/app", "v1", 1);
    assert_eq!(st, 201);
    let (st, _, msg) = put_image(&s, "prod/app", "v1", 2);
    assert_eq!(st, 403);
    assert!(
        msg.contains("immutable") && msg.contains(&format!("rule {id}")) && msg.contains("prod/**"),
        "{msg}"
    );
    // Pushing the identical manifest again is fine.
    assert_eq!(put_image(&s, "prod/app", "v1", 1).0, 201);
    // Neither the tag nor its manifest can be deleted.
    let r = s.req("DELETE", "/v2/prod/app/manifests/v1").send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    let r = s
        .req("DELETE", &format!("/v2/prod/app/manifests/{v1}"))
        .send();
    assert_eq!(r.status, 403);
    assert_eq!(
        s.req("GET", "/v2/prod/app/manifests/v1")
            .send()
            .header("docker-content-digest"),
        Some(v1.as_str())
    );
    // Other tags and other repositories move freely.
    assert_eq!(put_image(&s, "prod/app", "latest", 3).0, 201);
    assert_eq!(put_image(&s, "prod/app", "latest", 4).0, 201);
    assert_eq!(put_image(&s, "dev/app", "v1", 5).0, 201);
    assert_eq!(put_image(&s, "dev/app", "v1", 6).0, 201);

    // Live changes through the admin API.
    let r = s
        .req("POST", "/api/v1/immutability")
        .header("Content-Type", "application/json")
        .body(r#"{"repos":"dev/*","tags":"*"}"#)
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let new_id = r.json()["id"].as_u64().unwrap();
    assert_eq!(put_image(&s, "dev/app", "v1", 7).0, 403);
    let r = s.req("GET", "/api/v1/immutability").send();
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(
        s.req("DELETE", &format!("/api/v1/immutability/{new_id}"))
            .send()
            .status,
        204
    );
    assert_eq!(put_image(&s, "dev/app", "v1", 7).0, 201);
    let r = s
        .req("POST", "/api/v1/immutability")
        .body(r#"{"repos":"Bad","tags":"*"}"#)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (400, "INVALID"));
}

#[test]
fn docker_shows_the_immutability_refusal_and_keeps_the_original() {
    let Some(mut docker) = Docker::from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    docker.config = Some(tmp.path().join("docker-config"));
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &[
            "repo",
            "immutable",
            "add",
            "--repos",
            "prod/**",
            "--tags",
            "v*",
        ],
        "",
    );
    let s = Server::start_in(&dir);
    let image = format!("{}/prod/line:v1", s.addr);
    let first = tmp.path().join("one");
    std::fs::create_dir_all(&first).unwrap();
    let tar = make_rootfs(&first, 1);
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let original = docker.inspect(&image, "{{.Id}}");
    docker.run(&["push", &image]);
    let original_digest = docker.inspect(&image, "{{index .RepoDigests 0}}");

    let second = tmp.path().join("two");
    std::fs::create_dir_all(&second).unwrap();
    let tar = make_rootfs(&second, 2);
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let err = docker.fails(&["push", &image]);
    assert!(err.contains("immutable"), "docker must say why: {err}");

    docker.run(&["rmi", "-f", &image]);
    docker.run(&["pull", &image]);
    assert_eq!(docker.inspect(&image, "{{.Id}}"), original);
    assert_eq!(
        docker.inspect(&image, "{{index .RepoDigests 0}}"),
        original_digest
    );
    let _ = docker.cmd(&["rmi", "-f", &image]).output();
}

fn blob_file(s: &Server, d: &str) -> std::path::PathBuf {
    let hex = &d["sha256:".len()..];
    s.data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Pushes an image with one layer shared by all images and one of its own.
fn push_sharing(s: &Server, repo: &str, tag: &str, seed: u64) -> (String, String, Vec<u8>) {
    let shared = bytes(50_000, 999);
    let own = bytes(30_000, seed);
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let sd = push_blob(s, repo, &shared);
    let od = push_blob(s, repo, &own);
    let cd = push_blob(s, repo, &config);
    let m = image_manifest(
        (&cd, config.len()),
        &[(&sd, shared.len()), (&od, own.len())],
    );
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    (sha256(&m), od, m)
}

fn gc(s: &Server, body: &str) -> serde_json::Value {
    let r = s
        .req("POST", "/api/v1/gc")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn deleted_images_are_collected_and_shared_layers_stay() {
    let s = Server::start();
    let (_, a_own, a_manifest) = push_sharing(&s, "gc/a", "1", 1);
    let (b_digest, b_own, _) = push_sharing(&s, "gc/b", "1", 2);
    // Also an abandoned upload: linked, never referenced.
    let stray = push_blob(&s, "gc/stray", &bytes(10_000, 3));
    assert_eq!(
        s.req("DELETE", &format!("/v2/gc/b/manifests/{b_digest}"))
            .send()
            .status,
        202
    );

    // Within the grace period nothing goes.
    let r = gc(&s, r#"{"grace_secs": 3600}"#);
    assert_eq!(r["blobs_deleted"], 0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // A dry run reports, deletes nothing.
    let r = gc(&s, r#"{"dry_run": true, "grace_secs": 1}"#);
    assert_eq!(r["blobs_deleted"], 3, "{r}");
    assert!(blob_file(&s, &b_own).exists());
    let r = gc(&s, r#"{"grace_secs": 1}"#);
    assert_eq!(
        r["blobs_deleted"], 3,
        "b's own layer, b's config, the stray blob: {r}"
    );
    assert_eq!(r["bytes_freed"], 30_000 + 10_000 + 10);
    assert!(!blob_file(&s, &b_own).exists());
    assert!(!blob_file(&s, &stray).exists());
    assert!(blob_file(&s, &a_own).exists());
    // The surviving image pulls bit-for-bit; the collected blob is unknown everywhere.
    assert_eq!(s.req("GET", "/v2/gc/a/manifests/1").send().body, a_manifest);
    let shared = sha256(&bytes(50_000, 999));
    for layer in [&a_own, &shared] {
        let r = s.req("GET", &format!("/v2/gc/a/blobs/{layer}")).send();
        assert_eq!(sha256(&r.body), *layer);
    }
    assert_eq!(
        s.req("HEAD", &format!("/v2/gc/b/blobs/{b_own}"))
            .send()
            .status,
        404
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/gc/stray/blobs/{stray}"))
            .send()
            .status,
        404
    );
    // Runs are recorded and counted.
    let runs = s.req("GET", "/api/v1/gc").send().json();
    assert_eq!(
        runs.as_array().unwrap().len(),
        2,
        "dry runs are not recorded"
    );
    let metrics = String::from_utf8(s.req("GET", "/metrics").send().body).unwrap();
    assert!(metrics.contains("edgeyard_gc_runs_total 2"), "{metrics}");
    assert!(metrics.contains("edgeyard_gc_freed_bytes_total 40010"));
}

#[test]
fn gc_racing_pushes_never_breaks_a_push() {
    let s = Server::start();
    // Garbage to collect while the pushes run.
    for i in 0..5 {
        let (d, _, _) = push_sharing(&s, "race/old", &format!("t{i}"), 100 + i);
        s.req("DELETE", &format!("/v2/race/old/manifests/{d}"))
            .send();
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let pushed = std::thread::scope(|sc| {
        let collector = sc.spawn(|| {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                gc(&s, r#"{"grace_secs": 1}"#);
                runs += 1;
            }
            runs
        });
        let mut pushed = Vec::new();
        for i in 0..25 {
            pushed.push((i, push_sharing(&s, "race/new", &format!("t{i}"), 200 + i)));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            collector.join().unwrap() > 1,
            "the collector ran during the pushes"
        );
        pushed
    });
    for (i, (_, own, manifest)) in pushed {
        let r = s.req("GET", &format!("/v2/race/new/manifests/t{i}")).send();
        assert_eq!(r.body, manifest);
        let blob = s.req("GET", &format!("/v2/race/new/blobs/{own}")).send();
        assert_eq!(sha256(&blob.body), own, "layer of push {i} intact");
    }
    let r = gc(&s, r#"{"grace_secs": 1}"#);
    let total = r["blobs_total"].as_u64().unwrap();
    assert_eq!(
        total,
        1 + 25 * 2,
        "the shared layer and each new image's own layer and config remain: {r}"
    );
}

#[test]
fn repository_info_descriptions_tags_and_deletion() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &[
            "repo",
            "immutable",
            "add",
            "--repos",
            "info/keep",
            "--tags",
            "*",
        ],
        "",
    );
    let s = Server::start_in(&dir);
    let (amd, _, amd_m) = push_sharing(&s, "info/app", "amd64-only", 41);
    let (arm, _, arm_m) = push_sharing(&s, "info/app", "arm64-only", 42);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": amd_m.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": arm_m.len(), "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}
        ]
    }))
    .unwrap();
    let r = s
        .req("PUT", "/v2/info/app/manifests/multi")
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index.clone())
        .send();
    assert_eq!(r.status, 201);
    push_sharing(&s, "info/keep", "v1", 43);

    let repos = s.req("GET", "/api/v1/repositories").send().json();
    let app = repos
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "info/app")
        .unwrap()
        .clone();
    assert_eq!(app["tags"], 3);
    // Unique bytes: the shared layer once, two own layers, two configs, three manifests.
    let configs = "{\"seed\":41}".len() + "{\"seed\":42}".len();
    let expected = 50_000 + 2 * 30_000 + configs + amd_m.len() + arm_m.len() + index.len();
    assert_eq!(app["size"], expected as u64);
    assert!(app["last_push"].as_u64().unwrap() > 0);

    let r = s
        .req("PUT", "/api/v1/repositories/info/app/description")
        .body(r#"{"description":"Vision model for **line 3**"}"#)
        .send();
    assert_eq!(r.status, 204);
    assert_eq!(
        s.req("GET", "/api/v1/repositories/info/app").send().json()["description"],
        "Vision model for **line 3**"
    );

    let tags = s
        .req("GET", "/api/v1/repositories/info/app/tags")
        .send()
        .json();
    let multi = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "multi")
        .unwrap()
        .clone();
    assert_eq!(
        multi["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm/v7"])
    );
    assert_eq!(
        multi["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(multi["digest"], sha256(&index));
    // A multi-arch tag counts what pulling all its platforms fetches, shared layer once.
    assert_eq!(multi["size"], expected as u64);
    let amd_only = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "amd64-only")
        .unwrap()
        .clone();
    assert_eq!(
        amd_only["size"],
        (amd_m.len() + 50_000 + 30_000 + "{\"seed\":41}".len()) as u64
    );
    assert_eq!(multi["immutable"], false);
    let keep = s
        .req("GET", "/api/v1/repositories/info/keep/tags")
        .send()
        .json();
    assert_eq!(keep[0]["immutable"], true);

    // Deleting: refused while an immutable tag is in it; otherwise soft, then GC frees.
    let r = s.req("DELETE", "/api/v1/repositories/info/keep").send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    assert_eq!(
        s.req("DELETE", "/api/v1/repositories/info/app")
            .send()
            .status,
        204
    );
    assert_eq!(
        s.req("GET", "/v2/info/app/manifests/multi").send().status,
        404
    );
    let catalog = s.req("GET", "/v2/_catalog").send().json();
    assert_eq!(catalog["repositories"], serde_json::json!(["info/keep"]));
    assert_eq!(
        s.req("DELETE", "/api/v1/repositories/info/app")
            .send()
            .status,
        404
    );
    drop(s);

    // The same from the command line, offline.
    let list = edgeyard(&dir, &["repo", "list"], "");
    assert!(list.contains("info/keep\t1 tags"), "{list}");
    edgeyard(
        &dir,
        &["repo", "describe", "info/keep", "--text", "pinned"],
        "",
    );
    let show = edgeyard(&dir, &["repo", "show", "info/keep"], "");
    assert!(
        show.contains("pinned") && show.contains("v1\tsha256:") && show.contains("immutable"),
        "{show}"
    );
    let out = edgeyard(&dir, &["gc", "--grace-secs", "0"], "");
    assert!(out.contains("freed"), "{out}");
    // Offline, the collection also compacts the metadata store.
    assert!(out.contains("metadata store compacted: "), "{out}");
    let show = edgeyard(&dir, &["repo", "show", "info/keep"], "");
    assert!(show.contains("v1\tsha256:"), "{show}");
}

#[test]
fn a_full_disk_refuses_uploads_cleanly_and_keeps_every_stored_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_disk) = common::SmallDisk::mount(&tmp.path().join("fs"), 48) else {
        return;
    };
    let dir = tmp.path().join("fs/data");
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, "[storage]\nmin_free_bytes = 16777216\n").unwrap();
    let s = Server::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    let (_, _, first) = push_sharing(&s, "disk/app", "1", 61);
    let big = bytes(20 << 20, 62);
    let big_digest = push_blob(&s, "disk/app", &big);
    let big2 = bytes(12 << 20, 63);
    push_blob(&s, "disk/app", &big2);
    // Now below the 16 MiB floor: refused before any byte is written, with a clear message.
    let uploads = || std::fs::read_dir(dir.join("uploads")).unwrap().count();
    let before = uploads();
    let r = s.req("POST", "/v2/disk/app/blobs/uploads/").send();
    assert_eq!((r.status, r.error_code().as_str()), (507, "DENIED"));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("nearly full"));
    assert_eq!(uploads(), before, "no upload file was created");
    s.wait_log("upload refused: free space is below the configured floor");
    let ready = s.req("GET", "/readyz").send();
    assert_eq!(ready.status, 503);
    assert_ne!(ready.json()["checks"]["free_space"], "ok");
    // Pulls keep working and verify.
    assert_eq!(s.req("GET", "/v2/disk/app/manifests/1").send().body, first);
    assert_eq!(
        sha256(
            &s.req("GET", &format!("/v2/disk/app/blobs/{big_digest}"))
                .send()
                .body
        ),
        big_digest
    );
    drop(s);

    // With no floor, an upload larger than the free space hits ENOSPC midway: a clean 507,
    // its temporary file gone, every stored blob intact.
    std::fs::write(&cfg, "[storage]\nmin_free_bytes = 0\n").unwrap();
    let s = Server::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    let blobs_before = layout_blobs(&dir);
    let huge = bytes(24 << 20, 64);
    let r = s
        .req(
            "POST",
            &format!("/v2/disk/app/blobs/uploads/?digest={}", sha256(&huge)),
        )
        .body(huge)
        .send();
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("disk is full"));
    assert_eq!(
        std::fs::read_dir(dir.join("uploads")).unwrap().count(),
        0,
        "the partial upload was removed"
    );
    assert_eq!(
        layout_blobs(&dir),
        blobs_before,
        "every stored blob is intact"
    );
    for (name, digest) in layout_blobs(&dir) {
        assert_eq!(
            format!("sha256:{name}"),
            digest,
            "blob {name} hashes to its name"
        );
    }
    assert_eq!(s.req("GET", "/v2/disk/app/manifests/1").send().body, first);
}

#[test]
fn retention_dry_run_then_apply_spares_immutable_and_recent_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &[
            "repo",
            "immutable",
            "add",
            "--repos",
            "ret/**",
            "--tags",
            "release-*",
        ],
        "",
    );
    let out = edgeyard(
        &dir,
        &[
            "repo",
            "retention",
            "add",
            "--repos",
            "ret/**",
            "--keep-last",
            "3",
        ],
        "",
    );
    assert!(out.contains("retention policy"), "{out}");
    let s = Server::start_in(&dir);
    for (i, t) in ["old-a", "old-b", "old-c", "old-d", "release-1"]
        .iter()
        .enumerate()
    {
        push_sharing(&s, "ret/app", t, 300 + i as u64);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for (i, t) in ["new-x", "new-y", "new-z"].iter().enumerate() {
        push_sharing(&s, "ret/app", t, 400 + i as u64);
    }
    push_sharing(&s, "other/app", "old", 500);

    let dry = s
        .req("POST", "/api/v1/retention/apply")
        .body(r#"{"dry_run":true}"#)
        .send()
        .json();
    let mut would: Vec<&str> = dry
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tag"].as_str().unwrap())
        .collect();
    would.sort();
    assert_eq!(would, ["old-a", "old-b", "old-c", "old-d"]);
    assert_eq!(
        s.req("GET", "/v2/ret/app/tags/list").send().json()["tags"]
            .as_array()
            .unwrap()
            .len(),
        8,
        "a dry run deletes nothing"
    );

    let done = s
        .req("POST", "/api/v1/retention/apply")
        .body("{}")
        .send()
        .json();
    assert_eq!(done.as_array().unwrap().len(), 4);
    let tags = s.req("GET", "/v2/ret/app/tags/list").send().json();
    assert_eq!(
        tags["tags"],
        serde_json::json!(["new-x", "new-y", "new-z", "release-1"])
    );
    assert_eq!(
        s.req("GET", "/v2/other/app/tags/list").send().json()["tags"],
        serde_json::json!(["old"])
    );
    let policies = s.req("GET", "/api/v1/retention").send().json();
    assert_eq!(policies[0]["keep_last"], 3);
    let r = s
        .req("POST", "/api/v1/retention")
        .body(r#"{"repos":"x/**"}"#)
        .send();
    assert_eq!(r.status, 400, "a policy must keep something");
}

#[test]
fn explicit_creation_and_public_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("edgeyard.toml");
    std::fs::write(&cfg, "repository_creation = \"explicit\"\n").unwrap();
    edgeyard(
        &dir,
        &["user", "add", "root", "--admin", "--password-stdin"],
        "root-password\n",
    );
    edgeyard(
        &dir,
        &["user", "add", "alice", "--password-stdin"],
        "alice-password\n",
    );
    access_add(&dir, "user:alice", "team/**", "push");
    edgeyard(
        &dir,
        &[
            "repo",
            "create",
            "team/app",
            "--public",
            "--description",
            "the app",
        ],
        "",
    );
    let s = Server::start_auth(&dir, &["--config", cfg.to_str().unwrap()]);
    let alice = basic("alice", "alice-password");
    let root = basic("root", "root-password");

    let data = b"layer".to_vec();
    let d = sha256(&data);
    let r = s
        .req("POST", &format!("/v2/team/app/blobs/uploads/?digest={d}"))
        .auth(&alice)
        .body(data.clone())
        .send();
    assert_eq!(r.status, 201);
    let r = s
        .req("POST", "/v2/team/new/blobs/uploads/")
        .auth(&alice)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("must create it first"));

    // Public: anyone pulls, with or without a token; nobody anonymous pushes.
    assert_eq!(
        s.req("HEAD", &format!("/v2/team/app/blobs/{d}"))
            .send()
            .status,
        200
    );
    let t = s
        .req(
            "GET",
            "/token?service=edgeyard&scope=repository:team/app:pull,push",
        )
        .send()
        .json();
    let bearer = format!("Bearer {}", t["token"].as_str().unwrap());
    assert_eq!(
        s.req("HEAD", &format!("/v2/team/app/blobs/{d}"))
            .auth(&bearer)
            .send()
            .status,
        200
    );
    assert_eq!(
        s.req("POST", "/v2/team/app/blobs/uploads/")
            .auth(&bearer)
            .send()
            .status,
        403
    );

    // Private again: anonymous pulls are challenged.
    let r = s
        .req("PATCH", "/api/v1/repositories/team/app")
        .auth(&root)
        .body(r#"{"public":false}"#)
        .send();
    assert_eq!(r.status, 204);
    assert_eq!(
        s.req("HEAD", &format!("/v2/team/app/blobs/{d}"))
            .send()
            .status,
        401
    );
    let info = s
        .req("GET", "/api/v1/repositories/team/app")
        .auth(&root)
        .send()
        .json();
    assert_eq!(
        (info["public"].as_bool(), info["description"].as_str()),
        (Some(false), Some("the app"))
    );
    // Administrators create repositories through the API too.
    let r = s
        .req("POST", "/api/v1/repositories")
        .auth(&root)
        .body(r#"{"name":"team/new"}"#)
        .send();
    assert_eq!(r.status, 201);
    assert_eq!(
        s.req("POST", "/v2/team/new/blobs/uploads/")
            .auth(&alice)
            .send()
            .status,
        202
    );
    let r = s
        .req("POST", "/api/v1/repositories")
        .auth(&root)
        .body(r#"{"name":"team/new"}"#)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (409, "CONFLICT"));
}

/// Every operation of docs/openapi.json, called on a running server with its example: it
/// must exist and answer one of the statuses the file documents. Writes first (so the
/// examples have something to act on), deletions last.
#[test]
fn the_openapi_file_matches_the_server() {
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    edgeyard(
        &dir,
        &["user", "add", "root", "--admin", "--password-stdin"],
        "root-password\n",
    );
    let s = Server::start_auth(&dir, &[]);
    let root = basic("root", "root-password");
    // An image for the operations on tags (pins, export, push-to).
    let (r, _) = put_image_as(&s, Some(&root), "docs/app", "v1", 3, 10_000);
    assert_eq!(r.status, 201);
    let mut ops = Vec::new();
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let order = match method.as_str() {
                "post" => 0,
                "get" | "put" | "patch" => 1,
                _ => 2,
            };
            ops.push((order, path.clone(), method.to_uppercase(), op.clone()));
        }
    }
    // Deletions run longest path first: what was made to act on (a tag, a policy) goes
    // before what it needs (its repository, the key the policy names).
    ops.sort_by_key(|(order, p, m, _)| {
        let len = if *order == 2 {
            usize::MAX - p.len()
        } else {
            p.len()
        };
        (*order, len, p.clone(), m.clone())
    });
    assert!(ops.len() >= 20);
    // Ids the POSTs handed out, by collection path, for the `{id}` operations.
    let mut created: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    // The last tarball an operation answered (the export), for the operation that takes one.
    let mut tarball: Option<Vec<u8>> = None;
    for (_, path, method, op) in ops {
        let mut url = path.clone();
        for param in op["parameters"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap();
            let value = match (name, path.strip_suffix("/{id}")) {
                ("id", Some(collection)) => created
                    .get(collection)
                    .cloned()
                    .unwrap_or_else(|| panic!("{collection} created nothing: {created:?}")),
                _ => param["example"].as_str().unwrap().to_string(),
            };
            url = url.replace(&format!("{{{name}}}"), &value);
        }
        let mut req = s.req(&method, &url).auth(&root);
        if let Some(example) =
            op["requestBody"]["content"]["application/json"]["example"].as_object()
        {
            // Examples name a registry at edge.example:5000: this server.
            let body = serde_json::to_string(example)
                .unwrap()
                .replace("edge.example:5000", &s.addr);
            req = req.header("Content-Type", "application/json").body(body);
        }
        if op["requestBody"]["content"]["application/x-tar"].is_object() {
            let t = tarball
                .clone()
                .expect("an operation that answers a tarball runs first");
            req = req.header("Content-Type", "application/x-tar").body(t);
        }
        let r = req.send();
        if r.header("content-type") == Some("application/x-tar") {
            tarball = Some(r.body.clone());
        }
        let documented: Vec<u16> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        assert!(
            documented.contains(&r.status),
            "{method} {url} answered {} ({}), documented {documented:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            r.status < 300,
            "the example of {method} {url} should succeed: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if method == "POST" {
            let answer: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
            if let Some(id) = answer.and_then(|v| v["id"].as_u64()) {
                created.insert(path.clone(), id.to_string());
            }
        }
        // Without credentials every operation asks for them.
        assert_eq!(
            s.req(&method, &url).send().status,
            401,
            "{method} {url} without credentials"
        );
    }
}

/// Quotas hold when bytes are committed, not only when a session starts. Regression: with
/// a quota, one upload of any size completed, sessions opened under the quota all
/// completed, and a mount of a large blob into a namespace over its quota answered 201.
#[test]
fn namespace_quotas_refuse_what_would_go_over_them() {
    let s = Server::start();
    let r = s
        .req("POST", "/api/v1/quotas")
        .body(r#"{"repos":"q/**","max_bytes":100000}"#)
        .send();
    assert_eq!(r.status, 201);
    let quota_refusal = |r: &Resp| {
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "DENIED"),
            "{r:?}"
        );
        assert!(r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("quota"));
    };
    let a = bytes(60_000, 1);
    push_blob(&s, "q/a", &a);
    // One upload that would take the namespace over: refused when it completes.
    let b = bytes(60_000, 2);
    let r = s
        .req(
            "POST",
            &format!("/v2/q/b/blobs/uploads/?digest={}", sha256(&b)),
        )
        .body(b.clone())
        .send();
    quota_refusal(&r);
    let r = s
        .req("HEAD", &format!("/v2/q/b/blobs/{}", sha256(&b)))
        .send();
    assert_eq!(r.status, 404, "nothing was stored");
    push_blob(&s, "q/b", &bytes(30_000, 3));

    // Two sessions opened under the quota (90,000 of 100,000 used): the first to complete
    // fits, the second would not.
    let open = || {
        let r = s.req("POST", "/v2/q/c/blobs/uploads/").send();
        assert_eq!(r.status, 202);
        r.header("location").unwrap().to_string()
    };
    let (first, second) = (open(), open());
    let finish = |loc: &str, data: &[u8]| {
        s.req("PUT", &closing(loc, sha256(data)))
            .body(data.to_vec())
            .send()
    };
    assert_eq!(finish(&first, &bytes(5_000, 4)).status, 201);
    quota_refusal(&finish(&second, &bytes(10_000, 5)));

    // A mount adds what the namespace does not hold yet: a blob it holds mounts freely, a
    // large one from elsewhere is refused.
    let r = s
        .req(
            "POST",
            &format!("/v2/q/d/blobs/uploads/?mount={}&from=q/a", sha256(&a)),
        )
        .send();
    assert_eq!(r.status, 201);
    let other = push_blob(&s, "other/x", &bytes(40_000, 6));
    let r = s
        .req(
            "POST",
            &format!("/v2/q/d/blobs/uploads/?mount={other}&from=other/x"),
        )
        .send();
    quota_refusal(&r);
    assert_eq!(
        s.req("POST", "/v2/other/y/blobs/uploads/").send().status,
        202,
        "other namespaces are not limited"
    );
    let usage = s.req("GET", "/api/v1/quotas").send().json();
    assert_eq!(usage[0]["used_bytes"], 95_000);
    assert_eq!(usage[0]["max_bytes"], 100_000);

    // A manifest that would go over is refused too.
    let cfg = bytes(1_000, 7);
    push_blob(&s, "q/a", &cfg);
    let usage = s.req("GET", "/api/v1/quotas").send().json();
    assert_eq!(usage[0]["used_bytes"], 96_000);
    let mut m: serde_json::Value =
        serde_json::from_slice(&image_manifest((&sha256(&cfg), cfg.len()), &[])).unwrap();
    m["annotations"] = serde_json::json!({ "padding": "p".repeat(5_000) });
    let r = s
        .req("PUT", "/v2/q/a/manifests/v1")
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&m).unwrap())
        .send();
    quota_refusal(&r);

    let id = usage[0]["id"].as_u64().unwrap();
    assert_eq!(
        s.req("DELETE", &format!("/api/v1/quotas/{id}"))
            .send()
            .status,
        204
    );
    assert_eq!(s.req("POST", "/v2/q/c/blobs/uploads/").send().status, 202);
    let r = s
        .req("PUT", "/v2/q/a/manifests/v1")
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&m).unwrap())
        .send();
    assert_eq!(r.status, 201);
}

#[test]
fn repo_rm_deletes_tags_and_manifests_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir);
    let (d1, _, _) = push_sharing(&s, "rm/app", "one", 71);
    push_sharing(&s, "rm/app", "two", 72);
    drop(s);
    edgeyard(&dir, &["repo", "rm", "rm/app:two"], "");
    edgeyard(&dir, &["repo", "rm", &format!("rm/app@{d1}")], "");
    let s = Server::start_in(&dir);
    assert_eq!(
        s.req("GET", "/v2/rm/app/tags/list").send().json()["tags"],
        serde_json::json!([])
    );
    assert_eq!(
        s.req("GET", &format!("/v2/rm/app/manifests/{d1}"))
            .send()
            .status,
        404
    );
}

#[test]
fn gc_collects_untagged_manifests_but_keeps_index_children_and_referrers() {
    let s = Server::start();
    // An image whose tag later moves to another image: the first becomes unreachable.
    let (old, old_own, _) = push_sharing(&s, "reach/app", "latest", 81);
    let (new, _, new_m) = push_sharing(&s, "reach/app", "latest", 82);
    // An index whose children are pushed by digest only.
    let (child, child_own, child_m) = push_sharing(&s, "reach/app", "tmp-child", 83);
    assert_eq!(
        s.req("DELETE", "/v2/reach/app/manifests/tmp-child")
            .send()
            .status,
        202
    );
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child, "size": child_m.len()}]
    }))
    .unwrap();
    let r = s
        .req("PUT", "/v2/reach/app/manifests/multi")
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index)
        .send();
    assert_eq!(r.status, 201);
    // A signature whose subject is the current image.
    let empty = push_blob(&s, "reach/app", b"{}");
    let sig = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": new, "size": new_m.len()}
    }))
    .unwrap();
    let sig_digest = sha256(&sig);
    let r = s
        .req("PUT", &format!("/v2/reach/app/manifests/{sig_digest}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(sig)
        .send();
    assert_eq!(r.status, 201);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let report = gc(&s, r#"{"grace_secs": 1}"#);
    assert_eq!(
        report["manifests_deleted"], 1,
        "only the image the tag moved away from: {report}"
    );
    assert_eq!(
        s.req("GET", &format!("/v2/reach/app/manifests/{old}"))
            .send()
            .status,
        404
    );
    assert!(!blob_file(&s, &old_own).exists(), "its own layer is freed");
    assert_eq!(
        s.req("GET", &format!("/v2/reach/app/manifests/{child}"))
            .send()
            .status,
        200,
        "index child kept"
    );
    assert!(blob_file(&s, &child_own).exists());
    assert_eq!(
        s.req("GET", &format!("/v2/reach/app/manifests/{sig_digest}"))
            .send()
            .status,
        200,
        "referrer kept"
    );
    let refs = s
        .req("GET", &format!("/v2/reach/app/referrers/{new}"))
        .send()
        .json();
    assert_eq!(refs["manifests"][0]["digest"], sig_digest);
}
