//! What the registry reports as it works, for whoever counts it. The server installs its
//! metrics (`metrics::Metrics` implements [`Events`]); the offline commands and the tests
//! leave the default, which counts nothing. A trait handed down, not a process-wide global
//! reached from below, so the registry stays below the layers that observe it.

/// Every method has an empty default: an observer implements what it counts.
pub trait Events: Send + Sync {
    /// Request body bytes taken in (uploads, manifests).
    fn bytes_received(&self, _n: u64) {}
    /// An upload request began streaming its body; [`Events::upload_ended`] follows.
    fn upload_started(&self) {}
    fn upload_ended(&self) {}
    /// A garbage collection run finished, with what it freed.
    fn gc_run(&self, _blobs: u64, _bytes: u64) {}
    /// A pull-through cache answer: `hit`, `fetched`, `revalidated`, `stale`, `failed`.
    fn mirror(&self, _result: &'static str) {}
    /// An image a trust policy covers, pulled or imported: `served` (a pull, its policies
    /// met), `accepted` (an import, its policies met), `refused` (an enforced policy
    /// unmet), `audit_unmet` (an audit policy unmet; let through).
    fn trust(&self, _result: &'static str) {}
}

/// The default observer.
pub(super) struct Silent;

impl Events for Silent {}

/// Reports the end of an upload when dropped, however the upload ends.
pub(super) struct InFlight<'a>(&'a dyn Events);

impl<'a> InFlight<'a> {
    pub(super) fn start(events: &'a dyn Events) -> InFlight<'a> {
        events.upload_started();
        InFlight(events)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.upload_ended();
    }
}
