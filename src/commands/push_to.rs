//! `edgeyard push-to URL IMAGE...` and `edgeyard replicate`: copy images to another registry
//! over the standard API, skipping blobs it already has. From the data directory (server
//! stopped) or through a running server's admin API (`--server`). The target is logged in to
//! as docker would: a Bearer token from its realm, or HTTP Basic, with `EDGEYARD_PUSH_USER` /
//! `EDGEYARD_PUSH_PASSWORD` when set.

use crate::cli::Target;
use crate::edge::{Pushed, ReplicationReport};

use super::bundle::parse_image;
use super::users::admin_client;
use super::Failure;

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

fn print(p: &Pushed) {
    if p.unchanged {
        println!("pushed {}: already up to date", p.image);
    } else {
        println!(
            "pushed {}: {} blobs sent, {} already there, {} manifests",
            p.image, p.blobs_sent, p.blobs_present, p.manifests
        );
    }
}

pub fn run(
    url: &str,
    images: &[String],
    target_cacert: Option<&std::path::Path>,
    target: &Target,
) -> Result<(), Failure> {
    let parsed = images
        .iter()
        .map(|s| parse_image(s))
        .collect::<Result<Vec<_>, _>>()?;
    let ca_pem = match target_cacert {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?)
        }
        None => None,
    };
    let credentials = match (
        std::env::var("EDGEYARD_PUSH_USER"),
        std::env::var("EDGEYARD_PUSH_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => Some((u, p)),
        _ => None,
    };
    let pushed: Vec<Pushed> = match admin_client(target)? {
        Some(c) => {
            let mut body = serde_json::json!({ "url": url, "images": images });
            if let Some((u, p)) = &credentials {
                body["username"] = u.as_str().into();
                body["password"] = p.as_str().into();
            }
            if let Some(pem) = &ca_pem {
                body["ca_pem"] = String::from_utf8_lossy(pem).into_owned().into();
            }
            serde_json::from_value(c.call("POST", "/api/v1/push-to", Some(body))?).map_err(rt)?
        }
        None => {
            let url = url.to_string();
            let roots = crate::tls::info::roots_or_system(ca_pem.as_deref());
            super::repos::offline_edge(target, move |edge| {
                Box::pin(async move { edge.push_images(&url, credentials, roots, &parsed).await })
            })?
        }
    };
    pushed.iter().for_each(print);
    Ok(())
}

pub fn replicate(rule: Option<&str>, target: &Target) -> Result<(), Failure> {
    let runs: Vec<(String, ReplicationReport)> = match admin_client(target)? {
        Some(c) => c.run_rules("/api/v1/replicate", "rule", rule)?,
        None => {
            let file = super::load_file(&target.data)?;
            let rules = crate::config::replication_rules(file.replication)?;
            let rule = rule.map(str::to_string);
            super::repos::offline_edge(target, move |edge| {
                edge.set_replication_rules(rules);
                Box::pin(async move { edge.replicate_all(rule.as_deref()).await })
            })?
        }
    };
    if runs.is_empty() {
        return Err(Failure::Usage(
            "no [[replication]] rules are configured (see the configuration file's documentation)"
                .into(),
        ));
    }
    let mut failures = 0;
    for (name, report) in &runs {
        println!("replication {name}: {} images", report.pushed.len());
        report.pushed.iter().for_each(print);
        for f in &report.failures {
            println!("  FAILED {f}");
        }
        failures += report.failures.len();
    }
    if failures > 0 {
        return Err(Failure::Runtime(format!(
            "{failures} images could not be pushed (listed above)"
        )));
    }
    Ok(())
}
