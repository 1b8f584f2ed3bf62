//! The names a generated server certificate covers: the configured external names, the
//! machine's hostname, `localhost`, and (unless turned off) every address of every interface,
//! so a client can reach the box by whatever name or address it knows.

/// The machine's hostname as the kernel knows it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "edgeyard".to_string())
}

/// Every address of every interface (loopback included), without IPv6 link-local ones, which
/// need a zone that certificates cannot express.
fn interface_addresses() -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    out.retain(|ip| match ip {
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        std::net::IpAddr::V4(_) => true,
    });
    out.sort();
    out
}

/// Configured names first (the first becomes the subject's common name), then the hostname,
/// `localhost` and the interface addresses; duplicates removed, order kept.
pub fn server_names(configured: &[String], include_interfaces: bool) -> Vec<String> {
    let mut all: Vec<String> = configured.to_vec();
    all.push(hostname());
    all.push("localhost".into());
    if include_interfaces {
        all.extend(interface_addresses().into_iter().map(|ip| ip.to_string()));
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|n| seen.insert(n.to_ascii_lowercase()));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_host_localhost_and_loopback() {
        let n = server_names(&["registry.factory.local".into(), "localhost".into()], true);
        assert_eq!(n[0], "registry.factory.local");
        assert!(n.contains(&hostname()));
        assert_eq!(n.iter().filter(|x| *x == "localhost").count(), 1);
        assert!(n.contains(&"127.0.0.1".to_string()), "{n:?}");
        let without = server_names(&[], false);
        assert!(!without.contains(&"127.0.0.1".to_string()));
    }
}
