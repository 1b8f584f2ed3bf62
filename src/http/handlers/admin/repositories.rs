//! `/api/v1/repositories` and `/api/v1/pins`: repositories (explicit creation, visibility,
//! descriptions, deletion, tag details) and pinned tags. Listing repositories and reading or
//! deleting one tag are the console's (`console.rs`), for any signed-in user.

use http::{Method, Request, StatusCode};
use serde::Deserialize;

use super::{body, not_found};
use crate::error::{Error, Result};
use crate::http::handlers::ok_json;
use crate::http::route::AdminRoute;
use crate::http::{empty, App, RequestBody, Resp};
use crate::oci::RepoName;

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
struct NewDescription {
    description: String,
}

pub(super) async fn handle(
    app: &App,
    route: AdminRoute,
    req: Request<RequestBody>,
) -> Result<Resp> {
    let registry = &app.registry;
    let method = req.method().clone();
    Ok(match (route, method) {
        (AdminRoute::Repositories, Method::POST) => {
            let n: NewRepository = body(req).await?;
            let name: RepoName = n.name.parse()?;
            registry
                .create_repository(&name, n.public, &n.description)
                .await?;
            tracing::info!(repo = %name, public = n.public, "admin API: created a repository");
            empty(StatusCode::CREATED)
        }
        (AdminRoute::Repository(name), Method::PATCH) => {
            let c: RepositoryChange = body(req).await?;
            registry
                .update_repository(&name, c.public, c.description.as_deref())
                .await?;
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Repository(name), Method::GET) => {
            return ok_json(StatusCode::OK, &registry.repository(&name)?);
        }
        (AdminRoute::RepositoryTags(name), Method::GET) => {
            return ok_json(StatusCode::OK, &registry.tag_details(&name).await?);
        }
        (AdminRoute::RepositoryDescription(name), Method::PUT) => {
            let d: NewDescription = body(req).await?;
            registry.set_description(&name, &d.description).await?;
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Repository(name), Method::DELETE) => {
            registry.delete_repository(&name).await?;
            tracing::info!(repo = %name, "admin API: deleted a repository");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Pin(name, tag), Method::PUT) => {
            registry.pin(&name, &tag).await?;
            tracing::info!(repo = %name, %tag, "admin API: pinned a tag");
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Pin(name, tag), Method::DELETE) => {
            if !registry.unpin(&name, &tag).await? {
                return Err(not_found(format!("{name}:{tag} is not pinned")));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (AdminRoute::Pins, Method::GET) => return ok_json(StatusCode::OK, &registry.pins()?),
        (_, m) => return Err(Error::method_not_allowed(&m)),
    })
}
