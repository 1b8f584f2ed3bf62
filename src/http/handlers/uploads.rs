//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount) and
//! `GET`/`PATCH`/`PUT`/`DELETE /v2/<name>/blobs/uploads/<id>`.

use http::{Request, StatusCode};

use crate::error::{Error, ErrorCode, Result};
use crate::http::gate::Gate;
use crate::http::query::param;
use crate::http::{empty, set_header, RequestBody, Resp};
use crate::oci::{Digest, RepoName, UploadId};
use crate::registry::{ContentRange, Registry, UploadState};

/// 202/204 answer describing an open session: where to send more and what is held.
fn session_response(status: StatusCode, repo: &RepoName, st: &UploadState) -> Resp {
    let mut r = empty(status);
    set_header(
        &mut r,
        "location",
        crate::registry::upload_location(repo, &st.id),
    );
    set_header(&mut r, "range", crate::registry::range_header(st.offset));
    set_header(&mut r, "docker-upload-uuid", st.id.as_str());
    set_header(&mut r, "content-length", "0");
    r
}

/// 201 answer for a blob now present in the repository.
fn created(repo: &RepoName, digest: &Digest) -> Resp {
    let mut r = empty(StatusCode::CREATED);
    set_header(&mut r, "location", format!("/v2/{repo}/blobs/{digest}"));
    set_header(&mut r, "docker-content-digest", digest.to_string());
    set_header(&mut r, "content-length", "0");
    r
}

fn digest_param<B>(req: &Request<B>, name: &str) -> Result<Option<Digest>> {
    match param(req, name) {
        None => Ok(None),
        Some(s) => Ok(Some(s.parse::<Digest>()?)),
    }
}

fn content_range<B>(req: &Request<B>) -> Result<Option<ContentRange>> {
    match req.headers().get(http::header::CONTENT_RANGE) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(ContentRange::parse)
            .map(Some)
            .ok_or_else(|| {
                Error::api(
                    ErrorCode::BlobUploadInvalid,
                    "Content-Range must be start-end",
                )
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            }),
    }
}

pub async fn start(
    reg: &Registry,
    gate: &Gate,
    repo: &RepoName,
    req: Request<RequestBody>,
) -> Result<Resp> {
    if let Some(digest) = digest_param(&req, "mount")? {
        let from = match param(&req, "from").filter(|s| !s.is_empty()) {
            Some(f) => Some(f.parse::<RepoName>()?),
            None => None,
        };
        // A mount links bytes the caller never sent, so it must be able to read them: pull
        // on the source, or (without a source) the right to read everything. Otherwise the
        // client simply uploads, as after an unknown mount.
        let may_mount = match &from {
            Some(f) => gate.may_mount_from(repo.as_str(), f.as_str())?,
            None => gate.is_admin(),
        };
        if may_mount
            && reg
                .mount_blob(repo, &digest, from.as_ref())
                .await?
                .is_some()
        {
            return Ok(created(repo, &digest));
        }
        // Unknown blob: fall back to a fresh session, as the spec asks.
        let st = reg.start_upload(repo, &gate.client()).await?;
        return Ok(session_response(StatusCode::ACCEPTED, repo, &st));
    }
    let monolithic = digest_param(&req, "digest")?;
    let st = reg.start_upload(repo, &gate.client()).await?;
    match monolithic {
        Some(digest) => {
            reg.finish_upload(repo, &st.id, &digest, None, req.into_body())
                .await?;
            Ok(created(repo, &digest))
        }
        None => Ok(session_response(StatusCode::ACCEPTED, repo, &st)),
    }
}

pub async fn status(reg: &Registry, repo: &RepoName, id: &UploadId) -> Result<Resp> {
    let st = reg.upload_status(repo, id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, repo, &st))
}

pub async fn patch(
    reg: &Registry,
    repo: &RepoName,
    id: &UploadId,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let range = content_range(&req)?;
    let st = reg.append_upload(repo, id, range, req.into_body()).await?;
    Ok(session_response(StatusCode::ACCEPTED, repo, &st))
}

pub async fn put(
    reg: &Registry,
    repo: &RepoName,
    id: &UploadId,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let Some(digest) = digest_param(&req, "digest")? else {
        return Err(Error::api(
            ErrorCode::DigestInvalid,
            "the digest query parameter is required to complete an upload",
        ));
    };
    let range = content_range(&req)?;
    reg.finish_upload(repo, id, &digest, range, req.into_body())
        .await?;
    Ok(created(repo, &digest))
}

pub async fn cancel(reg: &Registry, repo: &RepoName, id: &UploadId) -> Result<Resp> {
    reg.cancel_upload(repo, id).await?;
    let mut r = empty(StatusCode::NO_CONTENT);
    set_header(&mut r, "content-length", "0");
    Ok(r)
}
