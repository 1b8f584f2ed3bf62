//! Account and rule administration, shared by the offline commands (`edgeyard user ...`
//! on the data directory) and the admin API of a running server, so both enforce the same
//! checks.

use serde::{Deserialize, Serialize};

use super::{check_user_name, password, rules, Actions, ROBOT_PREFIX};
use crate::meta::{now, GrantRecord, Meta, RobotRecord, RuleRecord, UserRecord};

/// A user as listed (never with its hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Still a bcrypt hash imported from htpasswd (rehashed at next login).
    #[serde(default)]
    pub legacy_hash: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RobotInfo {
    pub name: String,
    pub grants: Vec<GrantRecord>,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: u64,
    #[serde(flatten)]
    pub rule: RuleRecord,
}

/// Why an administrative change was refused.
#[derive(Debug)]
pub enum AdminError {
    Invalid(String),
    Exists(String),
    NotFound(String),
    /// The store failed (or drawing randomness did): not the caller's fault.
    Internal(crate::error::Error),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Invalid(m) | AdminError::Exists(m) | AdminError::NotFound(m) => {
                f.write_str(m)
            }
            AdminError::Internal(e) => e.fmt(f),
        }
    }
}

type Result<T> = std::result::Result<T, AdminError>;

fn internal(e: crate::error::Error) -> AdminError {
    AdminError::Internal(e)
}

pub fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < 8 || p.len() > 1024 {
        return Err(AdminError::Invalid(
            "passwords need 8 to 1024 characters".into(),
        ));
    }
    Ok(())
}

fn check_groups(groups: &[String]) -> Result<()> {
    for g in groups {
        check_user_name(g).map_err(|_| {
            AdminError::Invalid(format!("{g:?} is not a group name (a-z 0-9 . _ -)"))
        })?;
    }
    Ok(())
}

pub fn create_user(
    meta: &Meta,
    name: &str,
    pw: &str,
    admin: bool,
    groups: Vec<String>,
) -> Result<()> {
    check_user_name(name).map_err(|e| AdminError::Invalid(e.0))?;
    if name.starts_with(ROBOT_PREFIX) {
        return Err(AdminError::Invalid(
            "robot accounts are made as robots".into(),
        ));
    }
    check_password(pw)?;
    check_groups(&groups)?;
    if meta.user(name).map_err(internal)?.is_some() {
        return Err(AdminError::Exists(format!("user {name} exists already")));
    }
    let rec = UserRecord {
        password_hash: password::hash(pw).map_err(internal)?,
        admin,
        groups,
        created_at: now(),
        robot: None,
    };
    meta.put_user(name, &rec).map_err(internal)
}

/// Sets a new password and revokes the user's refresh tokens; returns how many.
pub fn set_password(meta: &Meta, name: &str, pw: &str) -> Result<usize> {
    check_password(pw)?;
    let mut rec = meta
        .user(name)
        .map_err(internal)?
        .filter(|r| r.robot.is_none())
        .ok_or_else(|| AdminError::NotFound(format!("no user {name}")))?;
    rec.password_hash = password::hash(pw).map_err(internal)?;
    meta.put_user(name, &rec).map_err(internal)?;
    meta.revoke_refresh_tokens(name).map_err(internal)
}

/// Deletes a user or robot, its refresh tokens and the access rules naming it: a later
/// account of the same name starts with no rights rather than inheriting the old ones.
pub fn delete_account(meta: &Meta, name: &str, robot: bool) -> Result<()> {
    let found = meta
        .user(name)
        .map_err(internal)?
        .is_some_and(|r| r.robot.is_some() == robot);
    if !found || !meta.delete_user(name).map_err(internal)? {
        let what = if robot { "robot" } else { "user" };
        return Err(AdminError::NotFound(format!("no {what} {name}")));
    }
    let subject = format!("user:{name}");
    for (id, rule) in meta.rules().map_err(internal)? {
        if rule.subject == subject {
            meta.delete_rule(id).map_err(internal)?;
            tracing::info!(
                user = name,
                rule = id,
                "deleted an access rule of a deleted account"
            );
        }
    }
    Ok(())
}

pub fn list_users(meta: &Meta) -> Result<Vec<UserInfo>> {
    Ok(meta
        .users()
        .map_err(internal)?
        .into_iter()
        .filter(|(_, r)| r.robot.is_none())
        .map(|(name, r)| UserInfo {
            name,
            admin: r.admin,
            groups: r.groups,
            legacy_hash: password::is_bcrypt(&r.password_hash),
        })
        .collect())
}

/// Full robot name: `robot$NAME`.
pub fn robot_name(name: &str) -> String {
    if name.starts_with(ROBOT_PREFIX) {
        name.to_string()
    } else {
        format!("{ROBOT_PREFIX}{name}")
    }
}

/// Creates a robot and returns its secret (shown once; only its hash is kept).
pub fn create_robot(
    meta: &Meta,
    name: &str,
    grants: Vec<GrantRecord>,
    expires_days: Option<u64>,
) -> Result<String> {
    let full = robot_name(name);
    check_user_name(&full).map_err(|e| AdminError::Invalid(e.0))?;
    if grants.is_empty() {
        return Err(AdminError::Invalid(
            "a robot needs at least one grant".into(),
        ));
    }
    for g in &grants {
        rules::check_glob(&g.repos).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let a = Actions::parse(g.actions.iter().map(String::as_str))
            .map_err(|e| AdminError::Invalid(e.0))?;
        if a.is_empty() || a.contains(Actions::ADMIN) {
            return Err(AdminError::Invalid(format!(
                "{}: robots get pull, push or delete",
                g.repos
            )));
        }
    }
    if meta.user(&full).map_err(internal)?.is_some() {
        return Err(AdminError::Exists(format!("{full} exists already")));
    }
    let secret = password::random_secret().map_err(internal)?;
    let rec = UserRecord {
        password_hash: password::hash(&secret).map_err(internal)?,
        admin: false,
        groups: Vec::new(),
        created_at: now(),
        robot: Some(RobotRecord {
            grants,
            expires_at: expires_days.map(|d| now() + d * 86400),
        }),
    };
    meta.put_user(&full, &rec).map_err(internal)?;
    Ok(secret)
}

pub fn list_robots(meta: &Meta) -> Result<Vec<RobotInfo>> {
    Ok(meta
        .users()
        .map_err(internal)?
        .into_iter()
        .filter_map(|(name, r)| {
            r.robot.map(|robot| RobotInfo {
                name,
                grants: robot.grants,
                expires_at: robot.expires_at,
            })
        })
        .collect())
}

pub fn add_rule(meta: &Meta, rule: RuleRecord) -> Result<u64> {
    rules::Subject::parse(&rule.subject).map_err(|e| AdminError::Invalid(e.0))?;
    rules::check_glob(&rule.repos).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let a = Actions::parse(rule.actions.iter().map(String::as_str))
        .map_err(|e| AdminError::Invalid(e.0))?;
    if a.is_empty() {
        return Err(AdminError::Invalid(
            "a rule names at least one action".into(),
        ));
    }
    meta.add_rule(&rule).map_err(internal)
}

pub fn delete_rule(meta: &Meta, id: u64) -> Result<()> {
    if !meta.delete_rule(id).map_err(internal)? {
        return Err(AdminError::NotFound(format!("no rule {id}")));
    }
    Ok(())
}

pub fn list_rules(meta: &Meta) -> Result<Vec<RuleInfo>> {
    Ok(meta
        .rules()
        .map_err(internal)?
        .into_iter()
        .map(|(id, rule)| RuleInfo { id, rule })
        .collect())
}

/// Adds a user whose bcrypt hash comes from an htpasswd file (rehashed at first login).
pub fn import_bcrypt_user(meta: &Meta, name: &str, hash: &str) -> Result<()> {
    check_user_name(name).map_err(|e| AdminError::Invalid(e.0))?;
    if !password::is_bcrypt(hash) {
        return Err(AdminError::Invalid("not a bcrypt hash".into()));
    }
    if meta.user(name).map_err(internal)?.is_some() {
        return Err(AdminError::Exists(format!("user {name} exists already")));
    }
    let rec = UserRecord {
        password_hash: hash.to_string(),
        admin: false,
        groups: Vec::new(),
        created_at: now(),
        robot: None,
    };
    meta.put_user(name, &rec).map_err(internal)
}
