//! The values stored in the metadata trees (JSON-encoded, so new optional fields can be added
//! without a migration).

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, RepoName};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRecord {
    pub created_at: u64,
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
