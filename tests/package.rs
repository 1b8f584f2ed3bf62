//! The Debian package as an operator meets it: built by `scripts/package` from the binary
//! under test, clean under lintian, then installed, upgraded, removed and purged with dpkg in
//! a Debian root made by debootstrap and booted with systemd-nspawn, so the maintainer
//! scripts run against a real systemd: the service must start on install and answer
//! `/readyz` over verified TLS, keep the operator's configuration and the registry's data
//! across an upgrade, stop on remove while the data stays, and lose the data only on purge.
//!
//! Needs root, debootstrap, systemd-nspawn and lintian (scripts/test installs them). The
//! Debian root is made once (about a minute) and kept in target/pkgroot.

mod common;

#[path = "../examples/gen-docs.rs"]
mod gen_docs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// What runs inside the booted root, as a oneshot unit; it records `key=value` facts in
/// /pkgtest.out (asserted below, outside) and powers the container off.
const INNER: &str = r#"#!/bin/sh
exec >/pkgtest.log 2>&1
set -x
out=/pkgtest.out
rec() { printf '%s=%s\n' "$1" "$2" >>"$out"; }
ca=/var/lib/edgeyard/tls/ca.crt
ready() {
    code=none
    for _ in $(seq 90); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" https://localhost:5000/readyz) &&
            [ "$code" = 200 ] && break
        sleep 1
    done
    echo "$code"
}
token() {
    curl -sf --cacert "$ca" -u "admin:$(cat /var/lib/edgeyard/admin-password)" \
        "https://localhost:5000/token?service=edgeyard&scope=repository:site/app:push,pull" |
        sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}

dpkg -i /debs/old/edgeyard_*.deb >/install-old.txt 2>&1
rec install_old $?
rec enabled "$(systemctl is-enabled edgeyard.service)"
rec ready_old "$(ready)"
rec pid_old "$(systemctl show -p MainPID --value edgeyard.service)"
systemd-analyze verify edgeyard.service >/verify.txt 2>&1
rec verify_rc $?
rec verify_out "$(tr '\n' ' ' </verify.txt)"
rec man "$(man -w edgeyard 2>&1)"
rec man_sub "$(man -w edgeyard-user-add 2>&1)"
rec bash_completion "$(ls /usr/share/bash-completion/completions/edgeyard)"
rec said "$(grep -c 'first admin password' /install-old.txt)"

# A blob pushed before the upgrade, and the operator's edit of the configuration.
printf 'kept across upgrades\n' >/blob
digest=sha256:$(sha256sum /blob | cut -c1-64)
rec digest "$digest"
rec push "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $(token)" \
    -H 'Content-Type: application/octet-stream' --data-binary @/blob \
    "https://localhost:5000/v2/site/app/blobs/uploads/?digest=$digest")"
sed -i 's/^log = "info"/log = "debug"  # edited by the operator/' /etc/edgeyard/edgeyard.toml
ca_before=$(sha256sum "$ca" | cut -c1-64)

dpkg -i /debs/new/edgeyard_*.deb >/install-new.txt 2>&1
rec install_new $?
rec version "$(dpkg-query -W -f '${Version}' edgeyard)"
rec ready_new "$(ready)"
rec pid_new "$(systemctl show -p MainPID --value edgeyard.service)"
rec config_kept "$(grep -c 'edited by the operator' /etc/edgeyard/edgeyard.toml)"
rec ca_kept "$([ "$(sha256sum "$ca" | cut -c1-64)" = "$ca_before" ] && echo yes)"
rec pulled "sha256:$(curl -sf --cacert "$ca" -H "Authorization: Bearer $(token)" \
    "https://localhost:5000/v2/site/app/blobs/$digest" | sha256sum | cut -c1-64)"

dpkg -r edgeyard >/remove.txt 2>&1
rec remove_rc $?
rec binary_after_remove "$([ -e /usr/bin/edgeyard ] && echo present || echo gone)"
rec active_after_remove "$(systemctl is-active edgeyard.service)"
rec data_after_remove "$([ -f /var/lib/private/edgeyard/tls/ca.crt ] && echo kept || echo gone)"
rec config_after_remove "$([ -f /etc/edgeyard/edgeyard.toml ] && echo kept || echo gone)"
rec remove_said "$(grep -c 'data kept in /var/lib/edgeyard' /remove.txt)"

dpkg -P edgeyard >/purge.txt 2>&1
rec purge_rc $?
rec data_after_purge "$([ -e /var/lib/private/edgeyard ] && echo kept || echo gone)"
rec config_after_purge "$([ -e /etc/edgeyard/edgeyard.toml ] && echo kept || echo gone)"
rec purge_said "$(grep -c 'deleting the registry' /purge.txt)"
rec finished yes
systemctl poweroff
"#;

const UNIT: &str = "[Unit]
Description=edgeyard package test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/pkgtest.sh
[Install]
WantedBy=multi-user.target
";

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// What the Debian root has beyond debootstrap's minimal base: systemd as init, and what
/// a standard Debian install has that the package depends on (procps) or the test uses.
const INCLUDE: &str = "systemd,systemd-sysv,init-system-helpers,procps,curl,ca-certificates,man-db";

/// A Debian root of this machine's release, made once with debootstrap and kept in
/// target/pkgroot/base (`.complete`, holding [`INCLUDE`], marks a finished one).
fn base_root() -> PathBuf {
    let dir = Path::new(REPO).join("target/pkgroot");
    let base = dir.join("base");
    if std::fs::read_to_string(base.join(".complete")).is_ok_and(|t| t == INCLUDE) {
        return base;
    }
    let suite = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_string))
        })
        .unwrap_or_else(|| "bookworm".to_string());
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("debootstrap {suite} into {} (once)", base.display());
    run(Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={INCLUDE}"), &suite])
        .arg(&base));
    std::fs::write(base.join(".complete"), INCLUDE).unwrap();
    base
}

/// Builds a package of the binary under test (stripped, as a release build is) at `version`
/// into `out`; returns the .deb's path.
fn package(version: &str, out: &Path, docs: &Path, lint: bool) -> PathBuf {
    let bin = out.join("edgeyard");
    std::fs::create_dir_all(out).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_edgeyard"), &bin).unwrap();
    run(Command::new("strip").arg(&bin));
    let mut cmd = Command::new(Path::new(REPO).join("scripts/package"));
    cmd.arg("--bin")
        .arg(&bin)
        .args(["--arch", "amd64", "--version", version, "--out"])
        .arg(out)
        .arg("--docs")
        .arg(docs);
    if lint {
        cmd.arg("--lint");
    }
    let printed = run(&mut cmd);
    let deb = printed
        .lines()
        .find_map(|l| l.strip_prefix("deb: "))
        .unwrap_or_else(|| panic!("scripts/package named no .deb:\n{printed}"));
    std::fs::remove_file(&bin).unwrap();
    PathBuf::from(deb)
}

#[test]
fn deb_installs_upgrades_removes_and_purges_under_systemd() {
    if !is_root() && !unavailable("the package test needs root (dpkg in a booted root)") {
        return;
    }
    for tool in [
        "debootstrap",
        "systemd-nspawn",
        "lintian",
        "dpkg-deb",
        "strip",
    ] {
        if !require_tool(tool) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    let pages = gen_docs::generate(&docs).unwrap();
    assert!(pages > 40, "only {pages} man pages");

    // The previous version, and this one (checked by lintian: no errors).
    let old = package("0.0.1", &tmp.path().join("old"), &docs, false);
    let new = package(
        env!("CARGO_PKG_VERSION"),
        &tmp.path().join("new"),
        &docs,
        true,
    );
    let sums = std::fs::read_to_string(tmp.path().join("new/SHA256SUMS")).unwrap();
    let deb_bytes = std::fs::read(&new).unwrap();
    assert!(
        sums.contains(&format!("{}  edgeyard_", &sha256(&deb_bytes)[7..])),
        "SHA256SUMS does not match the .deb:\n{sums}"
    );
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&new));
    for path in [
        "./usr/bin/edgeyard",
        "./lib/systemd/system/edgeyard.service",
        "./etc/edgeyard/edgeyard.toml",
        "./usr/share/man/man1/edgeyard.1.gz",
        "./usr/share/man/man1/edgeyard-serve.1.gz",
        "./usr/share/bash-completion/completions/edgeyard",
        "./usr/share/zsh/vendor-completions/_edgeyard",
        "./usr/share/fish/vendor_completions.d/edgeyard.fish",
        "./usr/share/doc/edgeyard/copyright",
    ] {
        assert!(
            contents.contains(path),
            "{path} not in the package:\n{contents}"
        );
    }

    // A copy of the Debian root with both packages and the inner test, booted.
    let root = tmp.path().join("root");
    run(Command::new("cp").arg("-a").arg(base_root()).arg(&root));
    for (dir, deb) in [("old", &old), ("new", &new)] {
        let d = root.join("debs").join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(deb, d.join(deb.file_name().unwrap())).unwrap();
    }
    std::fs::write(root.join("pkgtest.sh"), INNER).unwrap();
    run(Command::new("chmod")
        .arg("755")
        .arg(root.join("pkgtest.sh")));
    std::fs::write(root.join("etc/systemd/system/pkgtest.service"), UNIT).unwrap();
    std::os::unix::fs::symlink(
        "/etc/systemd/system/pkgtest.service",
        root.join("etc/systemd/system/multi-user.target.wants/pkgtest.service"),
    )
    .unwrap();
    let boot = Command::new("timeout")
        .args([
            "600",
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
        ])
        .args(["--private-network", "--console=pipe", "--quiet", "-D"])
        .arg(&root)
        .output()
        .unwrap();
    let mut log = std::fs::read_to_string(root.join("pkgtest.log")).unwrap_or_default();
    for step in ["install-old", "install-new", "remove", "purge"] {
        let text = std::fs::read_to_string(root.join(format!("{step}.txt"))).unwrap_or_default();
        log.push_str(&format!("\n--- dpkg output, {step}:\n{text}"));
    }
    let facts: HashMap<String, String> = std::fs::read_to_string(root.join("pkgtest.out"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let context = format!(
        "facts: {facts:#?}\nnspawn: {:?}\n{}\ninner log (last part):\n{}",
        boot.status,
        String::from_utf8_lossy(&boot.stderr),
        &log[log.len().saturating_sub(6000)..]
    );
    let fact = |k: &str| facts.get(k).map(String::as_str).unwrap_or("(missing)");
    assert_eq!(fact("finished"), "yes", "{context}");

    // Install: enabled, started, answering over TLS verified against its own CA.
    assert_eq!(fact("install_old"), "0", "{context}");
    assert_eq!(fact("enabled"), "enabled", "{context}");
    assert_eq!(fact("ready_old"), "200", "{context}");
    assert_eq!(
        fact("said"),
        "1",
        "postinst names the admin password\n{context}"
    );
    // The unit verifies, Documentation=man:edgeyard(1) included, and the pages resolve.
    assert_eq!(fact("verify_rc"), "0", "{context}");
    assert_eq!(fact("verify_out"), "", "{context}");
    assert_eq!(
        fact("man"),
        "/usr/share/man/man1/edgeyard.1.gz",
        "{context}"
    );
    assert_eq!(
        fact("man_sub"),
        "/usr/share/man/man1/edgeyard-user-add.1.gz",
        "{context}"
    );
    assert_eq!(fact("push"), "201", "{context}");

    // Upgrade: restarted on the new version, configuration edit and data kept.
    assert_eq!(fact("install_new"), "0", "{context}");
    assert_eq!(fact("version"), env!("CARGO_PKG_VERSION"), "{context}");
    assert_eq!(fact("ready_new"), "200", "{context}");
    assert_ne!(fact("pid_new"), fact("pid_old"), "not restarted\n{context}");
    assert_ne!(fact("pid_new"), "0", "{context}");
    assert_eq!(fact("config_kept"), "1", "{context}");
    assert_eq!(fact("ca_kept"), "yes", "{context}");
    assert_eq!(fact("pulled"), fact("digest"), "{context}");

    // Remove: stopped, binary gone, data and configuration kept (and it says so).
    assert_eq!(fact("remove_rc"), "0", "{context}");
    assert_eq!(fact("binary_after_remove"), "gone", "{context}");
    assert_ne!(fact("active_after_remove"), "active", "{context}");
    assert_eq!(fact("data_after_remove"), "kept", "{context}");
    assert_eq!(fact("config_after_remove"), "kept", "{context}");
    assert_eq!(fact("remove_said"), "1", "{context}");

    // Purge: data and configuration gone, and it said what it deleted.
    assert_eq!(fact("purge_rc"), "0", "{context}");
    assert_eq!(fact("data_after_purge"), "gone", "{context}");
    assert_eq!(fact("config_after_purge"), "gone", "{context}");
    assert_eq!(fact("purge_said"), "1", "{context}");
}
