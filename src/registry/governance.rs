//! Repository governance rules: immutability (tags that can never be moved or deleted),
//! retention (which old tags garbage collection may drop) and storage quotas. The functions
//! on a bare `Meta` serve the offline commands; the `Registry` methods serve the admin API
//! and reload what the registry caches. A rule that does not make sense is `INVALID`; a
//! failure of the store is an internal error, never blamed on the request.

use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::meta::Meta;
pub use crate::meta::{ImmutabilityRecord, QuotaRecord, RetentionRecord};
use crate::oci::glob::{check_glob, check_tag_glob};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImmutabilityInfo {
    pub id: u64,
    #[serde(flatten)]
    pub rule: ImmutabilityRecord,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RetentionInfo {
    pub id: u64,
    #[serde(flatten)]
    pub rule: RetentionRecord,
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::api(ErrorCode::Invalid, message.to_string())
}

/// Adds a rule: tags matching `tags` in repositories matching `repos` become immutable.
pub fn add_immutability(meta: &Meta, rule: ImmutabilityRecord) -> Result<u64> {
    check_glob(&rule.repos).map_err(invalid)?;
    check_tag_glob(&rule.tags).map_err(invalid)?;
    meta.add_immutability_rule(&rule)
}

pub fn list_immutability(meta: &Meta) -> Result<Vec<ImmutabilityInfo>> {
    Ok(meta
        .immutability_rules()?
        .into_iter()
        .map(|(id, rule)| ImmutabilityInfo { id, rule })
        .collect())
}

/// Removes a rule; `Ok(false)` when there is no such rule.
pub fn delete_immutability(meta: &Meta, id: u64) -> Result<bool> {
    meta.delete_immutability_rule(id)
}

/// Adds a storage quota for the repositories `repos` matches.
pub fn add_quota(meta: &Meta, q: QuotaRecord) -> Result<u64> {
    check_glob(&q.repos).map_err(invalid)?;
    if q.max_bytes == 0 {
        return Err(invalid("a quota needs max_bytes above 0"));
    }
    meta.add_quota(&q)
}

/// Adds a retention rule; it must keep something (a count or an age).
pub fn add_retention(meta: &Meta, rule: RetentionRecord) -> Result<u64> {
    check_glob(&rule.repos).map_err(invalid)?;
    if rule.keep_last.is_none() && rule.keep_days.is_none() {
        return Err(invalid(
            "a retention rule keeps the newest N tags (keep_last) and/or D days (keep_days)",
        ));
    }
    meta.add_retention_rule(&rule)
}

pub fn list_retention(meta: &Meta) -> Result<Vec<RetentionInfo>> {
    Ok(meta
        .retention_rules()?
        .into_iter()
        .map(|(id, rule)| RetentionInfo { id, rule })
        .collect())
}

pub fn delete_retention(meta: &Meta, id: u64) -> Result<bool> {
    meta.delete_retention_rule(id)
}

impl Registry {
    pub fn immutability_rule_list(&self) -> Result<Vec<ImmutabilityInfo>> {
        list_immutability(self.meta())
    }

    /// Adds an immutability rule and applies it at once.
    pub fn add_immutability_rule(&self, rule: ImmutabilityRecord) -> Result<u64> {
        let id = add_immutability(self.meta(), rule)?;
        self.reload_immutability()?;
        Ok(id)
    }

    pub fn delete_immutability_rule(&self, id: u64) -> Result<bool> {
        let found = delete_immutability(self.meta(), id)?;
        self.reload_immutability()?;
        Ok(found)
    }

    pub fn add_quota(&self, q: QuotaRecord) -> Result<u64> {
        add_quota(self.meta(), q)
    }

    pub fn delete_quota(&self, id: u64) -> Result<bool> {
        self.meta().delete_quota(id)
    }

    pub fn retention_rule_list(&self) -> Result<Vec<RetentionInfo>> {
        list_retention(self.meta())
    }

    pub fn add_retention_rule(&self, rule: RetentionRecord) -> Result<u64> {
        add_retention(self.meta(), rule)
    }

    pub fn delete_retention_rule(&self, id: u64) -> Result<bool> {
        delete_retention(self.meta(), id)
    }

    /// Makes every change so far durable (the admin API answers after it).
    pub async fn flush_metadata(&self) -> Result<()> {
        self.meta().flush().await
    }
}
