//! One file per resource: parse what the request carries, call the registry, shape the answer.

pub mod admin;
pub mod blobs;
pub mod catalog;
pub mod console;
pub mod health;
pub mod manifests;
pub mod referrers;
pub mod tags;
pub mod token;
pub mod uploads;

use http::{Request, StatusCode};

use crate::error::{Error, ErrorCode, Result};
use crate::http::Resp;

/// A JSON answer.
fn ok_json(status: StatusCode, v: &impl serde::Serialize) -> Result<Resp> {
    let bytes = serde_json::to_vec(v).map_err(|e| Error::internal("encoding an answer", e))?;
    Ok(super::json(status, bytes))
}

/// The `n` page-size parameter: absent or empty -> `default`; digits -> their value, however
/// large (callers cap it at `PAGE_MAX`, so `n=99999999999999999999` is a full page, not an
/// error); anything else (a sign, letters) -> 400. Only the first `n` counts, as in
/// distribution.
fn page_size<B>(req: &Request<B>, default: usize) -> Result<usize> {
    match super::query::param(req, "n") {
        None => Ok(default),
        Some(s) if s.is_empty() => Ok(default),
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(s.parse().unwrap_or(usize::MAX)),
        Some(s) => Err(Error::api(
            ErrorCode::SizeInvalid,
            format!("n must be a non-negative whole number, got {s:?}"),
        )
        .with_status(http::StatusCode::BAD_REQUEST)),
    }
}

/// `Link: <path?[filters&]last=X&n=N>; rel="next"` for a page that has more after it; the
/// filters (referrers' `artifactType`) carry over to the next page.
fn next_link(path: &str, filters: &[(&str, &str)], last: &str, n: usize) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in filters {
        q.append_pair(k, v);
    }
    let q = q
        .append_pair("last", last)
        .append_pair("n", &n.to_string())
        .finish();
    format!("<{path}?{q}>; rel=\"next\"")
}

/// One page of a list, shaped like distribution's `tags/list` and `_catalog` answers.
fn paged(
    path: &str,
    body: serde_json::Value,
    items: &[String],
    more: bool,
    n: usize,
) -> super::Resp {
    let mut r = super::json(http::StatusCode::OK, body.to_string().into_bytes());
    if let (true, Some(last)) = (more, items.last()) {
        super::set_header(&mut r, "link", next_link(path, &[], last, n));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(query: &str) -> std::result::Result<usize, ErrorCode> {
        let req = Request::get(format!("/v2/a/b/tags/list?{query}"))
            .body(())
            .unwrap();
        page_size(&req, 7).map_err(|e| e.error_code())
    }

    /// Regression: an `n` too large for a number was refused as "not a whole number"
    /// instead of answering a full page.
    #[test]
    fn page_size_of_any_length_is_a_full_page_and_signs_are_refused() {
        assert_eq!(n(""), Ok(7));
        assert_eq!(n("n="), Ok(7));
        assert_eq!(n("n=0"), Ok(0));
        assert_eq!(n("n=25&n=3"), Ok(25));
        assert_eq!(n("n=99999999999999999999"), Ok(usize::MAX));
        for bad in ["n=-1", "n=abc", "n=1e3", "n=+5", "n=%205", "n=0x10"] {
            assert_eq!(n(bad), Err(ErrorCode::SizeInvalid), "{bad}");
        }
    }
}
