//! Command-line definitions (clap) only; turning them into a config happens in `config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::tls::ClientAuth;

mod repo;
mod trust;
pub use repo::{ImmutableCommand, QuotaCommand, RepoCommand, RetentionCommand};
pub use trust::{TrustCommand, TrustKeyCommand, TrustPolicyCommand};

#[derive(Debug, Parser)]
#[command(
    name = "edgeyard",
    version,
    about = "A container registry for edge hardware"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry.
    Serve(ServeArgs),
    /// Certificates: show, trust the CA on a client, client certificates, CA rotation.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Registry users: add, change passwords, delete, list, import htpasswd.
    ///
    /// Like every administrative command: on a running registry with --server URL (or
    /// EDGEYARD_SERVER), else on the data directory with the server stopped.
    #[command(subcommand)]
    User(UserCommand),
    /// Access rules: who may pull, push, delete or administer which repositories.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Robot accounts: long-lived, revocable, scoped credentials for CI and edge nodes.
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Repositories: list, show, create, delete, tags, immutability, retention, quotas.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Content trust: signing keys, and which repositories serve only signed images.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Free the disk space of deleted images and abandoned uploads.
    Gc {
        /// Report what would be freed, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep anything committed, linked or referenced within this many seconds (0: no
        /// grace, not even for a push in progress).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        /// Expire upload sessions older than this many seconds.
        #[arg(long, default_value_t = 86400)]
        upload_ttl_secs: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Check the store: re-hash every blob, check manifests, links, tags and uploads.
    ///
    /// Corrupt blobs are recorded and no longer served; nothing is deleted. Exit status: 0
    /// clean (warnings allowed), 3 problems found, 1 the check could not run, 2 bad usage.
    Fsck {
        /// Move the files of corrupt blobs to <data-dir>/quarantine/sha256/ (kept as they
        /// are, never deleted).
        #[arg(long)]
        quarantine: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Write images to a bundle (an OCI layout tarball) for an offline site.
    ///
    /// On the data directory with the server stopped, or through --server. Every image and
    /// blob is checked to be here before anything is written.
    Export {
        /// Images to write: NAME:TAG or NAME@DIGEST (with their signatures).
        #[arg(required = true)]
        images: Vec<String>,
        /// The tarball to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Carry this registry's trust keys and policies too, signed with this private key
        /// (PEM, ECDSA P-256); sites that trust its public key for trust updates apply
        /// them on import (data directory only).
        #[arg(long, value_name = "KEYFILE")]
        sign_trust: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Load a bundle (OCI layout or `docker save` tarball), verifying every digest.
    ///
    /// Nothing is stored unless all of it checks out. On the data directory with the server
    /// stopped, or through --server.
    Import {
        /// The tarball (uncompressed).
        file: PathBuf,
        /// Repository for images the bundle names only by tag.
        #[arg(long)]
        repo: Option<String>,
        /// Leave the trust keys and policies the bundle carries aside (its images are still
        /// judged by the policies in force).
        #[arg(long)]
        without_trust: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Copy images to another registry, sending only the blobs it lacks.
    ///
    /// From the data directory with the server stopped, or through --server. Credentials
    /// for the target: `$EDGEYARD_PUSH_USER` and `$EDGEYARD_PUSH_PASSWORD`.
    PushTo {
        /// The target, e.g. https://central.factory:5000 (http:// for plain HTTP).
        url: String,
        /// Images to copy: NAME:TAG or NAME@DIGEST.
        #[arg(required = true)]
        images: Vec<String>,
        /// CA to verify the target with [default: the system's CA bundle].
        #[arg(long, value_name = "FILE")]
        target_cacert: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Run the configuration's [[replication]] rules now.
    ///
    /// Pushes every matching tag to its target, skipping what the target already has.
    Replicate {
        /// Only the rule of this name.
        #[arg(long)]
        rule: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Run the configuration's [[sync]] rules now: stage images for offline use.
    ///
    /// Fetches the rules' repositories and tags from their mirrors' upstreams (skipping
    /// what is already here), so this node can serve them offline. On the data directory
    /// (server stopped) or through --server.
    Sync {
        /// Only the rules of this [[mirror]].
        #[arg(long)]
        mirror: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Configuration files: check one.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Install this binary as a systemd service (as root; the packages do this too).
    ///
    /// Puts the binary in /usr/local/bin, the unit and a default configuration in place,
    /// and enables and starts the service.
    Install {
        /// Print the steps without doing them.
        #[arg(long)]
        dry_run: bool,
        /// Install below this directory instead of / (systemd is then left alone).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Write the files but do not enable or start the service.
        #[arg(long)]
        no_enable: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and print the configuration in effect.
    ///
    /// What is in effect: the file, then the environment, then the defaults. Also
    /// `edgeyard config check -c FILE`.
    Check {
        /// The file, e.g. /etc/edgeyard/edgeyard.toml.
        #[arg(required_unless_present = "config")]
        file: Option<PathBuf>,
        /// The same, given as the other commands take it.
        #[arg(
            short = 'c',
            long = "config",
            value_name = "FILE",
            conflicts_with = "file"
        )]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (without --password-stdin, a generated password is printed once).
    Add {
        /// The user's login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Administrators may do everything, including managing users.
        #[arg(long)]
        admin: bool,
        /// Group memberships (repeatable), for rules that name groups.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Change a user's password (and log out docker's stored logins of it).
    Passwd {
        /// The user.
        name: String,
        /// Read the new password from the first line of standard input (else one is
        /// generated and printed once).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user (and revoke its refresh tokens).
    Del {
        /// The user.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List users.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Import users from an htpasswd file (bcrypt entries, as Distribution uses).
    ///
    /// The bcrypt hashes are replaced with argon2id ones at each user's next login.
    ImportHtpasswd {
        /// The htpasswd file (NAME:BCRYPT-HASH lines, as `htpasswd -B` writes them).
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Add a rule, e.g. `--subject group:ci --repos 'team/**' --actions pull,push`.
    Add {
        /// user:NAME, group:NAME, authenticated, or anonymous.
        #[arg(long)]
        subject: String,
        /// Repository glob: `*` within a path segment, `**` across segments.
        #[arg(long)]
        repos: String,
        /// Comma-separated: pull, push, delete, admin.
        #[arg(long)]
        actions: String,
        #[command(flatten)]
        target: Target,
    },
    /// List rules with their ids.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a rule by id.
    Del {
        /// Its id, from `list`.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum RobotCommand {
    /// Create a robot (named robot$NAME); its secret is printed once.
    Add {
        /// The robot's name, without the robot$ prefix.
        name: String,
        /// What it may do: GLOB=ACTIONS, e.g. 'edge/**=pull' (repeatable).
        #[arg(long = "grant", value_name = "GLOB=ACTIONS", required = true)]
        grants: Vec<String>,
        /// Expire after this many days (default: never).
        #[arg(long)]
        expires_days: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// List robots with their grants and expiry.
    List {
        /// Print JSON (times in RFC 3339).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a robot.
    Del {
        /// Its name (with or without the robot$ prefix).
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the data directory and config file are, for commands that work on them offline.
#[derive(Debug, clap::Args, Clone)]
pub struct DataArgs {
    /// Where blobs, metadata and certificates live [default: ./edgeyard-data, or the config's]
    #[arg(long, value_name = "DIR", env = "EDGEYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file; flags given here override it.
    #[arg(long, short = 'c', value_name = "FILE", env = "EDGEYARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Where account commands act: the data directory (server stopped) or a running server.
#[derive(Debug, clap::Args, Clone)]
pub struct Target {
    #[command(flatten)]
    pub data: DataArgs,
    /// Use the admin API of a running server, e.g. https://edge-box:5000, as an admin
    /// (user `$EDGEYARD_USER`, default admin; password `$EDGEYARD_PASSWORD`).
    #[arg(long, value_name = "URL", env = "EDGEYARD_SERVER")]
    pub server: Option<String>,
    /// CA to verify --server with [default: the data directory's tls/ca.crt].
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on: IP:PORT, or PORT / :PORT for every interface (port 0 picks a
    /// free port; the bound address is logged).
    #[arg(long, value_name = "ADDR", env = "EDGEYARD_LISTEN", value_parser = crate::config::parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Serve plain HTTP instead of HTTPS (lab networks only; every client must list the
    /// registry under docker's insecure-registries).
    #[arg(long, env = "EDGEYARD_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// Log filter in RUST_LOG syntax, e.g. `info` or `edgeyard=debug` [default: $RUST_LOG or info]
    #[arg(long, value_name = "FILTER", env = "EDGEYARD_LOG")]
    pub log: Option<String>,
    /// Log lines as text or json.
    #[arg(long, value_name = "FORMAT", env = "EDGEYARD_LOG_FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
    /// Extra DNS name or IP address for the generated server certificate (repeatable).
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,
    /// Your own certificate chain (PEM) instead of the built-in CA; needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Client certificates (mutual TLS): none, optional or required.
    #[arg(long, value_name = "MODE")]
    pub client_auth: Option<ClientAuth>,
    /// Turn authentication off: anyone who reaches the port may push, pull and delete.
    /// For closed lab networks and tests only.
    #[arg(long, env = "EDGEYARD_NO_AUTH")]
    pub no_auth: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Print the CA and server certificates: names, expiry, SHA-256 fingerprints.
    Show {
        /// Print JSON (times in RFC 3339).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Trust the registry's CA on this machine (docker, containerd/k3s, podman).
    Trust {
        /// The registry as clients name it, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        registry: String,
        /// Download the CA from a running edgeyard, e.g. https://edge-box:5000.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// Expected SHA-256 fingerprint of the downloaded CA (repeat during a CA rotation).
        #[arg(long, value_name = "SHA256")]
        fingerprint: Vec<String>,
        /// Trust the downloaded CA without asking (prints its fingerprint).
        #[arg(long)]
        yes: bool,
        /// Install below this directory instead of / (for tests and image builds).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Sign a client certificate for mutual TLS (client.cert and client.key).
    ///
    /// The file names are the ones docker looks for in its certs.d folder.
    IssueClient {
        /// The client's name (certificate common name).
        name: String,
        /// Directory to write client.cert and client.key into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Start a CA rotation: a new CA now, taking over when the overlap ends.
    ///
    /// During the overlap the new CA is served next to the current one at /ca.crt, so
    /// clients can trust both before the switch.
    RotateCa {
        /// Days until the new CA takes over; update every client's trust before then.
        #[arg(long, default_value_t = 14)]
        overlap_days: u64,
        /// Overlap in seconds instead of days (tests, emergencies).
        #[arg(long, value_name = "SECS", conflicts_with = "overlap_days")]
        overlap_secs: Option<u64>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every problem of `cmd` and its subcommands: a summary longer than one line of a
    /// terminal (clap shows the first paragraph as the summary in lists), and arguments
    /// without a description.
    fn problems(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        if about.is_empty() || about.contains('\n') || about.chars().count() > 80 {
            out.push(format!("{path}: summary {about:?}"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() {
                out.push(format!("{path}: argument {id} has no description"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                problems(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
    }

    #[test]
    fn every_summary_is_one_line_and_every_argument_is_described() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut out = Vec::new();
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                problems(sub, &format!("edgeyard {}", sub.get_name()), &mut out);
            }
        }
        assert!(out.is_empty(), "{}", out.join("\n"));
    }
}
