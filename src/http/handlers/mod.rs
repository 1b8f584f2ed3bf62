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

use http::Request;

use crate::error::{Error, ErrorCode, Result};

/// The `n` page-size parameter: absent -> `default`; not a number -> 400.
fn page_size<B>(req: &Request<B>, default: usize) -> Result<usize> {
    match super::query::param(req, "n") {
        None => Ok(default),
        Some(s) if s.is_empty() => Ok(default),
        Some(s) => s.parse::<usize>().map_err(|_| {
            Error::api(
                ErrorCode::SizeInvalid,
                format!("n must be a whole number, got {s:?}"),
            )
            .with_status(http::StatusCode::BAD_REQUEST)
        }),
    }
}

/// `Link: <path?last=X&n=N>; rel="next"` for a page that has more after it.
fn next_link(path: &str, last: &str, n: usize) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
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
        super::set_header(&mut r, "link", next_link(path, last, n));
    }
    r
}
