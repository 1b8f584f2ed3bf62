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
//! namespaces are read-only to clients (the registry asks `Edge`'s mirror list).
//!
//! This file holds what a mirror is and which one serves a repository; `pull.rs` the pulls
//! through it, `tee.rs` the copy of an upstream blob to the client and the cache.

use std::sync::Arc;
use std::time::Duration;

use super::remote::{Remote, RemoteError};
use crate::oci::glob::glob_match;
use crate::oci::RepoName;

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

    pub(super) fn upstream_down(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| std::time::Instant::now() < t)
    }

    /// Notes how a call to the upstream went.
    pub(super) fn observe<T>(&self, r: &std::result::Result<T, RemoteError>) {
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

/// The mirror that serves `repo` (named as the client named it, with containerd's `ns`):
/// the one whose upstream `ns` names, else the one whose prefix `repo` is under, else the
/// mirror without a prefix whose globs cover `repo`.
pub(super) fn route(
    list: &[Arc<Mirror>],
    repo: &RepoName,
    ns: Option<&str>,
) -> Option<MirrorRoute> {
    let to = |m: &Arc<Mirror>, upstream: &str| {
        Some(MirrorRoute {
            mirror: m.clone(),
            local: m.local_name(upstream)?,
            upstream: upstream.to_string(),
        })
    };
    if let Some(ns) = ns.filter(|n| !n.is_empty()) {
        if let Some(m) = list.iter().find(|m| m.answers_to(ns)) {
            if m.covers(repo.as_str()) {
                return to(m, repo.as_str());
            }
        }
    }
    for m in list {
        let Some(p) = &m.settings.prefix else {
            continue;
        };
        if let Some(rest) = repo.as_str().strip_prefix(p.as_str()) {
            if let Some(upstream) = rest.strip_prefix('/') {
                return m.covers(upstream).then(|| to(m, upstream)).flatten();
            }
        }
    }
    list.iter()
        .find(|m| m.settings.prefix.is_none() && m.covers(repo.as_str()))
        .and_then(|m| to(m, repo.as_str()))
}

/// How long an upstream that failed to answer is left alone (cached tags served as they are).
const DOWN_BACKOFF: Duration = Duration::from_secs(30);
