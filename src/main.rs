//! Entry point: parse the command line, run the subcommand, decide the exit code:
//! 0 success, 1 runtime failure, 2 bad usage or configuration, 3 a check found problems
//! (`fsck`).

use std::process::ExitCode;

use clap::Parser;
use edgeyard::cli::{Cli, Command};
use edgeyard::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Everything edgeyard writes into its data directory (argon2 hashes, keys, metadata,
    // blobs) is for it alone, whatever umask it was started with. Not for the commands that
    // write where other programs read: `cert trust` (container runtimes' certs.d) and
    // `install` (systemd's unit directory).
    let shared_output = matches!(
        cli.command,
        Command::Install { .. } | Command::Cert(edgeyard::cli::CertCommand::Trust { .. })
    );
    if !shared_output {
        edgeyard::storage::private_umask();
    }
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Cert(cmd) => commands::cert::run(cmd),
        Command::User(cmd) => commands::users::user(cmd),
        Command::Access(cmd) => commands::users::access(cmd),
        Command::Robot(cmd) => commands::users::robot(cmd),
        Command::Gc {
            dry_run,
            grace_secs,
            upload_ttl_secs,
            target,
        } => commands::gc::run(dry_run, grace_secs, upload_ttl_secs, &target),
        Command::Fsck {
            quarantine,
            json,
            target,
        } => commands::fsck::run(quarantine, json, &target),
        Command::Repo(cmd) => commands::repos::run(cmd),
        Command::Trust(cmd) => commands::trust::run(cmd),
        Command::PushTo {
            url,
            images,
            target_cacert,
            target,
        } => commands::push_to::run(&url, &images, target_cacert.as_deref(), &target),
        Command::Replicate { rule, target } => {
            commands::push_to::replicate(rule.as_deref(), &target)
        }
        Command::Export {
            images,
            output,
            sign_trust,
            target,
        } => commands::bundle::export(&images, &output, sign_trust.as_deref(), &target),
        Command::Import {
            file,
            repo,
            without_trust,
            target,
        } => commands::bundle::import(&file, repo.as_deref(), without_trust, &target),
        Command::Sync { mirror, target } => commands::sync::run(mirror.as_deref(), &target),
        Command::Config(edgeyard::cli::ConfigCommand::Check { file, config }) => {
            match file.or(config) {
                Some(file) => commands::config::check(&file),
                None => Err(commands::Failure::Usage(
                    "which file? config check FILE".into(),
                )),
            }
        }
        Command::Install {
            dry_run,
            root,
            no_enable,
        } => commands::install::run(commands::install::InstallArgs {
            root,
            dry_run,
            no_enable,
        }),
    };
    // Files the command wrote as root into the service's data directory go back to it.
    if let Err(e) = commands::ownership::give_back() {
        eprintln!(
            "edgeyard: warning: could not give the data directory's files back to its owner: {e}"
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // Logging may not be set up (or may be filtered); the reason must reach the user.
            eprintln!("edgeyard: {}", f.message());
            ExitCode::from(f.exit_code())
        }
    }
}
