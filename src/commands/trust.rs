//! `edgeyard trust key|policy ...`: the keys trusted to sign images and the policies that
//! require their signatures. Like the other rules, they change the data directory (server
//! stopped) or, with `--server URL`, a running server through its admin API.

use std::io::Read;
use std::path::Path;

use serde_json::json;

use crate::cli::{TrustCommand, TrustKeyCommand, TrustPolicyCommand};
use crate::registry::trust_rules::{
    self, IndexTrust, KeyPurpose, Require, TrustKeyInfo, TrustMode, TrustPolicyInfo,
    TrustPolicyRecord, TrustSource,
};

use super::clock::when;
use super::users::{flush, open, Store};
use super::{refused, Failure};

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

pub fn run(cmd: TrustCommand) -> Result<(), Failure> {
    match cmd {
        TrustCommand::Key(c) => key(c),
        TrustCommand::Policy(c) => policy(c),
    }
}

/// A key file's text (`-`: standard input).
fn read_pem(file: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map_err(rt)?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
    }
    Ok(text)
}

fn key(cmd: TrustKeyCommand) -> Result<(), Failure> {
    match cmd {
        TrustKeyCommand::Add {
            name,
            file,
            purpose,
            target,
        } => {
            let pem = read_pem(&file)?;
            let purpose: KeyPurpose = serde_json::from_value(json!(purpose))
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let k: TrustKeyInfo = match open(&target)? {
                Store::Local(meta) => {
                    let k = trust_rules::add_key(&meta, &name, &pem, purpose).map_err(refused)?;
                    flush(&meta)?;
                    k
                }
                Store::Remote(c) => serde_json::from_value(c.call(
                    "POST",
                    "/api/v1/trust/keys",
                    Some(json!({"name": name, "pem": pem, "purpose": purpose})),
                )?)
                .map_err(rt)?,
            };
            println!("trusted key {}: {} {}", k.name, k.kind, k.fingerprint);
            Ok(())
        }
        TrustKeyCommand::List { json, target } => {
            let keys: Vec<TrustKeyInfo> = match open(&target)? {
                Store::Local(meta) => trust_rules::key_infos(&meta).map_err(refused)?,
                Store::Remote(c) => {
                    serde_json::from_value(c.call("GET", "/api/v1/trust/keys", None)?)
                        .map_err(rt)?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&keys).map_err(rt)?);
                return Ok(());
            }
            if keys.is_empty() {
                println!("no trusted keys (add one with `edgeyard trust key add NAME FILE`)");
            }
            for k in keys {
                let purpose = match k.purpose {
                    KeyPurpose::Images => "",
                    KeyPurpose::TrustUpdates => " (signs trust updates)",
                };
                println!(
                    "{}\t{}{purpose}\t{}\t{} {}",
                    k.name,
                    k.kind,
                    k.fingerprint,
                    origin(k.source),
                    when(k.added_at)
                );
            }
            Ok(())
        }
        TrustKeyCommand::Del { name, target } => {
            match open(&target)? {
                Store::Local(meta) => {
                    if !trust_rules::delete_key(&meta, &name).map_err(refused)? {
                        return Err(Failure::Runtime(format!("no trusted key {name:?}")));
                    }
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("DELETE", &format!("/api/v1/trust/keys/{name}"), None)?;
                }
            }
            println!("removed trusted key {name}");
            Ok(())
        }
    }
}

/// Where a key or policy came from, in a listing.
fn origin(source: TrustSource) -> &'static str {
    match source {
        TrustSource::Manual => "added",
        TrustSource::Config => "declared in the configuration",
        TrustSource::Bundle => "brought by a bundle",
    }
}

/// How a policy reads in a listing.
fn describe(p: &TrustPolicyRecord) -> String {
    let signers = match p.require {
        Require::Any => format!("a signature by {}", p.keys.join(" or ")),
        Require::Each => format!("signatures by {}", p.keys.join(" and ")),
    };
    let mode = match p.mode {
        TrustMode::Enforce => "enforced",
        TrustMode::Audit => "audit only",
    };
    let index = match p.index {
        IndexTrust::Whole => "indexes signed whole",
        IndexTrust::Platforms => "each platform signed",
    };
    let who = if p.identities.is_empty() {
        String::new()
    } else {
        format!("; notation signers {}", p.identities.join(" or "))
    };
    let source = match p.source {
        TrustSource::Manual => String::new(),
        other => format!("; {}", origin(other)),
    };
    format!("{}: {signers} ({mode}; {index}{who}{source})", p.repos)
}

fn policy(cmd: TrustPolicyCommand) -> Result<(), Failure> {
    match cmd {
        TrustPolicyCommand::Add {
            repos,
            keys,
            require,
            mode,
            index,
            identities,
            target,
        } => {
            // The values clap accepts are the records' own spellings.
            let p: TrustPolicyRecord = serde_json::from_value(json!({
                "repos": repos, "keys": keys, "require": require, "mode": mode, "index": index,
                "identities": identities,
            }))
            .map_err(|e| Failure::Usage(e.to_string()))?;
            let id = match open(&target)? {
                Store::Local(meta) => {
                    let id = trust_rules::add_policy(&meta, p.clone()).map_err(refused)?;
                    flush(&meta)?;
                    id
                }
                Store::Remote(c) => c.call(
                    "POST",
                    "/api/v1/trust/policies",
                    Some(serde_json::to_value(&p).map_err(rt)?),
                )?["id"]
                    .as_u64()
                    .unwrap_or_default(),
            };
            println!("trust policy {id}: {}", describe(&p));
            Ok(())
        }
        TrustPolicyCommand::List { target } => {
            let list: Vec<TrustPolicyInfo> = match open(&target)? {
                Store::Local(meta) => trust_rules::list_policies(&meta).map_err(refused)?,
                Store::Remote(c) => {
                    serde_json::from_value(c.call("GET", "/api/v1/trust/policies", None)?)
                        .map_err(rt)?
                }
            };
            if list.is_empty() {
                println!("no trust policies: every repository serves unsigned images");
            }
            for p in list {
                println!("{}\t{}", p.id, describe(&p.policy));
            }
            Ok(())
        }
        TrustPolicyCommand::Del { id, target } => {
            match open(&target)? {
                Store::Local(meta) => {
                    if !trust_rules::delete_policy(&meta, id).map_err(refused)? {
                        return Err(Failure::Runtime(format!("no trust policy {id}")));
                    }
                    flush(&meta)?;
                }
                Store::Remote(c) => {
                    c.call("DELETE", &format!("/api/v1/trust/policies/{id}"), None)?;
                }
            }
            println!("deleted trust policy {id}");
            Ok(())
        }
    }
}
