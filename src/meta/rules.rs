//! Records under numeric ids: access, immutability and retention rules, quotas.

use super::*;

impl Meta {
    /// Every record of an id-keyed tree, by id.
    fn by_id<T: serde::de::DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<(u64, T)>> {
        Ok(Self::list_json(tree)?
            .into_iter()
            .map(|(k, v)| (id_of(&k), v))
            .collect())
    }

    /// Stores a record under a fresh id (ids are unique across all such trees).
    fn insert_new<T: serde::Serialize>(&self, tree: &sled::Tree, rec: &T) -> Result<u64> {
        let id = self.db.generate_id().map_err(db_err("numbering a rule"))? + 1;
        tree.insert(id.to_be_bytes(), encode(rec))
            .map_err(db_err("storing a rule"))?;
        Ok(id)
    }

    /// Removes a record; whether it existed.
    fn remove_id(tree: &sled::Tree, id: u64) -> Result<bool> {
        tree.remove(id.to_be_bytes())
            .map(|o| o.is_some())
            .map_err(db_err("deleting a rule"))
    }

    pub fn rules(&self) -> Result<Vec<(u64, RuleRecord)>> {
        Self::by_id(&self.rules)
    }
    pub fn add_rule(&self, rule: &RuleRecord) -> Result<u64> {
        self.insert_new(&self.rules, rule)
    }
    pub fn delete_rule(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.rules, id)
    }
    pub fn immutability_rules(&self) -> Result<Vec<(u64, ImmutabilityRecord)>> {
        Self::by_id(&self.immutability)
    }
    pub fn add_immutability_rule(&self, rule: &ImmutabilityRecord) -> Result<u64> {
        self.insert_new(&self.immutability, rule)
    }
    pub fn delete_immutability_rule(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.immutability, id)
    }
    pub fn retention_rules(&self) -> Result<Vec<(u64, RetentionRecord)>> {
        Self::by_id(&self.retention)
    }
    pub fn add_retention_rule(&self, rule: &RetentionRecord) -> Result<u64> {
        self.insert_new(&self.retention, rule)
    }
    pub fn delete_retention_rule(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.retention, id)
    }
    pub fn quotas(&self) -> Result<Vec<(u64, QuotaRecord)>> {
        Self::by_id(&self.quotas)
    }
    pub fn add_quota(&self, q: &QuotaRecord) -> Result<u64> {
        self.insert_new(&self.quotas, q)
    }
    pub fn delete_quota(&self, id: u64) -> Result<bool> {
        Self::remove_id(&self.quotas, id)
    }
}
