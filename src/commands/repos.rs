//! `edgeyard repo list|show|describe|delete`: repositories, on the data directory (server
//! stopped) or through a running server's admin API (`--server`).

use crate::cli::Target;
use crate::oci::RepoName;
use crate::registry::Registry;

use super::users::admin_client;
use super::Failure;

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

type Work<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = crate::error::Result<T>> + 'a>>;

/// What [`offline_edge`] runs: it owns its edge, so it borrows nothing.
type EdgeWork<T> = Work<'static, T>;

/// What an offline command adds to "stop the server first" when the store is in use.
const OFFLINE_HINT: &str = ", or pass --server URL to use its admin API";

/// Runs `f` on the registry stored in the data directory (which must exist).
pub(super) fn offline<T>(
    target: &Target,
    f: impl FnOnce(&Registry) -> Work<'_, T>,
) -> Result<T, Failure> {
    run_on(super::open_registry(&target.data, OFFLINE_HINT)?, f)
}

/// Runs `f` on an opened registry, then closes it.
fn run_on<T>(registry: Registry, f: impl FnOnce(&Registry) -> Work<'_, T>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(rt)?;
    let out = runtime.block_on(f(&registry)).map_err(rt)?;
    registry.close().map_err(rt)?;
    Ok(out)
}

/// [`offline`] for commands that talk to other registries (sync, push-to, replicate) or need
/// to know the mirrors (fsck): the registry's edge, which the closure configures and uses.
pub(super) fn offline_edge<T>(
    target: &Target,
    f: impl FnOnce(crate::edge::Edge) -> EdgeWork<T>,
) -> Result<T, Failure> {
    offline(target, move |r| f(crate::edge::Edge::new(r.clone())))
}

/// [`offline_edge`] that creates the store if there is none yet: `sync` stages a node
/// before its first start, as `import` may.
pub(super) fn offline_edge_staging<T>(
    target: &Target,
    f: impl FnOnce(crate::edge::Edge) -> EdgeWork<T>,
) -> Result<T, Failure> {
    let registry = super::open_or_create_registry(&target.data, OFFLINE_HINT)?;
    run_on(registry, move |r| f(crate::edge::Edge::new(r.clone())))
}

fn quota(cmd: crate::cli::QuotaCommand) -> Result<(), Failure> {
    use crate::cli::QuotaCommand::*;
    match cmd {
        Add {
            repos,
            max_bytes,
            target,
        } => {
            let q = crate::meta::QuotaRecord { repos, max_bytes };
            let id = match admin_client(&target)? {
                Some(c) => c.call(
                    "POST",
                    "/api/v1/quotas",
                    Some(serde_json::to_value(&q).map_err(rt)?),
                )?["id"]
                    .as_u64()
                    .unwrap_or_default(),
                None => {
                    let q2 = q.clone();
                    offline(&target, move |r| Box::pin(async move { r.add_quota(q2) }))?
                }
            };
            println!("quota {id}: {} may hold {} bytes", q.repos, q.max_bytes);
            Ok(())
        }
        List { target } => {
            let list: serde_json::Value = match admin_client(&target)? {
                Some(c) => c.call("GET", "/api/v1/quotas", None)?,
                None => serde_json::to_value(offline(&target, |r| {
                    Box::pin(async move { r.quota_usage() })
                })?)
                .map_err(rt)?,
            };
            for q in list.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{} of {} bytes",
                    q["id"],
                    q["repos"].as_str().unwrap_or(""),
                    q["used_bytes"],
                    q["max_bytes"]
                );
            }
            Ok(())
        }
        Del { id, target } => {
            match admin_client(&target)? {
                Some(c) => {
                    c.call("DELETE", &format!("/api/v1/quotas/{id}"), None)?;
                }
                None => {
                    if !offline(&target, move |r| {
                        Box::pin(async move { r.meta_handle().delete_quota(id) })
                    })? {
                        return Err(Failure::Runtime(format!("no quota {id}")));
                    }
                }
            }
            println!("deleted quota {id}");
            Ok(())
        }
    }
}

fn retention(cmd: crate::cli::RetentionCommand) -> Result<(), Failure> {
    use crate::cli::RetentionCommand::*;
    use crate::meta::RetentionRecord;
    match cmd {
        Add {
            repos,
            keep_last,
            keep_days,
            target,
        } => {
            let rule = RetentionRecord {
                repos,
                keep_last,
                keep_days,
            };
            let id = match admin_client(&target)? {
                Some(c) => c.call(
                    "POST",
                    "/api/v1/retention",
                    Some(serde_json::to_value(&rule).map_err(rt)?),
                )?["id"]
                    .as_u64()
                    .unwrap_or_default(),
                None => {
                    let r2 = rule.clone();
                    offline(&target, move |r| {
                        Box::pin(async move { r.add_retention_rule(r2) })
                    })?
                }
            };
            println!("retention policy {id} for {}", rule.repos);
            Ok(())
        }
        List { target } => {
            let list: serde_json::Value = match admin_client(&target)? {
                Some(c) => c.call("GET", "/api/v1/retention", None)?,
                None => serde_json::to_value(offline(&target, |r| {
                    Box::pin(async move { r.retention_rule_list() })
                })?)
                .map_err(rt)?,
            };
            for p in list.as_array().into_iter().flatten() {
                println!(
                    "{}	{}	keep_last={}	keep_days={}",
                    p["id"],
                    p["repos"].as_str().unwrap_or(""),
                    p["keep_last"],
                    p["keep_days"]
                );
            }
            Ok(())
        }
        Del { id, target } => {
            match admin_client(&target)? {
                Some(c) => {
                    c.call("DELETE", &format!("/api/v1/retention/{id}"), None)?;
                }
                None => {
                    let found = offline(&target, move |r| {
                        Box::pin(async move { r.delete_retention_rule(id) })
                    })?;
                    if !found {
                        return Err(Failure::Runtime(format!("no retention policy {id}")));
                    }
                }
            }
            println!("deleted retention policy {id}");
            Ok(())
        }
        Apply { dry_run, target } => {
            let list: serde_json::Value = match admin_client(&target)? {
                Some(c) => c.call(
                    "POST",
                    "/api/v1/retention/apply",
                    Some(serde_json::json!({ "dry_run": dry_run })),
                )?,
                None => serde_json::to_value(offline(&target, move |r| {
                    Box::pin(async move { r.apply_retention(dry_run).await })
                })?)
                .map_err(rt)?,
            };
            let verb = if dry_run { "would delete" } else { "deleted" };
            for e in list.as_array().into_iter().flatten() {
                println!(
                    "{verb} {}:{} ({})",
                    e["repository"].as_str().unwrap_or(""),
                    e["tag"].as_str().unwrap_or(""),
                    e["digest"].as_str().unwrap_or("")
                );
            }
            println!("{} tag(s)", list.as_array().map(|a| a.len()).unwrap_or(0));
            Ok(())
        }
    }
}

fn name(n: &str) -> Result<RepoName, Failure> {
    n.parse().map_err(|e| Failure::Usage(format!("{e}")))
}

/// When something happened, for people; `-` for never.
fn when(t: Option<u64>) -> String {
    t.map(super::clock::when).unwrap_or_else(|| "-".into())
}

/// `NAME:TAG`, parsed.
fn tag_reference(reference: &str) -> Result<(RepoName, crate::oci::Tag), Failure> {
    match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => Ok((
            name(n)?,
            t.parse().map_err(|e| Failure::Usage(format!("{e}")))?,
        )),
        _ => Err(Failure::Usage(format!("{reference:?}: give NAME:TAG"))),
    }
}

pub fn run(cmd: crate::cli::RepoCommand) -> Result<(), Failure> {
    use crate::cli::RepoCommand::*;
    let cmd_kind = match &cmd {
        Pin { .. } => "pin",
        _ => "",
    };
    match cmd {
        Immutable(c) => super::users::immutable(c),
        Retention(c) => retention(c),
        Quota(c) => quota(c),
        List { target } => {
            let repos: serde_json::Value = match admin_client(&target)? {
                Some(c) => c.call("GET", "/api/v1/repositories", None)?,
                None => serde_json::to_value(offline(&target, |r| {
                    Box::pin(async move { r.repositories(&|_| true) })
                })?)
                .map_err(rt)?,
            };
            for r in repos.as_array().into_iter().flatten() {
                println!(
                    "{}\t{} tags\t{} bytes\tlast push {}",
                    r["name"].as_str().unwrap_or(""),
                    r["tags"],
                    r["size"],
                    when(r["last_push"].as_u64())
                );
            }
            Ok(())
        }
        Show { name: n, target } => {
            let repo = name(&n)?;
            let (info, tags): (serde_json::Value, serde_json::Value) = match admin_client(&target)?
            {
                Some(c) => (
                    c.call("GET", &format!("/api/v1/repositories/{repo}"), None)?,
                    c.call("GET", &format!("/api/v1/repositories/{repo}/tags"), None)?,
                ),
                None => {
                    let repo2 = repo.clone();
                    let (i, t) = offline(&target, move |r| {
                        Box::pin(async move {
                            Ok((r.repository(&repo2)?, r.tag_details(&repo2).await?))
                        })
                    })?;
                    (
                        serde_json::to_value(i).map_err(rt)?,
                        serde_json::to_value(t).map_err(rt)?,
                    )
                }
            };
            println!("{}: {} tags, {} bytes", repo, info["tags"], info["size"]);
            if let Some(d) = info["description"].as_str().filter(|d| !d.is_empty()) {
                println!("{d}");
            }
            for t in tags.as_array().into_iter().flatten() {
                let platforms: Vec<&str> = t["platforms"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .collect();
                println!(
                    "{}\t{}\t{} bytes\t{}{}{}",
                    t["tag"].as_str().unwrap_or(""),
                    t["digest"].as_str().unwrap_or(""),
                    t["size"],
                    when(t["pushed_at"].as_u64()),
                    if platforms.is_empty() {
                        String::new()
                    } else {
                        format!("\t{}", platforms.join(","))
                    },
                    if t["immutable"] == true {
                        "\timmutable"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Create {
            name: n,
            public,
            description,
            target,
        } => {
            let repo = name(&n)?;
            match admin_client(&target)? {
                Some(c) => {
                    c.call("POST", "/api/v1/repositories", Some(serde_json::json!({ "name": n, "public": public, "description": description })))?;
                }
                None => offline(&target, |r| {
                    Box::pin(async move { r.create_repository(&repo, public, &description).await })
                })?,
            }
            println!(
                "created repository {n}{}",
                if public { " (public)" } else { "" }
            );
            Ok(())
        }
        Visibility {
            name: n,
            visibility,
            target,
        } => {
            let repo = name(&n)?;
            let public = visibility == "public";
            match admin_client(&target)? {
                Some(c) => {
                    c.call(
                        "PATCH",
                        &format!("/api/v1/repositories/{repo}"),
                        Some(serde_json::json!({ "public": public })),
                    )?;
                }
                None => offline(&target, |r| {
                    Box::pin(async move { r.update_repository(&repo, Some(public), None).await })
                })?,
            }
            println!("{n} is now {visibility}");
            Ok(())
        }
        Rm { reference, target } => {
            let (repo, r) = match reference.split_once('@') {
                Some((n, d)) => (name(n)?, d.to_string()),
                None => match reference.rsplit_once(':') {
                    Some((n, t)) if !t.contains('/') => (name(n)?, t.to_string()),
                    _ => {
                        return Err(Failure::Usage(format!(
                            "{reference:?}: give NAME:TAG or NAME@DIGEST"
                        )))
                    }
                },
            };
            let parsed: crate::oci::Reference =
                r.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
            match admin_client(&target)? {
                Some(c) => {
                    c.call("DELETE", &format!("/v2/{repo}/manifests/{parsed}"), None)?;
                }
                None => offline(&target, |reg| {
                    Box::pin(async move { reg.delete_manifest(&repo, &parsed).await })
                })?,
            }
            println!("deleted {reference}; run `edgeyard gc` to free its disk space");
            Ok(())
        }
        Pin { reference, target } | Unpin { reference, target } => {
            let pin = matches!(cmd_kind, "pin");
            let (repo, tag) = tag_reference(&reference)?;
            match admin_client(&target)? {
                Some(c) => {
                    c.call(
                        if pin { "PUT" } else { "DELETE" },
                        &format!("/api/v1/pins/{repo}:{tag}"),
                        None,
                    )?;
                }
                None if pin => offline(&target, |reg| {
                    Box::pin(async move { reg.pin(&repo, &tag).await })
                })?,
                None => {
                    if !offline(&target, |reg| {
                        Box::pin(async move { reg.unpin(&repo, &tag).await })
                    })? {
                        return Err(Failure::Runtime(format!("{reference} is not pinned")));
                    }
                }
            }
            println!("{} {reference}", if pin { "pinned" } else { "unpinned" });
            Ok(())
        }
        Pins { target } => {
            let pins: serde_json::Value = match admin_client(&target)? {
                Some(c) => c.call("GET", "/api/v1/pins", None)?,
                None => {
                    serde_json::to_value(offline(&target, |r| Box::pin(async move { r.pins() }))?)
                        .map_err(rt)?
                }
            };
            for p in pins.as_array().into_iter().flatten() {
                println!(
                    "{}:{}\tpinned {}",
                    p["repository"].as_str().unwrap_or(""),
                    p["tag"].as_str().unwrap_or(""),
                    when(p["pinned_at"].as_u64())
                );
            }
            Ok(())
        }
        Describe {
            name: n,
            text,
            target,
        } => {
            let repo = name(&n)?;
            match admin_client(&target)? {
                Some(c) => {
                    c.call(
                        "PUT",
                        &format!("/api/v1/repositories/{repo}/description"),
                        Some(serde_json::json!({ "description": text })),
                    )?;
                }
                None => offline(&target, |r| {
                    Box::pin(async move { r.set_description(&repo, &text).await })
                })?,
            }
            println!("description of {n} set");
            Ok(())
        }
        Delete { name: n, target } => {
            let repo = name(&n)?;
            match admin_client(&target)? {
                Some(c) => {
                    c.call("DELETE", &format!("/api/v1/repositories/{repo}"), None)?;
                }
                None => offline(&target, |r| {
                    Box::pin(async move { r.delete_repository(&repo).await })
                })?,
            }
            println!("deleted repository {n}; run `edgeyard gc` to free its disk space");
            Ok(())
        }
    }
}
