//! Making metadata durable: group commit.
//!
//! Writes commit without an fsync (see [`super::store`]); a flush is one empty durable commit
//! that persists all of them. Flushes run one at a time on one blocking thread: every caller
//! waits for a flush that began after its own write, and one flush serves every write made
//! before it began, however many there were.

use std::sync::{Arc, Mutex};

use super::store::Store;

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
    state: Mutex<State>,
    /// The last ticket covered by a finished flush, and that flush's error, if any.
    done: tokio::sync::watch::Sender<(u64, Option<FlushError>)>,
}

impl Durability {
    pub(super) fn new() -> Arc<Durability> {
        Arc::new(Durability {
            state: Mutex::new(State::default()),
            done: tokio::sync::watch::channel((0, None)).0,
        })
    }

    /// Returns once a flush that began after this call has finished.
    pub(super) async fn flush(self: &Arc<Self>, store: &Arc<Store>) -> Result<()> {
        let mut rx = self.done.subscribe();
        let (ticket, start) = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.requested += 1;
            let start = !s.running;
            s.running = true;
            (s.requested, start)
        };
        if start {
            let (me, store) = (self.clone(), store.clone());
            tokio::task::spawn_blocking(move || me.run(&store));
        }
        loop {
            {
                let (covered, error) = &*rx.borrow_and_update();
                if *covered >= ticket {
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

    /// The flushing thread: flush until every ticket handed out is covered.
    fn run(&self, store: &Store) {
        loop {
            let target = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if self.done.borrow().0 >= s.requested {
                    s.running = false;
                    return;
                }
                s.requested
            };
            let error = store.sync().err().map(|e| FlushError {
                disk_full: e.status() == http::StatusCode::INSUFFICIENT_STORAGE,
                text: e.to_string(),
            });
            self.done.send_replace((target, error));
        }
    }
}
