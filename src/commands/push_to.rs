//! `edgeyard push-to URL IMAGE...`: copy images from this registry's data directory to
//! another registry over the standard API, skipping blobs the target already has. Logs in
//! to the target as docker would: a Bearer token from its realm (with `EDGEYARD_PUSH_USER` /
//! `EDGEYARD_PUSH_PASSWORD` when set), or HTTP Basic.

use std::time::Duration;

use base64::Engine;

use crate::client::{send_any, Answer, Verify};
use crate::oci::{Reference, RepoName};
use crate::tls::info::pem_certs;

use super::bundle::parse_image;
use super::Failure;

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

struct Remote {
    base: String,
    roots: Vec<Vec<u8>>,
    basic: Option<String>,
    auth: Option<String>,
}

/// `key="value"` pairs of a `WWW-Authenticate` challenge.
fn challenge_params(h: &str) -> Vec<(String, String)> {
    let rest = h.split_once(' ').map(|x| x.1).unwrap_or("");
    rest.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

impl Remote {
    async fn call<B>(
        &self,
        method: &str,
        path_or_url: &str,
        mut headers: Vec<(&str, String)>,
        body: B,
    ) -> Result<Answer, Failure>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        if let Some(a) = &self.auth {
            headers.push(("authorization", a.clone()));
        }
        send_any(
            method,
            &url,
            &headers,
            body,
            Verify::Roots(self.roots.clone()),
            Duration::from_secs(3600),
        )
        .await
        .map_err(Failure::Runtime)
    }

    async fn small(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(&str, String)>,
        body: Vec<u8>,
    ) -> Result<Answer, Failure> {
        self.call(
            method,
            path,
            headers,
            http_body_util::Full::new(bytes::Bytes::from(body)),
        )
        .await
    }

    /// Gets the right to push to `repo`, as the target asks for it.
    async fn authorize(&mut self, repo: &RepoName) -> Result<(), Failure> {
        self.auth = None;
        let probe = self.small("GET", "/v2/", vec![], vec![]).await?;
        if probe.status == 200 {
            return Ok(());
        }
        let challenge = probe
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if challenge.to_ascii_lowercase().starts_with("basic") {
            self.auth = self.basic.clone();
            return Ok(());
        }
        let params = challenge_params(&challenge);
        let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        let realm = get("realm").ok_or_else(|| {
            rt(format!(
                "the target answered {} without a usable challenge",
                probe.status
            ))
        })?;
        let mut url = format!("{realm}?scope=repository:{repo}:pull,push");
        if let Some(service) = get("service") {
            url.push_str(&format!("&service={service}"));
        }
        let mut headers = vec![];
        if let Some(b) = &self.basic {
            headers.push(("authorization", b.clone()));
        }
        let answer = send_any(
            "GET",
            &url,
            &headers,
            http_body_util::Full::new(bytes::Bytes::new()),
            Verify::Roots(self.roots.clone()),
            Duration::from_secs(30),
        )
        .await
        .map_err(Failure::Runtime)?;
        if answer.status != 200 {
            return Err(rt(format!(
                "the target's token endpoint answered {}",
                answer.status
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&answer.body).map_err(rt)?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .ok_or_else(|| rt("no token in the answer"))?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(())
    }
}

pub fn run(
    url: &str,
    images: &[String],
    cacert: Option<&std::path::Path>,
    data: &crate::cli::DataArgs,
) -> Result<(), Failure> {
    let images = images
        .iter()
        .map(|s| parse_image(s))
        .collect::<Result<Vec<_>, _>>()?;
    // Roots: the given CA, else the system's bundle (for registries with public certificates).
    let ca_file = cacert
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let roots = std::fs::read(&ca_file)
        .map(|b| pem_certs(&b))
        .unwrap_or_default();
    if url.starts_with("https://") && roots.is_empty() {
        return Err(Failure::Usage(format!(
            "no CA certificates in {}: pass --cacert",
            ca_file.display()
        )));
    }
    let basic = match (
        std::env::var("EDGEYARD_PUSH_USER"),
        std::env::var("EDGEYARD_PUSH_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )),
        _ => None,
    };
    let mut remote = Remote {
        base: url.trim_end_matches('/').to_string(),
        roots,
        basic,
        auth: None,
    };
    let registry = super::open_registry(data, " (push-to reads the data directory)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(rt)?;
    runtime.block_on(async {
        for (repo, reference) in &images {
            let closure = registry.image_closure(repo, reference).map_err(rt)?;
            remote.authorize(repo).await?;
            let (mut sent, mut skipped) = (0u64, 0u64);
            for (d, size) in &closure.blobs {
                let head = remote.small("HEAD", &format!("/v2/{repo}/blobs/{d}"), vec![], vec![]).await?;
                if head.status == 200 {
                    skipped += 1;
                    continue;
                }
                let start = remote.small("POST", &format!("/v2/{repo}/blobs/uploads/"), vec![], vec![]).await?;
                if start.status != 202 {
                    return Err(rt(format!("the target refused an upload to {repo}: {} {}", start.status, String::from_utf8_lossy(&start.body))));
                }
                let location = start.headers.get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| rt("no upload location"))?;
                let location = if location.starts_with("http") { location.to_string() } else { format!("{}{location}", remote.base) };
                let sep = if location.contains('?') { '&' } else { '?' };
                let read = registry.read_blob(repo, d, None).await.map_err(rt)?;
                let put = remote
                    .call(
                        "PUT",
                        &format!("{location}{sep}digest={d}"),
                        vec![("content-type", "application/octet-stream".into()), ("content-length", size.to_string())],
                        read.body,
                    )
                    .await?;
                if put.status != 201 {
                    return Err(rt(format!("the target refused blob {d}: {} {}", put.status, String::from_utf8_lossy(&put.body))));
                }
                sent += 1;
            }
            let count = closure.manifests.len();
            for (i, m) in closure.manifests.iter().enumerate() {
                let is_top = i + 1 == count;
                let target = match (is_top, reference) {
                    (true, Reference::Tag(t)) => t.to_string(),
                    _ => m.digest.to_string(),
                };
                let put = remote
                    .small("PUT", &format!("/v2/{repo}/manifests/{target}"), vec![("content-type", m.media_type.clone())], m.bytes.to_vec())
                    .await?;
                if put.status != 201 {
                    return Err(rt(format!("the target refused manifest {}: {} {}", m.digest, put.status, String::from_utf8_lossy(&put.body))));
                }
            }
            println!("pushed {repo}:{reference}: {sent} blobs sent, {skipped} already there, {count} manifests");
        }
        Ok::<(), Failure>(())
    })?;
    registry.close().map_err(rt)?;
    Ok(())
}
