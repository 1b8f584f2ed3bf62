//! Trust material that arrives whole from outside the CLI: the configuration file's
//! `[trust]` section (what a fleet of edge boxes is provisioned with) and the signed trust
//! material a bundle carries (how a central site rotates keys on boxes that have no network).
//!
//! Each source owns a set of keys and policies in the data directory, marked with it. An
//! apply makes that set exactly what the source declares now: it adds, replaces and removes
//! only its own entries, and refuses (changing nothing) when the declaration clashes with
//! what another source installed. Stored, the set binds every later command: an offline
//! `edgeyard import` run without `--config` still meets the policies the server was
//! configured with. What the configuration file declares cannot be changed with the CLI or
//! the admin API (the file would put it back).
//!
//! An apply is planned before it is committed: a bundle's images are judged under the trust
//! they bring (a rotated key and the images it signed travel together), and nothing of
//! either is stored unless all of it passes.

use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};
use crate::meta::{KeyPurpose, Meta, TrustKeyRecord, TrustPolicyRecord, TrustSource};
use crate::trust::keys::TrustAnchor;

use super::trust_rules::{check_key_name, check_policy};
use super::trusted::TrustState;
use super::Registry;

/// A key as a source declares it (the PEM already read from its file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredKey {
    pub name: String,
    pub pem: String,
    #[serde(default)]
    pub purpose: KeyPurpose,
}

/// The keys and policies one source declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredTrust {
    #[serde(default)]
    pub keys: Vec<DeclaredKey>,
    #[serde(default)]
    pub policies: Vec<TrustPolicyRecord>,
}

/// What an apply changed, for the log line that says so.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub keys_added: Vec<String>,
    pub keys_replaced: Vec<String>,
    pub keys_removed: Vec<String>,
    pub policies_added: usize,
    pub policies_removed: usize,
}

impl Applied {
    pub fn changed(&self) -> bool {
        *self != Applied::default()
    }
}

/// A checked apply, not yet written: what to write, and the keys and policies that will be
/// in force once it is.
pub struct TrustPlan {
    put_keys: Vec<(String, TrustKeyRecord)>,
    remove_keys: Vec<String>,
    add_policies: Vec<TrustPolicyRecord>,
    remove_policies: Vec<u64>,
    applied: Applied,
    /// Everything in force after the commit (new policies under id 0).
    pub(super) state: Arc<TrustState>,
}

fn invalid(message: String) -> Error {
    Error::api(ErrorCode::Invalid, message)
}

fn same_pem(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

/// How a source names its entries in a refusal.
fn what_key(source: TrustSource, name: &str) -> String {
    match source {
        TrustSource::Config => format!("[[trust.key]] {name:?}"),
        TrustSource::Bundle => format!("the bundle's trust key {name:?}"),
        TrustSource::Manual => format!("key {name:?}"),
    }
}

fn what_policy(source: TrustSource, n: usize, p: &TrustPolicyRecord) -> String {
    match source {
        TrustSource::Config => format!("[[trust.policy]] {n} ({})", p.repos),
        TrustSource::Bundle => format!("the bundle's trust policy {n} ({})", p.repos),
        TrustSource::Manual => format!("trust policy {n} ({})", p.repos),
    }
}

fn installed_by(source: TrustSource) -> &'static str {
    match source {
        TrustSource::Manual => "installed with `edgeyard trust key add`",
        TrustSource::Config => "declared in the configuration file",
        TrustSource::Bundle => "brought by an imported bundle",
    }
}

/// Checks what `source` declares against what is stored, and works out the writes that make
/// the stored set of `source` exactly `d`. Nothing is written.
pub fn plan(meta: &Meta, source: TrustSource, d: &DeclaredTrust) -> Result<TrustPlan> {
    let stored = meta.trust_keys()?;
    let mut parsed: Vec<(&DeclaredKey, TrustAnchor)> = Vec::new();
    for k in &d.keys {
        check_key_name(&k.name)?;
        let anchor = TrustAnchor::from_pem(k.pem.as_bytes())
            .map_err(|e| invalid(format!("{}: {e}", what_key(source, &k.name))))?;
        if let Some((other, _)) = parsed
            .iter()
            .find(|(o, a)| o.name == k.name || a.fingerprint() == anchor.fingerprint())
        {
            return Err(invalid(format!(
                "{} is declared twice (as {:?} too)",
                what_key(source, &k.name),
                other.name
            )));
        }
        if let Some((name, rec)) = stored.iter().find(|(n, _)| *n == k.name) {
            let same = same_pem(&rec.pem, &k.pem) && rec.purpose == k.purpose;
            if rec.source != source && !same {
                return Err(invalid(format!(
                    "{}: a different key of that name is {}; remove it, or use another name",
                    what_key(source, name),
                    installed_by(rec.source)
                )));
            }
        } else if let Some((name, rec)) = stored.iter().find(|(_, rec)| {
            TrustAnchor::from_pem(rec.pem.as_bytes())
                .is_ok_and(|a| a.fingerprint() == anchor.fingerprint())
        }) {
            return Err(invalid(format!(
                "{} is already installed as {name:?} ({})",
                what_key(source, &k.name),
                installed_by(rec.source)
            )));
        }
        parsed.push((k, anchor));
    }
    // The keys policies may name once this is committed: the declared ones, and those of
    // the other sources.
    let mut known: Vec<(String, KeyPurpose)> =
        d.keys.iter().map(|k| (k.name.clone(), k.purpose)).collect();
    known.extend(
        stored
            .iter()
            .filter(|(n, r)| r.source != source && !d.keys.iter().any(|k| k.name == *n))
            .map(|(n, r)| (n.clone(), r.purpose)),
    );
    for (i, p) in d.policies.iter().enumerate() {
        check_policy(p, &known)
            .map_err(|e| invalid(format!("{}: {e}", what_policy(source, i + 1, p))))?;
    }
    let policies = meta.trust_policies()?;
    let stale: Vec<String> = stored
        .iter()
        .filter(|(n, r)| r.source == source && !d.keys.iter().any(|k| k.name == *n))
        .map(|(n, _)| n.clone())
        .collect();
    for name in &stale {
        if let Some((id, p)) = policies
            .iter()
            .find(|(_, p)| p.source != source && p.keys.contains(name))
        {
            return Err(invalid(format!(
                "key {name:?} is no longer declared, but trust policy {id} ({}, {}) names it: delete or change that policy first",
                p.repos,
                installed_by(p.source)
            )));
        }
    }

    let mut applied = Applied::default();
    let mut put_keys = Vec::new();
    for (k, _) in &parsed {
        let rec = TrustKeyRecord {
            pem: k.pem.trim().to_string() + "\n",
            added_at: crate::meta::now(),
            purpose: k.purpose,
            source,
        };
        match stored.iter().find(|(n, _)| *n == k.name) {
            None => {
                put_keys.push((k.name.clone(), rec));
                applied.keys_added.push(k.name.clone());
            }
            Some((_, old)) if old.source == source => {
                if !same_pem(&old.pem, &k.pem) || old.purpose != k.purpose {
                    put_keys.push((k.name.clone(), rec));
                    applied.keys_replaced.push(k.name.clone());
                }
            }
            // The same key installed by hand: the configuration file takes it over.
            Some((_, old))
                if old.source == TrustSource::Manual && source == TrustSource::Config =>
            {
                let rec = TrustKeyRecord {
                    added_at: old.added_at,
                    ..rec
                };
                put_keys.push((k.name.clone(), rec));
                applied.keys_added.push(k.name.clone());
            }
            // The same key, owned by another source: it stays theirs.
            Some(_) => {}
        }
    }
    // Policies are matched by content: an unchanged one keeps its id.
    let mut add_policies: Vec<TrustPolicyRecord> = d
        .policies
        .iter()
        .map(|p| TrustPolicyRecord {
            source,
            ..p.clone()
        })
        .collect();
    let mut remove_policies = Vec::new();
    for (id, p) in policies.iter().filter(|(_, p)| p.source == source) {
        match add_policies.iter().position(|w| w == p) {
            Some(i) => {
                add_policies.remove(i);
            }
            None => remove_policies.push(*id),
        }
    }
    applied.policies_added = add_policies.len();
    applied.policies_removed = remove_policies.len();
    applied.keys_removed = stale.clone();

    // What will be in force.
    let mut keys: Vec<(String, TrustKeyRecord)> = stored
        .into_iter()
        .filter(|(n, _)| !stale.contains(n) && !put_keys.iter().any(|(p, _)| p == n))
        .collect();
    keys.extend(put_keys.iter().cloned());
    let mut in_force: Vec<(u64, TrustPolicyRecord)> = policies
        .into_iter()
        .filter(|(id, _)| !remove_policies.contains(id))
        .collect();
    in_force.extend(add_policies.iter().map(|p| (0, p.clone())));
    Ok(TrustPlan {
        put_keys,
        remove_keys: stale,
        add_policies,
        remove_policies,
        applied,
        state: Arc::new(TrustState::from_records(0, keys, in_force)),
    })
}

impl TrustPlan {
    /// Writes the plan: keys first (policies name them), stale keys last. Each step is
    /// idempotent, so a commit cut short is completed by the next apply.
    pub fn commit(self, meta: &Meta) -> Result<Applied> {
        for (name, rec) in &self.put_keys {
            meta.put_trust_key(name, rec)?;
        }
        for id in &self.remove_policies {
            meta.delete_trust_policy(*id)?;
        }
        for p in &self.add_policies {
            meta.add_trust_policy(p)?;
        }
        for name in &self.remove_keys {
            meta.delete_trust_key(name)?;
        }
        Ok(self.applied)
    }
}

/// Makes the stored set of `source` exactly `d` (see [`plan`]).
pub fn apply(meta: &Meta, source: TrustSource, d: &DeclaredTrust) -> Result<Applied> {
    plan(meta, source, d)?.commit(meta)
}

impl Registry {
    /// Applies the configuration file's `[trust]` section and reloads what the registry
    /// enforces.
    pub fn apply_declared_trust(&self, d: &DeclaredTrust) -> Result<Applied> {
        self.commit_trust(plan(self.meta(), TrustSource::Config, d)?)
    }

    /// Plans an apply of `source`'s trust material (see [`plan`]).
    pub fn plan_trust(&self, source: TrustSource, d: &DeclaredTrust) -> Result<TrustPlan> {
        plan(self.meta(), source, d)
    }

    /// Commits a plan and reloads what the registry enforces.
    pub fn commit_trust(&self, plan: TrustPlan) -> Result<Applied> {
        let applied = plan.commit(self.meta())?;
        if applied.changed() {
            self.reload_trust()?;
        }
        Ok(applied)
    }
}

#[cfg(test)]
#[path = "trust_declared_tests.rs"]
mod tests;
