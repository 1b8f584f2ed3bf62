//! Making metadata durable: group commit.
//!
//! Writes commit without an fsync (see [`super::store`]) and are numbered as they commit; a
//! flush is one empty durable commit, which persists every commit before it. Flushes run one
//! at a time on one blocking thread. A caller waits until a flush has covered every commit
//! made when it asked (it asks after its own), so one flush serves all the writers that
//! committed while the previous one was on the disk, however many there were. redb runs one
//! write transaction at a time, so before each flush the thread lets the writers already
//! queued commit first (for at most [`super::store::GATHER`]): they ride this flush instead
//! of waiting behind it for the next.

use std::sync::{Arc, Mutex};

use super::store::Store;
use crate::error::{Error, Result};

/// Why a flush failed: its text, and whether the disk was full.
#[derive(Clone)]
struct FlushError {
    text: String,
    disk_full: bool,
}

pub(super) struct Durability {
    /// Whether the flushing thread runs.
    running: Mutex<bool>,
    /// The last commit a finished flush covered, and that flush's error, if any.
    done: tokio::sync::watch::Sender<(u64, Option<FlushError>)>,
}

impl Durability {
    pub(super) fn new() -> Arc<Durability> {
        Arc::new(Durability {
            running: Mutex::new(false),
            done: tokio::sync::watch::channel((0, None)).0,
        })
    }

    /// Returns once every commit made before this call is durable.
    pub(super) async fn flush(self: &Arc<Self>, store: &Arc<Store>) -> Result<()> {
        if let Some(e) = store.failed_error() {
            return Err(e);
        }
        let want = store.committed();
        let mut rx = self.done.subscribe();
        let start = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let start = !*running && rx.borrow().0 < want;
            *running |= start;
            start
        };
        if start {
            let (me, store) = (self.clone(), store.clone());
            tokio::task::spawn_blocking(move || me.run(&store));
        }
        loop {
            {
                let (covered, error) = &*rx.borrow_and_update();
                if *covered >= want {
                    return match error {
                        None => Ok(()),
                        Some(e) if e.disk_full => Err(super::store::disk_full()),
                        Some(e) => Err(Error::internal("flushing metadata", e.text.clone())),
                    };
                }
            }
            rx.changed()
                .await
                .map_err(|e| Error::internal("flushing metadata", e))?;
        }
    }

    /// After the store was reopened: every commit before it is durable or, never having been
    /// acknowledged, gone. Nothing is left to flush, and the last failure is history.
    pub(super) fn reset(&self, committed: u64) {
        self.done.send_replace((committed, None));
    }

    /// The flushing thread: flush until every commit is covered.
    fn run(&self, store: &Store) {
        loop {
            {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                if self.done.borrow().0 >= store.committed() {
                    *running = false;
                    return;
                }
            }
            store.gather_writers();
            let done = match store.sync() {
                Ok(covered) => (covered, None),
                Err(e) => (
                    store.committed(),
                    Some(FlushError {
                        disk_full: e.status() == http::StatusCode::INSUFFICIENT_STORAGE,
                        text: e.to_string(),
                    }),
                ),
            };
            self.done.send_replace(done);
        }
    }
}
