//! The real Docker daemon pushes to and pulls from edgeyard. The daemon is the private one
//! `scripts/test` starts (`EDGEYARD_DOCKER_HOST`); loopback registries are insecure to
//! docker, so plain HTTP needs no daemon configuration.
//!
//! A base image comes from `docker import` of a tarball made here; a child image is built
//! `FROM` it with the classic builder (a `COPY`, which runs no container). Both are pushed,
//! the child's push must reuse the shared layer, then both are removed and pulled back.

mod common;

use common::docker::*;
use common::*;

#[test]
fn docker_push_pull_roundtrip_with_shared_layer() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let base = format!("{}/e2e/base:1", s.addr);
    let child = format!("{}/e2e/child:1", s.addr);

    let tar = make_rootfs(tmp.path(), 42);
    docker.run(&["import", tar.to_str().unwrap(), &base]);
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), b"hello from the child layer\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY hello.txt /hello.txt\n"),
    )
    .unwrap();
    docker.run(&["build", "-q", "-t", &child, ctx.to_str().unwrap()]);

    let base_id = docker.inspect(&base, "{{.Id}}");
    let child_id = docker.inspect(&child, "{{.Id}}");

    let out = docker.run(&["push", &base]);
    assert!(out.contains("Pushed"), "{out}");
    let out = docker.run(&["push", &child]);
    assert!(
        out.contains("Mounted from e2e/base") || out.contains("Layer already exists"),
        "the shared layer must not be uploaded again:\n{out}"
    );
    // Exactly one new layer (the COPY) was uploaded for the child.
    assert_eq!(out.matches("Pushed").count(), 1, "{out}");

    let base_digest = docker.inspect(&base, "{{index .RepoDigests 0}}");
    let child_digest = docker.inspect(&child, "{{index .RepoDigests 0}}");
    // The registry serves the manifest under the digest docker recorded.
    let d = child_digest.rsplit('@').next().unwrap().to_string();
    let r = s.req("HEAD", "/v2/e2e/child/manifests/1").send();
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));

    docker.run(&["rmi", &child, &base]);
    assert!(
        docker
            .cmd(&["image", "inspect", &base])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );

    let out = docker.run(&["pull", &child]);
    assert!(out.contains(&d), "{out}");
    docker.run(&["pull", &base]);
    assert_eq!(docker.inspect(&base, "{{.Id}}"), base_id);
    assert_eq!(docker.inspect(&child, "{{.Id}}"), child_id);
    assert_eq!(
        docker.inspect(&base, "{{index .RepoDigests 0}}"),
        base_digest
    );
    assert_eq!(
        docker.inspect(&child, "{{index .RepoDigests 0}}"),
        child_digest
    );

    // Pull by digest too.
    let by_digest = format!("{}/e2e/child@{d}", s.addr);
    docker.run(&["pull", &by_digest]);

    // A second push of the same image uploads nothing.
    let out = docker.run(&["push", &child]);
    assert!(!out.contains("Pushed"), "{out}");

    let _ = docker
        .cmd(&["rmi", "-f", &child, &base, &by_digest])
        .output();
}
