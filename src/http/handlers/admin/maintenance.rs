//! `/api/v1/gc` and `/api/v1/fsck`: garbage collection and the store check, on demand.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use super::body;
use crate::error::{Error, Result};
use crate::http::handlers::ok_json;
use crate::http::route::AdminRoute;
use crate::http::{App, RequestBody, Resp};
use crate::registry::{FsckOptions, GcOptions};

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

pub(super) async fn handle(
    app: &App,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let method = req.method().clone();
    match (route, method) {
        (AdminRoute::Gc, Method::GET) => ok_json(StatusCode::OK, &app.registry.gc_runs()?),
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
            ok_json(StatusCode::OK, &report)
        }
        (AdminRoute::Fsck, Method::POST) => {
            let o: FsckRequest = body(req).await?;
            let report = app
                .registry
                .fsck(FsckOptions {
                    quarantine: o.quarantine,
                    // Pages need the store to itself: a running server does not stop for it.
                    metadata_pages: false,
                })
                .await?;
            // Problems are the report's content, not a failure of the request.
            ok_json(StatusCode::OK, &report)
        }
        (_, m) => Err(Error::method_not_allowed(&m)),
    }
}
