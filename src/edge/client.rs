//! A small HTTP/1.1 client for edgeyard's own commands: downloading the CA (`cert trust
//! --from`, unverified, checked by fingerprint afterwards) and calling a running server's
//! admin API (verified against its CA).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// How to check the server's certificate.
#[derive(Clone)]
pub enum Verify {
    /// Against these CA certificates (DER).
    Roots(Vec<Vec<u8>>),
    /// Not at all: only for downloading a CA whose fingerprint is checked afterwards.
    Unverified,
}

/// Why a request got no (complete) answer. The message says what to check.
#[derive(Debug)]
pub enum ClientError {
    /// The URL cannot be used: not http(s), no host, a bad port.
    BadUrl(String),
    /// TLS could not be set up: a CA certificate that does not parse, a host that cannot be
    /// a server name.
    Tls(String),
    /// No connection, a failed handshake, or an exchange that broke off.
    Connection(String),
    /// No complete answer in time.
    Timeout { url: String, after: Duration },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::BadUrl(m) | ClientError::Tls(m) | ClientError::Connection(m) => {
                f.write_str(m)
            }
            ClientError::Timeout { url, after } => {
                write!(f, "{url} did not answer within {after:?}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

type ClientResult<T> = Result<T, ClientError>;

/// What to do about a failed handshake, for the two causes an operator can fix: a
/// certificate from a CA not trusted here, and a registry that speaks plain HTTP.
fn handshake_advice(e: &std::io::Error) -> &'static str {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) => {
            "; its certificate is not from a CA trusted here: give that registry's CA \
             certificate (push-to --target-cacert FILE; ca_file in the configuration), \
             or use http:// if it serves plain HTTP"
        }
        Some(rustls::Error::InvalidMessage(_)) => {
            "; it does not seem to speak TLS: use http:// for a plain-HTTP registry"
        }
        _ => "",
    }
}

/// Largest response body read.
const BODY_MAX: usize = 4 << 20;

/// Accepts any server certificate; handshake signatures are still verified, so the peer
/// holds the key of the certificate it shows.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(verify: Verify) -> ClientResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    Ok(match verify {
        Verify::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        Verify::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for r in roots {
                store
                    .add(CertificateDer::from(r))
                    .map_err(|e| ClientError::Tls(format!("CA certificate: {e}")))?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    })
}

/// `(scheme is https, host, port, path-and-query)` of an http(s) URL.
fn split_url(url: &str) -> ClientResult<(bool, String, u16, String)> {
    let bad = |why: String| ClientError::BadUrl(why);
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad(format!("{url:?} is not an http(s) URL")));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad(format!("bad port in {url:?}")))?,
        ),
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad(format!("no host in {url:?}")));
    }
    Ok((tls, host.to_string(), port, path.to_string()))
}

/// An answer: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends one request with a small body and returns the status and body (30 s at most).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    verify: Verify,
) -> ClientResult<(u16, Vec<u8>)> {
    let a = send_any(
        method,
        url,
        headers,
        Full::new(bytes::Bytes::from(body)),
        verify,
        Duration::from_secs(30),
    )
    .await?;
    Ok((a.status, a.body))
}

/// An answer whose body is still on the wire: read it frame by frame (a blob, say).
pub struct Streamed {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: hyper::body::Incoming,
}

/// Sends one request with any body (a streamed blob, say), within `timeout`, and reads the
/// whole answer (at most 4 MiB).
pub async fn send_any<B>(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: B,
    verify: Verify,
    timeout: Duration,
) -> ClientResult<Answer>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let work = async {
        let s = open(method, url, headers, body, verify).await?;
        let body = Limited::new(s.body, BODY_MAX)
            .collect()
            .await
            .map_err(|e| ClientError::Connection(format!("reading the answer from {url}: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status: s.status,
            headers: s.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout {
            url: url.to_string(),
            after: timeout,
        })?
}

/// Sends one request and returns as soon as the answer's head has arrived; the caller reads
/// the body and bounds the time that takes.
pub async fn open<B>(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: B,
    verify: Verify,
) -> ClientResult<Streamed>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // One body type below this point: hyper's client is compiled once, not once per body.
    open_boxed(
        method,
        url,
        headers,
        body.map_err(Into::into).boxed_unsync(),
        verify,
    )
    .await
}

type AnyBody = http_body_util::combinators::UnsyncBoxBody<
    bytes::Bytes,
    Box<dyn std::error::Error + Send + Sync>,
>;

/// An IO stream, plain or TLS, behind one type (for the same reason).
trait Stream: hyper::rt::Read + hyper::rt::Write + Unpin + Send {}
impl<T: hyper::rt::Read + hyper::rt::Write + Unpin + Send> Stream for T {}

async fn open_boxed(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: AnyBody,
    verify: Verify,
) -> ClientResult<Streamed> {
    let (tls, host, port, path) = split_url(url)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(&path)
        .header(http::header::HOST, &authority);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(body)
        .map_err(|e| ClientError::BadUrl(e.to_string()))?;
    {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| ClientError::Connection(format!("cannot connect to {authority}: {e}")))?;
        let io: Box<dyn Stream> = if tls {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| ClientError::Tls(format!("{host:?}: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config(verify)?))
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    ClientError::Connection(format!(
                        "TLS with {authority} failed: {e}{}",
                        handshake_advice(&e)
                    ))
                })?;
            Box::new(hyper_util::rt::TokioIo::new(stream))
        } else {
            Box::new(hyper_util::rt::TokioIo::new(tcp))
        };
        let resp = send(io, req).await?;
        let (parts, body) = resp.into_parts();
        Ok(Streamed {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

async fn send(
    io: Box<dyn Stream>,
    req: http::Request<AnyBody>,
) -> ClientResult<http::Response<hyper::body::Incoming>> {
    let broke = |e: hyper::Error| ClientError::Connection(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(broke)?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(broke)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://edge:5000").unwrap(),
            (true, "edge".into(), 5000, "/".into())
        );
        assert_eq!(
            split_url("http://10.0.0.1/api/v1/users").unwrap(),
            (false, "10.0.0.1".into(), 80, "/api/v1/users".into())
        );
        assert_eq!(
            split_url("https://[::1]:5443/x").unwrap(),
            (true, "::1".into(), 5443, "/x".into())
        );
        assert!(split_url("ftp://x").is_err());
        assert!(split_url("https://:5").is_err());
    }
}
