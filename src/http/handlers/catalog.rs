//! `GET /v2/_catalog`: repository names, paginated.

use http::Request;

use crate::error::Result;
use crate::http::gate::Gate;
use crate::http::query::param;
use crate::http::Resp;
use crate::registry::{Registry, PAGE_MAX};

/// Distribution's default page when `n` is absent.
const DEFAULT_PAGE: usize = 100;

/// Lists only what the caller may pull under the current rules (with a token too: see
/// [`Gate::lister`]).
pub fn list<B>(reg: &Registry, gate: &Gate, req: &Request<B>) -> Result<Resp> {
    let n = super::page_size(req, DEFAULT_PAGE)?.min(PAGE_MAX);
    let last = param(req, "last");
    let (repos, more) = if n == 0 {
        (Vec::new(), false)
    } else {
        reg.catalog(last.as_deref(), n, &gate.lister())?
    };
    let body = serde_json::json!({ "repositories": repos });
    Ok(super::paged("/v2/_catalog", body, &repos, more, n))
}
