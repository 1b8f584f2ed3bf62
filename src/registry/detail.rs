//! One tag in detail, for people checking a push (the web console's tag page): the manifest's
//! layers with their sizes, a summary of the image configuration, the images of a multi-arch
//! index, the immutability rule that protects the tag, and the referrers (signatures, SBOMs)
//! attached to it. Read-only; everything comes from stored manifests and config blobs.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde::Serialize;

use super::{blocking, Registry};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};

/// Config blobs larger than this are not read for the summary.
const CONFIG_MAX: u64 = 1 << 20;
/// Images of an index described in full; the rest are listed by digest and platform only.
const CHILDREN_MAX: usize = 32;

/// Media types of image configurations (other artifacts' configs are not summarised).
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

#[derive(Debug, Clone, Serialize)]
pub struct TagDetail {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// Manifest bytes plus every distinct blob the tag references (all images of an index).
    pub size: u64,
    pub pushed_at: u64,
    /// The immutability rule covering the tag, if any.
    pub immutable: Option<ImmutableRule>,
    #[serde(flatten)]
    pub image: ImageDetail,
    /// Images of an index or manifest list, with their platforms.
    pub platforms: Vec<PlatformImage>,
    /// Manifests whose subject is this one: signatures, attestations, SBOMs.
    pub referrers: Vec<ReferrerInfo>,
    /// Signatures and trust policies; absent when no policy covers the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<super::TrustStatus>,
}

/// The immutability rule that holds a tag, with its id (to name it in the refusal).
#[derive(Debug, Clone, Serialize)]
pub struct ImmutableRule {
    pub id: u64,
    #[serde(flatten)]
    pub rule: crate::meta::ImmutabilityRecord,
}

/// The layers and configuration of one image manifest (empty for an index).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageDetail {
    pub artifact_type: Option<String>,
    pub config: Option<ConfigSummary>,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// What an image's configuration says about how it runs. Environment variables are left
/// out: they are where people put secrets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigSummary {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    pub created: Option<String>,
    pub author: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Build steps recorded in the image's history.
    pub history: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    pub platform: String,
    pub digest: String,
    pub media_type: String,
    /// Its manifest plus its blobs.
    pub size: u64,
    /// Whether the registry holds this image (an index may name images never pushed here).
    pub present: bool,
    #[serde(flatten)]
    pub image: ImageDetail,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReferrerInfo {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: u64,
}

/// `os/architecture[/variant]` of an index entry's platform object.
pub fn platform_name(p: &serde_json::Value) -> String {
    let s = |k: &str| p[k].as_str().unwrap_or("");
    let mut name = format!("{}/{}", s("os"), s("architecture"));
    if !s("variant").is_empty() {
        name.push('/');
        name.push_str(s("variant"));
    }
    name
}

/// The summary of a parsed image configuration.
pub fn summarize_config(v: &serde_json::Value) -> ConfigSummary {
    let text = |x: &serde_json::Value| x.as_str().map(str::to_string);
    let list = |x: &serde_json::Value| {
        x.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
    };
    let c = &v["config"];
    ConfigSummary {
        os: text(&v["os"]),
        architecture: text(&v["architecture"]),
        variant: text(&v["variant"]),
        created: text(&v["created"]),
        author: text(&v["author"]),
        entrypoint: list(&c["Entrypoint"]),
        cmd: list(&c["Cmd"]),
        working_dir: text(&c["WorkingDir"]).filter(|s| !s.is_empty()),
        user: text(&c["User"]).filter(|s| !s.is_empty()),
        exposed_ports: c["ExposedPorts"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        labels: c["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        history: v["history"].as_array().map_or(0, Vec::len),
        ..ConfigSummary::default()
    }
}

impl Registry {
    /// A tag of `repo` in detail.
    pub async fn tag_detail(&self, repo: &RepoName, tag: &Tag) -> Result<TagDetail> {
        let reference = Reference::Tag(tag.clone());
        let top = self.get_manifest(repo, &reference)?;
        let rec = self.meta().manifest(repo, &top.digest)?.ok_or_else(|| {
            Error::code(ErrorCode::ManifestUnknown)
                .with_detail(serde_json::json!({ "reference": tag.as_str() }))
        })?;
        let pushed_at = self
            .meta()
            .tag(repo, tag)?
            .map_or(rec.pushed_at, |t| t.updated_at);
        let manifest = Manifest::parse(Some(&top.media_type), &top.bytes)
            .map_err(|e| Error::internal("reading a stored manifest", e.to_string()))?;
        // The same figure as the tags list: every platform's manifest and blobs, shared once.
        let size = self.image_size(repo, &rec)?;
        let mut platforms = Vec::new();
        let image = if manifest.kind.is_index() {
            for (i, child) in manifest.manifests.iter().enumerate() {
                let child_rec = self.meta().manifest(repo, &child.digest)?;
                let present = child_rec.is_some();
                let image = match child_rec.filter(|_| i < CHILDREN_MAX) {
                    Some(r) => {
                        self.image_detail(repo, &child.digest, &r.media_type)
                            .await?
                    }
                    None => ImageDetail::default(),
                };
                let own: u64 = image.layers.iter().map(|l| l.size).sum::<u64>()
                    + image.config.as_ref().map_or(0, |c| c.size);
                platforms.push(PlatformImage {
                    platform: child
                        .platform
                        .as_ref()
                        .map(platform_name)
                        .unwrap_or_else(|| "unknown".into()),
                    digest: child.digest.to_string(),
                    media_type: child.media_type.clone(),
                    size: child.size + own,
                    present,
                    image,
                });
            }
            ImageDetail::default()
        } else {
            self.image_of(repo, &manifest).await?
        };
        let immutable = self
            .immutable_rule(repo, tag.as_str())
            .map(|(id, rule)| ImmutableRule { id, rule });
        let referrers = self
            .meta()
            .referrers(repo, &top.digest)?
            .into_iter()
            .map(|d| ReferrerInfo {
                digest: d.digest.to_string(),
                media_type: d.media_type,
                artifact_type: d.artifact_type,
                size: d.size,
            })
            .collect();
        let trust = self.trust_status(repo, &top.digest, manifest.kind).await?;
        Ok(TagDetail {
            trust,
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest: top.digest.to_string(),
            media_type: top.media_type,
            size,
            pushed_at,
            immutable,
            image,
            platforms,
            referrers,
        })
    }

    /// Layers and config summary of the image manifest `digest` in `repo`.
    async fn image_detail(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
    ) -> Result<ImageDetail> {
        let Some(bytes) = self.meta().manifest_bytes(digest)? else {
            return Ok(ImageDetail::default());
        };
        match Manifest::parse(Some(media_type), &bytes) {
            Ok(m) => self.image_of(repo, &m).await,
            Err(_) => Ok(ImageDetail::default()),
        }
    }

    /// Layers and config summary of the parsed image manifest `m`.
    async fn image_of(&self, repo: &RepoName, m: &Manifest) -> Result<ImageDetail> {
        let layers = m
            .layers
            .iter()
            .map(|l| Layer {
                digest: l.digest.to_string(),
                media_type: l.media_type.clone(),
                size: l.size,
            })
            .collect();
        let config = match &m.config {
            Some(c) => {
                let mut summary = if IMAGE_CONFIGS.contains(&c.media_type.as_str()) {
                    self.read_config(repo, &c.digest, c.size)
                        .await?
                        .map(|v| summarize_config(&v))
                        .unwrap_or_default()
                } else {
                    ConfigSummary::default()
                };
                summary.digest = c.digest.to_string();
                summary.media_type = c.media_type.clone();
                summary.size = c.size;
                Some(summary)
            }
            None => None,
        };
        Ok(ImageDetail {
            artifact_type: m.artifact_type.clone(),
            config,
            layers,
        })
    }

    /// A small config blob of `repo`, parsed; `None` if absent, too large or not JSON.
    async fn read_config(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<serde_json::Value>> {
        if size > CONFIG_MAX || !self.meta().is_linked(repo, digest)? {
            return Ok(None);
        }
        let storage = self.storage().clone();
        let d = digest.clone();
        let bytes = blocking("reading an image config", move || {
            let mut out = Vec::new();
            if let Some(f) = storage.open_blob(&d)? {
                f.take(CONFIG_MAX).read_to_end(&mut out)?;
            }
            Ok(out)
        })
        .await?;
        Ok(serde_json::from_slice(&bytes).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_summaries_leave_the_environment_out() {
        let v = serde_json::json!({
            "architecture": "arm64", "variant": "v8", "os": "linux",
            "created": "2024-05-01T10:00:00Z",
            "config": {
                "Env": ["PASSWORD=secret"],
                "Entrypoint": ["/app"], "Cmd": ["--serve"], "WorkingDir": "/srv",
                "ExposedPorts": {"8080/tcp": {}},
                "Labels": {"org.opencontainers.image.version": "1.2"}
            },
            "history": [{}, {}]
        });
        let s = summarize_config(&v);
        assert_eq!(s.architecture.as_deref(), Some("arm64"));
        assert_eq!(s.entrypoint, Some(vec!["/app".to_string()]));
        assert_eq!(s.exposed_ports, vec!["8080/tcp"]);
        assert_eq!(s.labels["org.opencontainers.image.version"], "1.2");
        assert_eq!(s.history, 2);
        assert_eq!(s.user, None);
        assert!(!serde_json::to_string(&s).unwrap().contains("secret"));
        assert_eq!(
            platform_name(&serde_json::json!({"os":"linux","architecture":"arm","variant":"v7"})),
            "linux/arm/v7"
        );
    }
}
