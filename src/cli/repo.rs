//! `edgeyard repo ...`: repositories and the rules that govern them (immutability,
//! retention, quotas). Definitions only, like the rest of `cli`.

use clap::Subcommand;

use super::Target;

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Immutability rules: matching tags can be pushed once, never moved or deleted.
    #[command(subcommand)]
    Immutable(ImmutableCommand),
    /// Retention policies: keep the newest N tags and/or those pushed within D days.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Storage quotas per namespace, with their current usage.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// List repositories with tag count, size and last push.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Show a repository's description and tags (digest, size, platforms, pushed at).
    Show {
        /// The repository.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Create an empty repository (required before pushing when creation is explicit).
    Create {
        /// The repository.
        name: String,
        /// Anyone may pull it, logged in or not.
        #[arg(long)]
        public: bool,
        /// What it holds (markdown), shown by `repo show` and the console.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// Make a repository public (anonymous pull) or private.
    Visibility {
        /// The repository.
        name: String,
        /// public (anyone may pull) or private (logins and rules decide).
        #[arg(value_parser = ["public", "private"])]
        visibility: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set a repository's description (markdown).
    Describe {
        /// The repository.
        name: String,
        /// The description (markdown).
        #[arg(long)]
        text: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a tag, or a manifest with every tag on it (soft: gc frees the space).
    Rm {
        /// NAME:TAG, or NAME@sha256:... for the manifest and every tag on it.
        reference: String,
        #[command(flatten)]
        target: Target,
    },
    /// Pin a tag (`NAME:TAG`): retention and mirror-cache eviction never remove it.
    Pin {
        /// NAME:TAG.
        reference: String,
        #[command(flatten)]
        target: Target,
    },
    /// Unpin a tag (`NAME:TAG`).
    Unpin {
        /// NAME:TAG.
        reference: String,
        #[command(flatten)]
        target: Target,
    },
    /// List pinned tags.
    Pins {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a repository (its disk space returns at the next garbage collection).
    Delete {
        /// The repository.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Limit what the repositories a glob matches may hold together.
    ///
    /// E.g. `--repos 'line3/**' --max-bytes 10000000000`.
    Add {
        /// Repository glob: `*` within a path segment, `**` across segments.
        #[arg(long)]
        repos: String,
        /// Bytes they may hold together; pushes beyond it are refused.
        #[arg(long)]
        max_bytes: u64,
        #[command(flatten)]
        target: Target,
    },
    /// List quotas with the bytes they hold now.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a quota by id.
    Del {
        /// Its id, from `list`.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Add a policy, e.g. `--repos 'ci/**' --keep-last 10 --keep-days 30`.
    Add {
        /// Repository glob: `*` within a path segment, `**` across segments.
        #[arg(long)]
        repos: String,
        /// Keep the newest N tags of each repository.
        #[arg(long)]
        keep_last: Option<u32>,
        /// Keep tags pushed within this many days.
        #[arg(long)]
        keep_days: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// List policies with their ids.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a policy by id.
    Del {
        /// Its id, from `list`.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Delete the tags the policies do not keep (never immutable ones).
    Apply {
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImmutableCommand {
    /// Make tags immutable, e.g. `--repos 'prod/**' --tags 'v*'`.
    Add {
        /// Repository glob: `*` within a path segment, `**` across segments.
        #[arg(long)]
        repos: String,
        /// Tag glob (`*`: every tag).
        #[arg(long)]
        tags: String,
        #[command(flatten)]
        target: Target,
    },
    /// List immutability rules with their ids.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete an immutability rule by id.
    Del {
        /// Its id, from `list`.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}
