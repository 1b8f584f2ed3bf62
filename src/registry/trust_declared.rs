//! Trust material declared in the configuration file (`[[trust.key]]`, `[[trust.policy]]`):
//! what a fleet of edge boxes is provisioned with, instead of commands run on each box.
//!
//! Declared keys and policies are written into the data directory, marked as declared,
//! every time the server starts or reloads, and every time a command opens the data
//! directory with `--config`. Stored, they bind every later command too: an offline
//! `edgeyard import` run without `--config` still meets the policies the server was
//! configured with, rather than the configuration being a filter that a command bypasses by
//! not reading it. The file owns what it declares: the CLI and the admin API refuse to
//! change it, and what the file no longer declares is removed at the next apply.

use crate::error::{Error, ErrorCode, Result};
use crate::meta::{Meta, TrustKeyRecord, TrustPolicyRecord};
use crate::trust::keys::TrustAnchor;

use super::trust_rules::{check_key_name, check_policy};
use super::Registry;

/// A key as the configuration file declares it (the PEM already read from its file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKey {
    pub name: String,
    pub pem: String,
}

/// The configuration file's `[trust]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredTrust {
    pub keys: Vec<DeclaredKey>,
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

fn invalid(message: String) -> Error {
    Error::api(ErrorCode::Invalid, message)
}

fn same_pem(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

/// Makes the declared keys and policies stored in `meta` exactly `d`. Everything is checked
/// before anything is written, so a bad declaration changes nothing; a run cut short is
/// completed by the next (each step is idempotent).
pub fn apply(meta: &Meta, d: &DeclaredTrust) -> Result<Applied> {
    let stored = meta.trust_keys()?;
    let mut parsed: Vec<(&DeclaredKey, TrustAnchor)> = Vec::new();
    for k in &d.keys {
        check_key_name(&k.name)?;
        let anchor = TrustAnchor::from_pem(k.pem.as_bytes())
            .map_err(|e| invalid(format!("[[trust.key]] {:?}: {e}", k.name)))?;
        if let Some((other, _)) = parsed
            .iter()
            .find(|(o, a)| o.name == k.name || a.fingerprint() == anchor.fingerprint())
        {
            return Err(invalid(format!(
                "[[trust.key]] {:?} is declared twice (as {:?} too)",
                k.name, other.name
            )));
        }
        if let Some((name, rec)) = stored.iter().find(|(n, _)| *n == k.name) {
            if !rec.declared && !same_pem(&rec.pem, &k.pem) {
                return Err(invalid(format!(
                    "[[trust.key]] {name:?}: a different key of that name was installed with `edgeyard trust key add`; delete it, or declare this one under another name"
                )));
            }
        } else if let Some((name, _)) = stored.iter().find(|(_, rec)| {
            !rec.declared
                && TrustAnchor::from_pem(rec.pem.as_bytes())
                    .is_ok_and(|a| a.fingerprint() == anchor.fingerprint())
        }) {
            return Err(invalid(format!(
                "[[trust.key]] {:?} is already installed as {name:?}: delete that one first",
                k.name
            )));
        }
        parsed.push((k, anchor));
    }
    // The keys a policy may name once this apply is done: the declared ones, and those the
    // CLI or the admin API installed.
    let mut known: Vec<String> = d.keys.iter().map(|k| k.name.clone()).collect();
    known.extend(
        stored
            .iter()
            .filter(|(_, r)| !r.declared)
            .map(|(n, _)| n.clone()),
    );
    for (i, p) in d.policies.iter().enumerate() {
        check_policy(p, &known)
            .map_err(|e| invalid(format!("[[trust.policy]] {} ({}): {e}", i + 1, p.repos)))?;
    }
    let policies = meta.trust_policies()?;
    let stale: Vec<&String> = stored
        .iter()
        .filter(|(n, r)| r.declared && !d.keys.iter().any(|k| k.name == *n))
        .map(|(n, _)| n)
        .collect();
    for name in &stale {
        if let Some((id, p)) = policies
            .iter()
            .find(|(_, p)| !p.declared && p.keys.contains(name))
        {
            return Err(invalid(format!(
                "key {name:?} is no longer declared in the configuration file, but trust policy {id} ({}) names it: delete or change that policy first",
                p.repos
            )));
        }
    }

    let mut applied = Applied::default();
    for (k, _) in &parsed {
        let rec = TrustKeyRecord {
            pem: k.pem.trim().to_string() + "\n",
            added_at: crate::meta::now(),
            declared: true,
        };
        match stored.iter().find(|(n, _)| *n == k.name) {
            Some((_, old)) if old.declared && same_pem(&old.pem, &k.pem) => continue,
            Some((_, old)) => {
                // Adopted (the same key installed by hand earlier) or replaced.
                let rec = TrustKeyRecord {
                    added_at: if old.declared {
                        rec.added_at
                    } else {
                        old.added_at
                    },
                    ..rec
                };
                meta.put_trust_key(&k.name, &rec)?;
                match old.declared {
                    true => applied.keys_replaced.push(k.name.clone()),
                    false => applied.keys_added.push(k.name.clone()),
                }
            }
            None => {
                meta.put_trust_key(&k.name, &rec)?;
                applied.keys_added.push(k.name.clone());
            }
        }
    }
    // Declared policies are matched by content: an unchanged one keeps its id.
    let mut wanted: Vec<TrustPolicyRecord> = d
        .policies
        .iter()
        .map(|p| TrustPolicyRecord {
            declared: true,
            ..p.clone()
        })
        .collect();
    for (id, p) in policies.iter().filter(|(_, p)| p.declared) {
        match wanted.iter().position(|w| w == p) {
            Some(i) => {
                wanted.remove(i);
            }
            None => {
                meta.delete_trust_policy(*id)?;
                applied.policies_removed += 1;
            }
        }
    }
    for p in &wanted {
        meta.add_trust_policy(p)?;
        applied.policies_added += 1;
    }
    for name in stale {
        meta.delete_trust_key(name)?;
        applied.keys_removed.push(name.clone());
    }
    Ok(applied)
}

impl Registry {
    /// Applies the configuration file's `[trust]` section (see [`apply`]) and reloads what
    /// the registry enforces.
    pub fn apply_declared_trust(&self, d: &DeclaredTrust) -> Result<Applied> {
        let applied = apply(self.meta(), d)?;
        if applied.changed() {
            self.reload_trust()?;
        }
        Ok(applied)
    }
}

#[cfg(test)]
#[path = "trust_declared_tests.rs"]
mod tests;
