//! HTTP: route parsing, one handler file per resource, the single `Error` -> response mapping,
//! and the per-request entry point that logs one line per request. Nothing here touches the
//! disk or the metadata store; that is the registry's job.

pub mod body;
pub mod cookie;
pub mod gate;
mod handlers;
#[doc(hidden)] // for the fuzz targets (fuzz/)
pub mod query;
pub mod route;
pub mod static_files;

use std::net::SocketAddr;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use body::{RequestBody, ResponseBody};

use crate::auth::{Actions, Auth};
use crate::error::Error;
use crate::registry::Registry;
use crate::tls::Tls;
use gate::Gate;
use route::Route;

/// What a request can reach: the registry, the TLS state (for `/ca.crt`) and the
/// authentication state (`None` with `--no-auth`).
#[derive(Clone)]
pub struct App {
    pub registry: Registry,
    /// Mirrors, sync, replication and bundles: the registry's traffic with other sites.
    pub edge: crate::edge::Edge,
    /// Users, robots and access rules, as the admin API changes them.
    pub accounts: crate::auth::Accounts,
    pub tls: Option<Tls>,
    pub auth: Option<Auth>,
    /// A request body that sends nothing for this long is abandoned.
    pub body_read_timeout: std::time::Duration,
}

pub type Resp = Response<ResponseBody>;

/// Header every /v2/ response carries so clients know they talk to a v2 registry.
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// Handles one request; never fails (errors become their JSON responses).
pub async fn serve(
    app: App,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let started = Instant::now();
    // Only a request with a body can leave some of it unread, or have bytes received to log
    // (a GET of a manifest or blob has none, and pays nothing for either).
    let tail = (!http_body::Body::is_end_stream(req.body())).then(body::BodyTail::default);
    let req = req.map(|b| {
        let b = RequestBody::new(b, app.body_read_timeout);
        match &tail {
            Some(t) => b.with_tail(t.clone()),
            None => b,
        }
    });
    let version = req.version();
    let method = req.method().clone();
    let request_id = request_id(&req);
    let path = req.uri().path().to_string();
    let route = route::parse(&path);
    let (kind, repo) = match &route {
        Ok(r) => (r.kind(), r.repo().map(|r| r.to_string())),
        Err(_) => ("none", None),
    };
    // Who made the request, once known (a logged-in user or robot), for the request log.
    let mut user: Option<String> = None;
    let who = &mut user;
    // The request is handled in a block that owns it, so that whatever is left of its body
    // is dropped (into `tail`) before the rest is settled below.
    let result = async move {
        match route {
            Ok(Route::CaCert) => ca_cert(&app),
            Ok(Route::Console(file)) => static_files::asset(&file, &req),
            Ok(Route::Health) => Ok(json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())),
            Ok(Route::Ready) => handlers::health::ready(&app).await,
            Ok(Route::Metrics) => match &app.auth {
                Some(auth) if auth.metrics_login() => {
                    let gate = Gate::identify(auth, &req, peer, app.tls.is_some()).await?;
                    *who = gate.user().map(str::to_string);
                    gate.require_login()?;
                    handlers::health::metrics(&app).await
                }
                _ => handlers::health::metrics(&app).await,
            },
            Ok(Route::Token) => match &app.auth {
                Some(auth) => handlers::token::handle(auth, peer, req).await,
                None => Err(Error::api(
                    crate::error::ErrorCode::Unsupported,
                    "authentication is off on this registry: no tokens needed",
                )
                .with_status(StatusCode::NOT_FOUND)),
            },
            Ok(route) => {
                let gate = match &app.auth {
                    None => Ok(Gate::open(peer)),
                    Some(auth) => Gate::identify(auth, &req, peer, app.tls.is_some()).await,
                };
                if let Ok(g) = &gate {
                    *who = g.user().map(str::to_string);
                }
                match gate.and_then(|g| authorize(&g, &route, &req).map(|()| g)) {
                    Ok(gate) => match route {
                        Route::Api(r) => handlers::console::handle(&app, &gate, r, req).await,
                        route => dispatch(&app.edge, &gate, route, req).await,
                    },
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
    .await;
    let mut resp = result.unwrap_or_else(error_response);
    let settled = match &tail {
        Some(t) => t.settle().await,
        None => true,
    };
    if !settled && version <= http::Version::HTTP_11 {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if method == Method::HEAD {
        without_body(&mut resp);
    }
    resp.headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let took = started.elapsed();
    let bytes_out = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
    crate::metrics::global().request(
        kind,
        crate::metrics::method_label(&method),
        status,
        took,
        bytes_out,
    );
    tracing::info!(
        %method,
        route = kind,
        repo = repo.as_deref().unwrap_or("-"),
        user = user.as_deref().unwrap_or("-"),
        status,
        bytes = bytes_out,
        bytes_in = tail.as_ref().map_or(0, body::BodyTail::received),
        ms = format_args!("{:.1}", took.as_secs_f64() * 1000.0),
        id = %request_id,
        "request"
    );
    Ok(resp)
}

/// A HEAD answer carries no body, whatever made it (an error's JSON included): hyper drops
/// it on HTTP/1.1 but sends it on HTTP/2, where Go's client resets the stream ("received
/// DATA on a HEAD request") and curl reports the stream as not closed cleanly. The length
/// stays what a GET would send.
fn without_body(resp: &mut Resp) {
    let body = std::mem::replace(resp.body_mut(), ResponseBody::Empty);
    if let Some(n) = http_body::Body::size_hint(&body).exact() {
        if !resp.headers().contains_key(http::header::CONTENT_LENGTH) {
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
}

/// The client's `X-Request-Id` when it is a sane token, else a fresh one: a per-process
/// random prefix and a counter, so ids are unique without a syscall per request.
fn request_id<B>(req: &Request<B>) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    if let Some(v) = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        let ok = (1..=64).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            return v.to_string();
        }
    }
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = getrandom::getrandom(&mut b);
        u32::from_le_bytes(b)
    });
    format!("{prefix:08x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What a route needs from the caller. Catalog listings are filtered instead (by what the
/// caller may pull), and a mount's source is checked by the upload handler; a challenge for
/// a mount still names the source, so the token the client fetches covers both.
fn authorize<B>(gate: &Gate, route: &Route, req: &Request<B>) -> Result<(), Error> {
    let method = req.method();
    let needed = match (route, method) {
        (Route::Base | Route::Catalog, _) => return gate.require_login(),
        (
            Route::CaCert
            | Route::Console(_)
            | Route::Token
            | Route::Metrics
            | Route::Health
            | Route::Ready,
            _,
        ) => return Ok(()),
        (Route::Api(r), m) => return handlers::console::authorize(gate, r, m),
        (Route::Tags(_) | Route::Referrers(..), _) => Actions::PULL,
        (
            Route::Manifest(..) | Route::BadReference(..) | Route::Blob(..),
            &Method::GET | &Method::HEAD,
        ) => Actions::PULL,
        (Route::Manifest(..) | Route::BadReference(..) | Route::Blob(..), &Method::DELETE) => {
            Actions::DELETE
        }
        (
            Route::Manifest(..)
            | Route::BadReference(..)
            | Route::UploadStart(_)
            | Route::Upload(..),
            _,
        ) => Actions::PUSH,
        (Route::Blob(..), _) => Actions::PULL,
    };
    let Some(repo) = route.repo() else {
        return Ok(());
    };
    let mount_from = match route {
        Route::UploadStart(_) if method == Method::POST && query::param(req, "mount").is_some() => {
            query::param(req, "from").filter(|f| f.parse::<crate::oci::RepoName>().is_ok())
        }
        _ => None,
    };
    gate.require_mounting(repo.as_str(), needed, mount_from.as_deref())
}

/// The registry API: pulls go through the edge (a mirrored repository is filled from its
/// upstream), everything else to the registry.
async fn dispatch(
    edge: &crate::edge::Edge,
    gate: &Gate,
    route: Route,
    req: Request<RequestBody>,
) -> Result<Resp, Error> {
    use handlers::*;
    let reg = edge.registry();
    let method = req.method().clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json(StatusCode::OK, b"{}".to_vec())),
        (Route::Catalog, Method::GET) => catalog::list(reg, gate, &req),
        (Route::Tags(repo), Method::GET) => tags::list(reg, &repo, &req),
        (Route::Manifest(repo, r), Method::GET | Method::HEAD) => {
            manifests::get(edge, &repo, &r, &req).await
        }
        (Route::Manifest(repo, r), Method::PUT) => manifests::put(reg, &repo, &r, req).await,
        (Route::Manifest(repo, r), Method::DELETE) => manifests::delete(reg, gate, &repo, &r).await,
        (Route::BadReference(_, text), Method::GET | Method::HEAD | Method::DELETE) => {
            Err(manifests::unknown(&text))
        }
        (Route::BadReference(_, text), Method::PUT) => Err(manifests::unstorable(&text)),
        (Route::Blob(repo, d), Method::GET | Method::HEAD) => {
            blobs::get(edge, &repo, &d, &req).await
        }
        (Route::Blob(repo, d), Method::DELETE) => blobs::delete(reg, gate, &repo, &d).await,
        (Route::UploadStart(repo), Method::POST) => uploads::start(reg, gate, &repo, req).await,
        (Route::Upload(repo, id), Method::GET) => uploads::status(reg, &repo, &id).await,
        (Route::Upload(repo, id), Method::PATCH) => uploads::patch(reg, &repo, &id, req).await,
        (Route::Upload(repo, id), Method::PUT) => uploads::put(reg, &repo, &id, req).await,
        (Route::Upload(repo, id), Method::DELETE) => uploads::cancel(reg, &repo, &id).await,
        (Route::Referrers(repo, d), Method::GET) => referrers::list(reg, &repo, &d, &req),
        (_, m) => Err(Error::method_not_allowed(&m)),
    }
}

/// `GET /ca.crt`: the CA clients should trust, in PEM (the "registry certificate" download).
fn ca_cert(app: &App) -> Result<Resp, Error> {
    match app.tls.as_ref().and_then(Tls::ca_pem) {
        Some(pem) => {
            let mut r = Response::new(ResponseBody::full(pem));
            set_header(&mut r, "content-type", "application/x-pem-file");
            set_header(
                &mut r,
                "content-disposition",
                "attachment; filename=\"ca.crt\"",
            );
            Ok(r)
        }
        None => Err(Error::api(
            crate::error::ErrorCode::NameUnknown,
            "this registry has no built-in CA (plain HTTP, or an operator-supplied certificate)",
        )
        .with_status(StatusCode::NOT_FOUND)),
    }
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The spec's error envelope: `{"errors":[{"code","message","detail"}]}`.
pub fn error_response(e: Error) -> Resp {
    match e {
        Error::Api {
            code,
            message,
            detail,
            status,
            headers,
        } => {
            let (code_str, default_status, _) = code.describe();
            // Never a null detail: docker's client turns a detail-less error whose message is
            // the code's default into a bare code, which its push logic then retries five
            // times and prints without the message.
            let detail = detail.unwrap_or_else(|| serde_json::json!({}));
            let body = serde_json::json!({
                "errors": [{ "code": code_str, "message": message, "detail": detail }]
            });
            let mut r = json(
                status.unwrap_or(default_status),
                body.to_string().into_bytes(),
            );
            for (k, v) in headers {
                r.headers_mut().insert(k, v);
            }
            r
        }
        Error::Internal { .. } => {
            tracing::error!(error = %e, "internal error");
            let body = br#"{"errors":[{"code":"UNKNOWN","message":"internal error, see the registry log","detail":{}}]}"#;
            json(StatusCode::INTERNAL_SERVER_ERROR, body.to_vec())
        }
    }
}

/// An empty response with a status.
pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(ResponseBody::Empty);
    *r.status_mut() = status;
    r
}

/// Sets a header from a value we formatted ourselves from validated parts.
pub fn set_header(r: &mut Resp, name: &'static str, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        r.headers_mut().insert(name, v);
    }
}
