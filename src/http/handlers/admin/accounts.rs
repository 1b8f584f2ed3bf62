//! `/api/v1/users`, `/api/v1/robots` and `/api/v1/rules`: accounts and access rules.

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use super::{body, created_id};
use crate::auth::admin::robot_name;
use crate::auth::{GrantRecord, RuleRecord};
use crate::error::{Error, ErrorCode, Result};
use crate::http::handlers::ok_json;
use crate::http::route::AdminRoute;
use crate::http::{empty, App, RequestBody, Resp};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    /// The password, or (`bcrypt_hash`) a bcrypt hash from an htpasswd file: exactly one.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    bcrypt_hash: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    groups: Vec<String>,
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

pub(super) async fn handle(
    app: &App,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let accounts = &app.accounts;
    let method = req.method().clone();
    Ok(match (route, method) {
        (AdminRoute::Users, Method::GET) => {
            return ok_json(StatusCode::OK, &accounts.users().await?)
        }
        (AdminRoute::Robots, Method::GET) => {
            return ok_json(StatusCode::OK, &accounts.robots().await?)
        }
        (AdminRoute::Rules, Method::GET) => {
            return ok_json(StatusCode::OK, &accounts.rules().await?)
        }
        (AdminRoute::Users, Method::POST) => {
            let u: NewUser = body(req).await?;
            let name = u.name.clone();
            match (u.password, u.bcrypt_hash) {
                (Some(password), None) => {
                    accounts
                        .create_user(u.name, password, u.admin, u.groups)
                        .await?
                }
                // An imported htpasswd entry: an ordinary user, as the offline import makes.
                (None, Some(hash)) if !u.admin && u.groups.is_empty() => {
                    accounts.import_bcrypt_user(u.name, hash).await?
                }
                (None, Some(_)) => {
                    return Err(Error::api(
                        ErrorCode::Invalid,
                        "a user imported by bcrypt_hash has no admin flag or groups; grant them afterwards",
                    ))
                }
                _ => {
                    return Err(Error::api(
                        ErrorCode::Invalid,
                        "give exactly one of password and bcrypt_hash",
                    ))
                }
            }
            tracing::info!(user = %name, "admin API: created a user");
            empty(StatusCode::CREATED)
        }
        (AdminRoute::UserPassword(name), Method::PUT) => {
            let p: NewPassword = body(req).await?;
            accounts.set_password(name.clone(), p.password).await?;
            tracing::info!(user = %name, "admin API: changed a password");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::User(name), Method::DELETE) => {
            accounts.delete(name.clone(), false).await?;
            tracing::info!(user = %name, "admin API: deleted a user");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Robots, Method::POST) => {
            let r: NewRobot = body(req).await?;
            let name = robot_name(&r.name);
            let secret = accounts
                .create_robot(r.name, r.grants, r.expires_days)
                .await?;
            tracing::info!(robot = %name, "admin API: created a robot");
            return ok_json(
                StatusCode::CREATED,
                &serde_json::json!({ "name": name, "secret": secret }),
            );
        }
        (AdminRoute::Robot(name), Method::DELETE) => {
            accounts.delete(robot_name(&name), true).await?;
            tracing::info!(robot = %name, "admin API: revoked a robot");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Rules, Method::POST) => {
            let r: RuleRecord = body(req).await?;
            return created_id(accounts.add_rule(r).await?);
        }
        (AdminRoute::Rule(id), Method::DELETE) => {
            accounts.delete_rule(id).await?;
            empty(StatusCode::NO_CONTENT)
        }
        (_, m) => return Err(Error::method_not_allowed(&m)),
    })
}
