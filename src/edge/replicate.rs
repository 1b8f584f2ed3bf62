//! Replication: copy images from this registry to another over the standard distribution
//! API, as `docker push` would, sending only the blobs the target lacks. Used by `push-to`
//! (once, for named images) and by `[[replication]]` rules (on a schedule, for repository
//! and tag globs).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::Answer;
use super::remote::{Remote, RemoteError, MANIFEST_ACCEPT};
use super::Edge;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::glob::glob_match;
use crate::oci::{Reference, RepoName, Tag};
use crate::registry::PAGE_MAX;
use crate::trust::{cosign, notation};

/// One `[[replication]]` table, validated.
#[derive(Clone)]
pub struct ReplicationRule {
    pub name: String,
    /// `https://host[:port]` of the target.
    pub url: String,
    pub credentials: Option<(String, String)>,
    pub roots: Vec<Vec<u8>>,
    /// Local repository globs.
    pub repositories: Vec<String>,
    /// Tag globs.
    pub tags: Vec<String>,
    /// How often the schedule runs it; `None`: only on demand.
    pub interval: Option<Duration>,
}

impl std::fmt::Debug for ReplicationRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationRule")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("repositories", &self.repositories)
            .field("tags", &self.tags)
            .field("interval", &self.interval)
            .finish()
    }
}

impl PartialEq for ReplicationRule {
    fn eq(&self, o: &Self) -> bool {
        format!("{self:?}") == format!("{o:?}")
            && self.credentials == o.credentials
            && self.roots == o.roots
    }
}

/// What pushing one image did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pushed {
    pub image: String,
    pub blobs_sent: u64,
    pub blobs_present: u64,
    pub manifests: u64,
    /// The target already had this exact manifest under the tag: nothing was sent.
    pub unchanged: bool,
}

/// What a replication run did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicationReport {
    pub pushed: Vec<Pushed>,
    pub failures: Vec<String>,
}

fn refused(what: String, a: &Answer) -> Error {
    Error::api(
        ErrorCode::Denied,
        format!(
            "the target refused {what}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ),
    )
}

fn unreachable(e: RemoteError) -> Error {
    Error::api(ErrorCode::UpstreamFailed, format!("the target: {e}"))
}

impl Edge {
    /// Pushes one image (a tag or a digest, with everything it references) to `remote`.
    pub async fn push_image(
        &self,
        remote: &Remote,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Pushed> {
        let closure = self.registry().image_closure(repo, reference)?;
        // What this registry would refuse to serve, it does not ship either.
        for m in &closure.manifests {
            self.registry().check_trusted(repo, m).await?;
        }
        let mut out = Pushed {
            image: format!("{repo}:{reference}"),
            ..Pushed::default()
        };
        let r = repo.as_str();
        const PUSH: &str = "pull,push";
        if let (Reference::Tag(t), Some(top)) = (reference, closure.manifests.last()) {
            let head = remote
                .send_small(
                    "HEAD",
                    r,
                    PUSH,
                    &format!("/v2/{r}/manifests/{t}"),
                    vec![("accept", MANIFEST_ACCEPT.into())],
                    vec![],
                )
                .await
                .map_err(unreachable)?;
            let there = head
                .headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok());
            if head.status == 200 && there == Some(top.digest.to_string().as_str()) {
                out.unchanged = true;
                return Ok(out);
            }
        }
        for (d, size) in &closure.blobs {
            let head = remote
                .send_small(
                    "HEAD",
                    r,
                    PUSH,
                    &format!("/v2/{r}/blobs/{d}"),
                    vec![],
                    vec![],
                )
                .await
                .map_err(unreachable)?;
            if head.status == 200 {
                out.blobs_present += 1;
                continue;
            }
            let start = remote
                .send_small(
                    "POST",
                    r,
                    PUSH,
                    &format!("/v2/{r}/blobs/uploads/"),
                    vec![],
                    vec![],
                )
                .await
                .map_err(unreachable)?;
            if start.status != 202 {
                return Err(refused(format!("an upload to {repo}"), &start));
            }
            let location = start
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| refused("to say where to upload".into(), &start))?;
            let location = if location.starts_with("http") {
                location.to_string()
            } else {
                format!("{}{location}", remote.base())
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let read = self.registry().read_blob(repo, d, None).await?;
            let put = remote
                .send(
                    "PUT",
                    r,
                    PUSH,
                    &format!("{location}{sep}digest={d}"),
                    vec![
                        ("content-type", "application/octet-stream".into()),
                        ("content-length", size.to_string()),
                    ],
                    read.body,
                )
                .await
                .map_err(unreachable)?;
            if put.status != 201 {
                return Err(refused(format!("blob {d}"), &put));
            }
            out.blobs_sent += 1;
        }
        let count = closure.manifests.len();
        for (i, m) in closure.manifests.iter().enumerate() {
            let target = match (i + 1 == count, reference) {
                (true, Reference::Tag(t)) => t.to_string(),
                _ => m.digest.to_string(),
            };
            let put = remote
                .send_small(
                    "PUT",
                    r,
                    PUSH,
                    &format!("/v2/{r}/manifests/{target}"),
                    vec![("content-type", m.media_type.clone())],
                    m.bytes.to_vec(),
                )
                .await
                .map_err(unreachable)?;
            if put.status != 201 {
                return Err(refused(format!("manifest {}", m.digest), &put));
            }
            out.manifests += 1;
        }
        Ok(out)
    }

    /// Pushes images to the registry at `url`, verified with `roots` (CA certificates,
    /// DER); for `push-to`.
    pub async fn push_images(
        &self,
        url: &str,
        credentials: Option<(String, String)>,
        roots: Vec<Vec<u8>>,
        images: &[(RepoName, Reference)],
    ) -> Result<Vec<Pushed>> {
        if url.starts_with("https://") && roots.is_empty() {
            return Err(Error::api(
                ErrorCode::Invalid,
                "no CA certificates to verify the target with: give its CA",
            ));
        }
        let remote = Remote::new(url, roots, credentials);
        let mut pushed = Vec::new();
        for (repo, reference) in images {
            pushed.extend(self.push_signed(&remote, repo, reference).await?);
        }
        Ok(pushed)
    }

    /// [`Edge::push_image`], then the image's signatures: cosign's (its `sha256-<hex>.sig`
    /// tag, when there is one) and Notary Project ones (its referrers of notation's
    /// artifact type, pushed by digest), so that the target can verify it too.
    async fn push_signed(
        &self,
        remote: &Remote,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Vec<Pushed>> {
        let image = self.push_image(remote, repo, reference).await?;
        let digest = self.registry().get_manifest(repo, reference)?.digest;
        let mut out = vec![image];
        if let Ok(tag) = cosign::signature_tag(&digest).parse::<Tag>() {
            let sig = Reference::Tag(tag);
            if self.registry().get_manifest(repo, &sig).is_ok() {
                out.push(self.push_image(remote, repo, &sig).await?);
            }
        }
        let notary = self.registry().referrers(
            repo,
            &digest,
            Some(notation::ARTIFACT_TYPE),
            None,
            usize::MAX,
        )?;
        for r in notary.manifests {
            out.push(
                self.push_image(remote, repo, &Reference::Digest(r.digest))
                    .await?,
            );
        }
        Ok(out)
    }

    /// Runs one replication rule: every matching tag of every matching repository.
    pub async fn replicate(&self, rule: &ReplicationRule) -> Result<ReplicationReport> {
        let remote = Remote::new(&rule.url, rule.roots.clone(), rule.credentials.clone());
        let reg = self.registry();
        let wanted = |name: &str| rule.repositories.iter().any(|g| glob_match(g, name));
        let repos = every_page(|last| reg.catalog(last, PAGE_MAX, &wanted))?;
        let mut report = ReplicationReport::default();
        for name in repos {
            let Ok(repo) = name.parse::<RepoName>() else {
                continue;
            };
            let tags = match every_page(|last| reg.tags(&repo, last, PAGE_MAX)) {
                Ok(t) => t,
                // Deleted since the catalog was read: nothing to push.
                Err(e) if e.error_code() == ErrorCode::NameUnknown => continue,
                Err(e) => return Err(e),
            };
            for tag in tags {
                if !rule.tags.iter().any(|g| glob_match(g, &tag)) {
                    continue;
                }
                let Ok(t) = tag.parse() else {
                    continue;
                };
                match self.push_signed(&remote, &repo, &Reference::Tag(t)).await {
                    Ok(p) => report.pushed.extend(p),
                    Err(e) => report.failures.push(format!("{repo}:{tag}: {e}")),
                }
            }
        }
        Ok(report)
    }

    /// Runs every rule (or the one named) now; no report when no rule is configured.
    pub async fn replicate_all(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<(String, ReplicationReport)>> {
        let rules = self.replication_rules();
        let chosen = super::chosen(
            &rules,
            name,
            |r| &r.name,
            |n| format!("no [[replication]] rule is named {n:?}"),
        )?;
        let mut out = Vec::new();
        for r in chosen {
            out.push((r.name.clone(), self.replicate(r).await?));
        }
        Ok(out)
    }
}

/// Every entry of a paged listing (the catalog, a repository's tags), page after page.
fn every_page(page: impl Fn(Option<&str>) -> Result<(Vec<String>, bool)>) -> Result<Vec<String>> {
    let mut all: Vec<String> = Vec::new();
    loop {
        let (items, more) = page(all.last().map(String::as_str))?;
        let done = !more || items.is_empty();
        all.extend(items);
        if done {
            return Ok(all);
        }
    }
}
