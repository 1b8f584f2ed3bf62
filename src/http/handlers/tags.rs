//! `GET /v2/<name>/tags/list`: tags in lexical order, paginated with `n` and `last`.

use http::Request;

use crate::error::Result;
use crate::http::query::param;
use crate::http::Resp;
use crate::oci::RepoName;
use crate::registry::{Registry, PAGE_MAX};

pub fn list<B>(reg: &Registry, repo: &RepoName, req: &Request<B>) -> Result<Resp> {
    let n = super::page_size(req, PAGE_MAX)?.min(PAGE_MAX);
    let last = param(req, "last");
    let (tags, more) = reg.tags(repo, last.as_deref(), n)?;
    let (tags, more) = if n == 0 {
        (Vec::new(), false)
    } else {
        (tags, more)
    };
    let body = serde_json::json!({ "name": repo.as_str(), "tags": tags });
    Ok(super::paged(
        &format!("/v2/{repo}/tags/list"),
        body,
        &tags,
        more,
        n,
    ))
}
