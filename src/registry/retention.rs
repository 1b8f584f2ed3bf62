//! Retention: delete the tags a policy does not keep (newest N and/or pushed within D days),
//! never an immutable or a pinned one. Deletion is soft; garbage collection frees the space after.

use serde::Serialize;

use super::Registry;
use crate::error::Result;
use crate::meta::{now, RetentionRecord};
use crate::oci::glob::glob_match;
use crate::oci::{Reference, RepoName};

/// One tag a retention run deleted (or would delete).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Expired {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub rule: u64,
}

/// Which tags of `tags` (name, pushed at) a rule lets go: all but the newest `keep_last` and
/// those pushed within `keep_days` (a tag either keeps is kept).
pub fn expired_tags(rule: &RetentionRecord, mut tags: Vec<(String, u64)>, now: u64) -> Vec<String> {
    tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let recent_from = rule
        .keep_days
        .map(|d| now.saturating_sub(u64::from(d) * 86_400));
    tags.into_iter()
        .enumerate()
        .filter(|(i, (_, at))| {
            let by_count = rule.keep_last.is_some_and(|n| *i < n as usize);
            let by_age = recent_from.is_some_and(|from| *at >= from);
            !(by_count || by_age)
        })
        .map(|(_, (t, _))| t)
        .collect()
}

/// A pinned tag, as listed by the admin API.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Pin {
    pub repository: String,
    pub tag: String,
    pub pinned_at: u64,
}

impl Registry {
    /// Pins an existing tag: retention and cache eviction leave it alone.
    pub async fn pin(&self, repo: &RepoName, tag: &crate::oci::Tag) -> Result<()> {
        if self.meta().tag(repo, tag)?.is_none() {
            return Err(crate::error::Error::api(
                crate::error::ErrorCode::ManifestUnknown,
                format!("{repo}:{tag} does not exist"),
            ));
        }
        self.meta().pin(repo, tag)?;
        self.meta().flush().await
    }

    /// Unpins a tag; whether it was pinned.
    pub async fn unpin(&self, repo: &RepoName, tag: &crate::oci::Tag) -> Result<bool> {
        let was = self.meta().unpin(repo, tag)?;
        self.meta().flush().await?;
        Ok(was)
    }

    pub fn pins(&self) -> Result<Vec<Pin>> {
        Ok(self
            .meta()
            .pins(None)?
            .into_iter()
            .map(|(repository, tag, r)| Pin {
                repository,
                tag,
                pinned_at: r.pinned_at,
            })
            .collect())
    }

    /// Applies every retention rule; with `dry_run`, only lists what would go.
    pub async fn apply_retention(&self, dry_run: bool) -> Result<Vec<Expired>> {
        let rules = self.meta().retention_rules()?;
        let (repos, _) = self.meta().list_repos(None, usize::MAX, &|_| true)?;
        let mut out = Vec::new();
        for name in repos {
            let Ok(repo) = name.parse::<RepoName>() else {
                continue;
            };
            // The first matching rule decides for a repository.
            let Some((id, rule)) = rules.iter().find(|(_, r)| glob_match(&r.repos, &name)) else {
                continue;
            };
            let mut tags = Vec::new();
            let mut digests = std::collections::HashMap::new();
            for (tag, digest) in self.meta().tags_of(&repo)? {
                if self.immutable_rule(&repo, &tag).is_some()
                    || self.meta().is_pinned(&name, &tag)?
                {
                    continue; // never touched, and not counted against the others either
                }
                let at = match tag.parse() {
                    Ok(t) => self
                        .meta()
                        .tag(&repo, &t)?
                        .map(|r| r.updated_at)
                        .unwrap_or(0),
                    Err(_) => 0,
                };
                digests.insert(tag.clone(), digest);
                tags.push((tag, at));
            }
            for tag in expired_tags(rule, tags, now()) {
                if !dry_run {
                    let Ok(t) = tag.parse() else { continue };
                    self.delete_manifest(&repo, &Reference::Tag(t)).await?;
                }
                out.push(Expired {
                    repository: name.clone(),
                    digest: digests.get(&tag).map(|d| d.to_string()).unwrap_or_default(),
                    tag,
                    rule: *id,
                });
            }
        }
        if !dry_run && !out.is_empty() {
            tracing::info!(tags = out.len(), "retention deleted tags");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: u64, step: u64, now: u64) -> Vec<(String, u64)> {
        (0..n).map(|i| (format!("t{i}"), now - i * step)).collect()
    }

    #[test]
    fn keeps_newest_and_recent() {
        let now = 10_000_000;
        let last3 = RetentionRecord {
            repos: "**".into(),
            keep_last: Some(3),
            keep_days: None,
        };
        assert_eq!(
            expired_tags(&last3, tags(5, 86_400, now), now),
            vec!["t3", "t4"]
        );
        let days2 = RetentionRecord {
            repos: "**".into(),
            keep_last: None,
            keep_days: Some(2),
        };
        assert_eq!(
            expired_tags(&days2, tags(5, 86_400, now), now),
            vec!["t3", "t4"]
        );
        let either = RetentionRecord {
            repos: "**".into(),
            keep_last: Some(1),
            keep_days: Some(3),
        };
        assert_eq!(
            expired_tags(&either, tags(6, 86_400, now), now),
            vec!["t4", "t5"]
        );
        let none = RetentionRecord {
            repos: "**".into(),
            keep_last: None,
            keep_days: None,
        };
        assert_eq!(expired_tags(&none, tags(2, 1, now), now).len(), 2);
    }
}
