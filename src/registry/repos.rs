//! Repository information for people and operators: size, tags with their details,
//! descriptions, and deleting a whole repository.

use std::collections::HashSet;

use serde::Serialize;

use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Manifest, MediaKind, RepoName};

/// Longest repository description accepted.
pub const DESCRIPTION_MAX: usize = 64 << 10;

#[derive(Debug, Clone, Serialize)]
pub struct RepoInfo {
    pub name: String,
    pub tags: usize,
    /// Bytes of the blobs and manifests it references, each counted once.
    pub size: u64,
    pub last_push: Option<u64>,
    pub created_at: u64,
    pub description: String,
    pub public: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// Manifest plus the blobs it references; for an index, every child manifest and its
    /// blobs too, shared blobs counted once (see `Registry::image_size`).
    pub size: u64,
    pub pushed_at: u64,
    /// `os/architecture[/variant]` of each image of an index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    pub immutable: bool,
    /// How many manifests name this one as their subject (signatures, SBOMs, attestations).
    pub referrers: usize,
    /// Whether the image meets the trust policies of its repository; absent when none
    /// covers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<bool>,
}

impl Registry {
    fn unknown_repo(repo: &RepoName) -> Error {
        Error::code(ErrorCode::NameUnknown)
            .with_detail(serde_json::json!({ "name": repo.as_str() }))
    }

    /// Summary of one repository.
    pub fn repository(&self, repo: &RepoName) -> Result<RepoInfo> {
        let rec = self
            .meta()
            .repo_record(repo)?
            .ok_or_else(|| Self::unknown_repo(repo))?;
        let links = self.meta().links_of(repo)?;
        let manifests = self.meta().manifests_of(repo)?;
        let referenced: HashSet<_> = manifests
            .iter()
            .flat_map(|(_, m)| m.blobs.iter().cloned())
            .collect();
        let blob_bytes: u64 = links
            .iter()
            .filter(|(d, _)| referenced.contains(d))
            .map(|(_, l)| l.size)
            .sum();
        let manifest_bytes: u64 = manifests.iter().map(|(_, m)| m.size).sum();
        Ok(RepoInfo {
            name: repo.to_string(),
            tags: self.meta().tags_of(repo)?.len(),
            size: blob_bytes + manifest_bytes,
            last_push: manifests.iter().map(|(_, m)| m.pushed_at).max(),
            created_at: rec.created_at,
            description: rec.description,
            public: rec.public,
        })
    }

    /// Every repository `visible` accepts, in name order. One deleted while the list is
    /// made is left out.
    pub fn repositories(&self, visible: &dyn Fn(&str) -> bool) -> Result<Vec<RepoInfo>> {
        let (names, _) = self.meta().list_repos(None, usize::MAX, visible)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names.iter().filter_map(|n| n.parse::<RepoName>().ok()) {
            match self.repository(&name) {
                Ok(info) => out.push(info),
                Err(e) if e.error_code() == ErrorCode::NameUnknown => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub async fn set_description(&self, repo: &RepoName, text: &str) -> Result<()> {
        self.update_repository(repo, None, Some(text)).await
    }

    /// Changes visibility and/or description.
    pub async fn update_repository(
        &self,
        repo: &RepoName,
        public: Option<bool>,
        description: Option<&str>,
    ) -> Result<()> {
        if description.is_some_and(|t| t.len() > DESCRIPTION_MAX) {
            return Err(Error::api(
                ErrorCode::Invalid,
                "descriptions are limited to 64 KiB",
            ));
        }
        let mut rec = self
            .meta()
            .repo_record(repo)?
            .ok_or_else(|| Self::unknown_repo(repo))?;
        if let Some(p) = public {
            rec.public = p;
        }
        if let Some(t) = description {
            rec.description = t.to_string();
        }
        self.meta().put_repo_record(repo, &rec)?;
        self.meta().flush().await
    }

    /// Creates an empty repository (needed first when creation is explicit).
    pub async fn create_repository(
        &self,
        repo: &RepoName,
        public: bool,
        description: &str,
    ) -> Result<()> {
        if description.len() > DESCRIPTION_MAX {
            return Err(Error::api(
                ErrorCode::Invalid,
                "descriptions are limited to 64 KiB",
            ));
        }
        if self.meta().repo_exists(repo)? {
            return Err(Error::api(
                ErrorCode::Conflict,
                format!("repository {repo} exists already"),
            ));
        }
        let rec = crate::meta::RepoRecord {
            created_at: crate::meta::now(),
            description: description.to_string(),
            public,
        };
        self.meta().put_repo_record(repo, &rec)?;
        self.meta().flush().await
    }

    /// Each tag with what it points at.
    pub async fn tag_details(&self, repo: &RepoName) -> Result<Vec<TagInfo>> {
        if !self.meta().repo_exists(repo)? {
            return Err(Self::unknown_repo(repo));
        }
        let mut out = Vec::new();
        for (tag, digest) in self.meta().tags_of(repo)? {
            let Some(m) = self.meta().manifest(repo, &digest)? else {
                continue;
            };
            let tag_rec = tag
                .parse()
                .ok()
                .and_then(|t| self.meta().tag(repo, &t).ok().flatten());
            let size = self.image_size(repo, &m)?;
            let platforms = if m.children.is_empty() {
                Vec::new()
            } else {
                self.meta()
                    .manifest_bytes(&digest)?
                    .and_then(|b| Manifest::parse(Some(&m.media_type), &b).ok())
                    .map(|idx| {
                        idx.manifests
                            .iter()
                            .filter_map(|c| c.platform.as_ref())
                            .map(super::detail::platform_name)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let kind = MediaKind::from_media_type(&m.media_type);
            let trusted = match kind {
                Some(kind) => self.trust_status(repo, &digest, kind).await?.map(|s| s.met),
                None => None,
            };
            out.push(TagInfo {
                trusted,
                immutable: self.immutable_rule(repo, &tag).is_some(),
                referrers: self.meta().referrers(repo, &digest)?.len(),
                tag,
                digest: digest.to_string(),
                media_type: m.media_type.clone(),
                size,
                pushed_at: tag_rec.map(|t| t.updated_at).unwrap_or(m.pushed_at),
                platforms,
            });
        }
        Ok(out)
    }

    /// What pulling every platform of an image would fetch: its manifest, for an index each
    /// child manifest as well, and every blob they reference, counted once (the platforms of
    /// a multi-arch image usually share some layers). Children stored elsewhere or not at
    /// all count nothing; an index nested in an index counts as its manifest only.
    pub(super) fn image_size(
        &self,
        repo: &RepoName,
        m: &crate::meta::ManifestRecord,
    ) -> Result<u64> {
        let mut size = m.size;
        let mut blobs: HashSet<crate::oci::Digest> = m.blobs.iter().cloned().collect();
        for child in &m.children {
            if let Some(c) = self.meta().manifest(repo, child)? {
                size += c.size;
                blobs.extend(c.blobs);
            }
        }
        for d in &blobs {
            if let Some(l) = self.meta().link(repo.as_str(), d)? {
                size += l.size;
            }
        }
        Ok(size)
    }

    /// Deletes a repository (soft: its blobs go at the next garbage collection). Refused
    /// while it holds an immutable tag.
    pub async fn delete_repository(&self, repo: &RepoName) -> Result<()> {
        for (tag, _) in self.meta().tags_of(repo)? {
            if self.immutable_rule(repo, &tag).is_some() {
                return Err(self.immutable_error(repo, &tag, "deleted with its repository"));
            }
        }
        if !self.meta().delete_repository(repo)? {
            return Err(Self::unknown_repo(repo));
        }
        self.meta().flush().await
    }
}
