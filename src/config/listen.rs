//! The listen address as operators write it: `HOST:PORT`, or only the port (`5001` or
//! `:5001`) for every interface, as other servers accept it. Used by `--listen`,
//! `EDGEYARD_LISTEN` and the file's `listen`, so the three agree.

use std::net::{Ipv4Addr, SocketAddr};

use super::ConfigError;

/// `5001`, `:5001`: 0.0.0.0:5001 (every IPv4 interface, like the default `0.0.0.0:5000`);
/// otherwise an IP address and port (`127.0.0.1:5001`, `[::]:5001`).
pub fn parse_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        return port_only
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|_| format!("{text:?}: a port is a number from 0 to 65535").into());
    }
    text.parse().map_err(|_| {
        format!("{text:?}: expected PORT, :PORT or IP:PORT (e.g. 5000, 127.0.0.1:5000, [::]:5000)")
            .into()
    })
}

/// `listen = "..."` in the file, parsed as [`parse_listen`].
pub fn deserialize_opt<'de, D>(d: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| parse_listen(&t).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_alone_means_every_interface() {
        for text in ["5001", ":5001"] {
            assert_eq!(parse_listen(text).unwrap(), "0.0.0.0:5001".parse().unwrap());
        }
        assert_eq!(parse_listen("0").unwrap().port(), 0);
    }

    #[test]
    fn addresses_as_before() {
        assert_eq!(
            parse_listen("127.0.0.1:6000").unwrap(),
            "127.0.0.1:6000".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:6000").unwrap(),
            "[::1]:6000".parse().unwrap()
        );
    }

    #[test]
    fn nonsense_is_explained() {
        for text in ["", ":", "65536", "host", "localhost:5000", "1.2.3.4"] {
            let e = parse_listen(text).unwrap_err().to_string();
            assert!(e.contains("PORT") || e.contains("port"), "{text}: {e}");
        }
    }
}
