//! CNCF Distribution 2.8 (Debian's `docker-registry`, the reference server) on a loopback
//! port of its own, for comparing behaviour and as an upstream.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// CNCF Distribution on a free loopback port; stopped on drop.
pub struct Distribution {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Distribution {
    /// Starts it on a port that was free a moment ago. Another process can take that port
    /// in between (Distribution cannot be handed a bound socket), so a start whose server
    /// exits, or whose port answers as something else, is retried on another port.
    pub fn start() -> Distribution {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let cfg = dir.path().join("config.yml");
            std::fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry");
            if ready(&mut child, &addr) {
                return Distribution {
                    child,
                    addr,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start on any of 5 ports");
    }
}

/// Whether the child answers `/v2/` on `addr` as a registry, within 20 s; `false` at once
/// if it exits (the port was taken) or something else answers there.
fn ready(child: &mut Child, addr: &str) -> bool {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if let Ok(mut c) = std::net::TcpStream::connect(addr) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let asked = write!(
                c,
                "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            if asked.is_ok() && c.read_to_string(&mut answer).is_ok() {
                let head = answer.to_ascii_lowercase();
                return head.contains("docker-distribution-api-version: registry/2.0")
                    && matches!(child.try_wait(), Ok(None));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
