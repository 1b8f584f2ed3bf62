//! A lean HTTP/1.1 keep-alive client for the workloads (hyper), over TCP or TLS, with a
//! request body type that streams large payloads without holding them in memory.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where requests go: `host:port`, and a TLS configuration for HTTPS.
#[derive(Clone)]
pub struct Target {
    pub addr: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    pub fn http(addr: &str) -> Target {
        Target {
            addr: addr.to_string(),
            tls: None,
        }
    }

    /// HTTPS, trusting the CA certificate in `ca_pem`.
    pub fn https(addr: &str, ca_pem: &[u8]) -> Result<Target, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(der?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Target {
            addr: addr.to_string(),
            tls: Some(Arc::new(config)),
        })
    }
}

/// A request body: nothing, a buffer, or `len` bytes cut from a repeating pattern (a large
/// blob without a large allocation).
pub enum ReqBody {
    Empty,
    Full(Option<Bytes>),
    Pattern {
        pattern: Bytes,
        offset: u64,
        remaining: u64,
    },
}

/// Bytes per frame of a pattern body.
const FRAME: usize = 1 << 20;

impl Body for ReqBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Pattern {
                pattern,
                offset,
                remaining,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let at = (*offset % pattern.len() as u64) as usize;
                let n = (pattern.len() - at).min(FRAME).min(*remaining as usize);
                let piece = pattern.slice(at..at + n);
                *offset += n as u64;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Pattern { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Pattern { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

/// One keep-alive connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<ReqBody>,
    host: String,
}

impl Conn {
    pub async fn open(t: &Target) -> Result<Conn, Error> {
        let tcp = tokio::net::TcpStream::connect(&t.addr).await?;
        tcp.set_nodelay(true)?;
        let sender = match &t.tls {
            None => {
                let (s, c) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await?;
                tokio::spawn(c);
                s
            }
            Some(cfg) => {
                let host = t.addr.rsplit_once(':').map(|x| x.0).unwrap_or(&t.addr);
                let name = ServerName::try_from(host.to_string())?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await?;
                let (s, c) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                        .await?;
                tokio::spawn(c);
                s
            }
        };
        Ok(Conn {
            sender,
            host: t.addr.clone(),
        })
    }

    /// Sends a request; the caller reads (or drains) the body before the next one.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> Result<http::Response<Incoming>, Error> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let ReqBody::Pattern { remaining, .. } = &body {
            b = b.header("content-length", remaining.to_string());
        }
        if let ReqBody::Full(Some(x)) = &body {
            b = b.header("content-length", x.len().to_string());
        }
        self.sender.ready().await?;
        Ok(self.sender.send_request(b.body(body)?).await?)
    }

    /// Sends and reads the whole answer; fails unless the status is `want`.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
        want: u16,
    ) -> Result<(http::HeaderMap, Bytes), Error> {
        let resp = self.send(method, path, headers, body).await?;
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        if status != want {
            return Err(format!(
                "{method} {path}: {status} (wanted {want}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )
            .into());
        }
        Ok((parts.headers, bytes))
    }

    /// GETs and counts the body's bytes without keeping them.
    pub async fn drain(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<u64, Error> {
        let resp = self.send("GET", path, headers, ReqBody::Empty).await?;
        if resp.status() != 200 {
            return Err(format!("GET {path}: {}", resp.status()).into());
        }
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f?.into_data() {
                n += d.len() as u64;
            }
        }
        Ok(n)
    }
}

/// The path part of a Location header (registries answer absolute or relative URLs).
pub fn location_path(h: &http::HeaderMap) -> Result<String, Error> {
    let l = h
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Location header")?;
    Ok(match l.find("://") {
        Some(i) => {
            let rest = &l[i + 3..];
            rest.find('/')
                .map(|j| rest[j..].to_string())
                .unwrap_or_else(|| "/".into())
        }
        None => l.to_string(),
    })
}
