//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use http::{Method, Request, StatusCode};

use crate::edge::Edge;
use crate::error::{Error, ErrorCode, Result};
use crate::http::body::{collect_limited, too_large, Collect};
use crate::http::{empty, set_header, RequestBody, Resp, ResponseBody};
use crate::oci::{Reference, RepoName};
use crate::registry::{Registry, MANIFEST_MAX};

/// `?ns=HOST`: containerd names the upstream a mirror request is for.
pub fn namespace<B>(req: &Request<B>) -> Option<String> {
    crate::http::query::param(req, "ns")
}

pub async fn get<B>(
    edge: &Edge,
    repo: &RepoName,
    reference: &Reference,
    req: &Request<B>,
) -> Result<Resp> {
    let m = edge
        .pull_manifest(repo, reference, namespace(req).as_deref())
        .await?;
    // Content trust is decided for HEAD as well as GET: a client that still holds the
    // manifest from an earlier pull (docker's content store does) takes a HEAD's 200 as
    // leave to fetch the layers, never asking for the manifest again.
    let local = edge.local_repo(repo, namespace(req).as_deref());
    edge.registry().check_trusted(&local, &m).await?;
    let mut r = empty(StatusCode::OK);
    set_header(&mut r, "content-type", &m.media_type);
    set_header(&mut r, "content-length", m.bytes.len().to_string());
    set_header(&mut r, "docker-content-digest", m.digest.to_string());
    set_header(&mut r, "etag", format!("\"{}\"", m.digest));
    if req.method() != Method::HEAD {
        *r.body_mut() = ResponseBody::full(m.bytes);
    }
    Ok(r)
}

/// GET, HEAD or DELETE by a reference that is neither a tag nor a digest: no manifest can
/// have it, so it is not found (the spec's answer), whatever is wrong with it.
pub fn unknown(text: &str) -> Error {
    Error::api(
        ErrorCode::ManifestUnknown,
        format!("no manifest is known by {text:?}: it is neither a tag nor a digest"),
    )
}

/// PUT by such a reference: nothing can be stored under it, and the client is told why
/// (TAG_INVALID or DIGEST_INVALID, 400).
pub fn unstorable(text: &str) -> Error {
    match text.parse::<Reference>() {
        Err(e) => e.into(),
        Ok(_) => Error::api(ErrorCode::TagInvalid, "invalid reference"),
    }
}

pub async fn put(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Refused by its Content-Length, or while streaming once over the bound: never buffered
    // whole.
    let bytes = collect_limited(req, MANIFEST_MAX)
        .await
        .map_err(|e| match e {
            Collect::TooLarge => too_large("manifest", MANIFEST_MAX),
            Collect::Failed(e) => Error::api(
                ErrorCode::ManifestInvalid,
                format!("reading the manifest failed: {e}"),
            ),
        })?;
    let out = reg
        .put_manifest(repo, reference, content_type.as_deref(), &bytes)
        .await?;
    let mut r = empty(StatusCode::CREATED);
    set_header(
        &mut r,
        "location",
        format!("/v2/{repo}/manifests/{}", out.digest),
    );
    set_header(&mut r, "docker-content-digest", out.digest.to_string());
    set_header(&mut r, "content-length", "0");
    if let Some(s) = out.subject {
        set_header(&mut r, "oci-subject", s.to_string());
    }
    Ok(r)
}

pub async fn delete(
    reg: &Registry,
    gate: &crate::http::gate::Gate,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Resp> {
    delete_as(reg, gate, repo, reference).await?;
    let mut r = empty(StatusCode::ACCEPTED);
    set_header(&mut r, "content-length", "0");
    Ok(r)
}

/// Deletes a manifest or tag for the gate's caller. Clients may not delete from a mirror's
/// namespace; administrators may (to evict from the cache).
pub(super) async fn delete_as(
    reg: &Registry,
    gate: &crate::http::gate::Gate,
    repo: &RepoName,
    reference: &Reference,
) -> Result<()> {
    if !gate.is_admin() {
        reg.check_not_mirrored(repo)?;
    }
    reg.delete_manifest(repo, reference).await
}
