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

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RetentionInfo {
    pub id: u64,
    #[serde(flatten)]
    pub rule: crate::meta::RetentionRecord,
}

/// Adds a storage quota for the repositories `repos` matches.
pub fn add_quota(meta: &Meta, q: crate::meta::QuotaRecord) -> Result<u64, String> {
    check_glob(&q.repos)?;
    if q.max_bytes == 0 {
        return Err("a quota needs max_bytes above 0".into());
    }
    meta.add_quota(&q).map_err(|e| e.to_string())
}

/// Adds a retention rule; it must keep something (a count or an age).
pub fn add_retention(meta: &Meta, rule: crate::meta::RetentionRecord) -> Result<u64, String> {
    check_glob(&rule.repos)?;
    if rule.keep_last.is_none() && rule.keep_days.is_none() {
        return Err(
            "a retention rule keeps the newest N tags (keep_last) and/or D days (keep_days)".into(),
        );
    }
    meta.add_retention_rule(&rule).map_err(|e| e.to_string())
}

pub fn list_retention(meta: &Meta) -> Result<Vec<RetentionInfo>, String> {
    Ok(meta
        .retention_rules()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(id, rule)| RetentionInfo { id, rule })
        .collect())
}

pub fn delete_retention(meta: &Meta, id: u64) -> Result<bool, String> {
    meta.delete_retention_rule(id).map_err(|e| e.to_string())
}
