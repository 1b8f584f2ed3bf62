//! The values stored in the metadata trees (JSON-encoded, so new optional fields can be added
//! without a migration).

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, RepoName};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRecord {
    pub created_at: u64,
    /// Markdown text shown to people browsing the registry.
    #[serde(default)]
    pub description: String,
    /// Anyone, logged in or not, may pull.
    #[serde(default)]
    pub public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    pub size: u64,
    pub linked_at: u64,
}

/// What the registry needs to know about a stored manifest without re-parsing its bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub media_type: String,
    pub size: u64,
    /// Config and layer blobs it references (those the registry holds).
    #[serde(default)]
    pub blobs: Vec<Digest>,
    /// Child manifests of an index.
    #[serde(default)]
    pub children: Vec<Digest>,
    #[serde(default)]
    pub subject: Option<Digest>,
    pub pushed_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: Digest,
    pub updated_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    pub repo: String,
    pub started_at: u64,
}

impl UploadRecord {
    pub fn new(repo: &RepoName) -> UploadRecord {
        UploadRecord {
            repo: repo.to_string(),
            started_at: super::now(),
        }
    }
}

/// A registry account: a person, or a robot (long-lived scoped credentials for CI and
/// edge nodes). Passwords are stored only as argon2id (or imported bcrypt) hashes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub password_hash: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    pub created_at: u64,
    /// Present for robot accounts: what the robot may do, and until when.
    #[serde(default)]
    pub robot: Option<RobotRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobotRecord {
    pub grants: Vec<GrantRecord>,
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// Actions on the repositories a glob matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub repos: String,
    pub actions: Vec<String>,
}

/// An access rule: who (`user:NAME`, `group:NAME`, `authenticated`, `anonymous`) may do
/// what on the repositories a glob matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    pub subject: String,
    pub repos: String,
    pub actions: Vec<String>,
}

/// A refresh token (docker's identity token), stored by the SHA-256 of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub user: String,
    pub created_at: u64,
    pub expires_at: u64,
}

/// Tags that can never be moved or deleted: repositories matching `repos`, tags matching
/// `tags` (globs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmutabilityRecord {
    pub repos: String,
    pub tags: String,
}

/// Which tags to keep in repositories matching `repos`: the newest `keep_last` and/or those
/// pushed within `keep_days`. Tags outside both are deleted when retention is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRecord {
    pub repos: String,
    #[serde(default)]
    pub keep_last: Option<u32>,
    #[serde(default)]
    pub keep_days: Option<u32>,
}

/// A storage quota: the repositories matching `repos` together may hold at most `max_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRecord {
    pub repos: String,
    pub max_bytes: u64,
}

/// When a tag in a mirrored repository was last confirmed with its upstream, and last pulled
/// (for evicting what nobody uses).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CacheRecord {
    pub checked_at: u64,
    pub used_at: u64,
}

/// A tag kept whatever retention or the disk guard would otherwise let go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinRecord {
    pub pinned_at: u64,
}

/// A blob whose bytes on disk failed an integrity check (`edgeyard fsck`). While it is
/// recorded, the blob is never served, and the next upload of its digest replaces the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorruptRecord {
    pub found_at: u64,
    /// Size of the file when it was found corrupt.
    pub size: u64,
    /// What its content hashed to.
    pub actual: String,
    /// Where the file was moved, when it was quarantined.
    #[serde(default)]
    pub quarantined: Option<String>,
}

/// A public key trusted to sign images, under the name the operator installed it by. The
/// PEM is kept as given; the registry parses it (and shows its fingerprint) when it loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustKeyRecord {
    pub pem: String,
    pub added_at: u64,
    #[serde(default)]
    pub purpose: KeyPurpose,
    #[serde(default)]
    pub source: TrustSource,
}

/// What a trusted key vouches for. Kept apart, so that the key a build pipeline signs images
/// with cannot also rewrite which keys and policies a site trusts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPurpose {
    /// It signs images (cosign key, or a notation trust store's CA).
    #[default]
    Images,
    /// It signs the trust keys and policies a bundle carries.
    TrustUpdates,
}

/// Where a trusted key or a trust policy came from, which says who may change it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustSource {
    /// The CLI, the admin API or the console.
    #[default]
    Manual,
    /// The configuration file's `[trust]` section: changed there, not through the CLI or
    /// the admin API.
    Config,
    /// The signed trust material of the last bundle imported: replaced by the next one.
    Bundle,
}

/// Which signatures an image needs before it is served from repositories matching `repos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicyRecord {
    pub repos: String,
    /// Names of installed keys (cosign) and CA certificates (the notation trust store).
    pub keys: Vec<String>,
    #[serde(default)]
    pub require: Require,
    #[serde(default)]
    pub mode: TrustMode,
    #[serde(default)]
    pub index: IndexTrust,
    /// For Notary Project signatures: the signers' certificate subjects trusted
    /// (`x509.subject: C=…, ST=…, O=…`); none (or `*`) trusts any the trust store vouches for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// Ignored in what the admin API is sent: what it adds is `manual`.
    #[serde(default)]
    pub source: TrustSource,
}

/// How many of a policy's keys must have signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Require {
    /// One signature by any of them.
    #[default]
    Any,
    /// One signature by each of them (every listed signer must have approved).
    Each,
}

/// What a policy does with an image that does not meet it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    /// Refuse to serve it.
    #[default]
    Enforce,
    /// Serve it, and log and count that it would have been refused.
    Audit,
}

/// How a multi-platform image (an index) is judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexTrust {
    /// The index carries the signature; the platform images it lists are trusted through it.
    #[default]
    Whole,
    /// Each platform image carries its own signature; the index is only a list.
    Platforms,
}
