//! The admin API (`/api/v1/`) of a running server, for administrators: one file per
//! resource. The same checks back the offline commands (`auth::admin`,
//! `registry::governance`); who may call what is decided before this (`console::authorize`).

mod accounts;
mod governance;
mod maintenance;
mod repositories;
mod transfer;
mod trust;

use http::{Method, Request, StatusCode};

use crate::error::{Error, ErrorCode, Result};
use crate::http::body::{collect_limited, too_large, Collect};
use crate::http::route::AdminRoute;
use crate::http::{App, RequestBody, Resp};

/// Largest admin API JSON body: users, rules and image lists fit many times over.
const JSON_MAX: usize = 64 << 10;

/// A JSON request body, refused with `INVALID` when it does not parse.
async fn body<T: serde::de::DeserializeOwned>(req: Request<RequestBody>) -> Result<T> {
    let bytes = collect_limited(req, JSON_MAX).await.map_err(|e| match e {
        Collect::TooLarge => too_large("an admin API request body", JSON_MAX),
        Collect::Failed(e) => Error::api(ErrorCode::Invalid, format!("request body: {e}")),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::api(ErrorCode::Invalid, format!("request body: {e}")))
}

/// 404 `NOT_FOUND` for an id or name that names nothing.
fn not_found(what: String) -> Error {
    Error::api(ErrorCode::NotFound, what)
}

pub async fn handle(app: &App, route: AdminRoute, req: Request<RequestBody>) -> Result<Resp> {
    use AdminRoute::*;
    let method = req.method().clone();
    let resp = match route {
        Users | User(_) | UserPassword(_) | Robots | Robot(_) | Rules | Rule(_) => {
            accounts::handle(app, route, req).await?
        }
        Repositories
        | Repository(_)
        | RepositoryTags(_)
        | RepositoryDescription(_)
        | Pin(..)
        | Pins => repositories::handle(app, route, req).await?,
        Quotas | Quota(_) | Retention | RetentionRule(_) | RetentionApply | Immutability
        | ImmutabilityRule(_) => governance::handle(app, route, req).await?,
        TrustKeys | TrustKey(_) | TrustPolicies | TrustPolicy(_) => {
            trust::handle(app, route, req).await?
        }
        Gc | Fsck => maintenance::handle(app, route, req).await?,
        Mirrors | Sync | Export | Import | PushTo | Replicate => {
            transfer::handle(app, route, req).await?
        }
        // The console's own routes are answered before this.
        Session | RepositoryTag(..) | Storage | Ca => {
            return Err(Error::method_not_allowed(&method))
        }
    };
    if method != Method::GET {
        finish(app).await?;
    }
    Ok(resp)
}

/// After a change: forget cached credentials, re-read rules, make it durable.
async fn finish(app: &App) -> Result<()> {
    app.registry.reload_immutability()?;
    if let Some(auth) = &app.auth {
        auth.clear_cache();
        auth.reload_rules()?;
    }
    app.registry.flush_metadata().await
}

/// `201 Created` with `{"id": id}`: a new rule.
fn created_id(id: u64) -> Result<Resp> {
    super::ok_json(StatusCode::CREATED, &serde_json::json!({ "id": id }))
}
