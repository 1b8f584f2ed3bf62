//! User accounts and refresh tokens.

use super::*;
use store::{REFRESH, USERS};

impl Meta {
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.get(USERS, name.as_bytes())
    }

    pub fn put_user(&self, name: &str, rec: &UserRecord) -> Result<()> {
        self.put("storing a user", USERS, name.as_bytes(), rec)
    }

    /// Deletes a user and every refresh token issued to it, in one transaction.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        self.write("deleting a user", |tx| {
            let existed = tx.open_table(USERS)?.remove(name.as_bytes())?.is_some();
            revoke_in(tx, name)?;
            Ok(existed)
        })
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        Ok(self
            .scan(USERS, b"")?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    pub fn refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>> {
        self.get(REFRESH, hash.as_bytes())
    }

    pub fn put_refresh_token(&self, hash: &str, rec: &RefreshRecord) -> Result<()> {
        self.put("storing a refresh token", REFRESH, hash.as_bytes(), rec)
    }

    pub fn revoke_refresh_tokens(&self, user: &str) -> Result<usize> {
        self.write("revoking refresh tokens", |tx| revoke_in(tx, user))
    }
}

/// Removes every refresh token of `user`; how many there were.
fn revoke_in(tx: &redb::WriteTransaction, user: &str) -> Tx<usize> {
    let mut t = tx.open_table(REFRESH)?;
    let theirs: Vec<Vec<u8>> = scan_json::<RefreshRecord>(&t, b"")?
        .into_iter()
        .filter(|(_, rec)| rec.user == user)
        .map(|(k, _)| k)
        .collect();
    for k in &theirs {
        t.remove(k.as_slice())?;
    }
    Ok(theirs.len())
}
