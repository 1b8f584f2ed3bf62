//! The registry's use cases behind one cheap-to-clone handle: uploads, blobs, manifests,
//! tags, referrers and the catalog. This layer decides what is allowed; `storage` and `meta`
//! only keep bytes and records, and `http` only translates requests and responses.

mod blobs;
mod manifests;
mod pump;
mod uploads;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::oci::UploadId;
use crate::storage::{Storage, UploadFile};

pub use blobs::{BlobRange, BlobRead};
pub use manifests::{ManifestContent, PutOutcome, Referrers};
pub use uploads::{range_header, upload_location, ContentRange, UploadState};

/// Largest manifest accepted, as in CNCF Distribution and the OCI conformance suite.
pub const MANIFEST_MAX: usize = 4 << 20;

/// Most entries one tags or catalog page returns, whatever `n` asks for.
pub const PAGE_MAX: usize = 10_000;

/// An open upload: the in-memory half of a session whose record lives in sled. `None` while
/// a request is using the file, or before a restarted server has reopened it.
type Session = Arc<tokio::sync::Mutex<Option<UploadFile>>>;

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    meta: Meta,
    sessions: Mutex<HashMap<UploadId, Session>>,
}

impl Registry {
    /// Opens (creating if needed) the registry stored under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Registry> {
        let storage = Storage::open(data_dir)
            .map_err(|e| Error::internal("creating the data directory layout", e))?;
        let meta = Meta::open(&storage.meta_dir())?;
        Ok(Registry {
            inner: Arc::new(Inner {
                storage,
                meta,
                sessions: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// Flushes metadata; called on shutdown.
    pub fn close(&self) -> Result<()> {
        self.meta().flush_blocking()
    }

    /// Repository names for `GET /v2/_catalog` that pass `visible`, after `last`, at most
    /// `n`; and whether more follow.
    pub fn catalog(
        &self,
        last: Option<&str>,
        n: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<String>, bool)> {
        self.meta().list_repos(last, n.min(PAGE_MAX), visible)
    }

    /// The metadata handle, shared with the authentication store.
    pub fn meta_handle(&self) -> Meta {
        self.inner.meta.clone()
    }

    /// Tags of an existing repository, after `last`, at most `n`; and whether more follow.
    pub fn tags(
        &self,
        repo: &crate::oci::RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool)> {
        if !self.meta().repo_exists(repo)? {
            return Err(Error::code(crate::error::ErrorCode::NameUnknown)
                .with_detail(serde_json::json!({ "name": repo.as_str() })));
        }
        self.meta().list_tags(repo, last, n.min(PAGE_MAX))
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T, F>(context: &'static str, f: F) -> Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Error::internal(context, e)),
        Err(e) => Err(Error::internal(context, e)),
    }
}
