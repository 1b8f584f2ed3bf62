//! `edgeyard install`: put this binary, the systemd unit and a default configuration in
//! place and enable the service. `--dry-run` prints the steps; `--root` installs below
//! another directory (image builds, tests) and then leaves systemd alone.

use std::path::{Path, PathBuf};

use crate::storage::files;

use super::Failure;

/// The unit and default configuration shipped in the repository, compiled in.
const UNIT: &str = include_str!("../../systemd/edgeyard.service");
const CONFIG: &str = include_str!("../../systemd/edgeyard.toml");

pub struct InstallArgs {
    pub root: PathBuf,
    pub dry_run: bool,
    pub no_enable: bool,
}

enum Step {
    Copy {
        from: PathBuf,
        to: PathBuf,
        mode: u32,
    },
    Write {
        to: PathBuf,
        bytes: &'static str,
        mode: u32,
        keep_existing: bool,
    },
    Run(Vec<&'static str>),
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Copy { from, to, mode } => {
                format!("install -m {mode:o} {} {}", from.display(), to.display())
            }
            Step::Write {
                to,
                mode,
                keep_existing,
                ..
            } => format!(
                "write {} (mode {mode:o}){}",
                to.display(),
                if *keep_existing {
                    ", unless it exists"
                } else {
                    ""
                }
            ),
            Step::Run(cmd) => cmd.join(" "),
        }
    }
}

pub fn run(args: InstallArgs) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Runtime(format!("cannot find this program: {e}")))?;
    let under = |p: &str| args.root.join(p.trim_start_matches('/'));
    let mut steps = vec![
        Step::Copy {
            from: exe,
            to: under("/usr/local/bin/edgeyard"),
            mode: 0o755,
        },
        Step::Write {
            to: under("/etc/systemd/system/edgeyard.service"),
            bytes: UNIT,
            mode: 0o644,
            keep_existing: false,
        },
        Step::Write {
            to: under("/etc/edgeyard/edgeyard.toml"),
            bytes: CONFIG,
            mode: 0o644,
            keep_existing: true,
        },
    ];
    // The unit runs with DynamicUser=: systemd allocates the service user itself.
    let system_root = args.root == Path::new("/");
    if system_root && !args.no_enable {
        steps.push(Step::Run(vec!["systemctl", "daemon-reload"]));
        steps.push(Step::Run(vec![
            "systemctl",
            "enable",
            "--now",
            "edgeyard.service",
        ]));
    }
    for step in &steps {
        println!(
            "{}{}",
            if args.dry_run { "would: " } else { "" },
            step.describe()
        );
        if args.dry_run {
            continue;
        }
        match step {
            Step::Copy { from, to, mode } => {
                let bytes = std::fs::read(from)
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", from.display())))?;
                files::write_atomic(to, &bytes, *mode)
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", to.display())))?;
            }
            Step::Write {
                to,
                bytes,
                mode,
                keep_existing,
            } => {
                if *keep_existing && to.exists() {
                    println!("  kept the existing {}", to.display());
                    continue;
                }
                files::write_atomic(to, bytes.as_bytes(), *mode)
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", to.display())))?;
            }
            Step::Run(cmd) => {
                let status = std::process::Command::new(cmd[0])
                    .args(&cmd[1..])
                    .status()
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", cmd[0])))?;
                if !status.success() {
                    return Err(Failure::Runtime(format!(
                        "`{}` failed ({status})",
                        cmd.join(" ")
                    )));
                }
            }
        }
    }
    if !args.dry_run && system_root && !args.no_enable {
        println!("edgeyard is running; the first admin password is in /var/lib/private/edgeyard/admin-password");
    }
    Ok(())
}
