//! `edgeyard sync`: run the configuration's `[[sync]]` rules now, on the data directory (the
//! server stopped) or through a running server's admin API.

use crate::cli::Target;
use crate::edge::{SyncProgress, SyncReport};

use super::users::admin_client;
use super::Failure;

pub fn run(mirror: Option<&str>, target: &Target) -> Result<(), Failure> {
    let runs: Vec<(String, SyncReport)> = match admin_client(target)? {
        Some(c) => c.run_rules("/api/v1/sync", "mirror", mirror)?,
        None => {
            let file = super::load_file(&target.data)?;
            let (mirrors, rules) = crate::config::mirrors_of(file.mirror, file.sync)?;
            let progress: SyncProgress = std::sync::Arc::new(|line: &str| println!("{line}"));
            let mirror = mirror.map(str::to_string);
            super::repos::offline_edge_staging(target, move |edge| {
                edge.set_mirrors(mirrors);
                edge.set_sync_rules(rules);
                Box::pin(async move {
                    let runs = edge.sync_all(mirror.as_deref(), progress).await?;
                    Ok(runs
                        .into_iter()
                        .map(|(rule, rep)| (rule.mirror, rep))
                        .collect())
                })
            })?
        }
    };
    if runs.is_empty() {
        return Err(Failure::Usage(
            "no [[sync]] rules are configured (see the configuration file's documentation)".into(),
        ));
    }
    let mut failures = 0;
    for (mirror, r) in &runs {
        println!(
            "sync from {mirror}: {} images, {} manifests, {} blobs fetched ({} bytes), {} already here",
            r.images.len(),
            r.manifests,
            r.blobs_fetched,
            r.bytes_fetched,
            r.blobs_present
        );
        for i in &r.images {
            println!("  {i}");
        }
        for f in &r.failures {
            println!("  FAILED {f}");
        }
        failures += r.failures.len();
    }
    if failures > 0 {
        return Err(Failure::Runtime(format!(
            "{failures} images or repositories could not be synced (listed above); run again to resume"
        )));
    }
    Ok(())
}
