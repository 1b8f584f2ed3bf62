//! `edgeyard push-to URL IMAGE...`: copy images from this registry's data directory to
//! another registry over the standard API, skipping blobs the target already has. Logs in
//! to the target as docker would: a Bearer token from its realm (with `EDGEYARD_PUSH_USER` /
//! `EDGEYARD_PUSH_PASSWORD` when set), or HTTP Basic.

use crate::oci::Reference;
use crate::remote::Remote;
use crate::tls::info::pem_certs;

use super::bundle::parse_image;
use super::Failure;

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
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
    let credentials = match (
        std::env::var("EDGEYARD_PUSH_USER"),
        std::env::var("EDGEYARD_PUSH_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => Some((u, p)),
        _ => None,
    };
    let remote = Remote::new(url, roots, credentials);
    let registry = super::open_registry(data, " (push-to reads the data directory)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(rt)?;
    runtime.block_on(async {
        for (repo, reference) in &images {
            let closure = registry.image_closure(repo, reference).map_err(rt)?;
            let (mut sent, mut skipped) = (0u64, 0u64);
            for (d, size) in &closure.blobs {
                let head = remote.send_small("HEAD", repo.as_str(), "pull,push", &format!("/v2/{repo}/blobs/{d}"), vec![], vec![]).await.map_err(rt)?;
                if head.status == 200 {
                    skipped += 1;
                    continue;
                }
                let start = remote.send_small("POST", repo.as_str(), "pull,push", &format!("/v2/{repo}/blobs/uploads/"), vec![], vec![]).await.map_err(rt)?;
                if start.status != 202 {
                    return Err(rt(format!("the target refused an upload to {repo}: {} {}", start.status, String::from_utf8_lossy(&start.body))));
                }
                let location = start.headers.get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| rt("no upload location"))?;
                let location = if location.starts_with("http") { location.to_string() } else { format!("{}{location}", remote.base()) };
                let sep = if location.contains('?') { '&' } else { '?' };
                let read = registry.read_blob(repo, d, None).await.map_err(rt)?;
                let put = remote
                    .send(
                        "PUT",
                        repo.as_str(),
                        "pull,push",
                        &format!("{location}{sep}digest={d}"),
                        vec![("content-type", "application/octet-stream".into()), ("content-length", size.to_string())],
                        read.body,
                    )
                    .await
                    .map_err(rt)?;
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
                    .send_small("PUT", repo.as_str(), "pull,push", &format!("/v2/{repo}/manifests/{target}"), vec![("content-type", m.media_type.clone())], m.bytes.to_vec())
                    .await
                    .map_err(rt)?;
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
