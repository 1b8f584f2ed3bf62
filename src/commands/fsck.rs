//! `edgeyard fsck`: check the store, on the data directory (server stopped) or through a
//! running server's admin API (`--server`). Exit status: 0 clean (warnings allowed), 3
//! problems found, 1 the check could not run, 2 bad usage.

use std::time::Duration;

use crate::cli::Target;
use crate::registry::{FsckOptions, FsckReport, Severity};

use super::users::admin_client;
use super::Failure;

/// How long `--server` waits for the report: the server hashes every blob first.
const SERVER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub fn run(quarantine: bool, json: bool, target: &Target) -> Result<(), Failure> {
    let options = FsckOptions {
        quarantine,
        metadata_pages: false,
    };
    let report: FsckReport = match admin_client(target)? {
        Some(c) => serde_json::from_value(c.call_within(
            "POST",
            "/api/v1/fsck",
            Some(serde_json::json!({ "quarantine": quarantine })),
            SERVER_TIMEOUT,
        )?)
        .map_err(|e| Failure::Runtime(format!("unexpected answer from the server: {e}")))?,
        None => {
            // Mirrors' repositories hold manifests whose blobs are fetched on demand: the
            // configuration says which they are, so their absent blobs are not reported.
            let file = super::load_file(&target.data)?;
            let (mirrors, _) = crate::config::mirrors_of(file.mirror, file.sync)?;
            // Offline, the store is ours alone: its pages are checked too.
            let options = FsckOptions {
                metadata_pages: true,
                ..options
            };
            let meter = super::progress::Meter::new("fsck");
            let progress = meter.progress();
            let report = super::repos::offline_edge(target, move |edge| {
                edge.set_mirrors(mirrors);
                Box::pin(async move { edge.registry().fsck_reporting(options, progress).await })
            });
            meter.finish();
            report?
        }
    };
    if json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Runtime(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", human(&report));
    }
    if report.errors > 0 {
        return Err(Failure::Problems(format!(
            "the store has {} problem{} (see above)",
            report.errors,
            if report.errors == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// One line per problem and per cleared mark, then a summary line.
fn human(r: &FsckReport) -> String {
    let mut out = String::new();
    for p in &r.problems {
        let severity = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "{severity:<7} {:<26} {}: {}\n",
            p.kind.as_str(),
            p.object,
            p.message
        ));
    }
    for d in &r.cleared {
        out.push_str(&format!(
            "cleared {:<26} {d}: recorded corrupt earlier; sound again or no longer needed\n",
            "corrupt_mark"
        ));
    }
    let listed = r.problems.len() as u64;
    if listed < r.errors + r.warnings {
        out.push_str(&format!(
            "(only the first {listed} of {} problems are listed)\n",
            r.errors + r.warnings
        ));
    }
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "checked {} ({} bytes hashed), {}, {}, {}, {} in {:.1} s: {}, {}{}\n",
        plural(r.blobs_checked, "blob"),
        r.bytes_hashed,
        plural(r.manifests_checked, "manifest"),
        plural(r.links_checked, "link"),
        plural(r.tags_checked, "tag"),
        plural(r.uploads_checked, "upload"),
        r.duration_ms as f64 / 1000.0,
        plural(r.errors, "error"),
        plural(r.warnings, "warning"),
        if r.quarantine {
            "; corrupt blobs quarantined"
        } else {
            ""
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Problem, ProblemKind};

    #[test]
    fn human_output_has_a_line_per_problem_and_a_summary() {
        let r = FsckReport {
            blobs_checked: 3,
            bytes_hashed: 1234,
            manifests_checked: 1,
            links_checked: 3,
            tags_checked: 1,
            duration_ms: 1500,
            errors: 1,
            problems: vec![Problem {
                kind: ProblemKind::BlobCorrupt,
                severity: Severity::Error,
                object: "sha256:ab".into(),
                message: "bad".into(),
            }],
            cleared: vec!["sha256:cd".into()],
            ..FsckReport::default()
        };
        let text = human(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("error   blob_corrupt"), "{text}");
        assert!(lines[0].ends_with("sha256:ab: bad"), "{text}");
        assert!(lines[1].contains("sha256:cd"), "{text}");
        assert_eq!(
            lines[2],
            "checked 3 blobs (1234 bytes hashed), 1 manifest, 3 links, 1 tag, 0 uploads in 1.5 s: 1 error, 0 warnings"
        );
    }
}
