//! Pull-through mirrors: repositories whose content comes from an upstream registry.
//!
//! A mirror covers a namespace: the repositories under its `prefix` (`hub/library/alpine` is
//! `library/alpine` upstream), or, for the one mirror without a prefix, the repositories its
//! globs match under their own names (what docker's `registry-mirrors` asks for). containerd
//! names the upstream in `?ns=HOST`; a request naming a mirror's upstream that way is served
//! from that mirror's namespace.
//!
//! A pull of something missing fetches it from the upstream, streaming a blob to the client
//! while storing it; later pulls are served from disk. A tag is confirmed with the upstream
//! again once it is older than the mirror's tag TTL; when the upstream cannot be reached the
//! cached copy is served instead (stale beats nothing on a factory floor). Mirrored
//! namespaces are read-only to clients.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::{BlobRead, ManifestContent, Registry};
use crate::error::{Error, ErrorCode, Result};
use crate::meta::{now, CacheRecord};
use crate::oci::glob::glob_match;
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag, UploadId};
use crate::remote::{Remote, RemoteError, RemoteManifest};
use crate::storage::{FileBody, UploadFile};

/// One configured upstream and the namespace it fills.
#[derive(Clone)]
pub struct MirrorSettings {
    /// A short name for logs, `sync` rules and the admin API.
    pub name: String,
    /// `https://host[:port]` (or `http://`).
    pub url: String,
    /// Local namespace: `prefix/NAME` mirrors upstream `NAME`. `None`: the default mirror.
    pub prefix: Option<String>,
    /// Which upstream repository names the mirror covers (globs; all when empty).
    pub repositories: Vec<String>,
    /// `?ns=` values (upstream host names) that containerd uses for this upstream.
    pub aliases: Vec<String>,
    pub credentials: Option<(String, String)>,
    /// CA certificates (DER) trusted for the upstream.
    pub roots: Vec<Vec<u8>>,
    /// How long a cached tag is served before it is confirmed with the upstream again.
    pub tag_ttl: Duration,
}

impl std::fmt::Debug for MirrorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("MirrorSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("repositories", &self.repositories)
            .field("aliases", &self.aliases)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("roots", &self.roots.len())
            .field("tag_ttl", &self.tag_ttl)
            .finish()
    }
}

impl PartialEq for MirrorSettings {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.name,
            &self.url,
            &self.prefix,
            &self.repositories,
            &self.aliases,
            &self.credentials,
            &self.roots,
            self.tag_ttl,
        ) == (
            &o.name,
            &o.url,
            &o.prefix,
            &o.repositories,
            &o.aliases,
            &o.credentials,
            &o.roots,
            o.tag_ttl,
        )
    }
}

/// A mirror in service: its settings and the client (with its token cache) for its upstream.
pub struct Mirror {
    pub settings: MirrorSettings,
    remote: Remote,
    /// After the upstream failed to answer, cached tags are served without asking it again
    /// until this time, so pulls do not each wait out a timeout while the uplink is down.
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Mirror {
    pub fn new(settings: MirrorSettings) -> Mirror {
        let remote = Remote::new(
            &settings.url,
            settings.roots.clone(),
            settings.credentials.clone(),
        );
        Mirror {
            settings,
            remote,
            down_until: std::sync::Mutex::new(None),
        }
    }

    fn upstream_down(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| std::time::Instant::now() < t)
    }

    /// Notes how a call to the upstream went.
    fn observe<T>(&self, r: &std::result::Result<T, RemoteError>) {
        let mut d = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Err(RemoteError::Unavailable(_)) => {
                *d = Some(std::time::Instant::now() + DOWN_BACKOFF);
            }
            _ => *d = None,
        }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Whether containerd's `?ns=` value names this mirror's upstream.
    fn answers_to(&self, ns: &str) -> bool {
        self.remote.authority() == ns || self.settings.aliases.iter().any(|a| a == ns)
    }

    fn covers(&self, upstream: &str) -> bool {
        self.settings.repositories.is_empty()
            || self
                .settings
                .repositories
                .iter()
                .any(|g| glob_match(g, upstream))
    }

    /// The local repository that holds upstream repository `upstream`.
    pub fn local_name(&self, upstream: &str) -> Option<RepoName> {
        match &self.settings.prefix {
            Some(p) => format!("{p}/{upstream}").parse().ok(),
            None => upstream.parse().ok(),
        }
    }
}

/// Where a request for a mirrored repository goes.
#[derive(Clone)]
pub struct MirrorRoute {
    pub mirror: Arc<Mirror>,
    /// The repository in this registry.
    pub local: RepoName,
    /// Its name upstream.
    pub upstream: String,
}

/// Refusal of a client write into a mirrored namespace.
fn read_only(repo: &RepoName, m: &Mirror) -> Error {
    Error::api(
        ErrorCode::Denied,
        format!(
            "repository {repo} is a read-only mirror of {} (mirror {:?}): push to a repository outside the mirrored namespace",
            m.settings.url, m.settings.name
        ),
    )
    .with_detail(serde_json::json!({ "name": repo.as_str(), "mirror": m.settings.name }))
}

fn not_cached(what: &str, m: &Mirror, e: &RemoteError) -> Error {
    Error::api(
        ErrorCode::ManifestUnknown,
        format!(
            "{what} is not in the cache and the upstream {} could not give it ({e})",
            m.settings.url
        ),
    )
}

/// How long an upstream that failed to answer is left alone (cached tags served as they are).
const DOWN_BACKOFF: Duration = Duration::from_secs(30);

/// Seconds a tag's "last used" stamp may lag, so a busy tag is not rewritten on every pull.
const USED_GRANULARITY: u64 = 60;

/// An upstream that sends nothing for this long is given up on.
const STALL: Duration = Duration::from_secs(60);

/// Bytes gathered before each write to the cache file.
const WRITE_BATCH: usize = 1 << 20;

impl Registry {
    /// Puts mirrors in service (at start, and when the configuration changes).
    pub fn set_mirrors(&self, mirrors: Vec<MirrorSettings>) {
        let list = mirrors
            .into_iter()
            .map(|m| Arc::new(Mirror::new(m)))
            .collect();
        *self
            .inner
            .mirrors
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
    }

    pub fn mirrors(&self) -> Arc<Vec<Arc<Mirror>>> {
        self.inner
            .mirrors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The mirror that serves `repo` (named as the client named it, with containerd's `ns`).
    pub fn mirror_route(&self, repo: &RepoName, ns: Option<&str>) -> Option<MirrorRoute> {
        let list = self.mirrors();
        let route = |m: &Arc<Mirror>, upstream: &str| {
            Some(MirrorRoute {
                mirror: m.clone(),
                local: m.local_name(upstream)?,
                upstream: upstream.to_string(),
            })
        };
        if let Some(ns) = ns.filter(|n| !n.is_empty()) {
            if let Some(m) = list.iter().find(|m| m.answers_to(ns)) {
                if m.covers(repo.as_str()) {
                    return route(m, repo.as_str());
                }
            }
        }
        for m in list.iter() {
            let Some(p) = &m.settings.prefix else {
                continue;
            };
            if let Some(rest) = repo.as_str().strip_prefix(p.as_str()) {
                if let Some(upstream) = rest.strip_prefix('/') {
                    return m.covers(upstream).then(|| route(m, upstream)).flatten();
                }
            }
        }
        list.iter()
            .find(|m| m.settings.prefix.is_none() && m.covers(repo.as_str()))
            .and_then(|m| route(m, repo.as_str()))
    }

    /// Refuses client writes (pushes, deletes) into a mirrored namespace.
    pub fn check_not_mirrored(&self, repo: &RepoName) -> Result<()> {
        match self.mirror_route(repo, None) {
            Some(r) => Err(read_only(repo, &r.mirror)),
            None => Ok(()),
        }
    }

    /// A manifest for a pull: from the store, or through the mirror that covers `repo`.
    pub async fn pull_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        ns: Option<&str>,
    ) -> Result<ManifestContent> {
        let Some(route) = self.mirror_route(repo, ns) else {
            return self.get_manifest(repo, reference);
        };
        let m = &route.mirror;
        let metrics = self.events();
        let tag = match reference {
            Reference::Digest(d) => {
                if let Ok(c) = self.get_manifest(&route.local, reference) {
                    metrics.mirror("hit");
                    return Ok(c);
                }
                return match m
                    .remote
                    .manifest(&route.upstream, &d.to_string(), false)
                    .await
                {
                    Ok(Some(fetched)) => {
                        let c = self.cache_manifest(&route, None, fetched).await?;
                        metrics.mirror("fetched");
                        Ok(c)
                    }
                    Ok(None) => {
                        metrics.mirror("failed");
                        Err(Error::code(ErrorCode::ManifestUnknown)
                            .with_detail(serde_json::json!({ "reference": d.to_string() })))
                    }
                    Err(e) => {
                        metrics.mirror("failed");
                        Err(not_cached(&format!("manifest {d}"), m, &e))
                    }
                };
            }
            Reference::Tag(t) => t,
        };
        let cached = self.get_manifest(&route.local, reference).ok();
        let record = self.meta().cache_record(&route.local, tag)?;
        let at = now();
        if let (Some(c), Some(r)) = (&cached, &record) {
            if at < r.checked_at.saturating_add(m.settings.tag_ttl.as_secs()) {
                if at >= r.used_at + USED_GRANULARITY {
                    let _ = self.meta().put_cache_record(
                        &route.local,
                        tag,
                        &CacheRecord {
                            used_at: at,
                            ..r.clone()
                        },
                    );
                }
                metrics.mirror("hit");
                return Ok(c.clone());
            }
        }
        if let (Some(c), true) = (&cached, m.upstream_down()) {
            metrics.mirror("stale");
            return Ok(c.clone());
        }
        // Ask the upstream what the tag is now: a HEAD is enough when it still matches.
        let head = m.remote.manifest(&route.upstream, tag.as_str(), true).await;
        m.observe(&head);
        let fetched = match head {
            Ok(Some(h)) if cached.as_ref().is_some_and(|c| c.digest == h.digest) => {
                self.mark_checked(&route.local, tag)?;
                metrics.mirror("revalidated");
                return cached.ok_or_else(|| Error::code(ErrorCode::ManifestUnknown));
            }
            Ok(Some(h)) => {
                m.remote
                    .manifest(&route.upstream, &h.digest.to_string(), false)
                    .await
            }
            // No digest in the HEAD answer: fetch the manifest itself.
            Err(RemoteError::Refused(200, _)) => {
                m.remote
                    .manifest(&route.upstream, tag.as_str(), false)
                    .await
            }
            other => other,
        };
        match (fetched, cached) {
            (Ok(Some(f)), _) => {
                let c = self.cache_manifest(&route, Some(tag), f).await?;
                metrics.mirror("fetched");
                Ok(c)
            }
            (result, Some(c)) => {
                let why = match result {
                    Err(e) => e.to_string(),
                    _ => "the upstream no longer has this tag".to_string(),
                };
                tracing::warn!(repo = %route.local, %tag, upstream = %m.settings.url, reason = %why, "serving a cached tag that could not be confirmed upstream");
                metrics.mirror("stale");
                Ok(c)
            }
            (Ok(None), None) => {
                metrics.mirror("failed");
                Err(Error::code(ErrorCode::ManifestUnknown)
                    .with_detail(serde_json::json!({ "reference": tag.as_str() })))
            }
            (Err(e), None) => {
                metrics.mirror("failed");
                Err(not_cached(&format!("{}:{tag}", route.local), m, &e))
            }
        }
    }

    pub(super) fn mark_checked(&self, local: &RepoName, tag: &Tag) -> Result<()> {
        let at = now();
        self.meta().put_cache_record(
            local,
            tag,
            &CacheRecord {
                checked_at: at,
                used_at: at,
            },
        )
    }

    /// Stores a manifest fetched from the upstream (its blobs follow when they are pulled).
    async fn cache_manifest(
        &self,
        route: &MirrorRoute,
        tag: Option<&Tag>,
        f: RemoteManifest,
    ) -> Result<ManifestContent> {
        let content_type = Some(f.media_type.as_str()).filter(|t| !t.is_empty());
        let manifest = Manifest::parse(content_type, &f.bytes).map_err(|e| {
            Error::api(
                ErrorCode::ManifestInvalid,
                format!("the upstream sent an invalid manifest: {e}"),
            )
        })?;
        match self
            .store_manifest(&route.local, &f.digest, tag, &manifest, &f.bytes)
            .await
        {
            Ok(()) => {}
            // An immutability rule holds the tag where it is: keep serving that.
            Err(e) if tag.is_some() && e.error_code() == ErrorCode::Denied => {
                tracing::warn!(repo = %route.local, error = %e, "mirrored tag not moved");
                if let Some(t) = tag {
                    return self.get_manifest(&route.local, &Reference::Tag(t.clone()));
                }
            }
            Err(e) => return Err(e),
        }
        if let Some(t) = tag {
            self.mark_checked(&route.local, t)?;
        }
        Ok(ManifestContent {
            media_type: manifest.kind.media_type().to_string(),
            digest: f.digest,
            bytes: f.bytes,
        })
    }

    /// Size of a blob for `HEAD`: from the store, else as the upstream announces it.
    pub async fn pull_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
        ns: Option<&str>,
    ) -> Result<u64> {
        let Some(route) = self.mirror_route(repo, ns) else {
            return self.stat_blob(repo, digest).await;
        };
        // A cached blob recorded corrupt is fetched again from the upstream (which heals it).
        let corrupt = self.meta().is_corrupt(digest)?;
        if self.meta().is_linked(&route.local, digest)? && !corrupt {
            return self.stat_blob(&route.local, digest).await;
        }
        match route
            .mirror
            .remote
            .blob(&route.upstream, digest, true)
            .await
        {
            Ok(Some((Some(size), _))) => Ok(size),
            _ => Err(Self::blob_unknown(digest)),
        }
    }

    /// A blob for a pull: from the store, or streamed from the upstream while it is stored.
    pub async fn pull_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<super::BlobRange>,
        ns: Option<&str>,
    ) -> Result<BlobRead> {
        let Some(route) = self.mirror_route(repo, ns) else {
            return self.read_blob(repo, digest, range).await;
        };
        let metrics = self.events();
        let corrupt = self.meta().is_corrupt(digest)?;
        if self.meta().is_linked(&route.local, digest)? && !corrupt {
            metrics.mirror("hit");
            return self.read_blob(&route.local, digest, range).await;
        }
        let remote = &route.mirror.remote;
        let upstream = match remote.blob(&route.upstream, digest, false).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                metrics.mirror("failed");
                return Err(Self::blob_unknown(digest));
            }
            Err(e) => {
                metrics.mirror("failed");
                return Err(Error::api(
                    ErrorCode::BlobUnknown,
                    format!(
                        "blob {digest} is not in the cache and the upstream {} could not give it ({e})",
                        route.mirror.settings.url
                    ),
                ));
            }
        };
        let (Some(size), body) = upstream else {
            return Err(Error::api(
                ErrorCode::BlobUnknown,
                "the upstream sent the blob without a Content-Length",
            ));
        };
        // The bytes may already be here for another repository: the upstream just confirmed
        // this repository may have them, so link instead of downloading again.
        if !corrupt && self.storage().blob_size(digest).ok().flatten() == Some(size) {
            drop(body);
            {
                let _shared = self.inner.gc_lock.read().await;
                self.meta().link_blob(&route.local, digest, size)?;
            }
            self.meta().flush().await?;
            metrics.mirror("hit");
            return self.read_blob(&route.local, digest, range).await;
        }
        let store = match self.check_free_space().await {
            Ok(()) => {
                let id =
                    UploadId::random().map_err(|e| Error::internal("drawing an upload id", e))?;
                match self.storage().create_upload(&id) {
                    Ok(f) => Some((id, f)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot create a cache file; passing the blob through");
                        None
                    }
                }
            }
            Err(_) => {
                tracing::warn!(%digest, "disk nearly full: passing a mirrored blob through without caching it");
                None
            }
        };
        metrics.mirror("fetched");
        let (tx, out) = FileBody::channel(size);
        let me = self.clone();
        let (local, d) = (route.local.clone(), digest.clone());
        tokio::spawn(async move {
            // Failures are logged inside; the client has seen its stream end in an error.
            let _ = me.tee(local, d, size, body, store, tx).await;
        });
        Ok(BlobRead {
            size,
            range: None,
            body: out,
        })
    }

    /// Copies an upstream blob to the client and into the cache file. The last piece is held
    /// back until the whole blob is verified, so a client never gets a clean end of bad bytes.
    /// A client that goes away does not stop the caching.
    pub(super) async fn tee(
        self,
        local: RepoName,
        digest: Digest,
        size: u64,
        mut body: hyper::body::Incoming,
        mut store: Option<(UploadId, UploadFile)>,
        tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    ) -> std::result::Result<(), String> {
        let mut client = Some(tx);
        // Bytes are hashed once: by the cache file as they are written (sha256), or here
        // when nothing is stored or the digest uses another algorithm.
        let mut hasher = (store.is_none() || digest.algorithm() != crate::oci::Algorithm::Sha256)
            .then(|| crate::oci::Hasher::new(digest.algorithm()));
        let mut held: Option<Bytes> = None;
        let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
        let mut got = 0u64;
        let failure: Option<String> = loop {
            let frame = match tokio::time::timeout(STALL, body.frame()).await {
                Err(_) => break Some(format!("the upstream sent nothing for {STALL:?}")),
                Ok(None) => break None,
                Ok(Some(Err(e))) => break Some(format!("reading from the upstream: {e}")),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            got += data.len() as u64;
            if got > size {
                break Some(format!(
                    "the upstream sent more than the {size} bytes it announced"
                ));
            }
            if let Some(h) = &mut hasher {
                h.update(&data);
            }
            if let Some(prev) = held.replace(data.clone()) {
                if let Some(c) = &client {
                    if c.send(Ok(prev)).await.is_err() {
                        client = None;
                    }
                }
            }
            if store.is_some() {
                pending.extend_from_slice(&data);
                if pending.len() >= WRITE_BATCH {
                    match write(self.storage(), store.take(), std::mem::take(&mut pending)).await {
                        Ok(s) => store = s,
                        Err(e) => {
                            tracing::error!(error = %e, "writing a mirrored blob failed; passing it through");
                        }
                    }
                }
            }
            if client.is_none() && store.is_none() {
                return Err("the client went away and the blob could not be cached".into());
            }
        };
        let mut failure = match failure {
            None if got != size => Some(format!("the upstream sent {got} of {size} bytes")),
            f => f,
        };
        if failure.is_none() {
            match write(self.storage(), store.take(), std::mem::take(&mut pending)).await {
                Ok(s) => store = s,
                Err(e) => tracing::error!(error = %e, "writing a mirrored blob failed"),
            }
            let actual = match (hasher, &store) {
                (Some(h), _) => Some(h.finish()),
                (None, Some((_, f))) => Some(f.digest()),
                // The cache file failed midway and held the only hash.
                (None, None) => None,
            };
            failure = match actual {
                None => {
                    Some("a write to the cache failed, so the bytes could not be verified".into())
                }
                Some(a) if a != digest => Some(format!("the upstream sent bytes with digest {a}")),
                Some(_) => None,
            };
        }
        if let Some(why) = failure {
            tracing::error!(%digest, repo = %local, reason = %why, "mirrored blob refused");
            self.events().mirror("failed");
            if let Some(c) = &client {
                let _ = c.send(Err(std::io::Error::other(why.clone()))).await;
            }
            if let Some((id, f)) = store {
                drop(f);
                let _ = self.storage().remove_upload(&id);
            }
            return Err(why);
        }
        if let Some(c) = client.take() {
            if let Some(last) = held.take() {
                let _ = c.send(Ok(last)).await;
            }
        }
        let Some((id, f)) = store else {
            return Err("the blob could not be cached (see the log)".into());
        };
        self.commit_mirrored(&local, &digest, id, f)
            .await
            .map_err(|e| {
                tracing::error!(%digest, repo = %local, error = %e, "caching a mirrored blob failed");
                e.to_string()
            })
    }

    /// Commits a cache file the tee verified as the blob and links it into `local`.
    async fn commit_mirrored(
        &self,
        local: &RepoName,
        digest: &Digest,
        id: UploadId,
        file: UploadFile,
    ) -> Result<()> {
        let size = file.len();
        let _shared = self.inner.gc_lock.read().await;
        self.commit_blob(&id, file, digest).await?;
        self.meta().link_blob(local, digest, size)?;
        drop(_shared);
        self.meta().flush().await
    }
}

/// Appends `bytes` to the cache file on a blocking thread; on failure the file is removed.
async fn write(
    storage: &crate::storage::Storage,
    store: Option<(UploadId, UploadFile)>,
    bytes: Vec<u8>,
) -> std::io::Result<Option<(UploadId, UploadFile)>> {
    let Some((id, mut f)) = store else {
        return Ok(None);
    };
    if bytes.is_empty() {
        return Ok(Some((id, f)));
    }
    let id2 = id.clone();
    let result = match tokio::task::spawn_blocking(move || f.append(&bytes).map(|()| f)).await {
        Ok(Ok(f)) => return Ok(Some((id, f))),
        Ok(Err(e)) => e,
        Err(e) => std::io::Error::other(e),
    };
    let _ = storage.remove_upload(&id2);
    Err(result)
}
