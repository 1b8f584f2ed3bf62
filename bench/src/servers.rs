//! Starting and measuring the two registries: edgeyard (release build) and CNCF Distribution
//! (Debian's `docker-registry`), each on its own loopback port with filesystem storage under
//! the benchmark's work directory, authentication off, logging at warnings only.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Edgeyard,
    Distribution,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Edgeyard => "edgeyard",
            Kind::Distribution => "distribution",
        }
    }
}

/// A running server; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub addr: String,
    /// Milliseconds from spawning the process to its first successful `GET /v2/`.
    pub startup_ms: f64,
}

/// How to start the servers.
pub struct Setup {
    pub edgeyard: PathBuf,
    pub distribution: PathBuf,
    pub work: PathBuf,
    /// Environment for edgeyard's process (the slow-storage workload's `LD_PRELOAD`).
    pub env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Setup {
    /// edgeyard's data directory (its TLS files live in `tls/` under it).
    pub fn edgeyard_data(&self) -> PathBuf {
        self.work.join("edgeyard-data")
    }

    /// Starts a server; `tls` for HTTPS (Distribution then uses edgeyard's server
    /// certificate, so both present the same kind of key and chain).
    pub fn start(&self, kind: Kind, tls: bool) -> Server {
        self.start_with(kind, tls, &[])
    }

    /// [`Setup::start`] with extra arguments for edgeyard's `serve`.
    pub fn start_with(&self, kind: Kind, tls: bool, extra: &[&str]) -> Server {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = match kind {
            Kind::Edgeyard => {
                let mut c = Command::new(&self.edgeyard);
                c.args([
                    "serve",
                    "--no-auth",
                    "--log",
                    "warn",
                    "--listen",
                    &addr,
                    "--data-dir",
                ])
                .arg(self.edgeyard_data());
                if !tls {
                    c.arg("--insecure-http");
                }
                c.args(extra);
                c.envs(self.env.iter().map(|(k, v)| (k, v)));
                c
            }
            Kind::Distribution => {
                let dir = self.work.join("distribution");
                std::fs::create_dir_all(&dir).expect("work directory");
                let tls_part = if tls {
                    let t = self.edgeyard_data().join("tls");
                    format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        t.join("server.crt").display(),
                        t.join("server.key").display()
                    )
                } else {
                    String::new()
                };
                let cfg = dir.join("config.yml");
                std::fs::write(
                    &cfg,
                    format!(
                        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  cache:\n    blobdescriptor: inmemory\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_part}",
                        dir.join("data").display()
                    ),
                )
                .expect("distribution config");
                let mut c = Command::new(&self.distribution);
                c.arg("serve").arg(cfg);
                c
            }
        };
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        let mut server = Server {
            child,
            addr,
            startup_ms: 0.0,
        };
        let deadline = started + Duration::from_secs(30);
        loop {
            if probe(&server.addr, tls) {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{} exited during startup: {status}", kind.name());
            }
            assert!(Instant::now() < deadline, "{} did not start", kind.name());
            std::thread::sleep(Duration::from_micros(500));
        }
        server.startup_ms = started.elapsed().as_secs_f64() * 1e3;
        server
    }
}

/// utime + stime of a `/proc/.../stat` file, seconds (the kernel counts in ticks of 1/100 s
/// on every Linux this runs on).
pub fn cpu_secs_of(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (tick(11) + tick(12)) / 100.0
}

/// The durable write speed of the disk under `dir` right now, MiB/s: `len` bytes written to
/// a new file in 1 MiB writes, then `fdatasync`, as an upload that is acknowledged only once
/// durable must do. The ceiling for any registry that fsyncs its pushes.
pub fn disk_write_mib_s(dir: &Path, len: u64) -> f64 {
    let path = dir.join("disk-probe");
    let buf = vec![0x5au8; 1 << 20];
    let started = Instant::now();
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&path)?;
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.sync_data()
    })();
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => len as f64 / (1u64 << 20) as f64 / secs,
        Err(_) => 0.0,
    }
}

/// Writes every dirty page back before a push repetition starts. Distribution answers a push
/// before its data reaches the disk; without this, the kernel writes that gigabyte back while
/// the next repetition runs, and whichever server comes next pays for the other's data.
pub fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// Whether `GET /v2/` answers 200 (over plain HTTP; with TLS, whether the port accepts).
fn probe(addr: &str, tls: bool) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    if tls {
        return true;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_kib(&self, key: &str) -> f64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    /// CPU time (user + system) the server has used so far, seconds.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// Resident memory now, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// Peak resident memory since the last [`Server::reset_peak`], MiB.
    pub fn peak_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// Resets the kernel's peak-RSS mark (`clear_refs` 5), so a workload's peak is its own.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Size of a file, bytes.
pub fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
