//! User accounts and refresh tokens.

use super::*;

impl Meta {
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        Self::get_json(&self.users, name.as_bytes())
    }

    pub fn put_user(&self, name: &str, rec: &UserRecord) -> Result<()> {
        self.users
            .insert(name.as_bytes(), encode(rec))
            .map(|_| ())
            .map_err(db_err("storing a user"))
    }

    /// Deletes a user and every refresh token issued to it.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let existed = self
            .users
            .remove(name.as_bytes())
            .map_err(db_err("deleting a user"))?
            .is_some();
        self.revoke_refresh_tokens(name)?;
        Ok(existed)
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        Ok(Self::list_json(&self.users)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    pub fn refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>> {
        Self::get_json(&self.refresh, hash.as_bytes())
    }

    pub fn put_refresh_token(&self, hash: &str, rec: &RefreshRecord) -> Result<()> {
        self.refresh
            .insert(hash.as_bytes(), encode(rec))
            .map(|_| ())
            .map_err(db_err("storing a refresh token"))
    }

    pub fn revoke_refresh_tokens(&self, user: &str) -> Result<usize> {
        let mut n = 0;
        for (k, rec) in Self::list_json::<RefreshRecord>(&self.refresh)? {
            if rec.user == user {
                self.refresh
                    .remove(k)
                    .map_err(db_err("revoking a refresh token"))?;
                n += 1;
            }
        }
        Ok(n)
    }
}
