//! Making metadata durable: group commit, and a guard against a sled 0.34 deadlock.
//!
//! A sled flush holds sled's global read lock while it waits for its log to reach the disk;
//! a transaction queues for the matching write lock; sled's log flusher then queues behind
//! the transaction for a read lock, and nothing moves again (seen under 16 concurrent
//! uploads). So flushes run one at a time, on one blocking thread, and a transaction never
//! starts while one runs (the `gate`).
//!
//! One flush at a time is also group commit: every caller waits for a flush that began after
//! its own write, and one flush serves every write made before it began.

use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Error, Result};

/// Why a flush failed: its text, and whether the disk was full.
#[derive(Clone)]
struct FlushError {
    text: String,
    disk_full: bool,
}

#[derive(Default)]
struct State {
    /// Tickets handed out (one per `flush` call).
    requested: u64,
    /// Whether the flushing thread runs.
    running: bool,
}

pub(super) struct Durability {
    /// Shared by flushes, exclusive for transactions.
    gate: RwLock<()>,
    state: Mutex<State>,
    /// The last ticket covered by a finished flush, and that flush's error, if any.
    done: tokio::sync::watch::Sender<(u64, Option<FlushError>)>,
}

impl Durability {
    pub(super) fn new() -> Arc<Durability> {
        Arc::new(Durability {
            gate: RwLock::new(()),
            state: Mutex::new(State::default()),
            done: tokio::sync::watch::channel((0, None)).0,
        })
    }

    /// Held while a transaction runs. While a flush holds the gate, the wait is an fsync's:
    /// on one of tokio's workers it would stall every task queued there (on a 2-core box,
    /// half the server), so the worker is first handed over to tokio (`block_in_place`),
    /// which moves those tasks to another thread.
    pub(super) fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        if let Ok(g) = self.gate.try_write() {
            return g;
        }
        let wait = || self.gate.write().unwrap_or_else(|p| p.into_inner());
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            // Offline commands run a current-thread runtime (or none): nothing else to stall.
            _ => wait(),
        }
    }

    /// A flush outside the group (at shutdown, in offline commands).
    pub(super) fn flush_now(&self, db: &sled::Db) -> sled::Result<usize> {
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        db.flush()
    }

    /// Returns once a flush that began after this call has finished.
    pub(super) async fn flush(self: &Arc<Self>, db: &sled::Db) -> Result<()> {
        let mut rx = self.done.subscribe();
        let (ticket, start) = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.requested += 1;
            let start = !s.running;
            s.running = true;
            (s.requested, start)
        };
        if start {
            let (me, db) = (self.clone(), db.clone());
            tokio::task::spawn_blocking(move || me.run(&db));
        }
        loop {
            {
                let (covered, error) = &*rx.borrow_and_update();
                if *covered >= ticket {
                    return match error {
                        None => Ok(()),
                        Some(e) if e.disk_full => Err(super::disk_full()),
                        Some(e) => Err(Error::internal("flushing metadata", e.text.clone())),
                    };
                }
            }
            rx.changed()
                .await
                .map_err(|e| Error::internal("flushing metadata", e))?;
        }
    }

    /// The flushing thread: flush until every ticket handed out is covered.
    fn run(&self, db: &sled::Db) {
        loop {
            let target = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if self.done.borrow().0 >= s.requested {
                    s.running = false;
                    return;
                }
                s.requested
            };
            let result = self.flush_now(db);
            let error = result.err().map(|e| FlushError {
                disk_full: super::is_disk_full(&e),
                text: e.to_string(),
            });
            self.done.send_replace((target, error));
        }
    }
}
