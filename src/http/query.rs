//! Query-string access: first value of a parameter, percent-decoded.

use http::Request;

pub fn param<B>(req: &Request<B>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
