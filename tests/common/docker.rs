//! The private Docker daemon `scripts/test` starts, and image fixtures for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{bytes, run};

pub struct Docker {
    pub host: String,
    /// A DOCKER_CONFIG folder of the test's own, so logins never touch the user's.
    pub config: Option<PathBuf>,
}

impl Docker {
    /// The daemon named by `EDGEYARD_DOCKER_HOST`; without it the test fails (pointing at
    /// scripts/test) unless `EDGEYARD_E2E=skip` asks to skip, which is printed.
    pub fn from_env() -> Option<Docker> {
        match std::env::var("EDGEYARD_DOCKER_HOST") {
            Ok(h) if !h.is_empty() => Some(Docker {
                host: h,
                config: None,
            }),
            _ if std::env::var("EDGEYARD_E2E").as_deref() == Ok("skip") => {
                eprintln!("SKIPPED: no EDGEYARD_DOCKER_HOST (EDGEYARD_E2E=skip)");
                None
            }
            _ => panic!(
                "EDGEYARD_DOCKER_HOST is not set: run scripts/test, which starts a private \
                 Docker daemon, or set EDGEYARD_E2E=skip"
            ),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "0")
            .args(args);
        if let Some(cfg) = &self.config {
            c.env("DOCKER_CONFIG", cfg);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> String {
        run(&mut self.cmd(args))
    }

    /// Runs a command that must fail; returns its stderr and stdout.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("docker");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !out.status.success(),
            "docker {args:?} should have failed:\n{text}"
        );
        text
    }

    /// `docker login` with the password on standard input; returns whether it succeeded and
    /// what docker printed.
    pub fn login(&self, registry: &str, user: &str, password: &str) -> (bool, String) {
        use std::io::Write as _;
        let mut child = self
            .cmd(&["login", registry, "-u", user, "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker login");
        let _ = child.stdin.take().unwrap().write_all(password.as_bytes());
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn inspect(&self, image: &str, format: &str) -> String {
        self.run(&["image", "inspect", "-f", format, image])
            .trim()
            .to_string()
    }
}

/// A tarball with a few files, as `docker import` wants a root filesystem.
pub fn make_rootfs(dir: &Path, seed: u64) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), b"NAME=edgeyard-test\n").unwrap();
    std::fs::write(root.join("payload.bin"), bytes(512 * 1024, seed)).unwrap();
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}
