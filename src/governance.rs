//! Repository governance rules, shared by the offline commands and the admin API:
//! immutability (tags that can never be moved or deleted).

use crate::meta::{ImmutabilityRecord, Meta};
use crate::oci::glob::{check_glob, check_tag_glob};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImmutabilityInfo {
    pub id: u64,
    #[serde(flatten)]
    pub rule: ImmutabilityRecord,
}

/// Adds a rule: tags matching `tags` in repositories matching `repos` become immutable.
pub fn add_immutability(meta: &Meta, rule: ImmutabilityRecord) -> Result<u64, String> {
    check_glob(&rule.repos)?;
    check_tag_glob(&rule.tags)?;
    meta.add_immutability_rule(&rule).map_err(|e| e.to_string())
}

pub fn list_immutability(meta: &Meta) -> Result<Vec<ImmutabilityInfo>, String> {
    Ok(meta
        .immutability_rules()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(id, rule)| ImmutabilityInfo { id, rule })
        .collect())
}

/// Removes a rule; `Ok(false)` when there is no such rule.
pub fn delete_immutability(meta: &Meta, id: u64) -> Result<bool, String> {
    meta.delete_immutability_rule(id).map_err(|e| e.to_string())
}
