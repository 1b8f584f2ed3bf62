//! Another registry, spoken to as docker would: the distribution API over HTTP(S), logging in
//! the way the registry asks (a Bearer token from its realm, or HTTP Basic), following blob
//! redirects to storage backends. Used by the pull-through mirror, `sync` and `push-to`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Empty, Full, Limited};

use crate::edge::client::{open, Streamed, Verify};
use crate::oci::Digest;

/// Every manifest type a pull accepts, as docker and containerd send it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest fetched (as accepted on push).
const MANIFEST_MAX: usize = 4 << 20;

/// Time allowed to connect and get an answer's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The same for a `HEAD` (revalidating a cached tag): short, because a client waits on it
/// and the cached copy is there to serve when the upstream is slow or gone.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to the remote registry did not give what was asked.
#[derive(Debug)]
pub enum RemoteError {
    /// Not reachable, timed out, or answered with a server error: try again later, and serve
    /// what is cached meanwhile.
    Unavailable(String),
    /// It answered, and refused (401/403 after logging in, 4xx other than 404).
    Refused(u16, String),
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Unavailable(m) => write!(f, "unavailable: {m}"),
            RemoteError::Refused(s, m) => write!(f, "refused ({s}): {m}"),
        }
    }
}

pub type RemoteResult<T> = Result<T, RemoteError>;

/// How the remote wants callers to log in, learnt from `GET /v2/`.
#[derive(Clone, Debug)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A manifest as fetched: exact bytes, media type, and the digest of the bytes.
pub struct RemoteManifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: bytes::Bytes,
}

pub struct Remote {
    base: String,
    verify: Verify,
    /// `Basic <base64>` of the configured credentials.
    basic: Option<String>,
    challenge: Mutex<Option<Challenge>>,
    /// Authorization header values by scope, with when they stop being usable.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// `key="value"` pairs of a `WWW-Authenticate` challenge.
pub fn challenge_params(h: &str) -> Vec<(String, String)> {
    let rest = h.split_once(' ').map(|x| x.1).unwrap_or("");
    let mut out = Vec::new();
    // Values are quoted and may hold commas (scope="repository:a:pull,push").
    let mut rest = rest.trim();
    while let Some((k, after)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (&q[..i], &q[i + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        out.push((k, v.to_string()));
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

fn unavailable(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Unavailable(e.to_string())
}

/// Classifies a status that is not the success the caller wanted.
fn failed(status: u16, what: &str) -> RemoteError {
    if status >= 500 || status == 429 {
        RemoteError::Unavailable(format!("{what}: the upstream answered {status}"))
    } else {
        RemoteError::Refused(status, format!("{what}: the upstream answered {status}"))
    }
}

impl Remote {
    /// `base` is `https://host[:port]`; `roots` the CA certificates (DER) to trust.
    pub fn new(base: &str, roots: Vec<Vec<u8>>, credentials: Option<(String, String)>) -> Remote {
        Remote {
            base: base.trim_end_matches('/').to_string(),
            verify: Verify::Roots(roots),
            basic: credentials.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host[:port]` of the remote, as containerd names it in `?ns=`.
    pub fn authority(&self) -> &str {
        let rest = self
            .base
            .split_once("://")
            .map(|x| x.1)
            .unwrap_or(&self.base);
        rest.split('/').next().unwrap_or(rest)
    }

    async fn raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> RemoteResult<Streamed> {
        let limit = if method == "HEAD" {
            PROBE_TIMEOUT
        } else {
            HEAD_TIMEOUT
        };
        tokio::time::timeout(
            limit,
            open(method, url, headers, Empty::new(), self.verify.clone()),
        )
        .await
        .map_err(|_| unavailable(format!("{url} did not answer within {limit:?}")))?
        .map_err(unavailable)
    }

    async fn challenge(&self) -> RemoteResult<Challenge> {
        if let Some(c) = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let probe = self.raw("GET", &format!("{}/v2/", self.base), &[]).await?;
        let header = probe
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let c = match probe.status {
            200 => Challenge::None,
            401 if header.to_ascii_lowercase().starts_with("basic") => Challenge::Basic,
            401 if header.to_ascii_lowercase().starts_with("bearer") => {
                let params = challenge_params(&header);
                let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
                Challenge::Bearer {
                    realm: get("realm").ok_or_else(|| {
                        RemoteError::Refused(401, "a Bearer challenge without a realm".into())
                    })?,
                    service: get("service"),
                }
            }
            s => return Err(failed(s, "GET /v2/")),
        };
        *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// The Authorization header for `scope` (`repository:NAME:pull`), fetching a token when
    /// the remote uses token authentication.
    async fn authorization(&self, scope: &str) -> RemoteResult<Option<String>> {
        if let Some((v, until)) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
        {
            if Instant::now() < *until {
                return Ok(Some(v.clone()));
            }
        }
        let (realm, service) = match self.challenge().await? {
            Challenge::None => return Ok(None),
            Challenge::Basic => return Ok(self.basic.clone()),
            Challenge::Bearer { realm, service } => (realm, service),
        };
        let mut url = realm.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&{
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("scope", scope);
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            q.finish()
        });
        let headers: Vec<(&str, String)> = self
            .basic
            .iter()
            .map(|b| ("authorization", b.clone()))
            .collect();
        let answer = self.raw("GET", &url, &headers).await?;
        if answer.status != 200 {
            return Err(failed(answer.status, "the upstream's token endpoint"));
        }
        let body = read_small(answer.body, 1 << 20).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RemoteError::Refused(200, format!("token answer: {e}")))?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .ok_or_else(|| RemoteError::Refused(200, "no token in the token answer".into()))?;
        let lifetime = v["expires_in"].as_u64().unwrap_or(60).max(10);
        let value = format!("Bearer {token}");
        // Renew a little before the remote would refuse it.
        let until = Instant::now() + Duration::from_secs(lifetime - lifetime / 10);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string(), (value.clone(), until));
        Ok(Some(value))
    }

    /// A `GET` or `HEAD` on `path` (under `/v2/`) of repository `repo`, logged in for pull,
    /// following redirects (without the credentials when the host changes).
    pub async fn fetch(
        &self,
        method: &str,
        repo: &str,
        path: &str,
        accept: Option<&str>,
    ) -> RemoteResult<Streamed> {
        let scope = format!("repository:{repo}:pull");
        let mut retried = false;
        loop {
            let auth = self.authorization(&scope).await?;
            let mut url = format!("{}{path}", self.base);
            let mut headers: Vec<(&str, String)> = Vec::new();
            if let Some(a) = accept {
                headers.push(("accept", a.to_string()));
            }
            if let Some(a) = &auth {
                headers.push(("authorization", a.clone()));
            }
            let mut hops = 0;
            let answer = loop {
                let a = self.raw(method, &url, &headers).await?;
                if !matches!(a.status, 301 | 302 | 303 | 307 | 308) || hops == 5 {
                    break a;
                }
                let Some(next) = a.headers.get("location").and_then(|v| v.to_str().ok()) else {
                    break a;
                };
                let next = if next.starts_with('/') {
                    format!("{}{next}", origin(&url))
                } else {
                    next.to_string()
                };
                if origin(&next) != origin(&url) {
                    headers.retain(|(k, _)| *k != "authorization");
                }
                url = next;
                hops += 1;
            };
            if answer.status == 401 && !retried {
                // A token that expired early, or a changed challenge: log in again, once.
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&scope);
                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = None;
                retried = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// A manifest by tag or digest; `None` when the remote does not have it. With `head`, only
    /// its digest is asked (the bytes are empty).
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        head: bool,
    ) -> RemoteResult<Option<RemoteManifest>> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let a = self
            .fetch(
                if head { "HEAD" } else { "GET" },
                repo,
                &path,
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        if a.status == 404 {
            return Ok(None);
        }
        if a.status != 200 {
            return Err(failed(a.status, &format!("manifest {repo}:{reference}")));
        }
        let header = |k: &str| {
            a.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let media_type = header("content-type").unwrap_or_default();
        let declared = header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        if head {
            return match declared {
                Some(digest) => Ok(Some(RemoteManifest {
                    media_type,
                    digest,
                    bytes: bytes::Bytes::new(),
                })),
                // No digest header: the caller has to GET.
                None => Err(RemoteError::Refused(200, "no Docker-Content-Digest".into())),
            };
        }
        let bytes = read_small(a.body, MANIFEST_MAX).await?;
        let digest = Digest::sha256_of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>() {
            if expected != digest {
                return Err(RemoteError::Refused(
                    200,
                    format!(
                        "the upstream sent manifest bytes with digest {digest}, not {expected}"
                    ),
                ));
            }
        }
        Ok(Some(RemoteManifest {
            media_type,
            digest,
            bytes,
        }))
    }

    /// Opens a blob for streaming: its size (when announced) and body; `None` when absent.
    pub async fn blob(
        &self,
        repo: &str,
        digest: &Digest,
        head: bool,
    ) -> RemoteResult<Option<(Option<u64>, hyper::body::Incoming)>> {
        let a = self
            .fetch(
                if head { "HEAD" } else { "GET" },
                repo,
                &format!("/v2/{repo}/blobs/{digest}"),
                None,
            )
            .await?;
        match a.status {
            200 => {
                let len = a
                    .headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                Ok(Some((len, a.body)))
            }
            404 => Ok(None),
            s => Err(failed(s, &format!("blob {digest}"))),
        }
    }

    /// The digests of the manifests whose subject is `digest` and whose artifact type is
    /// `artifact_type` (the OCI 1.1 referrers API). An upstream without that API (a 404,
    /// as CNCF Distribution 2.8 answers) has none.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
        artifact_type: &str,
    ) -> RemoteResult<Vec<Digest>> {
        let path = format!("/v2/{repo}/referrers/{digest}?artifactType={artifact_type}");
        let a = self
            .fetch(
                "GET",
                repo,
                &path,
                Some("application/vnd.oci.image.index.v1+json"),
            )
            .await?;
        match a.status {
            200 => {}
            404 => return Ok(Vec::new()),
            s => return Err(failed(s, &format!("referrers of {digest}"))),
        }
        let bytes = read_small(a.body, MANIFEST_MAX).await?;
        let index: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| RemoteError::Refused(200, format!("referrers of {digest}: {e}")))?;
        // Filtered here too: the filter is optional for a registry to apply.
        Ok(index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["artifactType"].as_str() == Some(artifact_type))
            .filter_map(|m| m["digest"].as_str()?.parse().ok())
            .collect())
    }

    /// Every tag of `repo`, following pagination.
    pub async fn tags(&self, repo: &str) -> RemoteResult<Vec<String>> {
        let mut out = Vec::new();
        let mut path = format!("/v2/{repo}/tags/list?n=1000");
        for _ in 0..1000 {
            let a = self.fetch("GET", repo, &path, None).await?;
            if a.status == 404 {
                return Err(RemoteError::Refused(
                    404,
                    format!("the upstream has no repository {repo}"),
                ));
            }
            if a.status != 200 {
                return Err(failed(a.status, &format!("tags of {repo}")));
            }
            let link = a
                .headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_small(a.body, 16 << 20).await?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| RemoteError::Refused(200, format!("tag list: {e}")))?;
            out.extend(
                v["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string)),
            );
            // Link: </v2/name/tags/list?n=1000&last=x>; rel="next"
            match link.and_then(|l| {
                l.split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(u, _)| u.to_string())
            }) {
                Some(next) if next.starts_with("/v2/") => path = next,
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Any call with a body, logged in for `actions` (`pull,push`) on `repo`; for `push-to`.
    pub async fn send<B>(
        &self,
        method: &str,
        repo: &str,
        actions: &str,
        path_or_url: &str,
        mut headers: Vec<(&str, String)>,
        body: B,
    ) -> RemoteResult<crate::edge::client::Answer>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        if let Some(a) = self
            .authorization(&format!("repository:{repo}:{actions}"))
            .await?
        {
            headers.push(("authorization", a));
        }
        let s = tokio::time::timeout(
            Duration::from_secs(3600),
            open(method, &url, &headers, body, self.verify.clone()),
        )
        .await
        .map_err(|_| unavailable(format!("{url} did not answer within an hour")))?
        .map_err(unavailable)?;
        let body = read_small(s.body, 4 << 20).await?;
        Ok(crate::edge::client::Answer {
            status: s.status,
            headers: s.headers,
            body: body.to_vec(),
        })
    }

    /// A small call without body; see [`Remote::send`].
    pub async fn send_small(
        &self,
        method: &str,
        repo: &str,
        actions: &str,
        path: &str,
        headers: Vec<(&str, String)>,
        body: Vec<u8>,
    ) -> RemoteResult<crate::edge::client::Answer> {
        self.send(
            method,
            repo,
            actions,
            path,
            headers,
            Full::new(bytes::Bytes::from(body)),
        )
        .await
    }
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> &str {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[start..].find('/') {
        Some(i) => &url[..start + i],
        None => url,
    }
}

/// Reads a body of at most `max` bytes within the head timeout.
async fn read_small(body: hyper::body::Incoming, max: usize) -> RemoteResult<bytes::Bytes> {
    let collect = Limited::new(body, max).collect();
    match tokio::time::timeout(HEAD_TIMEOUT, collect).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => Err(unavailable(format!("reading an answer: {e}"))),
        Err(_) => Err(unavailable("reading an answer timed out")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let p = challenge_params(r#"Basic realm="x""#);
        assert_eq!(p, vec![("realm".into(), "x".into())]);
        assert!(challenge_params("Bearer").is_empty());
    }

    #[test]
    fn origins_and_authorities() {
        assert_eq!(origin("https://a:5/v2/x?y"), "https://a:5");
        assert_eq!(origin("http://a"), "http://a");
        let r = Remote::new("https://up.example:5000/", vec![], None);
        assert_eq!(r.authority(), "up.example:5000");
        assert_eq!(r.base(), "https://up.example:5000");
    }
}
