//! `/api/v1/quotas`, `/api/v1/retention` and `/api/v1/immutability`: the governance rules.

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use super::{body, created_id, not_found};
use crate::error::{Error, Result};
use crate::http::handlers::ok_json;
use crate::http::route::AdminRoute;
use crate::http::{empty, App, RequestBody, Resp};
use crate::registry::governance::{ImmutabilityRecord, QuotaRecord, RetentionRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRun {
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn handle(
    app: &App,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let registry = &app.registry;
    let method = req.method().clone();
    Ok(match (route, method) {
        (AdminRoute::Quotas, Method::GET) => {
            return ok_json(StatusCode::OK, &registry.quota_usage()?)
        }
        (AdminRoute::Quotas, Method::POST) => {
            let q: QuotaRecord = body(req).await?;
            return created_id(registry.add_quota(q)?);
        }
        (AdminRoute::Quota(id), Method::DELETE) => {
            if !registry.delete_quota(id)? {
                return Err(not_found(format!("no quota {id}")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Retention, Method::GET) => {
            return ok_json(StatusCode::OK, &registry.retention_rule_list()?)
        }
        (AdminRoute::Retention, Method::POST) => {
            let rule: RetentionRecord = body(req).await?;
            return created_id(registry.add_retention_rule(rule)?);
        }
        (AdminRoute::RetentionRule(id), Method::DELETE) => {
            if !registry.delete_retention_rule(id)? {
                return Err(not_found(format!("no retention rule {id}")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::RetentionApply, Method::POST) => {
            let o: DryRun = body(req).await?;
            return ok_json(StatusCode::OK, &registry.apply_retention(o.dry_run).await?);
        }
        (AdminRoute::Immutability, Method::GET) => {
            return ok_json(StatusCode::OK, &registry.immutability_rule_list()?)
        }
        (AdminRoute::Immutability, Method::POST) => {
            let rule: ImmutabilityRecord = body(req).await?;
            return created_id(registry.add_immutability_rule(rule)?);
        }
        (AdminRoute::ImmutabilityRule(id), Method::DELETE) => {
            if !registry.delete_immutability_rule(id)? {
                return Err(not_found(format!("no immutability rule {id}")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (_, m) => return Err(Error::method_not_allowed(&m)),
    })
}
