//! What the web console needs beyond the admin API, and who may call which admin endpoint.
//! The console is one more client of `/api/v1`, with the same authorization as curl or the
//! `--server` commands: it signs in (`session`), asks who it is, and then calls the API with
//! its session cookie and CSRF token.
//!
//! Most of the API is for administrators. Reading repositories and tags is for anyone signed
//! in, limited to what they may pull (as `_catalog` is); deleting a tag needs the `delete`
//! right on its repository, as `DELETE /v2/<name>/manifests/<tag>` does.

use crate::http::body::RequestBody;
use http::{Method, Request, StatusCode};

use super::ok_json;
use crate::auth::Actions;
use crate::error::{Error, ErrorCode, Result};
use crate::http::cookie::SessionRef;
use crate::http::gate::{credentials, Credentials, Gate};
use crate::http::route::AdminRoute;
use crate::http::{cookie, empty, set_header, App, Resp};
use crate::oci::{Reference, RepoName, Tag};

/// What a caller needs for an admin-API route.
pub fn authorize(gate: &Gate, route: &AdminRoute, method: &Method) -> Result<()> {
    let repo_right = |repo: &RepoName, needed: Actions| {
        gate.require_login()?;
        gate.require(repo.as_str(), needed)
    };
    match (route, method) {
        (AdminRoute::Session, _) => gate.require_login(),
        (AdminRoute::Repositories | AdminRoute::Storage | AdminRoute::Ca, &Method::GET) => {
            gate.require_login()
        }
        (
            AdminRoute::Repository(r)
            | AdminRoute::RepositoryTags(r)
            | AdminRoute::RepositoryTag(r, _),
            &Method::GET,
        ) => repo_right(r, Actions::PULL),
        (AdminRoute::RepositoryTag(r, _), &Method::DELETE) => repo_right(r, Actions::DELETE),
        _ => gate.require_admin(),
    }
}

/// The console's own operations; every other admin route is `admin`'s.
pub async fn handle(
    app: &App,
    gate: &Gate,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let method = req.method().clone();
    match (route, method) {
        (AdminRoute::Session, Method::POST) => sign_in(app, gate, &req),
        (AdminRoute::Session, Method::GET) => ok_json(StatusCode::OK, &whoami(app, gate, None)),
        (AdminRoute::Session, Method::DELETE) => Ok(sign_out(app, gate)),
        (AdminRoute::Repositories, Method::GET) => repositories(app, gate),
        (AdminRoute::RepositoryTag(repo, tag), Method::GET) => {
            ok_json(StatusCode::OK, &app.registry.tag_detail(&repo, &tag).await?)
        }
        (AdminRoute::RepositoryTag(repo, tag), Method::DELETE) => {
            delete_tag(app, gate, &repo, tag).await
        }
        (AdminRoute::Storage, Method::GET) => storage(app).await,
        (AdminRoute::Ca, Method::GET) => ca(app),
        (route, _) => super::admin::handle(app, route, req).await,
    }
}

/// Who the caller is and what the console should offer them. The CSRF token is included
/// only for a session (the page needs it for every change it makes).
fn whoami(app: &App, gate: &Gate, new: Option<&SessionRef>) -> serde_json::Value {
    let p = gate.principal();
    let session = new.or(gate.session());
    let (csrf, expires_in) = (session.map(|s| &s.csrf), session.map(|s| s.expires_in));
    serde_json::json!({
        "user": p.name(),
        "admin": gate.is_admin(),
        "robot": matches!(p, crate::auth::Principal::Robot { .. }),
        "auth": app.auth.is_some(),
        "tls": app.tls.is_some(),
        "csrf_token": csrf,
        "expires_in": expires_in,
    })
}

/// `POST /api/v1/session` with HTTP Basic credentials (checked, and throttled on failure,
/// by the gate like every login): opens a session and sets its cookie.
fn sign_in(app: &App, gate: &Gate, req: &Request<RequestBody>) -> Result<Resp> {
    let Some(auth) = &app.auth else {
        return Err(Error::api(
            ErrorCode::Unsupported,
            "authentication is off on this registry: the console needs no sign-in",
        )
        .with_status(StatusCode::NOT_FOUND));
    };
    cookie::check_same_origin(req)?;
    if !matches!(credentials(req)?, Credentials::Basic { .. }) {
        return Err(Error::api(
            ErrorCode::Unauthorized,
            "sign in with a user name and password (HTTP Basic)",
        ));
    }
    let name = gate.principal().name().to_string();
    let opened = auth
        .open_session(&name)
        .map_err(crate::http::gate::login_error)?;
    tracing::info!(user = %name, "signed in to the web console");
    let body = whoami(app, gate, Some(&opened));
    let mut r = ok_json(StatusCode::CREATED, &body)?;
    set_header(&mut r, "set-cookie", cookie::set_cookie(&opened.id));
    set_header(&mut r, "cache-control", "no-store");
    Ok(r)
}

/// `DELETE /api/v1/session`: ends the session the request came with and clears the cookie.
fn sign_out(app: &App, gate: &Gate) -> Resp {
    if let (Some(auth), Some(s)) = (&app.auth, gate.session()) {
        auth.close_session(&s.id);
        tracing::info!(user = %gate.principal().name(), "signed out of the web console");
    }
    let mut r = empty(StatusCode::NO_CONTENT);
    set_header(&mut r, "set-cookie", cookie::clear_cookie());
    r
}

/// Every repository the caller may pull, with what else they may do on it.
fn repositories(app: &App, gate: &Gate) -> Result<Resp> {
    let visible = |name: &str| gate.can(name, Actions::PULL);
    let mut out = Vec::new();
    for info in app.registry.repositories(&visible)? {
        let granted = gate.granted(&info.name);
        let actions: Vec<&str> = [
            ("pull", Actions::PULL),
            ("push", Actions::PUSH),
            ("delete", Actions::DELETE),
        ]
        .into_iter()
        .filter(|(_, a)| granted.contains(*a))
        .map(|(s, _)| s)
        .collect();
        let mut v =
            serde_json::to_value(&info).map_err(|e| Error::internal("encoding an answer", e))?;
        v["actions"] = serde_json::json!(actions);
        out.push(v);
    }
    ok_json(StatusCode::OK, &out)
}

/// Deletes one tag (not the image it points at). Refused, naming the rule, when the tag is
/// immutable; clients may not delete from a mirror's namespace, administrators may.
async fn delete_tag(app: &App, gate: &Gate, repo: &RepoName, tag: Tag) -> Result<Resp> {
    super::manifests::delete_as(&app.registry, gate, repo, &Reference::Tag(tag.clone())).await?;
    tracing::info!(repo = %repo, tag = %tag, user = %gate.principal().name(), "admin API: deleted a tag");
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Disk usage, free space, and the last garbage collection that deleted anything for real.
async fn storage(app: &App) -> Result<Resp> {
    let usage = app.registry.usage().await;
    let (free, floor) = app.registry.free_space().await?;
    let runs = app.registry.gc_runs()?;
    let last_gc = runs
        .iter()
        .rev()
        .find(|r| r["dry_run"] == serde_json::Value::Bool(false))
        .cloned()
        .map(|mut r| {
            // Up to a thousand digests: not for a summary.
            if let Some(o) = r.as_object_mut() {
                o.remove("deleted");
            }
            r
        });
    ok_json(
        StatusCode::OK,
        &serde_json::json!({
            "blob_bytes": usage.map(|u| u.bytes),
            "blobs": usage.map(|u| u.blobs),
            "free_bytes": free,
            "upload_floor_bytes": floor,
            "gc_runs": runs.len(),
            "last_gc": last_gc,
        }),
    )
}

/// The CA behind `/ca.crt`: each certificate's subject, validity and SHA-256 fingerprint
/// (two during a CA rotation), for the console's "Registry certificate" page.
fn ca(app: &App) -> Result<Resp> {
    use crate::tls::info::{pem_certs, CertInfo};
    let pem = app.tls.as_ref().and_then(crate::tls::Tls::ca_pem);
    let certificates: Vec<serde_json::Value> = pem
        .as_deref()
        .map(pem_certs)
        .unwrap_or_default()
        .iter()
        .filter_map(|der| CertInfo::from_der(der).ok())
        .map(|c| {
            serde_json::json!({
                "subject": c.subject,
                "not_before": c.not_before.unix_timestamp(),
                "not_after": c.not_after.unix_timestamp(),
                "fingerprint_sha256": c.fingerprint,
            })
        })
        .collect();
    ok_json(
        StatusCode::OK,
        &serde_json::json!({
            "available": !certificates.is_empty(),
            "download": "/ca.crt",
            "certificates": certificates,
            "served_fingerprint_sha256": app.tls.as_ref().map(|t| t.served_fingerprint()),
        }),
    )
}
