//! `edgeyard gc`: one garbage collection, on the data directory (server stopped) or through
//! a running server's admin API (`--server`).

use std::time::Duration;

use crate::cli::Target;
use crate::registry::{GcOptions, GcReport};

use super::users::admin_client;
use super::Failure;

pub fn run(
    dry_run: bool,
    grace_secs: u64,
    upload_ttl_secs: u64,
    target: &Target,
) -> Result<(), Failure> {
    let options = GcOptions {
        dry_run,
        grace: Duration::from_secs(grace_secs),
        upload_ttl: Duration::from_secs(upload_ttl_secs),
    };
    let report: GcReport = match admin_client(target)? {
        Some(c) => serde_json::from_value(c.call(
            "POST",
            "/api/v1/gc",
            Some(serde_json::json!({"dry_run": dry_run, "grace_secs": grace_secs, "upload_ttl_secs": upload_ttl_secs})),
        )?)
        .map_err(|e| Failure::Runtime(e.to_string()))?,
        None => super::repos::offline(target, |r| Box::pin(async move { r.gc(options).await }))?,
    };
    let verb = if report.dry_run {
        "would free"
    } else {
        "freed"
    };
    println!(
        "{verb} {} bytes in {} of {} blobs; {} unreferenced blobs kept (within the grace period); {} expired uploads",
        report.bytes_freed, report.blobs_deleted, report.blobs_total, report.blobs_recent, report.uploads_expired
    );
    for d in &report.deleted {
        println!("  {d}");
    }
    Ok(())
}
