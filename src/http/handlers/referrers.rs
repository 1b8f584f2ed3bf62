//! `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is
//! the digest, optionally filtered by `artifactType` (OCI Distribution 1.1).

use http::{Request, StatusCode};

use crate::error::Result;
use crate::http::query::param;
use crate::http::{json, set_header, Resp};
use crate::oci::{manifest::OCI_INDEX, Digest, RepoName};
use crate::registry::{Registry, PAGE_MAX};

/// Distribution's default page for lists, when `n` is absent.
const DEFAULT_PAGE: usize = 100;

/// One page of referrers, `n` at a time after the digest `last`, with a `Link` to the next
/// page that keeps the `artifactType` filter.
pub fn list<B>(
    reg: &Registry,
    repo: &RepoName,
    subject: &Digest,
    req: &Request<B>,
) -> Result<Resp> {
    let artifact_type = param(req, "artifactType").filter(|s| !s.is_empty());
    let n = super::page_size(req, DEFAULT_PAGE)?.min(PAGE_MAX);
    let last = param(req, "last");
    let found = reg.referrers(repo, subject, artifact_type.as_deref(), last.as_deref(), n)?;
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
    if let (true, Some(d)) = (found.more, found.manifests.last()) {
        let filters: Vec<(&str, &str)> = artifact_type
            .as_deref()
            .map(|t| ("artifactType", t))
            .into_iter()
            .collect();
        let path = format!("/v2/{repo}/referrers/{subject}");
        let link = super::next_link(&path, &filters, &d.digest.to_string(), n);
        set_header(&mut r, "link", link);
    }
    Ok(r)
}
