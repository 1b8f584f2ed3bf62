//! Content trust with the real Docker daemon: images docker pushed are signed the way
//! cosign signs with a key (a "simple signing" payload naming the image's digest, signed
//! with ECDSA P-256 by OpenSSL, stored as a signature manifest under the tag
//! `sha256-<hex>.sig`), the operator installs the public key and a policy with the CLI
//! against the running server, and docker pulls:
//!
//! - an image signed by the trusted key pulls, by tag and by digest;
//! - an unsigned one, one signed by a key nobody installed, one whose signature payload
//!   names another image, and one whose signature was altered are refused with a `DENIED`
//!   message docker prints;
//! - a repository no policy covers, and one under an audit policy, serve unsigned images;
//!   refusals and audit findings are counted in `/metrics`.
//!
//! cosign itself cannot be installed here and Debian's skopeo is built with sigstore
//! signing disabled, so most signatures are made with OpenSSL and assembled by this test
//! from the format cosign documents (docs/research/content-trust-formats.md). So that this
//! reading of the format is not the only one tested, one test has another implementation do
//! all of it: the sigstore crate (tests/clients/cosign-rs) makes the key pair as `cosign
//! generate-key-pair` does and signs and pushes as `cosign sign --key` does. Notation
//! signatures are JWS envelopes made by a Python JOSE library (tests/clients/notation_sign.py).

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::docker::*;
use common::signing::{self, p256_key_pair as key_pair};
use common::*;

/// The digest of the manifest `repo:tag` as docker pushed it.
fn digest_of(s: &Server, repo: &str, tag: &str) -> String {
    let r = s
        .req("HEAD", &format!("/v2/{repo}/manifests/{tag}"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send();
    assert_eq!(r.status, 200);
    r.header("docker-content-digest").unwrap().to_string()
}

/// docker imports and pushes two images, `REPO:signed` and `REPO:unsigned` (root
/// filesystems made from `seed`), to `s`; their digests as pushed.
fn docker_pushes(docker: &Docker, s: &Server, dir: &Path, repo: &str, seed: u64) -> [String; 2] {
    ["signed", "unsigned"].map(|tag| {
        let work = dir.join(tag);
        std::fs::create_dir_all(&work).unwrap();
        let n = if tag == "signed" { 0 } else { 1 };
        let tar = make_rootfs(&work, seed + n);
        let image = format!("{}/{repo}:{tag}", s.addr);
        docker.run(&["import", tar.to_str().unwrap(), &image]);
        docker.run(&["push", &image]);
        digest_of(s, repo, tag)
    })
}

/// cosign's payload for `image`.
fn payload(s: &Server, repo: &str, image: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/{repo}"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        s.addr
    )
    .into_bytes()
}

fn sign(dir: &Path, name: &str, payload: &[u8]) -> String {
    signing::sign(dir, name, payload, false)
}

/// Stores a signature manifest as cosign does: the payload as a layer, the signature in its
/// annotation, under the tag `sha256-<hex>.sig` of `image`.
fn attach(s: &Server, repo: &str, image: &str, payload: &[u8], signature: &str) {
    let config = br#"{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = push_blob(s, repo, config);
    let pd = push_blob(s, repo, payload);
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": pd, "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": signature},
        }],
    });
    let tag = image.replacen(':', "-", 1) + ".sig";
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&m).unwrap())
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// Pushes `prod/app:signed`, signed with `release.key` (made here, as cosign signs), and
/// `prod/app:unsigned` to `s`; their digests.
fn signed_and_unsigned(s: &Server, dir: &Path) -> (String, String) {
    let prod = "prod/app";
    key_pair(dir, "release");
    put_image(s, prod, "signed", 1, 2048);
    put_image(s, prod, "unsigned", 2, 2048);
    let signed = digest_of(s, prod, "signed");
    let p = payload(s, prod, &signed);
    attach(s, prod, &signed, &p, &sign(dir, "release", &p));
    (signed, digest_of(s, prod, "unsigned"))
}

/// `edgeyard ARGS --server URL` (authentication is off: any password will do).
fn admin(s: &Server, dir: &Path, args: &[&str]) -> String {
    let url = format!("http://{}", s.addr);
    let mut all = args.to_vec();
    all.extend_from_slice(&["--server", &url]);
    run(Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(&all)
        .current_dir(dir)
        .env("EDGEYARD_PASSWORD", "unused"))
}

fn metric(s: &Server, line: &str) -> u64 {
    let text = String::from_utf8(s.req("GET", "/metrics").send().body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn docker_pulls_only_images_signed_by_a_trusted_key() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key_pair(dir, "release");
    key_pair(dir, "stranger");

    // Five images in the protected repository, one each elsewhere.
    let cases = [
        "prod/app:signed",
        "prod/app:unsigned",
        "prod/app:stranger",
        "prod/app:replayed",
        "prod/app:tampered",
        "dev/app:unsigned",
        "audit/app:unsigned",
    ];
    let mut digests = std::collections::HashMap::new();
    for (seed, case) in cases.iter().enumerate() {
        let work = dir.join(format!("img{seed}"));
        std::fs::create_dir_all(&work).unwrap();
        let tar = make_rootfs(&work, 1000 + seed as u64);
        let image = format!("{}/{case}", s.addr);
        docker.run(&["import", tar.to_str().unwrap(), &image]);
        docker.run(&["push", &image]);
        let (repo, tag) = case.split_once(':').unwrap();
        digests.insert(*case, digest_of(&s, repo, tag));
    }
    let d = |case: &str| digests[case].clone();
    let prod = "prod/app";

    // (image signed, image the payload names, key): the trusted key's signature, one by a
    // key nobody installed, and the trusted key's signature of one image presented for
    // another.
    for (image, named, key) in [
        ("signed", "signed", "release"),
        ("stranger", "stranger", "stranger"),
        ("replayed", "signed", "release"),
    ] {
        let p = payload(&s, prod, &d(&format!("{prod}:{named}")));
        let sig = sign(dir, key, &p);
        attach(&s, prod, &d(&format!("{prod}:{image}")), &p, &sig);
    }
    // A signature of the right payload with one byte altered.
    let p = payload(&s, prod, &d("prod/app:tampered"));
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(sign(dir, "release", &p))
        .unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let altered = base64::engine::general_purpose::STANDARD.encode(raw);
    attach(&s, prod, &d("prod/app:tampered"), &p, &altered);

    // The operator's commands, against the running server.
    let out = admin(&s, dir, &["trust", "key", "add", "release", "release.pub"]);
    let fingerprint = signing::fingerprint(dir, "release");
    assert!(out.contains(&fingerprint), "{out} (want {fingerprint})");
    let out = admin(
        &s,
        dir,
        &[
            "trust", "policy", "add", "--repos", "prod/**", "--key", "release",
        ],
    );
    assert!(
        out.contains("prod/**: a signature by release (enforced"),
        "{out}"
    );
    admin(
        &s,
        dir,
        &[
            "trust", "policy", "add", "--repos", "audit/**", "--key", "release", "--mode", "audit",
        ],
    );
    let listed = admin(&s, dir, &["trust", "key", "list"]);
    assert!(listed.contains(&fingerprint), "{listed}");

    for case in cases {
        docker.run(&["rmi", &format!("{}/{case}", s.addr)]);
    }
    let pull = |what: &str| format!("{}/{what}", s.addr);

    let out = docker.run(&["pull", &pull("prod/app:signed")]);
    assert!(out.contains(&d("prod/app:signed")), "{out}");
    docker.run(&["pull", &pull(&format!("prod/app@{}", d("prod/app:signed")))]);

    let refused = [
        ("prod/app:unsigned", "it has no signature".to_string()),
        (
            "prod/app:stranger",
            "no trusted key verifies the signature".to_string(),
        ),
        (
            "prod/app:replayed",
            format!(
                "the signature is for another image ({})",
                d("prod/app:signed")
            ),
        ),
        (
            "prod/app:tampered",
            "no trusted key verifies the signature".to_string(),
        ),
    ];
    for (case, why) in &refused {
        let err = docker.fails(&["pull", &pull(case)]);
        let expected = format!(
            "denied: image prod/app@{} is not signed by a key trusted for prod/** (trust policy",
            d(case)
        );
        assert!(err.contains(&expected), "{case}: {err}\n(want {expected})");
        assert!(err.contains(why.as_str()), "{case}: {err}\n(want {why})");
    }
    // By digest as well.
    let err = docker.fails(&[
        "pull",
        &pull(&format!("prod/app@{}", d("prod/app:unsigned"))),
    ]);
    assert!(err.contains("it has no signature"), "{err}");

    // No policy, and an audit policy: served.
    docker.run(&["pull", &pull("dev/app:unsigned")]);
    docker.run(&["pull", &pull("audit/app:unsigned")]);
    assert!(
        metric(&s, "edgeyard_trust_checks_total{result=\"refused\"}") >= 5,
        "refusals are counted"
    );
    assert!(metric(&s, "edgeyard_trust_checks_total{result=\"audit_unmet\"}") >= 1);
    assert!(metric(&s, "edgeyard_trust_checks_total{result=\"served\"}") >= 1);
    assert!(
        s.log_text()
            .contains("audit: an image its trust policy would refuse was let through"),
        "the audit finding is logged"
    );
}

/// Runs `edgeyard ARGS --data-dir DIR`; returns whether it succeeded and what it printed.
fn offline(data: &Path, args: &[&str]) -> (bool, String) {
    // A site provisioned before its first start: the directory exists, the store not yet.
    std::fs::create_dir_all(data).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_bundle_is_imported_only_if_every_image_in_it_is_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let s = Server::start_in(&src);
    let prod = "prod/app";
    let (signed, _) = signed_and_unsigned(&s, dir);
    drop(s);

    // The site's trust, declared in its configuration file (as a fleet is provisioned).
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        format!(
            "[[trust.key]]\nname = \"release\"\nfile = \"{}\"\n\n[[trust.policy]]\nrepos = \"prod/**\"\nkeys = [\"release\"]\n",
            dir.join("release.pub").display()
        ),
    )
    .unwrap();
    let site = site.to_str().unwrap();
    let both = dir.join("both.tar");
    let (ok, out) = offline(
        &src,
        &[
            "export",
            "prod/app:signed",
            "prod/app:unsigned",
            "-o",
            both.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = offline(&dst, &["import", "--config", site, both.to_str().unwrap()]);
    assert!(
        !ok,
        "a bundle with an unsigned image must be refused:\n{out}"
    );
    // Applied once, the declaration binds commands run without the file too, and neither
    // the CLI nor the admin API removes what the file declares.
    let (ok, again) = offline(&dst, &["import", both.to_str().unwrap()]);
    assert!(
        !ok && again.contains("is not signed by a key trusted for prod/**"),
        "{again}"
    );
    let (ok, listed) = offline(&dst, &["trust", "policy", "list"]);
    assert!(ok && listed.contains("prod/**: a signature by release (enforced; indexes signed whole; declared in the configuration)"), "{listed}");
    let (ok, del) = offline(&dst, &["trust", "key", "del", "release"]);
    assert!(
        !ok && del.contains("declared in the configuration file's [trust] section"),
        "{del}"
    );
    let unsigned = {
        let s = Server::start_in(&src);
        digest_of(&s, prod, "unsigned")
    };
    assert!(
        out.contains(&format!(
            "image prod/app@{unsigned} is not signed by a key trusted for prod/** (trust policy"
        )) && out.contains("it has no signature"),
        "{out}"
    );
    // Refused whole: not even the signed image was stored.
    let s = Server::start_in(&dst);
    let r = s.req("GET", "/v2/prod/app/tags/list").send();
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    drop(s);

    // The signed image alone, with the signature the export brought along.
    let one = dir.join("signed.tar");
    let (ok, out) = offline(
        &src,
        &["export", "prod/app:signed", "-o", one.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let (ok, out) = offline(&dst, &["import", "--config", site, one.to_str().unwrap()]);
    assert!(ok, "{out}");
    let s = Server::start_with(&dst, &["--config", site]);
    let r = s.req("GET", "/v2/prod/app/manifests/signed").send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(signed.as_str()));
    let r = s.req("DELETE", "/api/v1/trust/keys/release").send();
    assert_eq!((r.status, r.error_code().as_str()), (409, "CONFLICT"));
    // A file that no longer declares the policy removes it at the next apply: here a
    // reload (SIGHUP, as `systemctl reload` sends).
    std::fs::write(dir.join("site.toml"), "").unwrap();
    s.signal("HUP");
    s.wait_log("trust keys and policies declared in the configuration applied");
    let r = s.req("GET", "/api/v1/trust/policies").send();
    assert_eq!(r.json(), serde_json::json!([]));
    let r = s.req("GET", "/v2/prod/app/manifests/unsigned").send();
    assert_eq!(r.status, 404, "refused at import, so never stored");
}

/// `bundle` with its trust document replaced by `doc` (a tampered copy, say).
fn with_trust_document(bundle: &Path, doc: &[u8], out: &Path) {
    let mut input = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut w = tar::Builder::new(std::fs::File::create(out).unwrap());
    for e in input.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        if path == Path::new("edgeyard-trust.json") {
            bytes = doc.to_vec();
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        w.append_data(&mut h, &path, bytes.as_slice()).unwrap();
    }
    w.finish().unwrap();
}

/// A central site rotates trust at an offline one: its bundle carries its keys and policies,
/// signed with a key the site trusts for trust updates only; the images in the bundle are
/// judged under the trust it brings, and neither is stored unless all of it passes.
#[test]
fn a_bundle_carries_signed_trust_that_the_site_applies_with_its_images() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (central, site) = (dir.join("central"), dir.join("site"));
    let s = Server::start_in(&central);
    let (signed, _) = signed_and_unsigned(&s, dir);
    drop(s);
    key_pair(dir, "ops");
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    for args in [
        vec!["trust", "key", "add", "release", &path("release.pub")],
        vec![
            "trust",
            "key",
            "add",
            "ops",
            &path("ops.pub"),
            "--purpose",
            "trust-updates",
        ],
        vec![
            "trust", "policy", "add", "--repos", "prod/**", "--key", "release",
        ],
    ] {
        let (ok, out) = offline(&central, &args);
        assert!(ok, "{out}");
    }
    // A trust policy cannot name a key that signs trust updates.
    let (ok, out) = offline(
        &central,
        &["trust", "policy", "add", "--repos", "x/**", "--key", "ops"],
    );
    assert!(
        !ok && out.contains("signs trust updates, not images"),
        "{out}"
    );
    let export = |images: &[&str], out: &str| {
        let mut args = vec!["export"];
        args.extend_from_slice(images);
        let o = path(out);
        let key = path("ops.key");
        args.extend_from_slice(&["-o", &o, "--sign-trust", &key]);
        let (ok, text) = offline(&central, &args);
        assert!(
            ok && text.contains("with trust keys and policies signed by SHA256:"),
            "{text}"
        );
    };
    export(&["prod/app:signed", "prod/app:unsigned"], "both.tar");
    export(&["prod/app:signed"], "signed.tar");

    // The site trusts the update key alone.
    let (ok, out) = offline(
        &site,
        &[
            "trust",
            "key",
            "add",
            "ops",
            &path("ops.pub"),
            "--purpose",
            "trust-updates",
        ],
    );
    assert!(ok, "{out}");
    // The policy the bundle brings refuses its unsigned image: nothing of it is stored,
    // neither the images nor the trust.
    let (ok, out) = offline(&site, &["import", &path("both.tar")]);
    assert!(
        !ok && out.contains("is not signed by a key trusted for prod/**"),
        "{out}"
    );
    let (_, listed) = offline(&site, &["trust", "policy", "list"]);
    assert!(listed.contains("no trust policies"), "{listed}");
    // Altered trust material is refused whole.
    let doc = {
        let mut a = tar::Archive::new(std::fs::File::open(path("signed.tar")).unwrap());
        let mut e = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap() == Path::new("edgeyard-trust.json"))
            .unwrap();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        b
    };
    let loosened = String::from_utf8(doc.clone())
        .unwrap()
        .replace("\"prod/**\"", "\"nothing/**\"");
    assert_ne!(loosened.as_bytes(), doc.as_slice());
    with_trust_document(
        &dir.join("signed.tar"),
        loosened.as_bytes(),
        &dir.join("forged.tar"),
    );
    let (ok, out) = offline(&site, &["import", &path("forged.tar")]);
    assert!(
        !ok && out.contains("not signed by a key this registry trusts for trust updates"),
        "{out}"
    );
    // The genuine one: the images and the trust arrive together.
    let (ok, out) = offline(&site, &["import", &path("signed.tar")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("trust material signed by ops applied: keys added [\"release\"]")
            && out.contains("1 trust policies added"),
        "{out}"
    );
    let (_, listed) = offline(&site, &["trust", "policy", "list"]);
    assert!(
        listed.contains(
            "prod/**: a signature by release (enforced; indexes signed whole; brought by a bundle)"
        ),
        "{listed}"
    );
    let s = Server::start_in(&site);
    let r = s.req("GET", "/v2/prod/app/manifests/signed").send();
    assert_eq!(r.header("docker-content-digest"), Some(signed.as_str()));
    drop(s);
    // A newer bundle without the policy lifts it; replaying the older one then is refused,
    // unless its trust material is left aside.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, listed) = offline(&central, &["trust", "policy", "list"]);
    let id = listed.split_whitespace().next().unwrap().to_string();
    let (ok, out) = offline(&central, &["trust", "policy", "del", &id]);
    assert!(ok, "{out}");
    export(&["prod/app:signed"], "newer.tar");
    let (ok, out) = offline(&site, &["import", &path("newer.tar")]);
    assert!(
        ok && out.contains("0 trust policies added, 1 removed"),
        "{out}"
    );
    let (ok, out) = offline(&site, &["import", &path("signed.tar")]);
    assert!(!ok && out.contains("cannot roll trust back"), "{out}");
    let (ok, out) = offline(&site, &["import", "--without-trust", &path("signed.tar")]);
    assert!(ok && !out.contains("trust material"), "{out}");
    let (_, listed) = offline(&site, &["trust", "policy", "list"]);
    assert!(listed.contains("no trust policies"), "{listed}");
}

#[test]
fn the_console_api_shows_who_signed_and_whether_the_policy_is_met() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = Server::start();
    let (signed, _) = signed_and_unsigned(&s, dir);
    put_image(&s, "dev/app", "any", 3, 1024);
    admin(&s, dir, &["trust", "key", "add", "release", "release.pub"]);
    admin(
        &s,
        dir,
        &[
            "trust", "policy", "add", "--repos", "prod/**", "--key", "release",
        ],
    );
    let fingerprint = signing::fingerprint(dir, "release");

    let tags = s
        .req("GET", "/api/v1/repositories/prod/app/tags")
        .send()
        .json();
    let trusted = |tag: &str| {
        tags.as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == tag)
            .map(|t| t["trusted"].clone())
            .unwrap()
    };
    assert_eq!(trusted("signed"), serde_json::json!(true));
    assert_eq!(trusted("unsigned"), serde_json::json!(false));
    // The signature itself is not an image to judge.
    let sig_tag = signed.replacen(':', "-", 1) + ".sig";
    assert_eq!(trusted(&sig_tag), serde_json::Value::Null);
    let d = s
        .req("GET", "/api/v1/repositories/prod/app/tags/signed")
        .send()
        .json();
    assert_eq!(d["trust"]["met"], true);
    assert_eq!(d["trust"]["signed_by"][0]["key"], "release");
    assert_eq!(
        d["trust"]["signed_by"][0]["fingerprint"],
        fingerprint.as_str()
    );
    let d = s
        .req("GET", "/api/v1/repositories/prod/app/tags/unsigned")
        .send()
        .json();
    assert_eq!(d["trust"]["met"], false);
    assert_eq!(d["trust"]["policies"][0]["why"], "it has no signature");
    assert_eq!(d["trust"]["policies"][0]["mode"], "enforce");
    // Where no policy applies, there is nothing to show.
    let d = s
        .req("GET", "/api/v1/repositories/dev/app/tags/any")
        .send()
        .json();
    assert!(d.get("trust").is_none(), "{d}");
    let tags = s
        .req("GET", "/api/v1/repositories/dev/app/tags")
        .send()
        .json();
    assert!(tags[0].get("trusted").is_none(), "{tags}");
}

/// An edge site's configuration file (`config`) and data directory, where `release.pub` is
/// installed and a policy needs its signature for `central/**`.
fn edge_site(dir: &Path, config: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (file, data) = (dir.join("edgeyard.toml"), dir.join("edge"));
    std::fs::write(&file, config).unwrap();
    let pem = dir.join("release.pub");
    for args in [
        &["trust", "key", "add", "release", pem.to_str().unwrap()][..],
        &[
            "trust",
            "policy",
            "add",
            "--repos",
            "central/**",
            "--key",
            "release",
        ],
    ] {
        let (ok, out) = offline(&data, args);
        assert!(ok, "{out}");
    }
    (file, data)
}

#[test]
fn a_mirror_neither_caches_nor_serves_an_unsigned_upstream_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let up = Server::start();
    let (signed, unsigned) = signed_and_unsigned(&up, dir);

    let (config, data) = edge_site(
        dir,
        &format!(
            "[[mirror]]\nname = \"central\"\nurl = \"http://{}\"\nprefix = \"central\"\n",
            up.addr
        ),
    );
    let edge = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let get = |reference: &str| {
        edge.req(
            "GET",
            &format!("/v2/central/prod/app/manifests/{reference}"),
        )
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
    };

    let r = get("signed");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(signed.as_str()));
    for reference in ["unsigned", unsigned.as_str()] {
        let r = get(reference);
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.error_code(), "DENIED");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(
            text.contains(&format!(
                "image central/prod/app@{unsigned} is not signed by a key trusted for central/**"
            )) && text.contains("it has no signature"),
            "{text}"
        );
    }
    // A HEAD is refused too: a client holding the manifest from an earlier pull would take
    // its 200 as leave to fetch the layers.
    let r = edge
        .req("HEAD", "/v2/central/prod/app/manifests/unsigned")
        .send();
    assert_eq!(r.status, 403);
    // The signed image was cached with its signature; nothing of the unsigned one was.
    let tags = edge
        .req("GET", "/v2/central/prod/app/tags/list")
        .send()
        .json();
    let sig_tag = signed.replacen(':', "-", 1) + ".sig";
    assert_eq!(tags["tags"], serde_json::json!([sig_tag, "signed"]));
    drop(up);
    // With the upstream gone, the cached image still verifies here, offline.
    let r = get("signed");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(get(&unsigned).status, 404);
}

/// docker pulls through the mirror: the upstream image signed by the trusted key arrives;
/// the unsigned one is refused with the message docker prints, and nothing of it is cached.
#[test]
fn docker_pulls_through_the_mirror_only_the_signed_upstream_image() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key_pair(dir, "release");
    let up = Server::start();
    let digests = docker_pushes(&docker, &up, dir, "prod/app", 4000);
    for tag in ["signed", "unsigned"] {
        docker.run(&["rmi", &format!("{}/prod/app:{tag}", up.addr)]);
    }
    let p = payload(&up, "prod/app", &digests[0]);
    attach(&up, "prod/app", &digests[0], &p, &sign(dir, "release", &p));
    let (config, data) = edge_site(
        dir,
        &format!(
            "[[mirror]]\nname = \"central\"\nurl = \"http://{}\"\nprefix = \"central\"\n",
            up.addr
        ),
    );
    let edge = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let image = |tag: &str| format!("{}/central/prod/app:{tag}", edge.addr);
    let pulled = docker.run(&["pull", &image("signed")]);
    assert!(pulled.contains(&digests[0]), "{pulled}");
    let refused = docker.fails(&["pull", &image("unsigned")]);
    assert!(
        refused.contains("is not signed by a key trusted for central/**"),
        "{refused}"
    );
    let _ = docker.cmd(&["rmi", "-f", &image("signed")]).output();
    let tags = edge
        .req("GET", "/v2/central/prod/app/tags/list")
        .send()
        .json();
    assert!(!tags["tags"].to_string().contains("\"unsigned\""), "{tags}");
}

#[test]
fn sync_stores_only_the_signed_images_of_a_protected_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let up = Server::start();
    let (signed, unsigned) = signed_and_unsigned(&up, dir);

    let (config, data) = edge_site(
        dir,
        &format!(
            "[[mirror]]\nname = \"central\"\nurl = \"http://{}\"\nprefix = \"central\"\n\n[[sync]]\nmirror = \"central\"\nrepositories = [\"prod/app\"]\ntags = [\"signed\", \"unsigned\"]\n",
            up.addr
        ),
    );
    let (ok, out) = offline(&data, &["sync", "--config", config.to_str().unwrap()]);
    assert!(!ok, "a sync that met a refused image must say so:\n{out}");
    assert!(
        out.contains(&format!(
            "image central/prod/app@{unsigned} is not signed by a key trusted for central/**"
        )),
        "{out}"
    );
    let edge = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let tags = edge
        .req("GET", "/v2/central/prod/app/tags/list")
        .send()
        .json();
    let sig_tag = signed.replacen(':', "-", 1) + ".sig";
    assert_eq!(
        tags["tags"],
        serde_json::json!([sig_tag, "signed"]),
        "{out}"
    );
}

#[test]
fn push_to_ships_signed_images_with_their_signature_and_refuses_unsigned_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = Server::start();
    let target = Server::start();
    let (signed, unsigned) = signed_and_unsigned(&s, dir);
    admin(&s, dir, &["trust", "key", "add", "release", "release.pub"]);
    admin(
        &s,
        dir,
        &[
            "trust", "policy", "add", "--repos", "prod/**", "--key", "release",
        ],
    );
    let to = format!("http://{}", target.addr);

    let out = admin(&s, dir, &["push-to", &to, "prod/app:signed"]);
    assert!(out.contains("pushed prod/app:signed"), "{out}");
    let tags = target.req("GET", "/v2/prod/app/tags/list").send().json();
    let sig_tag = signed.replacen(':', "-", 1) + ".sig";
    assert_eq!(tags["tags"], serde_json::json!([sig_tag, "signed"]));

    let url = format!("http://{}", s.addr);
    let out = Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(["push-to", &to, "prod/app:unsigned", "--server", &url])
        .env("EDGEYARD_PASSWORD", "unused")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "image prod/app@{unsigned} is not signed by a key trusted for prod/**"
        )),
        "{text}"
    );
    let r = target.req("GET", "/v2/prod/app/manifests/unsigned").send();
    assert_eq!(r.status, 404, "nothing of the unsigned image was shipped");
}

/// The sigstore-based cosign client scripts/test builds (tests/clients/cosign-rs).
fn cosign_rs() -> Option<std::path::PathBuf> {
    match std::env::var_os("EDGEYARD_COSIGN_RS").map(std::path::PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ => {
            // Fails the test, unless EDGEYARD_E2E=skip asked to skip it.
            unavailable("the sigstore-based cosign client (tests/clients/cosign-rs: scripts/test builds it and sets EDGEYARD_COSIGN_RS)");
            None
        }
    }
}

/// cosign's key-based flow done end to end by another implementation (the sigstore crate):
/// it makes the key pair as `cosign generate-key-pair` does and signs as `cosign sign --key`
/// does, pushing the signature to edgeyard itself; docker then pulls the signed image and is
/// refused the unsigned one, with the public key the sigstore crate wrote installed.
#[test]
fn docker_pulls_an_image_the_sigstore_crate_signed_with_cosigns_key_flow() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    let Some(cosign) = cosign_rs() else {
        return;
    };
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(Command::new(&cosign)
        .arg("generate-key-pair")
        .arg(dir)
        .env("COSIGN_PASSWORD", "edge-7"));
    let private = std::fs::read_to_string(dir.join("cosign.key")).unwrap();
    assert!(
        private.contains("ENCRYPTED SIGSTORE PRIVATE KEY"),
        "{private}"
    );
    let digests = docker_pushes(&docker, &s, dir, "prod/cosigned", 3000);
    let out = run(Command::new(&cosign)
        .arg("sign")
        .arg(dir.join("cosign.key"))
        .arg(format!("{}/prod/cosigned@{}", s.addr, digests[0]))
        .env("COSIGN_PASSWORD", "edge-7"));
    assert!(out.contains("signed"), "{out}");
    // The signature sits where cosign puts it: the sha256-<hex>.sig tag.
    let sig_tag = digests[0].replace("sha256:", "sha256-") + ".sig";
    let r = s
        .req("GET", &format!("/v2/prod/cosigned/manifests/{sig_tag}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    admin(&s, dir, &["trust", "key", "add", "cosign-rs", "cosign.pub"]);
    admin(
        &s,
        dir,
        &[
            "trust",
            "policy",
            "add",
            "--repos",
            "prod/**",
            "--key",
            "cosign-rs",
        ],
    );
    for tag in ["signed", "unsigned"] {
        let _ = docker
            .cmd(&["rmi", "-f", &format!("{}/prod/cosigned:{tag}", s.addr)])
            .output();
    }
    let pulled = docker.run(&["pull", &format!("{}/prod/cosigned:signed", s.addr)]);
    assert!(pulled.contains(&digests[0]), "{pulled}");
    let refused = docker.fails(&["pull", &format!("{}/prod/cosigned:unsigned", s.addr)]);
    assert!(
        refused.contains("is not signed by a key trusted for prod/**"),
        "{refused}"
    );
}

/// The Python of the virtual environment scripts/test installs tests/clients/requirements.txt
/// into (jwcrypto, cryptography).
fn venv_python() -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("EDGEYARD_CLIENTS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/clients-venv"));
    let py = venv.join("bin/python");
    if py.exists() {
        return Some(py);
    }
    // Fails the test, unless EDGEYARD_E2E=skip asked to skip it.
    unavailable(&format!(
        "jwcrypto (tests/clients/requirements.txt) is not installed in {}",
        venv.display()
    ));
    None
}

/// Signs `repo:tag` on `s` as notation does (tests/clients/notation_sign.py makes the JWS
/// envelope, with a CA `ca.crt` and a leaf for O=Factory in `dir`) and pushes the signature
/// as its referrer. The image's digest, media type and size.
fn notation_signature(
    s: &Server,
    python: &Path,
    dir: &Path,
    repo: &str,
    tag: &str,
) -> (String, String, usize) {
    // The image as stored: its digest, size and media type go into the payload.
    let m = s
        .req("GET", &format!("/v2/{repo}/manifests/{tag}"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send();
    let digest = m.header("docker-content-digest").unwrap().to_string();
    let media_type = m.header("content-type").unwrap().to_string();
    let size = m.body.len();
    run(Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/notation_sign.py"))
        .arg(dir)
        .arg(&digest)
        .arg(size.to_string())
        .arg(&media_type));
    let envelope = std::fs::read(dir.join("envelope.json")).unwrap();
    // Stored as notation stores it: a referrer whose one layer is the envelope.
    let layer = push_blob(s, repo, &envelope);
    let empty = push_blob(s, repo, b"{}");
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": layer, "size": envelope.len()}],
        "subject": {"mediaType": media_type, "digest": digest, "size": size},
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[]"},
    });
    let bytes = serde_json::to_vec(&referrer).unwrap();
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{}", sha256(&bytes)))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes)
        .send();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    (digest, media_type, size)
}

/// The mirror and `edgeyard sync` fetch an upstream image's notation signature (its
/// referrer, through the upstream's referrers API) and judge it before storing anything; the
/// admitted image is cached with it and verifies offline once the upstream is gone.
#[test]
fn the_mirror_and_sync_admit_images_by_their_notation_signatures() {
    let Some(python) = venv_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let up = Server::start();
    put_image(&up, "prod/app", "signed", 1, 2048);
    put_image(&up, "prod/app", "unsigned", 2, 2048);
    let (signed, _, _) = notation_signature(&up, &python, dir, "prod/app", "signed");
    let config = dir.join("edgeyard.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[mirror]]
name = "central"
url = "http://{}"
prefix = "central"

[[sync]]
mirror = "central"
repositories = ["prod/app"]
tags = ["signed"]

[[trust.key]]
name = "factory-ca"
file = "{}"

[[trust.policy]]
repos = "central/**"
keys = ["factory-ca"]
identities = ["x509.subject: C=DE, ST=Bavaria, O=Factory"]
"#,
            up.addr,
            dir.join("ca.crt").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let data = dir.join("edge");
    let (ok, out) = offline(&data, &["sync", "--config", config]);
    assert!(ok, "{out}");
    let edge = Server::start_with(&data, &["--config", config]);
    let get = |reference: &str| {
        edge.req(
            "GET",
            &format!("/v2/central/prod/app/manifests/{reference}"),
        )
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
    };
    let r = get("unsigned");
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("it has no signature"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // push-to ships the notation signature along with the image.
    let target = Server::start();
    let out = admin(
        &up,
        dir,
        &[
            "push-to",
            &format!("http://{}", target.addr),
            "prod/app:signed",
        ],
    );
    assert!(out.contains("pushed prod/app:signed"), "{out}");
    let shipped = target
        .req("GET", &format!("/v2/prod/app/referrers/{signed}"))
        .send()
        .json();
    assert_eq!(
        shipped["manifests"][0]["artifactType"], "application/vnd.cncf.notary.signature",
        "{shipped}"
    );
    drop(up);
    // Synced with its signature: it verifies here with the upstream gone.
    let r = get("signed");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(signed.as_str()));
    let referrers = edge
        .req("GET", &format!("/v2/central/prod/app/referrers/{signed}"))
        .send()
        .json();
    assert_eq!(
        referrers["manifests"][0]["artifactType"], "application/vnd.cncf.notary.signature",
        "{referrers}"
    );
}

#[test]
fn docker_pulls_an_image_signed_with_notation_by_a_trusted_signer() {
    let Some(docker) = Docker::from_env() else {
        return;
    };
    let Some(python) = venv_python() else {
        return;
    };
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = "prod/notary";
    docker_pushes(&docker, &s, dir, repo, 2000);
    let (digest, media_type, _) = notation_signature(&s, &python, dir, repo, "signed");

    admin(&s, dir, &["trust", "key", "add", "factory-ca", "ca.crt"]);
    let policy = |org: &str| {
        let out = admin(
            &s,
            dir,
            &[
                "trust",
                "policy",
                "add",
                "--repos",
                "prod/**",
                "--key",
                "factory-ca",
                "--identity",
                &format!("x509.subject: C=DE, ST=Bavaria, O={org}"),
            ],
        );
        out.split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches(':')
            .to_string()
    };
    let id = policy("Factory");
    let image = |tag: &str| format!("{}/{repo}:{tag}", s.addr);
    docker.run(&["rmi", &image("signed"), &image("unsigned")]);
    docker.run(&["pull", &image("signed")]);
    let err = docker.fails(&["pull", &image("unsigned")]);
    assert!(
        err.contains("is not signed by a key trusted for prod/**")
            && err.contains("it has no signature"),
        "{err}"
    );
    // The same signature, from a signer the policy does not name.
    admin(&s, dir, &["trust", "policy", "del", &id]);
    policy("Elsewhere");
    docker.run(&["rmi", &image("signed")]);
    let err = docker.fails(&["pull", &image("signed")]);
    assert!(err.contains("is not a trusted identity"), "{err}");

    // A bundle carries the notation signature (the image's referrer) along: a site whose
    // policy needs the factory's signer imports the signed image, and refuses a bundle
    // with the unsigned one.
    let bundle = |images: &[&str], out: &str| {
        let mut args = vec!["export"];
        args.extend_from_slice(images);
        args.extend_from_slice(&["-o", out]);
        admin(&s, dir, &args);
    };
    bundle(&[&format!("{repo}:signed")], "signed.tar");
    bundle(&[&format!("{repo}:unsigned")], "unsigned.tar");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    for args in [
        vec!["trust", "key", "add", "factory-ca", "ca.crt"],
        vec![
            "trust",
            "policy",
            "add",
            "--repos",
            "prod/**",
            "--key",
            "factory-ca",
            "--identity",
            "x509.subject: C=DE, ST=Bavaria, O=Factory",
        ],
    ] {
        let out = run(Command::new(env!("CARGO_BIN_EXE_edgeyard"))
            .args(&args)
            .arg("--data-dir")
            .arg(&site)
            .current_dir(dir));
        assert!(!out.is_empty());
    }
    let (ok, out) = offline(
        &site,
        &["import", dir.join("unsigned.tar").to_str().unwrap()],
    );
    assert!(!ok && out.contains("it has no signature"), "{out}");
    let (ok, out) = offline(&site, &["import", dir.join("signed.tar").to_str().unwrap()]);
    assert!(ok, "{out}");
    let edge = Server::start_in(&site);
    let r = edge
        .req("GET", &format!("/v2/{repo}/manifests/signed"))
        .header("Accept", &media_type)
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    let referrers = edge
        .req("GET", &format!("/v2/{repo}/referrers/{digest}"))
        .send()
        .json();
    assert_eq!(
        referrers["manifests"][0]["artifactType"], "application/vnd.cncf.notary.signature",
        "{referrers}"
    );
}
