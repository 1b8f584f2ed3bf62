//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use http::{Method, Request, StatusCode};

use crate::edge::Edge;
use crate::error::Result;
use crate::http::{empty, set_header, Resp, ResponseBody};
use crate::oci::{Digest, RepoName};
use crate::registry::{BlobRange, Registry};

fn blob_headers(r: &mut Resp, digest: &Digest, len: u64) {
    set_header(r, "content-length", len.to_string());
    set_header(r, "content-type", "application/octet-stream");
    set_header(r, "docker-content-digest", digest.to_string());
    set_header(r, "etag", format!("\"{digest}\""));
    set_header(r, "accept-ranges", "bytes");
    set_header(r, "cache-control", "max-age=31536000");
}

pub async fn get<B>(
    edge: &Edge,
    repo: &RepoName,
    digest: &Digest,
    req: &Request<B>,
) -> Result<Resp> {
    let ns = super::manifests::namespace(req);
    if req.method() == Method::HEAD {
        let size = edge.pull_blob_size(repo, digest, ns.as_deref()).await?;
        let mut r = empty(StatusCode::OK);
        blob_headers(&mut r, digest, size);
        return Ok(r);
    }
    let range = req
        .headers()
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(BlobRange::parse);
    let mut read = edge.pull_blob(repo, digest, range, ns.as_deref()).await?;
    // Read within the connection's and the client's share of buffers, set by the server.
    if let Some(share) = req.extensions().get::<crate::storage::ReadShare>() {
        read.body.within(share.clone());
    }
    let (status, len) = match read.range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, b - a + 1),
        None => (StatusCode::OK, read.size),
    };
    let mut r = empty(status);
    *r.body_mut() = ResponseBody::File(read.body);
    blob_headers(&mut r, digest, len);
    if let Some((a, b)) = read.range {
        set_header(
            &mut r,
            "content-range",
            format!("bytes {a}-{b}/{}", read.size),
        );
    }
    Ok(r)
}

/// Clients may not delete from a mirror's namespace; administrators may.
pub async fn delete(
    reg: &Registry,
    gate: &crate::http::gate::Gate,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Resp> {
    if !gate.is_admin() {
        reg.check_not_mirrored(repo)?;
    }
    reg.delete_blob(repo, digest).await?;
    let mut r = empty(StatusCode::ACCEPTED);
    set_header(&mut r, "content-length", "0");
    Ok(r)
}
