//! Records under numeric ids: access, immutability and retention rules, quotas, trust
//! policies; and the keys trust policies name.

use super::*;
use store::{IMMUTABILITY, QUOTAS, RETENTION, RULES, TRUST_KEYS, TRUST_POLICIES};

impl Meta {
    /// Every record of an id-keyed table, by id.
    fn by_id<T: serde::de::DeserializeOwned>(&self, table: Bytes) -> Result<Vec<(u64, T)>> {
        Ok(self
            .scan(table, b"")?
            .into_iter()
            .map(|(k, v)| (id_of(&k), v))
            .collect())
    }

    /// Stores a record under a fresh id (ids are unique across all such tables).
    fn insert_new<T: serde::Serialize>(&self, table: Bytes, rec: &T) -> Result<u64> {
        let v = encode(rec);
        self.write("storing a rule", |tx| {
            let id = next_id(tx)?;
            tx.open_table(table)?
                .insert(id.to_be_bytes().as_slice(), v.as_slice())?;
            Ok(id)
        })
    }

    /// Removes a record; whether it existed.
    fn remove_id(&self, table: Bytes, id: u64) -> Result<bool> {
        self.remove("deleting a rule", table, &id.to_be_bytes())
    }

    pub fn rules(&self) -> Result<Vec<(u64, RuleRecord)>> {
        self.by_id(RULES)
    }
    pub fn add_rule(&self, rule: &RuleRecord) -> Result<u64> {
        self.insert_new(RULES, rule)
    }
    pub fn delete_rule(&self, id: u64) -> Result<bool> {
        self.remove_id(RULES, id)
    }
    pub fn immutability_rules(&self) -> Result<Vec<(u64, ImmutabilityRecord)>> {
        self.by_id(IMMUTABILITY)
    }
    pub fn add_immutability_rule(&self, rule: &ImmutabilityRecord) -> Result<u64> {
        self.insert_new(IMMUTABILITY, rule)
    }
    pub fn delete_immutability_rule(&self, id: u64) -> Result<bool> {
        self.remove_id(IMMUTABILITY, id)
    }
    pub fn retention_rules(&self) -> Result<Vec<(u64, RetentionRecord)>> {
        self.by_id(RETENTION)
    }
    pub fn add_retention_rule(&self, rule: &RetentionRecord) -> Result<u64> {
        self.insert_new(RETENTION, rule)
    }
    pub fn delete_retention_rule(&self, id: u64) -> Result<bool> {
        self.remove_id(RETENTION, id)
    }
    pub fn quotas(&self) -> Result<Vec<(u64, QuotaRecord)>> {
        self.by_id(QUOTAS)
    }
    pub fn add_quota(&self, q: &QuotaRecord) -> Result<u64> {
        self.insert_new(QUOTAS, q)
    }
    pub fn delete_quota(&self, id: u64) -> Result<bool> {
        self.remove_id(QUOTAS, id)
    }
    pub fn trust_policies(&self) -> Result<Vec<(u64, TrustPolicyRecord)>> {
        self.by_id(TRUST_POLICIES)
    }
    pub fn add_trust_policy(&self, p: &TrustPolicyRecord) -> Result<u64> {
        self.insert_new(TRUST_POLICIES, p)
    }
    pub fn delete_trust_policy(&self, id: u64) -> Result<bool> {
        self.remove_id(TRUST_POLICIES, id)
    }
    /// Trusted keys by name.
    pub fn trust_keys(&self) -> Result<Vec<(String, TrustKeyRecord)>> {
        Ok(self
            .scan(TRUST_KEYS, b"")?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }
    /// Installs a key under `name`; `Ok(false)` (and nothing changed) when the name is taken.
    pub fn add_trust_key(&self, name: &str, rec: &TrustKeyRecord) -> Result<bool> {
        let v = encode(rec);
        self.write("installing a trusted key", |tx| {
            let mut t = tx.open_table(TRUST_KEYS)?;
            if t.get(name.as_bytes())?.is_some() {
                return Ok(false);
            }
            t.insert(name.as_bytes(), v.as_slice())?;
            Ok(true)
        })
    }
    /// Installs or replaces the key under `name`.
    pub fn put_trust_key(&self, name: &str, rec: &TrustKeyRecord) -> Result<()> {
        let v = encode(rec);
        self.write("replacing a trusted key", |tx| {
            tx.open_table(TRUST_KEYS)?
                .insert(name.as_bytes(), v.as_slice())?;
            Ok(())
        })
    }
    /// When the trust material of the last bundle imported was issued (unix seconds; 0:
    /// none yet): an older one is refused, so a replayed bundle cannot bring back a key
    /// the central site has since withdrawn.
    pub fn trust_bundle_issued(&self) -> Result<u64> {
        self.read("reading the trust bundle mark", |tx| {
            Ok(tx
                .open_table(super::store::COUNTERS)?
                .get(TRUST_BUNDLE_ISSUED)?
                .map(|v| v.value())
                .unwrap_or(0))
        })
    }
    pub fn set_trust_bundle_issued(&self, issued: u64) -> Result<()> {
        self.write("recording the trust bundle mark", |tx| {
            tx.open_table(super::store::COUNTERS)?
                .insert(TRUST_BUNDLE_ISSUED, issued)?;
            Ok(())
        })
    }
    pub fn delete_trust_key(&self, name: &str) -> Result<bool> {
        self.remove("removing a trusted key", TRUST_KEYS, name.as_bytes())
    }
}

/// The `counters` key of [`Meta::trust_bundle_issued`].
const TRUST_BUNDLE_ISSUED: &str = "trust_bundle_issued";
