//! Plain HTTP sent to the HTTPS port (`curl http://box:5000/`, a client configured with
//! `http://`) gets a readable `400 Bad Request` saying that the port speaks HTTPS, as nginx
//! answers, instead of a TLS alert that curl reports as "HTTP/0.9 when not allowed" and Go
//! clients as a bare protocol error.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::linger::Lingering;

/// The most of a plain request's head read before answering (the rest is discarded by the
/// lingering close).
const HEAD_LIMIT: usize = 8 << 10;

/// What a connection's first bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// A TLS record (or too little to tell): go on with the handshake.
    Tls,
    /// An HTTP/1 request line: answer it in plain text.
    PlainHttp,
}

/// Tells a TLS ClientHello (a handshake record, byte 0x16) from an HTTP/1 request line
/// (an upper-case method and a space).
pub fn classify(first: &[u8]) -> Opening {
    let method_len = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match first.get(method_len) {
        Some(b' ') if (3..=7).contains(&method_len) => Opening::PlainHttp,
        _ => Opening::Tls,
    }
}

/// Peeks at the connection's first bytes; for plain HTTP, answers 400 and returns true (the
/// caller then drops the connection). Waits at most `within` for the first bytes.
pub async fn answered(stream: &mut Lingering, within: Duration) -> bool {
    let mut first = [0u8; 8];
    let peeked = tokio::time::timeout(within, stream.peek(&mut first)).await;
    let Ok(Ok(n)) = peeked else {
        return false;
    };
    if classify(&first[..n]) != Opening::PlainHttp {
        return false;
    }
    // Read the head (bounded) so the Host can be named, then answer and close.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let body = message(host(&head));
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(within, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    tracing::debug!("plain HTTP request on the HTTPS port: answered 400");
    true
}

/// The Host header's value, when it is a plausible host[:port] (never echoed otherwise).
fn host(head: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(head).ok()?;
    let value = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("host").then(|| value.trim())
    })?;
    let plausible = !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plausible.then_some(value)
}

fn message(host: Option<&str>) -> String {
    let url = match host {
        Some(h) => format!("https://{h}/"),
        None => "https://".to_string(),
    };
    format!(
        "This port speaks HTTPS, and the request came in plain HTTP. Use {url} instead \
         (for docker: trust the registry's CA, see `edgeyard cert trust`).\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_http_told_apart() {
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02]), Opening::Tls);
        for line in [
            "GET / HTTP/1.1",
            "HEAD /v2/",
            "POST /v2",
            "DELETE /",
            "OPTIONS *",
        ] {
            assert_eq!(classify(line.as_bytes()), Opening::PlainHttp, "{line}");
        }
        // HTTP/2 prior knowledge has "PRI * HTTP/2.0": also plain text on a TLS port.
        assert_eq!(classify(b"PRI * HT"), Opening::PlainHttp);
        for other in [
            &b""[..],
            b"G",
            b"GET",
            b"get / ",
            b"\x00\x01",
            b"TOOLONGMETHOD ",
        ] {
            assert_eq!(classify(other), Opening::Tls, "{other:?}");
        }
    }

    #[test]
    fn host_is_named_only_when_plausible() {
        let head = b"GET /v2/ HTTP/1.1\r\nHost: edge-box:5000\r\n\r\n";
        assert_eq!(host(head), Some("edge-box:5000"));
        assert!(message(host(head)).contains("https://edge-box:5000/"));
        let evil = b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n";
        assert_eq!(host(evil), None);
        assert_eq!(host(b"GET / HTTP/1.0\r\n\r\n"), None);
    }
}
