//! Repository governance: immutable tags refuse to move or be deleted, with a message naming
//! the rule; identical re-pushes succeed; rules change live through the admin API.

mod common;

use common::docker::*;
use common::*;

fn put_image(s: &Server, repo: &str, tag: &str, seed: u64) -> (u16, String, String) {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let layer = bytes(2000, seed);
    let cd = push_blob(s, repo, &config);
    let ld = push_blob(s, repo, &layer);
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send();
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
