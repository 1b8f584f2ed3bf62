//! `/api/v1/mirrors`, `sync`, `export`, `import`, `push-to` and `replicate`: images moving
//! between this registry and others (pull-through mirrors, bundles, replication).

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use super::body;
use crate::error::{Error, ErrorCode, Result};
use crate::http::handlers::ok_json;
use crate::http::route::AdminRoute;
use crate::http::{empty, App, RequestBody, Resp};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicateRequest {
    /// Only the rule of this name.
    #[serde(default)]
    rule: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesRequest {
    /// `NAME:TAG` or `NAME@DIGEST`.
    images: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushToRequest {
    /// The target registry, `https://host[:port]`.
    url: String,
    images: Vec<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// CA certificates (PEM) to verify the target with; default: the system's bundle.
    #[serde(default)]
    ca_pem: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    /// Only the rules of this mirror.
    #[serde(default)]
    mirror: Option<String>,
}

pub(super) async fn handle(
    app: &App,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let method = req.method().clone();
    match (route, method) {
        (AdminRoute::Mirrors, Method::GET) => {
            let mirrors: Vec<serde_json::Value> = app
                .edge
                .mirrors()
                .iter()
                .map(|m| {
                    let s = &m.settings;
                    serde_json::json!({
                        "name": s.name, "url": s.url, "prefix": s.prefix,
                        "repositories": s.repositories, "aliases": s.aliases,
                        "username": s.credentials.as_ref().map(|c| &c.0),
                        "tag_ttl_secs": s.tag_ttl.as_secs(),
                    })
                })
                .collect();
            let sync: Vec<serde_json::Value> = app
                .edge
                .sync_rules()
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "mirror": r.mirror, "repositories": r.repositories, "tags": r.tags,
                        "platforms": r.platforms, "pin": r.pin,
                        "interval_secs": r.interval.map(|d| d.as_secs()),
                    })
                })
                .collect();
            ok_json(
                StatusCode::OK,
                &serde_json::json!({ "mirrors": mirrors, "sync": sync }),
            )
        }
        (AdminRoute::Sync, Method::POST) => {
            let o: SyncRequest = body(req).await?;
            let progress: crate::edge::SyncProgress =
                std::sync::Arc::new(|line: &str| tracing::debug!("sync: {line}"));
            let runs = app.edge.sync_all(o.mirror.as_deref(), progress).await?;
            let out: Vec<serde_json::Value> = runs
                .into_iter()
                .map(
                    |(rule, report)| serde_json::json!({ "mirror": rule.mirror, "report": report }),
                )
                .collect();
            ok_json(StatusCode::OK, &out)
        }
        (AdminRoute::Export, Method::POST) => export(app, body(req).await?).await,
        (AdminRoute::Import, Method::POST) => {
            let repo = match crate::http::query::param(&req, "repo") {
                Some(r) => Some(
                    r.parse()
                        .map_err(|e| Error::api(ErrorCode::NameInvalid, format!("repo: {e}")))?,
                ),
                None => None,
            };
            // `?trust=skip`: take the images, leave the bundle's trust material aside.
            let carry = crate::edge::TrustCarry {
                skip: crate::http::query::param(&req, "trust").as_deref() == Some("skip"),
                ..Default::default()
            };
            let reader = crate::http::body::BodyReader::spawn(req.into_body());
            let progress: crate::edge::BundleProgress =
                std::sync::Arc::new(|path: &str, size: u64| tracing::debug!(path, size, "import"));
            let report = app.edge.import(reader, repo, progress, &carry).await?;
            tracing::info!(images = ?report.images, blobs = report.blobs, bytes = report.bytes, trust = report.trust.as_deref().unwrap_or("none"), "admin API: imported a bundle");
            ok_json(StatusCode::OK, &report)
        }
        (AdminRoute::PushTo, Method::POST) => push_to(app, body(req).await?).await,
        (AdminRoute::Replicate, Method::POST) => {
            let o: ReplicateRequest = body(req).await?;
            let runs = app.edge.replicate_all(o.rule.as_deref()).await?;
            let out: Vec<serde_json::Value> = runs
                .into_iter()
                .map(|(rule, report)| serde_json::json!({ "rule": rule, "report": report }))
                .collect();
            ok_json(StatusCode::OK, &out)
        }
        (_, m) => Err(Error::method_not_allowed(&m)),
    }
}

fn parse_images(list: &[String]) -> Result<Vec<(crate::oci::RepoName, crate::oci::Reference)>> {
    if list.is_empty() {
        return Err(Error::api(ErrorCode::Invalid, "no images given"));
    }
    list.iter()
        .map(|s| {
            crate::oci::parse_image(s)
                .map_err(|e| Error::api(ErrorCode::NameInvalid, format!("{s:?}: {e}")))
        })
        .collect()
}

/// Streams an OCI layout tarball of the images. Each image and each of its blobs is looked
/// up first, so an unknown image or a blob a mirror has not fetched is a clean 404 naming
/// it; a failure while streaming aborts the response.
async fn export(app: &App, o: ImagesRequest) -> Result<Resp> {
    let images = parse_images(&o.images)?;
    for (repo, reference) in &images {
        app.edge.check_exportable(repo, reference)?;
    }
    let (mut writer, stream) = crate::http::body::StreamWriter::new();
    let edge = app.edge.clone();
    tokio::task::spawn_blocking(move || {
        let progress: crate::edge::BundleProgress = std::sync::Arc::new(|_: &str, _: u64| {});
        match edge.export(&images, &mut writer, progress, &Default::default()) {
            Ok(r) => {
                tracing::info!(images = ?r.images, blobs = r.blobs, bytes = r.bytes, "admin API: exported a bundle");
            }
            Err(e) => {
                tracing::error!(error = %e, "admin API: export failed");
                writer.fail(e.to_string());
            }
        }
    });
    let mut r = empty(StatusCode::OK);
    crate::http::set_header(&mut r, "content-type", "application/x-tar");
    *r.body_mut() = stream;
    Ok(r)
}

/// Pushes images to another registry from the server itself (the credentials are used for
/// this request only, never stored or logged).
async fn push_to(app: &App, o: PushToRequest) -> Result<Resp> {
    let images = parse_images(&o.images)?;
    let credentials = o.username.clone().zip(o.password.clone());
    let roots = crate::tls::info::roots_or_system(o.ca_pem.as_deref().map(str::as_bytes));
    let pushed = app
        .edge
        .push_images(&o.url, credentials, roots, &images)
        .await?;
    tracing::info!(target = %o.url, images = pushed.len(), "admin API: pushed images");
    ok_json(StatusCode::OK, &pushed)
}
