//! A small VM for what a process kill cannot test: Debian's kernel under qemu's software
//! emulation (TCG: a KVM guest hung at boot on these machines), an initramfs of busybox,
//! dmsetup and the edgeyard binary under test, and a data disk (a raw image file holding
//! ext4) behind a device-mapper target that can stop writing: the power cut.
//!
//! `scripts/vm-assets` prepares the kernel and the initramfs base (and installs qemu); the
//! guest's own scripts are in `tests/vm/`. The host reaches edgeyard (port 5000) and the
//! guest's control requests (busybox httpd on port 7000: `cgi-bin/cut`, `fsck`, `log`)
//! through qemu's user networking, forwarded to loopback ports.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::soft::call;

/// What `scripts/vm-assets` prepared.
pub struct Assets {
    pub kernel: PathBuf,
    pub base: PathBuf,
    pub busybox: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/vm-assets` (installing what is missing) and reads the paths it prints.
pub fn assets() -> Assets {
    let out = Command::new(repo().join("scripts/vm-assets"))
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/vm-assets");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/vm-assets failed (it needs root to install qemu-system-x86, dmsetup and e2fsprogs, and Debian's package lists to download the kernel):\n{}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> PathBuf {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("scripts/vm-assets printed no {name}: line:\n{text}"))
            .into()
    };
    Assets {
        kernel: field("kernel"),
        base: field("base"),
        busybox: field("busybox"),
    }
}

/// Writes the initramfs: the base, then an archive with `edgeyard` (and the libraries it
/// loads, at the same paths) and the guest's scripts. The kernel unpacks both in turn.
pub fn initramfs(assets: &Assets, edgeyard: &Path, out: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let copy = |from: &Path, to: &str| {
        let dest = root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from, &dest).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    copy(edgeyard, "/bin/edgeyard");
    // Without its debug information (a debug build carries ten times its code in it): the
    // initramfs is unpacked into the guest's memory.
    let strip = Command::new("strip")
        .arg(root.join("bin/edgeyard"))
        .status()
        .expect("strip (binutils)");
    assert!(strip.success(), "strip failed");
    let ldd = Command::new("ldd").arg(edgeyard).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy(&std::fs::canonicalize(p).unwrap(), p);
        }
    }
    let guest = repo().join("tests/vm");
    copy(&guest.join("init"), "/init");
    copy(&guest.join("edgeyard.toml"), "/etc/edgeyard.toml");
    for cgi in ["cut", "fsck", "log"] {
        copy(
            &guest.join("cgi-bin").join(cgi),
            &format!("/www/cgi-bin/{cgi}"),
        );
    }
    let overlay = out.with_extension("overlay");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | '{}' cpio -o -H newc > '{}' 2>/dev/null",
            root.display(),
            assets.busybox.display(),
            overlay.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "building the initramfs overlay");
    let mut all = std::fs::read(&assets.base).unwrap();
    all.extend(std::fs::read(&overlay).unwrap());
    let _ = std::fs::remove_file(&overlay);
    std::fs::write(out, all).unwrap();
}

/// A fresh data disk: a sparse raw image of `size` bytes holding an empty ext4, fully
/// initialized now (no lazy init writing in the background of the first boot).
pub fn disk(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(path)
        .output()
        .expect("mkfs.ext4 (e2fsprogs)");
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running VM; killed (by PID) when dropped.
pub struct Vm {
    child: Child,
    /// edgeyard, as `127.0.0.1:PORT`.
    pub addr: String,
    control: String,
    console: PathBuf,
}

impl Vm {
    /// Boots the VM on `disk` and waits until edgeyard answers `GET /v2/` (at most two
    /// minutes). The serial console goes to `console`.
    pub fn boot(kernel: &Path, initrd: &Path, disk: &Path, console: &Path) -> Vm {
        for _attempt in 0..3 {
            let (port, control) = (free_port(), free_port());
            let _ = std::fs::remove_file(console);
            let child = Command::new("qemu-system-x86_64")
                .args(["-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults"])
                .args(["-display", "none", "-no-reboot"])
                .arg("-kernel")
                .arg(kernel)
                .arg("-initrd")
                .arg(initrd)
                .args(["-append", "console=ttyS0 quiet panic=-1"])
                .arg("-serial")
                .arg(format!("file:{}", console.display()))
                .arg("-drive")
                .arg(format!(
                    "file={},format=raw,if=virtio,cache=writeback",
                    disk.display()
                ))
                .arg("-netdev")
                .arg(format!(
                    "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:5000,hostfwd=tcp:127.0.0.1:{control}-:7000"
                ))
                .args(["-device", "virtio-net-pci,netdev=n0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("qemu-system-x86_64 (scripts/vm-assets installs it)");
            let mut vm = Vm {
                child,
                addr: format!("127.0.0.1:{port}"),
                control: format!("127.0.0.1:{control}"),
                console: console.to_path_buf(),
            };
            match vm.wait_ready() {
                Ok(()) => return vm,
                // A forwarded port taken between choosing and binding it: try others.
                Err(e) if e.contains("Could not set up host forwarding") => continue,
                Err(e) => panic!("the VM did not come up: {e}\n{}", vm.console_text()),
            }
        }
        panic!("the VM could not forward its ports in three attempts");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("qemu exited ({status}): {err}"));
            }
            if self.console_text().contains("edgeyard-vm: ready") {
                if let Ok((200, _, _)) = call(&self.addr, "GET", "/v2/", &[], &[]) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err("edgeyard did not answer GET /v2/ within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the guest printed on its serial console so far.
    pub fn console_text(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Runs one of the guest's control requests (`cut`, `fsck`, `log`) and returns its text.
    pub fn control(&self, what: &str) -> String {
        match call(&self.control, "GET", &format!("/cgi-bin/{what}"), &[], &[]) {
            Ok((200, _, body)) => String::from_utf8_lossy(&body).into_owned(),
            Ok((status, _, body)) => panic!(
                "control {what}: {status} {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!("control {what}: {e}\n{}", self.console_text()),
        }
    }

    /// Pulls the plug: the VM process is killed at once.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
