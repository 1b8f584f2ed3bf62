//! The admin API (`/api/v1/`): users, robots and access rules of a running server, for
//! administrators. The same functions back the offline commands (`auth::admin`).

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use crate::auth::admin::{self, AdminError};
use crate::error::{Error, ErrorCode, Result};
use std::time::Duration;

use super::ok_json;
use crate::governance;
use crate::http::body::{collect_limited, too_large, Collect};
use crate::http::route::AdminRoute;
use crate::http::{empty, App, RequestBody, Resp};
use crate::meta::{
    GrantRecord, ImmutabilityRecord, Meta, QuotaRecord, RetentionRecord, RuleRecord,
};
use crate::registry::GcOptions;

/// Largest admin API JSON body: users, rules and image lists fit many times over.
const JSON_MAX: usize = 64 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRepository {
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryChange {
    public: Option<bool>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRun {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDescription {
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GcRequest {
    #[serde(default)]
    dry_run: bool,
    grace_secs: Option<u64>,
    upload_ttl_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsckRequest {
    /// Move corrupt blob files to the data directory's quarantine folder.
    #[serde(default)]
    quarantine: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRobot {
    name: String,
    grants: Vec<GrantRecord>,
    #[serde(default)]
    expires_days: Option<u64>,
}

fn admin_error(e: AdminError) -> Error {
    match e {
        AdminError::Invalid(m) => Error::api(ErrorCode::Invalid, m),
        AdminError::Exists(m) => Error::api(ErrorCode::Conflict, m),
        AdminError::NotFound(m) => Error::api(ErrorCode::NotFound, m),
        AdminError::Internal(m) => Error::internal("administration", m),
    }
}

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

/// Streams an OCI layout tarball of the images. Each image is looked up first, so an unknown
/// one is a clean 404; a failure while streaming aborts the response.
async fn export(app: &App, o: ImagesRequest) -> Result<Resp> {
    let images = parse_images(&o.images)?;
    for (repo, reference) in &images {
        app.registry.image_closure(repo, reference)?;
    }
    let (mut writer, stream) = crate::http::body::StreamWriter::new();
    let registry = app.registry.clone();
    tokio::task::spawn_blocking(move || {
        let progress: crate::registry::BundleProgress = std::sync::Arc::new(|_: &str, _: u64| {});
        match registry.export(&images, &mut writer, progress) {
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
    let ca = o.ca_pem.map(String::into_bytes);
    let pushed = app
        .registry
        .push_images(&o.url, credentials, ca, &images)
        .await?;
    tracing::info!(target = %o.url, images = pushed.len(), "admin API: pushed images");
    ok_json(StatusCode::OK, &pushed)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    /// Only the rules of this mirror.
    #[serde(default)]
    mirror: Option<String>,
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<RequestBody>) -> Result<T> {
    let bytes = collect_limited(req, JSON_MAX).await.map_err(|e| match e {
        Collect::TooLarge => too_large("an admin API request body", JSON_MAX),
        Collect::Failed(e) => Error::api(ErrorCode::Invalid, format!("request body: {e}")),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::api(ErrorCode::Invalid, format!("request body: {e}")))
}

/// Runs an administrative change off the async threads (password hashing takes a while).
async fn blocking<T: Send + 'static>(
    meta: &Meta,
    f: impl FnOnce(&Meta) -> std::result::Result<T, AdminError> + Send + 'static,
) -> Result<T> {
    let meta = meta.clone();
    match tokio::task::spawn_blocking(move || f(&meta)).await {
        Ok(r) => r.map_err(admin_error),
        Err(e) => Err(Error::internal("administration", e)),
    }
}

pub async fn handle(app: &App, route: AdminRoute, req: Request<RequestBody>) -> Result<Resp> {
    let meta = app.registry.meta_handle();
    let method = req.method().clone();
    let resp = match (route, method) {
        (AdminRoute::Users, Method::GET) => {
            return ok_json(StatusCode::OK, &blocking(&meta, admin::list_users).await?)
        }
        (AdminRoute::Robots, Method::GET) => {
            return ok_json(StatusCode::OK, &blocking(&meta, admin::list_robots).await?)
        }
        (AdminRoute::Rules, Method::GET) => {
            return ok_json(StatusCode::OK, &blocking(&meta, admin::list_rules).await?)
        }
        (AdminRoute::Users, Method::POST) => {
            let u: NewUser = body(req).await?;
            let name = u.name.clone();
            blocking(&meta, move |m| {
                admin::create_user(m, &u.name, &u.password, u.admin, u.groups)
            })
            .await?;
            tracing::info!(user = %name, "admin API: created a user");
            empty(StatusCode::CREATED)
        }
        (AdminRoute::UserPassword(name), Method::PUT) => {
            let p: NewPassword = body(req).await?;
            let n = name.clone();
            blocking(&meta, move |m| admin::set_password(m, &n, &p.password)).await?;
            tracing::info!(user = %name, "admin API: changed a password");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::User(name), Method::DELETE) => {
            let n = name.clone();
            blocking(&meta, move |m| admin::delete_account(m, &n, false)).await?;
            tracing::info!(user = %name, "admin API: deleted a user");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Robots, Method::POST) => {
            let r: NewRobot = body(req).await?;
            let name = admin::robot_name(&r.name);
            let secret = blocking(&meta, move |m| {
                admin::create_robot(m, &r.name, r.grants, r.expires_days)
            })
            .await?;
            tracing::info!(robot = %name, "admin API: created a robot");
            finish(app, &meta).await?;
            return ok_json(
                StatusCode::CREATED,
                &serde_json::json!({ "name": name, "secret": secret }),
            );
        }
        (AdminRoute::Robot(name), Method::DELETE) => {
            let n = admin::robot_name(&name);
            blocking(&meta, move |m| admin::delete_account(m, &n, true)).await?;
            tracing::info!(robot = %name, "admin API: revoked a robot");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Rules, Method::POST) => {
            let r: RuleRecord = body(req).await?;
            let id = blocking(&meta, move |m| admin::add_rule(m, r)).await?;
            finish(app, &meta).await?;
            return ok_json(StatusCode::CREATED, &serde_json::json!({ "id": id }));
        }
        (AdminRoute::Rule(id), Method::DELETE) => {
            blocking(&meta, move |m| admin::delete_rule(m, id)).await?;
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Repositories, Method::POST) => {
            let n: NewRepository = body(req).await?;
            let name: crate::oci::RepoName = n.name.parse()?;
            app.registry
                .create_repository(&name, n.public, &n.description)
                .await?;
            tracing::info!(repo = %name, public = n.public, "admin API: created a repository");
            empty(StatusCode::CREATED)
        }
        (AdminRoute::Repository(name), Method::PATCH) => {
            let c: RepositoryChange = body(req).await?;
            app.registry
                .update_repository(&name, c.public, c.description.as_deref())
                .await?;
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Repository(name), Method::GET) => {
            return ok_json(StatusCode::OK, &app.registry.repository(&name)?);
        }
        (AdminRoute::RepositoryTags(name), Method::GET) => {
            return ok_json(StatusCode::OK, &app.registry.tag_details(&name)?);
        }
        (AdminRoute::RepositoryDescription(name), Method::PUT) => {
            let d: NewDescription = body(req).await?;
            app.registry.set_description(&name, &d.description).await?;
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Repository(name), Method::DELETE) => {
            app.registry.delete_repository(&name).await?;
            tracing::info!(repo = %name, "admin API: deleted a repository");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Pin(name, tag), Method::PUT) => {
            app.registry.pin(&name, &tag).await?;
            tracing::info!(repo = %name, %tag, "admin API: pinned a tag");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Pin(name, tag), Method::DELETE) => {
            if !app.registry.unpin(&name, &tag).await? {
                return Err(Error::api(
                    ErrorCode::NotFound,
                    format!("{name}:{tag} is not pinned"),
                ));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Pins, Method::GET) => {
            return ok_json(StatusCode::OK, &app.registry.pins()?);
        }
        (AdminRoute::Mirrors, Method::GET) => {
            let mirrors: Vec<serde_json::Value> = app
                .registry
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
                .registry
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
            return ok_json(
                StatusCode::OK,
                &serde_json::json!({ "mirrors": mirrors, "sync": sync }),
            );
        }
        (AdminRoute::Sync, Method::POST) => {
            let o: SyncRequest = body(req).await?;
            let progress: crate::registry::SyncProgress =
                std::sync::Arc::new(|line: &str| tracing::debug!("sync: {line}"));
            let runs = app.registry.sync_all(o.mirror.as_deref(), progress).await?;
            let out: Vec<serde_json::Value> = runs
                .into_iter()
                .map(
                    |(rule, report)| serde_json::json!({ "mirror": rule.mirror, "report": report }),
                )
                .collect();
            return ok_json(StatusCode::OK, &out);
        }
        (AdminRoute::Export, Method::POST) => return export(app, body(req).await?).await,
        (AdminRoute::Import, Method::POST) => {
            let repo = match crate::http::query::param(&req, "repo") {
                Some(r) => Some(
                    r.parse()
                        .map_err(|e| Error::api(ErrorCode::NameInvalid, format!("repo: {e}")))?,
                ),
                None => None,
            };
            let reader = crate::http::body::BodyReader::spawn(req.into_body());
            let progress: crate::registry::BundleProgress =
                std::sync::Arc::new(|path: &str, size: u64| tracing::debug!(path, size, "import"));
            let report = app.registry.import(reader, repo, progress).await?;
            tracing::info!(images = ?report.images, blobs = report.blobs, bytes = report.bytes, "admin API: imported a bundle");
            return ok_json(StatusCode::OK, &report);
        }
        (AdminRoute::PushTo, Method::POST) => return push_to(app, body(req).await?).await,
        (AdminRoute::Replicate, Method::POST) => {
            let o: ReplicateRequest = body(req).await?;
            let runs = app.registry.replicate_all(o.rule.as_deref()).await?;
            let out: Vec<serde_json::Value> = runs
                .into_iter()
                .map(|(rule, report)| serde_json::json!({ "rule": rule, "report": report }))
                .collect();
            return ok_json(StatusCode::OK, &out);
        }
        (AdminRoute::Quotas, Method::GET) => {
            return ok_json(StatusCode::OK, &app.registry.quota_usage()?);
        }
        (AdminRoute::Quotas, Method::POST) => {
            let q: QuotaRecord = body(req).await?;
            let id =
                governance::add_quota(&meta, q).map_err(|e| Error::api(ErrorCode::Invalid, e))?;
            finish(app, &meta).await?;
            return ok_json(StatusCode::CREATED, &serde_json::json!({ "id": id }));
        }
        (AdminRoute::Quota(id), Method::DELETE) => {
            if !meta.delete_quota(id)? {
                return Err(Error::api(ErrorCode::NotFound, format!("no quota {id}")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Retention, Method::GET) => {
            let list = governance::list_retention(&meta)
                .map_err(|e| Error::internal("listing rules", e))?;
            return ok_json(StatusCode::OK, &list);
        }
        (AdminRoute::Retention, Method::POST) => {
            let rule: RetentionRecord = body(req).await?;
            let id = governance::add_retention(&meta, rule)
                .map_err(|e| Error::api(ErrorCode::Invalid, e))?;
            finish(app, &meta).await?;
            return ok_json(StatusCode::CREATED, &serde_json::json!({ "id": id }));
        }
        (AdminRoute::RetentionRule(id), Method::DELETE) => {
            if !governance::delete_retention(&meta, id)
                .map_err(|e| Error::internal("deleting a rule", e))?
            {
                return Err(Error::api(
                    ErrorCode::NotFound,
                    format!("no retention rule {id}"),
                ));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::RetentionApply, Method::POST) => {
            let o: DryRun = body(req).await?;
            return ok_json(
                StatusCode::OK,
                &app.registry.apply_retention(o.dry_run).await?,
            );
        }
        (AdminRoute::Gc, Method::GET) => {
            return ok_json(StatusCode::OK, &app.registry.gc_runs()?);
        }
        (AdminRoute::Gc, Method::POST) => {
            let o: GcRequest = body(req).await?;
            let d = GcOptions::default();
            let report = app
                .registry
                .gc(GcOptions {
                    dry_run: o.dry_run,
                    grace: o.grace_secs.map(Duration::from_secs).unwrap_or(d.grace),
                    upload_ttl: o
                        .upload_ttl_secs
                        .map(Duration::from_secs)
                        .unwrap_or(d.upload_ttl),
                })
                .await?;
            return ok_json(StatusCode::OK, &report);
        }
        (AdminRoute::Fsck, Method::POST) => {
            let o: FsckRequest = body(req).await?;
            let report = app
                .registry
                .fsck(crate::registry::FsckOptions {
                    quarantine: o.quarantine,
                })
                .await?;
            // Problems are the report's content, not a failure of the request.
            return ok_json(StatusCode::OK, &report);
        }
        (AdminRoute::Immutability, Method::GET) => {
            let list = governance::list_immutability(&meta)
                .map_err(|e| Error::internal("listing rules", e))?;
            return ok_json(StatusCode::OK, &list);
        }
        (AdminRoute::Immutability, Method::POST) => {
            let rule: ImmutabilityRecord = body(req).await?;
            let id = governance::add_immutability(&meta, rule)
                .map_err(|e| Error::api(ErrorCode::Invalid, e))?;
            finish(app, &meta).await?;
            return ok_json(StatusCode::CREATED, &serde_json::json!({ "id": id }));
        }
        (AdminRoute::ImmutabilityRule(id), Method::DELETE) => {
            if !governance::delete_immutability(&meta, id)
                .map_err(|e| Error::internal("deleting a rule", e))?
            {
                return Err(Error::api(
                    ErrorCode::NotFound,
                    format!("no immutability rule {id}"),
                ));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (_, m) => return Err(Error::method_not_allowed(&m)),
    };
    finish(app, &meta).await?;
    Ok(resp)
}

/// After a change: forget cached credentials, re-read rules, make it durable.
async fn finish(app: &App, meta: &Meta) -> Result<()> {
    app.registry.reload_immutability()?;
    if let Some(auth) = &app.auth {
        auth.clear_cache();
        auth.reload_rules()
            .map_err(|e| Error::internal("reloading rules", e))?;
    }
    meta.flush().await
}
