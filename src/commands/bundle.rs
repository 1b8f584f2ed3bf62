//! `edgeyard export` and `edgeyard import`: image bundles for air-gapped sites.

use std::path::Path;

use crate::cli::{DataArgs, Target};
use crate::edge::{BundleProgress, Edge, TrustCarry};
use crate::oci::{Reference, RepoName};
use crate::registry::Registry;
use crate::trust::signing::SigningKey;

/// Ends the updating progress line on a terminal.
fn end_progress_line() {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

/// Progress output: one updating line on a terminal, a plain line per file otherwise.
fn progress(verb: &'static str) -> BundleProgress {
    use std::io::{IsTerminal, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    let tty = std::io::stderr().is_terminal();
    let (files, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    std::sync::Arc::new(move |path: &str, size: u64| {
        let n = files.fetch_add(1, Ordering::Relaxed) + 1;
        let total = bytes.fetch_add(size, Ordering::Relaxed) + size;
        if tty {
            eprint!("\r{verb}: {n} files, {:.1} MB   ", total as f64 / 1e6);
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{verb} {path} ({size} bytes)");
        }
    })
}

use super::Failure;

/// Progress of a transfer to or from a server: one updating line on a terminal, a plain
/// line every 64 MiB otherwise.
fn byte_progress(verb: &'static str) -> impl FnMut(u64) + Send + 'static {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let mut shown = 0u64;
    move |n: u64| {
        if tty && n >= shown + (1 << 20) {
            eprint!("\r{verb}: {:.1} MB   ", n as f64 / 1e6);
            let _ = std::io::stderr().flush();
            shown = n;
        } else if !tty && n >= shown + (64 << 20) {
            eprintln!("{verb} {n} bytes");
            shown = n;
        }
    }
}

/// A usage error unless `input` starts like a bundle; rewinds it.
fn check_is_bundle(path: &Path, input: &mut std::fs::File) -> Result<(), Failure> {
    use std::io::{Read, Seek};
    let mut start = Vec::with_capacity(512);
    input
        .by_ref()
        .take(512)
        .read_to_end(&mut start)
        .and_then(|_| input.rewind())
        .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
    match crate::edge::not_a_bundle(&start) {
        Some(why) => Err(Failure::Usage(format!(
            "{} is not an image bundle: {why}",
            path.display()
        ))),
        None => Ok(()),
    }
}

fn open(data: &DataArgs) -> Result<Registry, Failure> {
    super::open_registry(data, " (bundles work on the data directory)")
}

/// `NAME:TAG` (default tag `latest`) or `NAME@DIGEST`.
pub(super) fn parse_image(s: &str) -> Result<(RepoName, Reference), Failure> {
    crate::oci::parse_image(s).map_err(|e| Failure::Usage(format!("{s:?}: {e}")))
}

/// The private key `--sign-trust` names.
fn signing_key(path: &Path) -> Result<SigningKey, Failure> {
    let text =
        std::fs::read(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    SigningKey::from_pem(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

pub fn export(
    images: &[String],
    output: &Path,
    sign_trust: Option<&Path>,
    target: &Target,
) -> Result<(), Failure> {
    let parsed = images
        .iter()
        .map(|s| parse_image(s))
        .collect::<Result<Vec<_>, _>>()?;
    let carry = TrustCarry {
        sign_with: sign_trust.map(signing_key).transpose()?,
        skip: false,
    };
    if carry.sign_with.is_some() && target.server.is_some() {
        return Err(Failure::Usage(
            "--sign-trust works on the data directory (the private key stays on this machine): run the export without --server, the server stopped".into(),
        ));
    }
    let tmp = output.with_extension("partial");
    let file = std::fs::File::create(&tmp)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", tmp.display())))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    // Written to a .partial file and renamed at the end: a cut-off export never looks whole.
    let done = |r: Result<(), Failure>| {
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    };
    if let Some(c) = super::users::admin_client(target)? {
        done(
            c.download(
                "/api/v1/export",
                serde_json::json!({ "images": images }),
                &mut writer,
                byte_progress("received"),
            )
            .and_then(|n| {
                use std::io::Write;
                writer
                    .flush()
                    .map_err(|e| Failure::Runtime(e.to_string()))?;
                end_progress_line();
                eprintln!("received {n} bytes");
                Ok(())
            }),
        )?;
        std::fs::rename(&tmp, output)
            .map_err(|e| Failure::Runtime(format!("{}: {e}", output.display())))?;
        for i in images {
            println!("exported {i}");
        }
        println!("-> {}", output.display());
        return Ok(());
    }
    let registry = open(&target.data)?;
    let report = Edge::new(registry)
        .export(&parsed, writer, progress("exported"), &carry)
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure::Runtime(e.to_string())
        })?;
    end_progress_line();
    std::fs::rename(&tmp, output)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", output.display())))?;
    for i in &report.images {
        println!("exported {i}");
    }
    if let Some(t) = &report.trust {
        println!("with {t}");
    }
    println!(
        "{} blobs, {} bytes -> {}",
        report.blobs,
        report.bytes,
        output.display()
    );
    Ok(())
}

fn print_imported(report: &crate::edge::BundleReport) {
    for i in &report.images {
        println!("imported {i}");
    }
    if let Some(t) = &report.trust {
        println!("{t}");
    }
    println!("{} blobs stored, {} bytes", report.blobs, report.bytes);
}

pub fn import(
    file: &Path,
    repo: Option<&str>,
    without_trust: bool,
    target: &Target,
) -> Result<(), Failure> {
    let repo = match repo {
        Some(r) => Some(
            r.parse::<RepoName>()
                .map_err(|e| Failure::Usage(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(c) = super::users::admin_client(target)? {
        let mut query: Vec<String> = repo.iter().map(|r| format!("repo={r}")).collect();
        if without_trust {
            query.push("trust=skip".into());
        }
        let path = match query.is_empty() {
            true => "/api/v1/import".to_string(),
            false => format!("/api/v1/import?{}", query.join("&")),
        };
        let report: crate::edge::BundleReport =
            serde_json::from_value(c.upload(&path, file, byte_progress("sent"))?)
                .map_err(|e| Failure::Runtime(e.to_string()))?;
        end_progress_line();
        print_imported(&report);
        return Ok(());
    }
    let data = &target.data;
    let mut input = std::fs::File::open(file)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", file.display())))?;
    // Checked before the store is opened: a wrong file must not leave an empty one behind.
    check_is_bundle(file, &mut input)?;
    let registry = super::open_or_create_registry(data, " (bundles work on the data directory)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let report = runtime
        .block_on(Edge::new(registry.clone()).import(
            std::io::BufReader::with_capacity(1 << 20, input),
            repo,
            progress("read"),
            &TrustCarry {
                sign_with: None,
                skip: without_trust,
            },
        ))
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    registry
        .close()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    end_progress_line();
    print_imported(&report);
    Ok(())
}
