//! `/api/v1/trust/keys` and `/api/v1/trust/policies`: the keys trusted to sign images, and
//! which repositories need their signatures.

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use super::{body, created_id, not_found};
use crate::error::{Error, Result};
use crate::http::handlers::ok_json;
use crate::http::route::AdminRoute;
use crate::http::{empty, App, RequestBody, Resp};
use crate::registry::trust_rules::{KeyPurpose, TrustPolicyRecord};

/// `POST /api/v1/trust/keys`: a name and the PEM public key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    pem: String,
    #[serde(default)]
    purpose: KeyPurpose,
}

pub(super) async fn handle(
    app: &App,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let registry = &app.registry;
    let method = req.method().clone();
    Ok(match (route, method) {
        (AdminRoute::TrustKeys, Method::GET) => {
            return ok_json(StatusCode::OK, &registry.trust_keys()?)
        }
        (AdminRoute::TrustKeys, Method::POST) => {
            let k: NewKey = body(req).await?;
            return ok_json(
                StatusCode::CREATED,
                &registry.add_trust_key(&k.name, &k.pem, k.purpose)?,
            );
        }
        (AdminRoute::TrustKey(name), Method::DELETE) => {
            if !registry.delete_trust_key(&name)? {
                return Err(not_found(format!("no trusted key {name:?}")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::TrustPolicies, Method::GET) => {
            return ok_json(StatusCode::OK, &registry.trust_policies()?)
        }
        (AdminRoute::TrustPolicies, Method::POST) => {
            let p: TrustPolicyRecord = body(req).await?;
            return created_id(registry.add_trust_policy(p)?);
        }
        (AdminRoute::TrustPolicy(id), Method::DELETE) => {
            if !registry.delete_trust_policy(id)? {
                return Err(not_found(format!("no trust policy {id}")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (_, m) => return Err(Error::method_not_allowed(&m)),
    })
}
