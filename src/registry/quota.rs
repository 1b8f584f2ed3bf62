//! Storage quotas per namespace: the repositories a glob matches together hold at most so
//! many bytes (every blob linked into them once, plus their manifests). An upload into a
//! namespace at or over its quota is refused before any byte is written, and bytes that
//! would take a namespace over its quota are refused when they are committed.

use std::collections::HashMap;

use serde::Serialize;

use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::meta::QuotaRecord;
use crate::oci::glob::glob_match;
use crate::oci::RepoName;

#[derive(Debug, Clone, Serialize)]
pub struct QuotaUsage {
    pub id: u64,
    pub repos: String,
    pub max_bytes: u64,
    pub used_bytes: u64,
}

/// What a namespace holds: each linked blob once (by digest, with its size), and the sizes of
/// its manifests.
struct Holdings {
    blobs: HashMap<crate::oci::Digest, u64>,
    manifests: HashMap<crate::oci::Digest, u64>,
}

impl Holdings {
    fn bytes(&self) -> u64 {
        self.blobs.values().sum::<u64>() + self.manifests.values().sum::<u64>()
    }
}

impl Registry {
    /// What the repositories `glob` matches hold.
    fn holdings(&self, glob: &str) -> Result<Holdings> {
        let (names, _) = self
            .meta()
            .list_repos(None, usize::MAX, &|n| glob_match(glob, n))?;
        let mut h = Holdings {
            blobs: HashMap::new(),
            manifests: HashMap::new(),
        };
        for n in names {
            let Ok(repo) = n.parse::<RepoName>() else {
                continue;
            };
            for (d, link) in self.meta().links_of(&repo)? {
                h.blobs.insert(d, link.size);
            }
            for (d, m) in self.meta().manifests_of(&repo)? {
                h.manifests.insert(d, m.size);
            }
        }
        Ok(h)
    }

    /// Bytes held by the repositories `glob` matches: each linked blob once, plus manifests.
    fn namespace_usage(&self, glob: &str) -> Result<u64> {
        Ok(self.holdings(glob)?.bytes())
    }

    /// Every quota with what it holds now.
    pub fn quota_usage(&self) -> Result<Vec<QuotaUsage>> {
        self.meta()
            .quotas()?
            .into_iter()
            .map(|(id, q): (u64, QuotaRecord)| {
                Ok(QuotaUsage {
                    id,
                    used_bytes: self.namespace_usage(&q.repos)?,
                    repos: q.repos,
                    max_bytes: q.max_bytes,
                })
            })
            .collect()
    }

    /// Refuses a new upload into a namespace whose quota is used up.
    pub(crate) fn check_quota(&self, repo: &RepoName) -> Result<()> {
        self.check_quota_adding(repo, None)
    }

    /// Refuses to commit `content` (a blob or manifest of this digest and size) into `repo`
    /// when that would take its namespace over its quota. Content the namespace already
    /// holds adds nothing. Checked when bytes are committed (upload finish, mount, manifest
    /// PUT), not only when a session starts: one session may carry any number of bytes, and
    /// sessions opened under the quota may all complete.
    pub(crate) fn check_quota_adding(
        &self,
        repo: &RepoName,
        content: Option<(&crate::oci::Digest, u64, Content)>,
    ) -> Result<()> {
        for (id, q) in self.meta().quotas()? {
            if !glob_match(&q.repos, repo.as_str()) {
                continue;
            }
            let held = self.holdings(&q.repos)?;
            let used = held.bytes();
            let adding = match content {
                None => 0,
                Some((d, size, Content::Blob)) if !held.blobs.contains_key(d) => size,
                Some((d, size, Content::Manifest)) if !held.manifests.contains_key(d) => size,
                Some(_) => 0,
            };
            let over = if content.is_some() {
                used + adding > q.max_bytes && adding > 0
            } else {
                used >= q.max_bytes
            };
            if over {
                return Err(Error::api(
                    ErrorCode::Denied,
                    format!(
                        "storage quota {id} for repositories {} is used up ({used} of {} bytes{}): delete images and run garbage collection, or ask for more",
                        q.repos,
                        q.max_bytes,
                        if adding > 0 { format!(", {adding} more asked") } else { String::new() },
                    ),
                )
                .with_detail(serde_json::json!({ "quota": id, "used_bytes": used, "max_bytes": q.max_bytes, "adding_bytes": adding })));
            }
        }
        Ok(())
    }
}

/// What is being committed, for [`Registry::check_quota_adding`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Content {
    Blob,
    Manifest,
}
