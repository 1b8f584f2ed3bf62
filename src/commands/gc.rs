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
    let (report, compacted): (GcReport, Option<(u64, u64)>) = match admin_client(target)? {
        Some(c) => serde_json::from_value(c.call(
            "POST",
            "/api/v1/gc",
            Some(serde_json::json!({"dry_run": dry_run, "grace_secs": grace_secs, "upload_ttl_secs": upload_ttl_secs})),
        )?)
        .map(|report| (report, None))
        .map_err(|e| Failure::Runtime(e.to_string()))?,
        // Offline, nothing else uses the store: the moment to give the space of deleted
        // records back to the disk.
        None => {
            let meter = super::progress::Meter::new("gc");
            let progress = meter.progress();
            let done = super::repos::offline(target, |r| {
                Box::pin(async move {
                    let report = r.gc_reporting(options, progress).await?;
                    let compacted = match dry_run {
                        true => None,
                        false => Some(r.compact_metadata().await?),
                    };
                    Ok((report, compacted))
                })
            });
            meter.finish();
            done?
        }
    };
    let verb = if report.dry_run {
        "would free"
    } else {
        "freed"
    };
    println!(
        "{verb} {} bytes in {} of {} blobs; {} untagged manifests {}; {} expired uploads",
        report.bytes_freed,
        report.blobs_deleted,
        report.blobs_total,
        report.manifests_deleted,
        if report.dry_run {
            "would go"
        } else {
            "deleted"
        },
        report.uploads_expired
    );
    if report.manifests_recent + report.blobs_recent > 0 {
        println!(
            "held by the grace period ({grace_secs} s): {} untagged manifests and {} unreferenced blobs; a later run frees them (--grace-secs 0: no grace)",
            report.manifests_recent, report.blobs_recent
        );
    }
    for d in &report.deleted {
        println!("  {d}");
    }
    if let Some((before, after)) = compacted {
        println!(
            "metadata store compacted: {:.1} MiB -> {:.1} MiB",
            before as f64 / (1 << 20) as f64,
            after as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
