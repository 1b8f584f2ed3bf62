//! The real Docker daemon verifies edgeyard's certificate (authentication on, as by default). Docker skips verification for
//! 127.0.0.0/8, so edgeyard runs on a test host: a network namespace this test creates,
//! joined to the host by a veth pair with addresses of its own. Without the CA the push
//! fails; after `edgeyard cert trust --root` installs it where the private daemon reads
//! certs.d (see scripts/test), push and pull work with no insecure-registries setting.

mod common;

use std::process::Command;

use common::docker::*;
use common::*;

const HOST_IP: &str = "10.254.77.1";
const REGISTRY_IP: &str = "10.254.77.2";

/// A network namespace with one veth link to the host; removed on drop.
struct TestHost {
    ns: String,
    host_if: String,
}

impl TestHost {
    fn create() -> Result<TestHost, String> {
        let id = std::process::id() % 100_000;
        let t = TestHost {
            ns: format!("edgeyard-{id}"),
            host_if: format!("eyh{id}"),
        };
        let ns_if = format!("eyn{id}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), t.ns.clone()],
            vec![
                "link".into(),
                "add".into(),
                t.host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                ns_if.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                ns_if.clone(),
                "netns".into(),
                t.ns.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{HOST_IP}/30"),
                "dev".into(),
                t.host_if.clone(),
            ],
            vec!["link".into(), "set".into(), t.host_if.clone(), "up".into()],
            vec![
                "-n".into(),
                t.ns.clone(),
                "addr".into(),
                "add".into(),
                format!("{REGISTRY_IP}/30"),
                "dev".into(),
                ns_if.clone(),
            ],
            vec![
                "-n".into(),
                t.ns.clone(),
                "link".into(),
                "set".into(),
                ns_if,
                "up".into(),
            ],
            vec![
                "-n".into(),
                t.ns.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for args in steps {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(t)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

#[test]
fn docker_verifies_the_registry_certificate_and_trusts_it_after_cert_trust() {
    let Some(mut docker) = Docker::from_env() else {
        return;
    };
    let trust_root = std::env::var("EDGEYARD_TRUST_ROOT")
        .expect("EDGEYARD_TRUST_ROOT: run scripts/test, which gives the daemon its certs.d there");
    let host = match TestHost::create() {
        Ok(h) => h,
        // Skipped only when EDGEYARD_E2E=skip asks for it; otherwise a failure that says why.
        Err(e) if !unavailable(&format!("network namespaces are unavailable here: {e}")) => {
            return;
        }
        Err(e) => unreachable!("unavailable() panics unless skipping: {e}"),
    };
    let tmp = tempfile::tempdir().unwrap();
    docker.config = Some(tmp.path().join("docker-config"));
    let data = tmp.path().join("data");
    edgeyard(
        &data,
        &["user", "add", "ops", "--password-stdin", "--admin"],
        "ops-password-1\n",
    );
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &host.ns,
        env!("CARGO_BIN_EXE_edgeyard"),
        "serve",
        "--listen",
    ])
    .arg(format!("{REGISTRY_IP}:5443"))
    .arg("--data-dir")
    .arg(&data);
    let server = Server::launch(cmd, &data);
    let registry = format!("{REGISTRY_IP}:5443");
    let certs_dir = std::path::Path::new(&trust_root)
        .join("etc/docker/certs.d")
        .join(&registry);
    let _ = std::fs::remove_dir_all(&certs_dir);

    let image = format!("{registry}/secure/base:1");
    let tar = make_rootfs(tmp.path(), 77);
    docker.run(&["import", tar.to_str().unwrap(), &image]);
    let id = docker.inspect(&image, "{{.Id}}");

    // Not trusted yet: docker refuses the certificate, for login and push alike.
    let (ok, out) = docker.login(&registry, "ops", "ops-password-1");
    assert!(!ok, "login must fail without the CA");
    assert!(out.contains("x509") || out.contains("certificate"), "{out}");
    let err = docker.fails(&["push", &image]);
    assert!(err.contains("x509") || err.contains("certificate"), "{err}");

    // Trust it the documented way, pinning the fingerprint `cert show` prints.
    let show = run(Command::new(env!("CARGO_BIN_EXE_edgeyard"))
        .args(["cert", "show", "--data-dir"])
        .arg(&data));
    let fp = show
        .lines()
        .find(|l| l.contains("SHA-256"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    let trusted = run(Command::new(env!("CARGO_BIN_EXE_edgeyard")).args([
        "cert",
        "trust",
        "--registry",
        &registry,
        "--from",
        &format!("https://{registry}"),
        "--fingerprint",
        &fp,
        "--root",
        &trust_root,
    ]));
    assert!(trusted.contains("etc/docker/certs.d"), "{trusted}");
    assert!(certs_dir.join("ca.crt").exists());

    // The Docker Trusted Registry flow, verbatim: login, push, pull.
    let (ok, out) = docker.login(&registry, "ops", "ops-password-1");
    assert!(ok, "{out}");
    let out = docker.run(&["push", &image]);
    assert!(out.contains("Pushed"), "{out}");
    docker.run(&["rmi", &image]);
    docker.run(&["pull", &image]);
    assert_eq!(docker.inspect(&image, "{{.Id}}"), id);

    let _ = docker.cmd(&["rmi", "-f", &image]).output();
    let _ = std::fs::remove_dir_all(&certs_dir);
    drop(server);
}
