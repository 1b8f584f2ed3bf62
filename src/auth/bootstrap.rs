//! The first administrator, so that a fresh registry can be logged in to at all.

use super::*;

impl Auth {
    pub(super) fn bootstrap_admin(&self, data_dir: &Path) -> crate::error::Result<()> {
        if !self.inner.meta.users()?.is_empty() {
            return Ok(());
        }
        let (password, file) = match &self.inner.settings.admin_password {
            Some(p) => (p.clone(), None),
            None => {
                let p = password::random_secret()?;
                let file = data_dir.join("admin-password");
                crate::storage::files::write_atomic(
                    &file,
                    format!("{p}\n").as_bytes(),
                    crate::storage::files::SECRET,
                )
                .map_err(|e| {
                    crate::error::Error::internal("writing the first admin password", e)
                })?;
                (p, Some(file))
            }
        };
        let rec = UserRecord {
            password_hash: password::hash(&password)?,
            admin: true,
            groups: Vec::new(),
            created_at: now(),
            robot: None,
        };
        self.inner.meta.put_user("admin", &rec)?;
        self.inner.meta.flush_blocking()?;
        match file {
            Some(f) => tracing::warn!(
                path = %f.display(),
                "created the user `admin`; its password is in this file (mode 0600): log in, then delete the file"
            ),
            None => tracing::warn!("created the user `admin` with the configured initial password"),
        }
        Ok(())
    }
}
