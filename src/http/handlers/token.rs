//! The token endpoint (`/token`), as the docker registry token spec describes it: `GET` with
//! HTTP Basic (or nothing, for anonymous access) and the OAuth2 `POST` form with the
//! `password` and `refresh_token` grants, so `docker login` keeps a refresh token (its
//! identity token), not the password.

use std::net::SocketAddr;

use http::{Method, Request, StatusCode};

use crate::auth::{Auth, Principal, Scope};
use crate::error::{Error, ErrorCode, Result};
use crate::http::body::{collect_limited, too_large, Collect};
use crate::http::gate::{credentials, login_error, Credentials};
use crate::http::{json, RequestBody, Resp};

/// Largest token request form: credentials and a few scopes fit many times over.
const FORM_MAX: usize = 64 << 10;

fn check_service(auth: &Auth, service: Option<&str>) -> Result<()> {
    match service {
        Some(s) if !s.is_empty() && s != auth.service() => Err(Error::api(
            ErrorCode::Unsupported,
            format!(
                "this token endpoint issues tokens for service {:?} only",
                auth.service()
            ),
        )
        .with_status(StatusCode::BAD_REQUEST)),
        _ => Ok(()),
    }
}

fn pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .take(128)
        .collect()
}

fn first<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

pub async fn handle(auth: &Auth, peer: SocketAddr, req: Request<RequestBody>) -> Result<Resp> {
    match *req.method() {
        Method::GET => get(auth, peer, &req).await,
        Method::POST => post(auth, peer, req).await,
        ref m => Err(Error::method_not_allowed(m)),
    }
}

fn respond(body: &crate::auth::TokenResponse) -> Result<Resp> {
    let bytes = serde_json::to_vec(body).map_err(|e| Error::internal("encoding a token", e))?;
    let mut r = json(StatusCode::OK, bytes);
    crate::http::set_header(&mut r, "cache-control", "no-store");
    Ok(r)
}

async fn get<B>(auth: &Auth, peer: SocketAddr, req: &Request<B>) -> Result<Resp> {
    let q = pairs(req.uri().query().unwrap_or(""));
    check_service(auth, first(&q, "service"))?;
    let principal = match credentials(req)? {
        Credentials::None => Principal::Anonymous,
        Credentials::Basic { user, password } => auth
            .login(&user, &password, peer.ip())
            .await
            .map_err(login_error)?,
        Credentials::Bearer(_) => {
            return Err(Error::api(
                ErrorCode::Unauthorized,
                "use Basic credentials or a refresh token",
            ));
        }
    };
    let scopes = Scope::parse_all(
        q.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let offline = first(&q, "offline_token") == Some("true");
    let resp = auth.issue(&principal, &scopes, offline)?;
    respond(&resp)
}

async fn post(auth: &Auth, peer: SocketAddr, req: Request<RequestBody>) -> Result<Resp> {
    let body = collect_limited(req, FORM_MAX).await.map_err(|e| match e {
        Collect::TooLarge => too_large("a token request", FORM_MAX),
        Collect::Failed(_) => Error::api(ErrorCode::Unsupported, "token request body unreadable")
            .with_status(StatusCode::BAD_REQUEST),
    })?;
    let form = pairs(std::str::from_utf8(&body).unwrap_or(""));
    check_service(auth, first(&form, "service"))?;
    let principal = match first(&form, "grant_type") {
        Some("password") => auth
            .login(
                first(&form, "username").unwrap_or(""),
                first(&form, "password").unwrap_or(""),
                peer.ip(),
            )
            .await
            .map_err(login_error)?,
        Some("refresh_token") => auth
            .redeem_refresh(first(&form, "refresh_token").unwrap_or(""))
            .map_err(login_error)?,
        other => {
            return Err(Error::api(
                ErrorCode::Unsupported,
                format!(
                    "unsupported grant_type {:?} (password or refresh_token)",
                    other.unwrap_or("")
                ),
            )
            .with_status(StatusCode::BAD_REQUEST))
        }
    };
    // OAuth2 joins scopes with spaces in one parameter; some clients repeat it instead.
    let scope_text = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let scopes = Scope::parse_all([scope_text.as_str()]);
    let offline = first(&form, "access_type") == Some("offline")
        && first(&form, "grant_type") == Some("password");
    let mut resp = auth.issue(&principal, &scopes, offline)?;
    resp.scope = Some(scope_text);
    respond(&resp)
}
