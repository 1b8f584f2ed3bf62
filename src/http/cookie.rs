//! The web console's session cookie on the wire, and its defence against cross-site request
//! forgery. A cookie is a credential the browser attaches by itself, so a request that
//! changes anything with it must also prove it comes from the console's own page:
//!
//! - it echoes the session's CSRF token in `X-CSRF-Token` (a page of another site can
//!   neither read the token nor set that header without a CORS preflight we never allow);
//! - `Sec-Fetch-Site`, when the browser sends it, says `same-origin`;
//! - `Origin`, when present, names this very host.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (never sent on requests
//! started by another site) and `Secure`, also when the registry serves plain HTTP: browsers
//! then keep it only for `localhost` addresses, so a console over plain HTTP works on the
//! registry machine itself (or behind a TLS proxy) and a password never travels in clear to a
//! cookie that would. Requests with an `Authorization` header (docker, curl, scripts) do not
//! use the cookie and need none of this.

use http::{Method, Request};

use crate::auth::session::{same_secret, COOKIE};
use crate::auth::{Auth, Principal};
use crate::error::{Error, ErrorCode, Result};

/// Header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session a request was made with (its id kept only to sign it out).
pub type SessionRef = crate::auth::session::Opened;

/// Whether a request may change something (and so needs the CSRF checks).
pub fn is_state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of the session cookie, from any `Cookie` header.
pub fn cookie_value<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// `Set-Cookie` for a new session. No `Max-Age`: the browser forgets it when it closes, and
/// the server ends it after an idle hour or twelve hours anyway.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

fn refused(why: &str) -> Error {
    Error::api(ErrorCode::Denied, why.to_string())
        .with_detail(serde_json::json!({ "reason": "csrf" }))
}

/// The host the request was sent to (HTTP/2 `:authority` or HTTP/1.1 `Host`).
pub(super) fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// Refuses a request a browser says came from another site, or whose `Origin` names
/// another host. Requests without these headers (older browsers, non-browsers) pass: the
/// CSRF token is what they must have.
pub fn check_same_origin<B>(req: &Request<B>) -> Result<()> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(refused("cross-site request refused"));
        }
    }
    if let Some(origin) = header("origin") {
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        if origin_host.is_none() || origin_host != request_host(req) {
            return Err(refused("request from another origin refused"));
        }
    }
    Ok(())
}

/// The session behind the request's cookie, if it names a live one. A state-changing request
/// made with it must pass the CSRF checks, or it is refused with 403 here.
pub fn identify<B>(auth: &Auth, req: &Request<B>) -> Result<Option<(Principal, SessionRef)>> {
    let Some(id) = cookie_value(req) else {
        return Ok(None);
    };
    let Some((principal, found)) = auth.session(&id) else {
        return Ok(None);
    };
    if is_state_changing(req.method()) {
        check_same_origin(req)?;
        let token = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_secret(token, &found.csrf) {
            crate::metrics::global().auth_failure("csrf");
            return Err(refused(
                "missing or wrong CSRF token: send the session's csrf_token in the X-CSRF-Token header",
            ));
        }
    }
    Ok(Some((
        principal,
        SessionRef {
            id,
            csrf: found.csrf,
            expires_in: found.expires_in,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/api/v1/gc");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_cookie_has_every_flag() {
        let c = set_cookie("abc");
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(c.split("; ").any(|p| p == flag), "{c} lacks {flag}");
        }
        assert!(c.starts_with("edgeyard_session=abc;"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let r = req(
            "GET",
            &[
                ("cookie", "a=1; edgeyard_session_x=2"),
                ("cookie", "b=3;edgeyard_session=the-id ; c=4"),
            ],
        );
        assert_eq!(cookie_value(&r).as_deref(), Some("the-id"));
        assert_eq!(cookie_value(&req("GET", &[("cookie", "a=1")])), None);
    }

    #[test]
    fn cross_site_and_foreign_origins_are_refused() {
        let ok = |h: &[(&str, &str)]| check_same_origin(&req("POST", h)).is_ok();
        assert!(ok(&[]));
        assert!(ok(&[
            ("host", "edge:5000"),
            ("origin", "https://edge:5000")
        ]));
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(!ok(&[
            ("host", "edge:5000"),
            ("origin", "https://evil:5000")
        ]));
        assert!(!ok(&[("host", "edge:5000"), ("origin", "null")]));
        assert!(is_state_changing(&Method::DELETE) && !is_state_changing(&Method::HEAD));
    }
}
