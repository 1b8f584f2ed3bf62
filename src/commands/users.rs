//! `edgeyard user|access|robot ...`: accounts and access rules, edited in the metadata
//! database directly. sled admits one process at a time, so these run while the server is
//! stopped; the error says so when it is not.

use std::io::{BufRead, IsTerminal};

use crate::auth::{self, password, rules, Actions, ROBOT_PREFIX};
use crate::cli::{AccessCommand, DataArgs, RobotCommand, UserCommand};
use crate::meta::{now, GrantRecord, Meta, RobotRecord, RuleRecord, UserRecord};
use crate::storage::Storage;

use super::{data_dir, load_file, Failure};

fn open_meta(data: &DataArgs) -> Result<Meta, Failure> {
    let file = load_file(data)?;
    let dir = data_dir(data, &file);
    let storage =
        Storage::open(&dir).map_err(|e| Failure::Runtime(format!("{}: {e}", dir.display())))?;
    Meta::open(&storage.meta_dir()).map_err(|e| {
        Failure::Runtime(format!(
            "{e}\nstop the server first (user, access and robot commands edit the data directory)"
        ))
    })
}

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

fn flush(meta: &Meta) -> Result<(), Failure> {
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
    if p.len() < 8 {
        return Err(Failure::Usage(
            "passwords need at least 8 characters".into(),
        ));
    }
    Ok((p, false))
}

pub fn user(cmd: UserCommand) -> Result<(), Failure> {
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            admin,
            groups,
            data,
        } => {
            auth::check_user_name(&name).map_err(Failure::Usage)?;
            if name.starts_with(ROBOT_PREFIX) {
                return Err(Failure::Usage(
                    "robot accounts are made with `edgeyard robot add`".into(),
                ));
            }
            let meta = open_meta(&data)?;
            if meta.user(&name).map_err(rt)?.is_some() {
                return Err(Failure::Runtime(format!("user {name} exists already")));
            }
            let (pw, generated) = read_password(password_stdin)?;
            let rec = UserRecord {
                password_hash: password::hash(&pw).map_err(rt)?,
                admin,
                groups,
                created_at: now(),
                robot: None,
            };
            meta.put_user(&name, &rec).map_err(rt)?;
            flush(&meta)?;
            println!("created user {name}{}", if admin { " (admin)" } else { "" });
            if generated {
                println!("password: {pw}");
            }
            Ok(())
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            data,
        } => {
            let meta = open_meta(&data)?;
            let mut rec = meta
                .user(&name)
                .map_err(rt)?
                .filter(|r| r.robot.is_none())
                .ok_or_else(|| Failure::Runtime(format!("no user {name}")))?;
            let (pw, generated) = read_password(password_stdin)?;
            rec.password_hash = password::hash(&pw).map_err(rt)?;
            meta.put_user(&name, &rec).map_err(rt)?;
            let revoked = meta.revoke_refresh_tokens(&name).map_err(rt)?;
            flush(&meta)?;
            println!("password of {name} changed; {revoked} stored login(s) revoked");
            if generated {
                println!("password: {pw}");
            }
            Ok(())
        }
        UserCommand::Del { name, data } => {
            let meta = open_meta(&data)?;
            if !meta.delete_user(&name).map_err(rt)? {
                return Err(Failure::Runtime(format!("no user {name}")));
            }
            flush(&meta)?;
            println!("deleted user {name}");
            Ok(())
        }
        UserCommand::List { data } => {
            let meta = open_meta(&data)?;
            for (name, rec) in meta.users().map_err(rt)? {
                if rec.robot.is_some() {
                    continue;
                }
                let mut tags = Vec::new();
                if rec.admin {
                    tags.push("admin".to_string());
                }
                if !rec.groups.is_empty() {
                    tags.push(format!("groups: {}", rec.groups.join(",")));
                }
                if password::is_bcrypt(&rec.password_hash) {
                    tags.push("bcrypt until next login".into());
                }
                println!("{name}\t{}", tags.join("; "));
            }
            Ok(())
        }
        UserCommand::ImportHtpasswd { file, data } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::Runtime(format!("{}: {e}", file.display())))?;
            let meta = open_meta(&data)?;
            let (mut added, mut skipped) = (0, 0);
            for (no, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, hash)) = line.split_once(':') else {
                    eprintln!("line {}: not NAME:HASH, skipped", no + 1);
                    skipped += 1;
                    continue;
                };
                if auth::check_user_name(name).is_err() || !password::is_bcrypt(hash) {
                    eprintln!("line {}: {name}: only bcrypt entries with valid names are imported, skipped", no + 1);
                    skipped += 1;
                    continue;
                }
                if meta.user(name).map_err(rt)?.is_some() {
                    eprintln!("line {}: user {name} exists already, skipped", no + 1);
                    skipped += 1;
                    continue;
                }
                let rec = UserRecord {
                    password_hash: hash.to_string(),
                    admin: false,
                    groups: Vec::new(),
                    created_at: now(),
                    robot: None,
                };
                meta.put_user(name, &rec).map_err(rt)?;
                added += 1;
            }
            flush(&meta)?;
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
            data,
        } => {
            rules::Subject::parse(&subject).map_err(Failure::Usage)?;
            rules::check_glob(&repos).map_err(Failure::Usage)?;
            let words: Vec<String> = actions
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let parsed =
                Actions::parse(words.iter().map(String::as_str)).map_err(Failure::Usage)?;
            if parsed.is_empty() {
                return Err(Failure::Usage("--actions names at least one action".into()));
            }
            let meta = open_meta(&data)?;
            let id = meta
                .add_rule(&RuleRecord {
                    subject: subject.clone(),
                    repos: repos.clone(),
                    actions: words,
                })
                .map_err(rt)?;
            flush(&meta)?;
            println!("rule {id}: {subject} may {parsed} on {repos}");
            Ok(())
        }
        AccessCommand::List { data } => {
            let meta = open_meta(&data)?;
            for (id, r) in meta.rules().map_err(rt)? {
                println!("{id}\t{}\t{}\t{}", r.subject, r.repos, r.actions.join(","));
            }
            Ok(())
        }
        AccessCommand::Del { id, data } => {
            let meta = open_meta(&data)?;
            if !meta.delete_rule(id).map_err(rt)? {
                return Err(Failure::Runtime(format!("no rule {id}")));
            }
            flush(&meta)?;
            println!("deleted rule {id}");
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
    rules::check_glob(glob).map_err(Failure::Usage)?;
    let words: Vec<String> = actions
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let parsed = Actions::parse(words.iter().map(String::as_str)).map_err(Failure::Usage)?;
    if parsed.is_empty() || parsed.contains(Actions::ADMIN) {
        return Err(Failure::Usage(format!(
            "{s:?}: robots get pull, push or delete"
        )));
    }
    Ok(GrantRecord {
        repos: glob.to_string(),
        actions: words,
    })
}

pub fn robot(cmd: RobotCommand) -> Result<(), Failure> {
    match cmd {
        RobotCommand::Add {
            name,
            grants,
            expires_days,
            data,
        } => {
            let full = if name.starts_with(ROBOT_PREFIX) {
                name
            } else {
                format!("{ROBOT_PREFIX}{name}")
            };
            auth::check_user_name(&full).map_err(Failure::Usage)?;
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let meta = open_meta(&data)?;
            if meta.user(&full).map_err(rt)?.is_some() {
                return Err(Failure::Runtime(format!("{full} exists already")));
            }
            let secret = password::random_secret().map_err(rt)?;
            let rec = UserRecord {
                password_hash: password::hash(&secret).map_err(rt)?,
                admin: false,
                groups: Vec::new(),
                created_at: now(),
                robot: Some(RobotRecord {
                    grants,
                    expires_at: expires_days.map(|d| now() + d * 86400),
                }),
            };
            meta.put_user(&full, &rec).map_err(rt)?;
            flush(&meta)?;
            println!("created {full}");
            println!("secret: {secret}");
            println!(
                "(shown once; use it as the password: docker login -u '{full}' --password-stdin)"
            );
            Ok(())
        }
        RobotCommand::List { data } => {
            let meta = open_meta(&data)?;
            for (name, rec) in meta.users().map_err(rt)? {
                let Some(robot) = rec.robot else { continue };
                let grants: Vec<String> = robot
                    .grants
                    .iter()
                    .map(|g| format!("{}={}", g.repos, g.actions.join(",")))
                    .collect();
                let exp = robot
                    .expires_at
                    .map(|t| format!("expires at unix {t}"))
                    .unwrap_or_else(|| "no expiry".into());
                println!("{name}\t{}\t{exp}", grants.join(" "));
            }
            Ok(())
        }
        RobotCommand::Del { name, data } => {
            let full = if name.starts_with(ROBOT_PREFIX) {
                name
            } else {
                format!("{ROBOT_PREFIX}{name}")
            };
            let meta = open_meta(&data)?;
            let is_robot = meta
                .user(&full)
                .map_err(rt)?
                .is_some_and(|r| r.robot.is_some());
            if !is_robot || !meta.delete_user(&full).map_err(rt)? {
                return Err(Failure::Runtime(format!("no robot {full}")));
            }
            flush(&meta)?;
            println!("revoked {full}");
            Ok(())
        }
    }
}
