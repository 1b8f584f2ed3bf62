//! Storage quotas per namespace: the repositories a glob matches together hold at most so
//! many bytes (every blob linked into them once, plus their manifests). An upload into a
//! namespace at or over its quota is refused before any byte is written.

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

impl Registry {
    /// Bytes held by the repositories `glob` matches: each linked blob once, plus manifests.
    fn namespace_usage(&self, glob: &str) -> Result<u64> {
        let (names, _) = self
            .meta()
            .list_repos(None, usize::MAX, &|n| glob_match(glob, n))?;
        let mut blobs: HashMap<crate::oci::Digest, u64> = HashMap::new();
        let mut manifests = 0;
        for n in names {
            let Ok(repo) = n.parse::<RepoName>() else {
                continue;
            };
            for (d, link) in self.meta().links_of(&repo)? {
                blobs.insert(d, link.size);
            }
            manifests += self
                .meta()
                .manifests_of(&repo)?
                .iter()
                .map(|(_, m)| m.size)
                .sum::<u64>();
        }
        Ok(blobs.values().sum::<u64>() + manifests)
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
        for (id, q) in self.meta().quotas()? {
            if !glob_match(&q.repos, repo.as_str()) {
                continue;
            }
            let used = self.namespace_usage(&q.repos)?;
            if used >= q.max_bytes {
                return Err(Error::api(
                    ErrorCode::Denied,
                    format!(
                        "storage quota {id} for repositories {} is used up ({used} of {} bytes): delete images and run garbage collection, or ask for more",
                        q.repos, q.max_bytes
                    ),
                )
                .with_detail(serde_json::json!({ "quota": id, "used_bytes": used, "max_bytes": q.max_bytes })));
            }
        }
        Ok(())
    }
}
