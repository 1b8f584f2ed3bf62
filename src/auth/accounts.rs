//! The accounts and access rules of a running server, as the admin API changes them: the
//! same checks as the offline commands (`admin`), run off the async threads (a password
//! hash takes tens of milliseconds), with typed errors. The API holds this handle, never
//! the metadata store itself.

use super::admin::{self, AdminError, RobotInfo, RuleInfo, UserInfo};
use crate::error::{Error, ErrorCode, Result};
use crate::meta::{GrantRecord, Meta, RuleRecord};

/// Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    meta: Meta,
}

impl From<AdminError> for Error {
    fn from(e: AdminError) -> Error {
        match e {
            AdminError::Invalid(m) => Error::api(ErrorCode::Invalid, m),
            AdminError::Exists(m) => Error::api(ErrorCode::Conflict, m),
            AdminError::NotFound(m) => Error::api(ErrorCode::NotFound, m),
            AdminError::Internal(e) => e,
        }
    }
}

impl Accounts {
    pub fn new(meta: Meta) -> Accounts {
        Accounts { meta }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Meta) -> std::result::Result<T, AdminError> + Send + 'static,
    ) -> Result<T> {
        let meta = self.meta.clone();
        match tokio::task::spawn_blocking(move || f(&meta)).await {
            Ok(r) => r.map_err(Error::from),
            Err(e) => Err(Error::internal("administration", e)),
        }
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>> {
        self.run(admin::list_users).await
    }

    pub async fn robots(&self) -> Result<Vec<RobotInfo>> {
        self.run(admin::list_robots).await
    }

    pub async fn rules(&self) -> Result<Vec<RuleInfo>> {
        self.run(admin::list_rules).await
    }

    pub async fn create_user(
        &self,
        name: String,
        password: String,
        is_admin: bool,
        groups: Vec<String>,
    ) -> Result<()> {
        self.run(move |m| admin::create_user(m, &name, &password, is_admin, groups))
            .await
    }

    /// Adds a user from an htpasswd entry (bcrypt; rehashed at the first login).
    pub async fn import_bcrypt_user(&self, name: String, hash: String) -> Result<()> {
        self.run(move |m| admin::import_bcrypt_user(m, &name, &hash))
            .await
    }

    pub async fn set_password(&self, name: String, password: String) -> Result<()> {
        self.run(move |m| admin::set_password(m, &name, &password).map(|_| ()))
            .await
    }

    /// Deletes a user (or, with `robot`, revokes the robot of that full name).
    pub async fn delete(&self, name: String, robot: bool) -> Result<()> {
        self.run(move |m| admin::delete_account(m, &name, robot))
            .await
    }

    /// Creates a robot; its secret, shown once.
    pub async fn create_robot(
        &self,
        name: String,
        grants: Vec<GrantRecord>,
        expires_days: Option<u64>,
    ) -> Result<String> {
        self.run(move |m| admin::create_robot(m, &name, grants, expires_days))
            .await
    }

    pub async fn add_rule(&self, rule: RuleRecord) -> Result<u64> {
        self.run(move |m| admin::add_rule(m, rule)).await
    }

    pub async fn delete_rule(&self, id: u64) -> Result<()> {
        self.run(move |m| admin::delete_rule(m, id)).await
    }
}
