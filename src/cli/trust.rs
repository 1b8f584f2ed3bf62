//! `edgeyard trust ...`: content-trust keys and policies.

use std::path::PathBuf;

use clap::Subcommand;

use super::Target;

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Keys trusted to sign images (cosign's `cosign.pub`, a notation CA).
    #[command(subcommand)]
    Key(TrustKeyCommand),
    /// Which repositories serve only signed images, signed by which keys.
    #[command(subcommand)]
    Policy(TrustPolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum TrustKeyCommand {
    /// Install a public key (cosign) or a CA certificate (notation) under a name.
    ///
    /// A PEM `PUBLIC KEY` (ECDSA P-256 or P-384, RSA, Ed25519) or `CERTIFICATE`. Its
    /// fingerprint is printed, to compare with the signer's.
    Add {
        /// The name policies use for it, e.g. `release`.
        name: String,
        /// The PEM file (`-`: standard input).
        file: PathBuf,
        /// `images`: it signs images; `trust-updates`: it signs the trust keys and policies
        /// a bundle carries (`edgeyard export --sign-trust`), which an import then applies.
        #[arg(long, default_value = "images", value_parser = ["images", "trust-updates"])]
        purpose: String,
        #[command(flatten)]
        target: Target,
    },
    /// List installed keys with their fingerprints.
    List {
        /// Print JSON (with each key's PEM).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a key (refused while a policy names it).
    Del {
        /// The key's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustPolicyCommand {
    /// Require signatures for repositories, e.g. `--repos 'prod/**' --key release`.
    Add {
        /// Repositories it covers (a glob: `*` within a path segment, `**` across).
        #[arg(long)]
        repos: String,
        /// An installed key whose signature counts (repeat for several).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// `any`: one signature by any listed key; `each`: one by every listed key.
        #[arg(long, default_value = "any", value_parser = ["any", "each"])]
        require: String,
        /// `enforce`: refuse unsigned images; `audit`: serve them, log and count.
        #[arg(long, default_value = "enforce", value_parser = ["enforce", "audit"])]
        mode: String,
        /// `whole`: an index is signed as a whole and vouches for its platform images;
        /// `platforms`: each platform image carries its own signature.
        #[arg(long, default_value = "whole", value_parser = ["whole", "platforms"])]
        index: String,
        /// For Notary Project signatures: a trusted signer, e.g. `x509.subject: C=DE,
        /// ST=Bavaria, O=Factory` (repeat for several; default: any the certificates vouch for).
        #[arg(long = "identity")]
        identities: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List trust policies with their ids.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a trust policy by id.
    Del {
        /// Its id, from `list`.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}
