//! `edgeyard user|access|robot ...`: accounts and access rules. With `--server URL` they go
//! through the admin API of a running server (as an admin: `EDGEYARD_USER`, default `admin`,
//! and `EDGEYARD_PASSWORD`); otherwise they edit the data directory, which the metadata store lets only one
//! process open, so the server must be stopped.

use std::io::{BufRead, IsTerminal};

use serde_json::json;

use crate::auth::admin::{self, AdminError, RobotInfo, RuleInfo, UserInfo};
use crate::auth::password;
use crate::cli::{AccessCommand, DataArgs, ImmutableCommand, RobotCommand, Target, UserCommand};
use crate::meta::{GrantRecord, ImmutabilityRecord, Meta, RuleRecord};
use crate::registry::governance::{self, ImmutabilityInfo};
use crate::storage::Storage;

use super::api_client::AdminClient;
use super::{data_dir, load_file, Failure};

/// Where the change goes: the data directory, or a running server.
pub(super) enum Store {
    Local(Meta),
    Remote(AdminClient),
}

/// The admin API client when `--server` is given.
pub(super) fn admin_client(target: &Target) -> Result<Option<AdminClient>, Failure> {
    let Some(url) = &target.server else {
        return Ok(None);
    };
    let file = load_file(&target.data)?;
    let default_ca = data_dir(&target.data, &file).join("tls/ca.crt");
    let ca = target
        .cacert
        .clone()
        .or_else(|| default_ca.exists().then_some(default_ca));
    AdminClient::new(url, ca.as_deref()).map(Some)
}

pub(super) fn open(target: &Target) -> Result<Store, Failure> {
    if let Some(c) = admin_client(target)? {
        return Ok(Store::Remote(c));
    }
    let data: &DataArgs = &target.data;
    let file = load_file(data)?;
    let dir = super::existing_data_dir(data, &file)?;
    let storage =
        Storage::open(&dir).map_err(|e| Failure::Runtime(format!("{}: {e}", dir.display())))?;
    let meta = Meta::open(&storage.meta_dir()).map_err(|e| {
        Failure::Runtime(format!(
            "{e}\nstop the server first, or pass --server URL to use its admin API"
        ))
    })?;
    if let Some(declared) = super::declared_trust(data, file.trust)? {
        let applied = crate::registry::trust_declared::apply(
            &meta,
            crate::meta::TrustSource::Config,
            &declared,
        )
        .map_err(super::trust_refused)?;
        if applied.changed() {
            flush(&meta)?;
        }
    }
    Ok(Store::Local(meta))
}

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

fn admin_err(e: AdminError) -> Failure {
    match e {
        AdminError::Invalid(m) => Failure::Usage(m),
        other => Failure::Runtime(other.to_string()),
    }
}

pub(super) fn flush(meta: &Meta) -> Result<(), Failure> {
    meta.flush_blocking().map_err(rt)
}

/// A password from the first line of standard input, or a generated one (printed once).
fn read_password(from_stdin: bool) -> Result<(String, bool), Failure> {
    if !from_stdin {
        return Ok((password::random_secret().map_err(rt)?, true));
    }
    if std::io::stdin().is_terminal() {
        eprint!("password (shown as you type): ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(rt)?;
    let p = line.trim_end_matches(['\n', '\r']).to_string();
    admin::check_password(&p).map_err(admin_err)?;
    Ok((p, false))
}

pub fn user(cmd: UserCommand) -> Result<(), Failure> {
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            admin: is_admin,
            groups,
            target,
        } => {
            let (pw, generated) = read_password(password_stdin)?;
            match open(&target)? {
                Store::Local(meta) => {
                    admin::create_user(&meta, &name, &pw, is_admin, groups).map_err(admin_err)?;
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("POST", "/api/v1/users", Some(json!({"name": name, "password": pw, "admin": is_admin, "groups": groups})))?;
                }
            }
            println!(
                "created user {name}{}",
                if is_admin { " (admin)" } else { "" }
            );
            if generated {
                println!("password: {pw}");
            }
            Ok(())
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            target,
        } => {
            let (pw, generated) = read_password(password_stdin)?;
            match open(&target)? {
                Store::Local(meta) => {
                    admin::set_password(&meta, &name, &pw).map_err(admin_err)?;
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call(
                        "PUT",
                        &format!("/api/v1/users/{name}/password"),
                        Some(json!({"password": pw})),
                    )?;
                }
            }
            println!("password of {name} changed; its stored logins (refresh tokens) are revoked");
            if generated {
                println!("password: {pw}");
            }
            Ok(())
        }
        UserCommand::Del { name, target } => {
            match open(&target)? {
                Store::Local(meta) => {
                    admin::delete_account(&meta, &name, false).map_err(admin_err)?;
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("DELETE", &format!("/api/v1/users/{name}"), None)?;
                }
            }
            println!("deleted user {name}");
            Ok(())
        }
        UserCommand::List { target } => {
            let users: Vec<UserInfo> = match open(&target)? {
                Store::Local(meta) => admin::list_users(&meta).map_err(admin_err)?,
                Store::Remote(c) => {
                    serde_json::from_value(c.call("GET", "/api/v1/users", None)?).map_err(rt)?
                }
            };
            for u in users {
                let mut tags = Vec::new();
                if u.admin {
                    tags.push("admin".to_string());
                }
                if !u.groups.is_empty() {
                    tags.push(format!("groups: {}", u.groups.join(",")));
                }
                if u.legacy_hash {
                    tags.push("bcrypt until next login".into());
                }
                println!("{}\t{}", u.name, tags.join("; "));
            }
            Ok(())
        }
        UserCommand::ImportHtpasswd { file, target } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::Runtime(format!("{}: {e}", file.display())))?;
            let store = open(&target)?;
            let (mut added, mut skipped) = (0, 0);
            for (no, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, hash)) = line
                    .split_once(':')
                    .filter(|(_, hash)| password::is_bcrypt(hash))
                else {
                    eprintln!(
                        "line {}: only NAME:BCRYPT-HASH entries are imported, skipped",
                        no + 1
                    );
                    skipped += 1;
                    continue;
                };
                let result = match &store {
                    Store::Local(meta) => {
                        admin::import_bcrypt_user(meta, name, hash).map_err(|e| e.to_string())
                    }
                    Store::Remote(c) => c
                        .call(
                            "POST",
                            "/api/v1/users",
                            Some(json!({"name": name, "bcrypt_hash": hash})),
                        )
                        .map(|_| ())
                        .map_err(|e| e.message().to_string()),
                };
                match result {
                    Ok(()) => added += 1,
                    Err(e) => {
                        eprintln!("line {}: {name}: {e}, skipped", no + 1);
                        skipped += 1;
                    }
                }
            }
            if let Store::Local(meta) = &store {
                flush(meta)?;
            }
            println!("imported {added} user(s), skipped {skipped}");
            Ok(())
        }
    }
}

pub fn access(cmd: AccessCommand) -> Result<(), Failure> {
    match cmd {
        AccessCommand::Add {
            subject,
            repos,
            actions,
            target,
        } => {
            let rule = RuleRecord {
                subject,
                repos,
                actions: actions
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            };
            let id = match open(&target)? {
                Store::Local(meta) => {
                    let id = admin::add_rule(&meta, rule.clone()).map_err(admin_err)?;
                    flush(&meta)?;
                    id
                }
                Store::Remote(c) => c.call(
                    "POST",
                    "/api/v1/rules",
                    Some(serde_json::to_value(&rule).map_err(rt)?),
                )?["id"]
                    .as_u64()
                    .unwrap_or_default(),
            };
            println!(
                "rule {id}: {} may {} on {}",
                rule.subject,
                rule.actions.join(","),
                rule.repos
            );
            Ok(())
        }
        AccessCommand::List { target } => {
            let rules: Vec<RuleInfo> = match open(&target)? {
                Store::Local(meta) => admin::list_rules(&meta).map_err(admin_err)?,
                Store::Remote(c) => {
                    serde_json::from_value(c.call("GET", "/api/v1/rules", None)?).map_err(rt)?
                }
            };
            for r in rules {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.id,
                    r.rule.subject,
                    r.rule.repos,
                    r.rule.actions.join(",")
                );
            }
            Ok(())
        }
        AccessCommand::Del { id, target } => {
            match open(&target)? {
                Store::Local(meta) => {
                    admin::delete_rule(&meta, id).map_err(admin_err)?;
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("DELETE", &format!("/api/v1/rules/{id}"), None)?;
                }
            }
            println!("deleted rule {id}");
            Ok(())
        }
    }
}

pub fn immutable(cmd: ImmutableCommand) -> Result<(), Failure> {
    match cmd {
        ImmutableCommand::Add {
            repos,
            tags,
            target,
        } => {
            let rule = ImmutabilityRecord { repos, tags };
            let id = match open(&target)? {
                Store::Local(meta) => {
                    let id = governance::add_immutability(&meta, rule.clone())
                        .map_err(super::refused)?;
                    flush(&meta)?;
                    id
                }
                Store::Remote(c) => c.call(
                    "POST",
                    "/api/v1/immutability",
                    Some(serde_json::to_value(&rule).map_err(rt)?),
                )?["id"]
                    .as_u64()
                    .unwrap_or_default(),
            };
            println!(
                "immutability rule {id}: tags {} of repositories {}",
                rule.tags, rule.repos
            );
            Ok(())
        }
        ImmutableCommand::List { target } => {
            let rules: Vec<ImmutabilityInfo> = match open(&target)? {
                Store::Local(meta) => {
                    governance::list_immutability(&meta).map_err(super::refused)?
                }
                Store::Remote(c) => {
                    serde_json::from_value(c.call("GET", "/api/v1/immutability", None)?)
                        .map_err(rt)?
                }
            };
            for r in rules {
                println!("{}\t{}\t{}", r.id, r.rule.repos, r.rule.tags);
            }
            Ok(())
        }
        ImmutableCommand::Del { id, target } => {
            match open(&target)? {
                Store::Local(meta) => {
                    if !governance::delete_immutability(&meta, id).map_err(super::refused)? {
                        return Err(Failure::Runtime(format!("no immutability rule {id}")));
                    }
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("DELETE", &format!("/api/v1/immutability/{id}"), None)?;
                }
            }
            println!("deleted immutability rule {id}");
            Ok(())
        }
    }
}

/// Parses `GLOB=ACTIONS`.
fn parse_grant(s: &str) -> Result<GrantRecord, Failure> {
    let (glob, actions) = s.split_once('=').ok_or_else(|| {
        Failure::Usage(format!(
            "{s:?}: a grant is GLOB=ACTIONS, e.g. 'edge/**=pull'"
        ))
    })?;
    Ok(GrantRecord {
        repos: glob.to_string(),
        actions: actions
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
    })
}

pub fn robot(cmd: RobotCommand) -> Result<(), Failure> {
    match cmd {
        RobotCommand::Add {
            name,
            grants,
            expires_days,
            target,
        } => {
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let full = admin::robot_name(&name);
            let secret = match open(&target)? {
                Store::Local(meta) => {
                    let s = admin::create_robot(&meta, &name, grants, expires_days)
                        .map_err(admin_err)?;
                    flush(&meta)?;
                    s
                }
                Store::Remote(c) => c.call(
                    "POST",
                    "/api/v1/robots",
                    Some(json!({"name": name, "grants": grants, "expires_days": expires_days})),
                )?["secret"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            };
            println!("created {full}");
            println!("secret: {secret}");
            println!(
                "(shown once; use it as the password: docker login -u '{full}' --password-stdin)"
            );
            Ok(())
        }
        RobotCommand::List { json, target } => {
            let robots: Vec<RobotInfo> = match open(&target)? {
                Store::Local(meta) => admin::list_robots(&meta).map_err(admin_err)?,
                Store::Remote(c) => {
                    serde_json::from_value(c.call("GET", "/api/v1/robots", None)?).map_err(rt)?
                }
            };
            if json {
                let list: Vec<serde_json::Value> = robots
                    .iter()
                    .map(|r| {
                        json!({
                            "name": r.name,
                            "grants": r.grants,
                            "expires_at": r.expires_at.map(super::clock::iso),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).map_err(rt)?);
                return Ok(());
            }
            let now = crate::meta::now();
            for r in robots {
                let grants: Vec<String> = r
                    .grants
                    .iter()
                    .map(|g| format!("{}={}", g.repos, g.actions.join(",")))
                    .collect();
                let exp = match r.expires_at {
                    Some(t) if t <= now => format!("expired {}", super::clock::when_from(t, now)),
                    Some(t) => format!("expires {}", super::clock::when_from(t, now)),
                    None => "no expiry".into(),
                };
                println!("{}\t{}\t{exp}", r.name, grants.join(" "));
            }
            Ok(())
        }
        RobotCommand::Del { name, target } => {
            let full = admin::robot_name(&name);
            match open(&target)? {
                Store::Local(meta) => {
                    admin::delete_account(&meta, &full, true).map_err(admin_err)?;
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("DELETE", &format!("/api/v1/robots/{full}"), None)?;
                }
            }
            println!("revoked {full}");
            Ok(())
        }
    }
}
