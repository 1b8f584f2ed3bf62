//! Everything that talks to other registries or carries images between sites: pull-through
//! mirrors, sync (fetching ahead of time), replication and `push-to`, bundles for air-gapped
//! sites, and the HTTP client and remote-registry speaker they use.
//!
//! This layer sits above `registry`: it decides what to fetch, from where, and when a cached
//! tag is stale; the registry stores what it brings through a narrow ingest API
//! (`registry::Incoming`, `commit_incoming`, `store_fetched_manifest`) and asks the edge,
//! through `registry::Mirrored`, which repositories a mirror fills.

mod admit;
pub mod bundle;
mod bundle_trust;
pub mod client;
mod mirror;
mod pull;
pub mod remote;
mod replicate;
mod sync;
mod tee;

use std::sync::{Arc, RwLock};

use crate::oci::RepoName;
use crate::registry::{MirrorOf, Mirrored, Registry};

pub use bundle::{not_a_bundle, BundleReport, Progress as BundleProgress, TrustCarry};
pub use mirror::{Mirror, MirrorRoute, MirrorSettings};
pub use replicate::{Pushed, ReplicationReport, ReplicationRule};
pub use sync::{SyncProgress, SyncReport, SyncRule};

/// The registry seen from the outside world: a cheap-to-clone handle over the registry and
/// the mirrors, sync rules and replication rules in force.
#[derive(Clone)]
pub struct Edge {
    registry: Registry,
    inner: Arc<Inner>,
}

struct Inner {
    /// Shared with the registry, which asks it which repositories are mirrored.
    mirrors: Arc<Mirrors>,
    sync_rules: RwLock<Arc<Vec<SyncRule>>>,
    replication: RwLock<Arc<Vec<ReplicationRule>>>,
}

/// The pull-through mirrors in service, replaced whole when the configuration changes.
#[derive(Default)]
struct Mirrors(RwLock<Arc<Vec<Arc<Mirror>>>>);

impl Mirrors {
    fn get(&self) -> Arc<Vec<Arc<Mirror>>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Mirrored for Mirrors {
    fn mirror_of(&self, repo: &RepoName) -> Option<MirrorOf> {
        let route = mirror::route(&self.get(), repo, None)?;
        Some(MirrorOf {
            name: route.mirror.settings.name.clone(),
            url: route.mirror.settings.url.clone(),
        })
    }
}

/// The rules `key` selects (every rule when it is `None`); NAME_UNKNOWN, saying `unknown`,
/// when a key selects none.
fn chosen<'a, R>(
    rules: &'a [R],
    key: Option<&str>,
    key_of: impl Fn(&R) -> &str,
    unknown: impl FnOnce(&str) -> String,
) -> crate::error::Result<Vec<&'a R>> {
    let out: Vec<&R> = rules
        .iter()
        .filter(|r| key.is_none_or(|k| key_of(r) == k))
        .collect();
    match key {
        Some(k) if out.is_empty() => Err(crate::error::Error::api(
            crate::error::ErrorCode::NameUnknown,
            unknown(k),
        )),
        _ => Ok(out),
    }
}

/// Replaces the contents of a rule list.
fn replace<T>(slot: &RwLock<Arc<T>>, value: T) {
    *slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
}

fn read<T>(slot: &RwLock<Arc<T>>) -> Arc<T> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Edge {
    /// The edge of `registry`, with no mirror or rule yet; it tells the registry which
    /// repositories its mirrors fill.
    pub fn new(registry: Registry) -> Edge {
        let mirrors = Arc::new(Mirrors::default());
        registry.set_mirrored(mirrors.clone());
        Edge {
            registry,
            inner: Arc::new(Inner {
                mirrors,
                sync_rules: RwLock::new(Arc::new(Vec::new())),
                replication: RwLock::new(Arc::new(Vec::new())),
            }),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Puts mirrors in service (at start, and when the configuration changes).
    pub fn set_mirrors(&self, mirrors: Vec<MirrorSettings>) {
        replace(
            &self.inner.mirrors.0,
            mirrors
                .into_iter()
                .map(|m| Arc::new(Mirror::new(m)))
                .collect(),
        );
    }

    pub fn mirrors(&self) -> Arc<Vec<Arc<Mirror>>> {
        self.inner.mirrors.get()
    }

    /// The mirror that serves `repo` (named as the client named it, with containerd's `ns`).
    pub fn mirror_route(&self, repo: &RepoName, ns: Option<&str>) -> Option<MirrorRoute> {
        mirror::route(&self.mirrors(), repo, ns)
    }

    /// The repository of this registry a client's `repo` (with containerd's `ns`) is kept
    /// in: a mirror's local repository, or `repo` itself.
    pub fn local_repo(&self, repo: &RepoName, ns: Option<&str>) -> RepoName {
        self.mirror_route(repo, ns)
            .map(|r| r.local)
            .unwrap_or_else(|| repo.clone())
    }

    /// The `[[sync]]` rules in force (replaced when the configuration changes).
    pub fn set_sync_rules(&self, rules: Vec<SyncRule>) {
        replace(&self.inner.sync_rules, rules);
    }

    pub fn sync_rules(&self) -> Arc<Vec<SyncRule>> {
        read(&self.inner.sync_rules)
    }

    /// The `[[replication]]` rules in force.
    pub fn set_replication_rules(&self, rules: Vec<ReplicationRule>) {
        replace(&self.inner.replication, rules);
    }

    pub fn replication_rules(&self) -> Arc<Vec<ReplicationRule>> {
        read(&self.inner.replication)
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorCode;

    #[test]
    fn rules_are_chosen_by_their_key_or_all_of_them() {
        let rules = ["line-1", "line-2", "line-1"].map(String::from);
        let pick = |key| super::chosen(&rules, key, |r| r.as_str(), |k| format!("no {k}"));
        assert_eq!(pick(None).unwrap().len(), 3);
        assert_eq!(pick(Some("line-1")).unwrap(), vec![&rules[0], &rules[2]]);
        let e = pick(Some("line-9")).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::NameUnknown);
        assert!(e.to_string().contains("no line-9"), "{e}");
        let none: [String; 0] = [];
        assert!(super::chosen(&none, None, |r| r.as_str(), |k| k.into())
            .unwrap()
            .is_empty());
    }
}
