//! `edgeyard cert ...`: certificate commands that work on the data directory (also while the
//! server runs: it picks up changes at its next check or on SIGHUP) or on a client machine.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use super::cert_trust as trust;
use crate::cli::{CertCommand, DataArgs};
use crate::storage::files;
use crate::tls::info::{pem_certs, CertInfo};
use crate::tls::{load_or_create_ca, rotation_due, start_rotation, TlsPaths};

use super::Failure;

pub fn run(cmd: CertCommand) -> Result<(), Failure> {
    match cmd {
        CertCommand::Show { json, data } => show(json, &data),
        CertCommand::Trust {
            registry,
            from,
            fingerprint,
            yes,
            root,
            data,
        } => trust_cmd(&registry, from.as_deref(), &fingerprint, yes, &root, &data),
        CertCommand::IssueClient {
            name,
            out,
            days,
            data,
        } => issue_client(&name, &out, days, &data),
        CertCommand::RotateCa {
            overlap_days,
            overlap_secs,
            data,
        } => rotate(overlap_secs.unwrap_or(overlap_days * 86400), &data),
    }
}

/// The certificates of an existing store (a missing data directory is an error naming it,
/// rather than a new CA made in the wrong place).
fn paths(data: &DataArgs) -> Result<TlsPaths, Failure> {
    let file = super::load_file(data)?;
    Ok(TlsPaths::new(&super::existing_data_dir(data, &file)?))
}

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

fn describe_file(path: &Path, title: &str) -> Result<Option<String>, Failure> {
    let Some(bytes) = files::read_opt(path).map_err(rt)? else {
        return Ok(None);
    };
    let mut out = String::new();
    for der in pem_certs(&bytes) {
        out.push_str(
            &CertInfo::from_der(&der)
                .map_err(rt)?
                .describe(&format!("{title} ({})", path.display())),
        );
    }
    Ok(Some(out))
}

fn show(json: bool, data: &DataArgs) -> Result<(), Failure> {
    let p = paths(data)?;
    let certs = [
        (p.ca_cert(), "CA certificate", "ca"),
        (p.next_cert(), "Next CA (rotation pending)", "next_ca"),
        (p.server_cert(), "Server certificate", "server"),
    ];
    let rotation = rotation_due(&p).map_err(rt)?;
    if json {
        let mut out = serde_json::Map::new();
        for (path, _, key) in &certs {
            let Some(bytes) = files::read_opt(path).map_err(rt)? else {
                continue;
            };
            let certs = pem_certs(&bytes)
                .iter()
                .map(|der| CertInfo::from_der(der).map(|c| cert_json(&c, path)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(rt)?;
            out.insert(key.to_string(), certs.into());
        }
        if out.is_empty() {
            return Err(no_certificates(&p));
        }
        out.insert("rotation_at".into(), rotation.map(super::clock::iso).into());
        let text = serde_json::to_string_pretty(&out).map_err(rt)?;
        println!("{text}");
        return Ok(());
    }
    let mut any = false;
    for (path, title, _) in &certs {
        if let Some(text) = describe_file(path, title)? {
            print!("{text}");
            any = true;
        }
    }
    if let Some(at) = rotation {
        println!(
            "CA rotation: the next CA takes over at {}",
            super::clock::when_from(at, crate::meta::now())
        );
    }
    if !any {
        return Err(no_certificates(&p));
    }
    Ok(())
}

fn no_certificates(p: &TlsPaths) -> Failure {
    Failure::Runtime(format!(
        "no certificates under {} yet: `edgeyard serve` creates them on first start",
        p.dir.display()
    ))
}

/// One certificate for `cert show --json`.
fn cert_json(c: &CertInfo, path: &Path) -> serde_json::Value {
    let iso = |t: time::OffsetDateTime| super::clock::iso(t.unix_timestamp().max(0) as u64);
    serde_json::json!({
        "file": path.display().to_string(),
        "subject": c.subject,
        "issuer": c.issuer,
        "names": c.sans,
        "not_before": iso(c.not_before),
        "not_after": iso(c.not_after),
        "is_ca": c.is_ca,
        "sha256": c.fingerprint,
    })
}

fn ask(prompt: &str) -> bool {
    print!("{prompt} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}

fn trust_cmd(
    registry: &str,
    from: Option<&str>,
    pins: &[String],
    yes: bool,
    root: &Path,
    data: &DataArgs,
) -> Result<(), Failure> {
    trust::validate_registry(registry).map_err(Failure::Usage)?;
    let pem = match from {
        None => {
            // On the registry's own machine: the CA comes from the data directory.
            let p = paths(data)?;
            let mut pem = files::read_opt(&p.ca_cert()).map_err(rt)?.ok_or_else(|| {
                Failure::Runtime(format!(
                    "no CA at {}: run this on the registry machine, or use --from https://HOST:PORT",
                    p.ca_cert().display()
                ))
            })?;
            if let Some(next) = files::read_opt(&p.next_cert()).map_err(rt)? {
                pem.extend_from_slice(&next);
            }
            pem
        }
        Some(url) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(rt)?;
            let pem = runtime
                .block_on(trust::fetch_ca(url))
                .map_err(Failure::Runtime)?;
            let fps = trust::bundle_fingerprints(&pem);
            if fps.is_empty() {
                return Err(Failure::Runtime(format!(
                    "{url}/ca.crt holds no certificate"
                )));
            }
            for f in &fps {
                println!("CA fingerprint (SHA-256): {f}");
            }
            if !pins.is_empty() {
                if !trust::all_pinned(&pem, pins) {
                    return Err(Failure::Runtime(
                        "the downloaded CA does not match --fingerprint: refusing to trust it \
                         (someone may be intercepting the connection)"
                            .into(),
                    ));
                }
            } else if yes {
                println!("trusting it on first use (--yes)");
            } else if std::io::stdin().is_terminal() {
                if !ask("Compare with `edgeyard cert show` on the registry. Trust this CA?") {
                    return Err(Failure::Runtime("not trusted".into()));
                }
            } else {
                return Err(Failure::Usage(
                    "cannot ask for confirmation without a terminal: pass --fingerprint SHA256 \
                     (from `edgeyard cert show` on the registry) or --yes"
                        .into(),
                ));
            }
            pem
        }
    };
    for (path, w) in trust::install(root, registry, &pem).map_err(Failure::Runtime)? {
        let what = match w {
            trust::Written::Created => "wrote",
            trust::Written::Updated => "updated",
            trust::Written::Unchanged => "unchanged",
        };
        println!("{what} {}", path.display());
    }
    Ok(())
}

fn issue_client(name: &str, out: &Path, days: u64, data: &DataArgs) -> Result<(), Failure> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(Failure::Usage(
            "the client name must be 1 to 64 printable characters".into(),
        ));
    }
    let p = paths(data)?;
    if !p.ca_cert().exists() {
        return Err(Failure::Runtime(format!(
            "no CA at {}: start `edgeyard serve` once, or pass --data-dir",
            p.ca_cert().display()
        )));
    }
    let ca = load_or_create_ca(&p).map_err(rt)?;
    let issued = ca
        .issue_client(name, Duration::from_secs(days.max(1) * 86400))
        .map_err(rt)?;
    let key = out.join("client.key");
    let cert = out.join("client.cert");
    files::write_atomic(&key, issued.key_pem.as_bytes(), files::SECRET).map_err(rt)?;
    files::write_atomic(&cert, issued.cert_pem.as_bytes(), files::PUBLIC).map_err(rt)?;
    println!(
        "wrote {}\nwrote {} (mode 0600)",
        cert.display(),
        key.display()
    );
    println!("copy both into /etc/docker/certs.d/HOST:PORT/ on the client, next to ca.crt");
    Ok(())
}

fn rotate(overlap_secs: u64, data: &DataArgs) -> Result<(), Failure> {
    let p = paths(data)?;
    let (next, at) = start_rotation(&p, Duration::from_secs(overlap_secs)).map_err(rt)?;
    let info = CertInfo::from_pem(&next.cert_pem).map_err(rt)?;
    println!("new CA created: {}", p.next_cert().display());
    println!("  SHA-256: {}", info.fingerprint);
    println!(
        "it takes over at {}.",
        super::clock::when_from(at, crate::meta::now())
    );
    println!("Until then /ca.crt serves both CAs: run `edgeyard cert trust` on every client again");
    println!("before that time (with --fingerprint for each CA `edgeyard cert show` lists).");
    Ok(())
}
