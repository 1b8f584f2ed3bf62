//! `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is
//! the digest, optionally filtered by `artifactType` (OCI Distribution 1.1).

use http::{Request, StatusCode};

use crate::error::Result;
use crate::http::query::param;
use crate::http::{json, set_header, Resp};
use crate::oci::{manifest::OCI_INDEX, Digest, RepoName};
use crate::registry::Registry;

pub fn list<B>(
    reg: &Registry,
    repo: &RepoName,
    subject: &Digest,
    req: &Request<B>,
) -> Result<Resp> {
    let artifact_type = param(req, "artifactType").filter(|s| !s.is_empty());
    let found = reg.referrers(repo, subject, artifact_type.as_deref())?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": found.manifests,
    });
    let mut r = json(StatusCode::OK, body.to_string().into_bytes());
    set_header(&mut r, "content-type", OCI_INDEX);
    if found.filtered {
        set_header(&mut r, "oci-filters-applied", "artifactType");
    }
    Ok(r)
}
