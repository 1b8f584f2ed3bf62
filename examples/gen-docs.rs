//! Writes edgeyard's man pages and shell completions, generated from the clap definitions in
//! `src/cli.rs`, so they can never drift from what `--help` says.
//!
//! ```text
//! cargo run --example gen-docs -- OUT_DIR
//! OUT_DIR/man/edgeyard.1, edgeyard-serve.1, edgeyard-user-add.1, ...   (roff, not compressed)
//! OUT_DIR/completions/edgeyard.bash, _edgeyard (zsh), edgeyard.fish
//! ```
//!
//! `scripts/package` runs it when it builds the packages (tests/package.rs includes this file
//! and calls [`generate`] itself). It is an example, not part of the binary, so the
//! generators (clap_mangen, clap_complete) add nothing to what edge boxes run.
//! The pages carry the date of SOURCE_DATE_EPOCH when set (reproducible builds), else today.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use edgeyard::cli::Cli;

/// What the main page says beyond the options: where things live, and the signals.
const MAIN_EXTRA: &str = r#".SH FILES
.TP
\fI/etc/edgeyard/edgeyard.toml\fR
The configuration the service reads (\fBedgeyard config check\fR validates a file). Every key
is optional; command-line flags and EDGEYARD_* environment variables override it.
.TP
\fI/var/lib/edgeyard\fR
The data directory of the service: blobs, metadata, the CA and server certificate (tls/),
users and tokens (auth/), and the first admin password (admin-password). Back it up whole.
.TP
\fI/var/lib/edgeyard/tls/ca.crt\fR
The registry's own CA, to be trusted by clients (\fBedgeyard cert trust\fR).
.SH ENVIRONMENT
.TP
\fBEDGEYARD_SERVER\fR, \fBEDGEYARD_USER\fR, \fBEDGEYARD_PASSWORD\fR
A running registry that administrative commands talk to, and the login they use, instead of
opening the data directory.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Reload the configuration file, certificates and trust.
.TP
\fBSIGTERM\fR
Finish requests in flight (up to 30 s), flush the metadata and exit.
.SH SEE ALSO
\fBdocker-login\fR(1), \fBskopeo\fR(1), \fBsystemd.service\fR(5)
"#;

#[allow(dead_code)] // (unused where tests/package.rs includes this file)
fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example gen-docs -- OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(count) => {
            println!(
                "{count} man pages and 3 completion scripts in {}",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-docs: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes `out/man/*.1` and `out/completions/*`; returns the number of man pages.
pub fn generate(out: &Path) -> std::io::Result<usize> {
    let man_dir = out.join("man");
    let completion_dir = out.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&completion_dir)?;

    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let date = page_date();
    let mut count = 0;
    write_pages(&cmd, "edgeyard", &date, &man_dir, &mut count)?;

    for (shell, file) in [
        (Shell::Bash, "edgeyard.bash"),
        (Shell::Zsh, "_edgeyard"),
        (Shell::Fish, "edgeyard.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "edgeyard", &mut text);
        std::fs::write(completion_dir.join(file), text)?;
    }
    Ok(count)
}

/// One page per command and subcommand, named as git names its pages (`edgeyard-user-add`),
/// so `man edgeyard-user-add` works and each page's SEE ALSO-style subcommand list resolves.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    date: &str,
    dir: &Path,
    count: &mut usize,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), date, dir, count)?;
    }
    let page = cmd.clone().display_name(name.to_string());
    let man = clap_mangen::Man::new(page)
        .date(date)
        .source(format!("edgeyard {}", env!("CARGO_PKG_VERSION")))
        .manual("edgeyard manual");
    let mut text = Vec::new();
    man.render(&mut text)?;
    if name == "edgeyard" {
        text.write_all(MAIN_EXTRA.as_bytes())?;
    }
    std::fs::write(dir.join(format!("{name}.1")), text)?;
    *count += 1;
    Ok(())
}

/// YYYY-MM-DD of SOURCE_DATE_EPOCH, else of now.
fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let day = time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!("{day}")
}
