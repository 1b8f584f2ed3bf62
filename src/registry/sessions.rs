//! The upload sessions this process has open, and the bound on how many one client may
//! hold: a push that opens session after session without finishing any is answered 429
//! once it holds its share, while sessions left idle stop counting (and close their files).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::UploadId;
use crate::storage::UploadFile;

/// An open upload: the in-memory half of a session whose record lives in the metadata
/// store. `None` while a request is using the file, or before a restarted server has
/// reopened it.
pub(super) type Session = Arc<tokio::sync::Mutex<Option<UploadFile>>>;

/// The upload sessions this process has open: the in-memory half of each session whose
/// record lives in the metadata store, who opened it, and the bound per client.
pub(super) struct Sessions {
    open: Mutex<HashMap<UploadId, Session>>,
    owners: Mutex<HashMap<UploadId, Owner>>,
    max_per_client: AtomicUsize,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            open: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            max_per_client: AtomicUsize::new(usize::MAX),
        }
    }
}

/// Who opened a session, and when a request last used it.
struct Owner {
    client: Arc<str>,
    used: std::time::Instant,
}

/// A session unused for this long no longer counts against its client's bound, and its file
/// is closed (it stays resumable: the file is reopened on its next use). An abandoned push
/// therefore never locks its client out, and idle sessions hold no file descriptors.
const IDLE_SESSION: std::time::Duration = std::time::Duration::from_secs(600);

/// What a client over its bound is told to wait, seconds.
const UPLOADS_RETRY_AFTER: u64 = 10;

impl Registry {
    /// Bounds the upload sessions one client may have open at once.
    pub fn set_max_uploads_per_client(&self, n: usize) {
        self.inner
            .uploads
            .max_per_client
            .store(n, Ordering::Relaxed);
    }

    fn owners(&self) -> MutexGuard<'_, HashMap<UploadId, Owner>> {
        self.inner
            .uploads
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `id` against `client`, or answers 429 when the client already has its bound
    /// of sessions in use (busy, or used within [`IDLE_SESSION`]). Idle sessions met on the
    /// way have their files closed.
    pub(super) fn admit_upload(&self, client: &str, id: &UploadId) -> Result<()> {
        let max = self.inner.uploads.max_per_client.load(Ordering::Relaxed);
        let mut owners = self.owners();
        let mut in_use = 0;
        let mut shared: Option<Arc<str>> = None;
        for (other, o) in owners.iter() {
            if &*o.client != client {
                continue;
            }
            shared = Some(o.client.clone());
            if o.used.elapsed() < IDLE_SESSION || self.session_busy(other) {
                in_use += 1;
            } else if let Some(s) = self.sessions().get(other) {
                if let Ok(mut slot) = s.try_lock() {
                    *slot = None;
                }
            }
        }
        if in_use >= max {
            tracing::warn!(
                client,
                open = in_use,
                "upload refused: max_uploads_per_client reached"
            );
            return Err(Error::api(
                ErrorCode::TooManyRequests,
                format!(
                    "too many upload sessions open ({in_use}, the limit per client is {max}): finish or cancel one, or retry later"
                ),
            )
            .with_header(http::header::RETRY_AFTER, UPLOADS_RETRY_AFTER.to_string()));
        }
        let client = shared.unwrap_or_else(|| client.into());
        owners.insert(
            id.clone(),
            Owner {
                client,
                used: std::time::Instant::now(),
            },
        );
        Ok(())
    }

    /// Marks a session as used now (it counts against its client again).
    pub(super) fn touch_upload(&self, id: &UploadId) {
        if let Some(o) = self.owners().get_mut(id) {
            o.used = std::time::Instant::now();
        }
    }

    pub(super) fn sessions(&self) -> MutexGuard<'_, HashMap<UploadId, Session>> {
        // A poisoned lock only means another request panicked while holding it; the map
        // itself is always valid.
        self.inner
            .uploads
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request is using the session right now.
    pub(super) fn session_busy(&self, id: &UploadId) -> bool {
        self.sessions()
            .get(id)
            .is_some_and(|s| s.try_lock().is_err())
    }

    /// Forgets a session in this process (finished, cancelled, or never started).
    pub(super) fn forget_session(&self, id: &UploadId) {
        self.sessions().remove(id);
        self.owners().remove(id);
    }
}
