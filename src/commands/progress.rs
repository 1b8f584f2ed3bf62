//! How long offline work (fsck, gc) shows that it goes on: one updating line on a terminal,
//! and plain lines otherwise (each step, then every tenth of it), so the log of a timer or a
//! script says how far it got and a person at a terminal is not left staring at nothing.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::registry::Progress;

/// The line on a terminal is redrawn at most this often.
const REDRAW: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    what: &'static str,
    tenth: u64,
    drawn: Option<Instant>,
}

/// A [`Progress`] that draws to standard error for `command`, and what ends it.
pub struct Meter {
    tty: bool,
    state: Arc<Mutex<State>>,
    command: &'static str,
}

impl Meter {
    pub fn new(command: &'static str) -> Meter {
        Meter {
            tty: std::io::stderr().is_terminal(),
            state: Arc::default(),
            command,
        }
    }

    pub fn progress(&self) -> Progress {
        let (tty, state, command) = (self.tty, self.state.clone(), self.command);
        Arc::new(move |what, done, total| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let tenth = match total {
                0 => 0,
                t => done * 10 / t,
            };
            let new_step = s.what != what;
            let mut err = std::io::stderr().lock();
            if tty {
                if new_step || s.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
                    let _ = write!(err, "\r\x1b[K{}", line(command, what, done, total));
                    let _ = err.flush();
                    s.drawn = Some(Instant::now());
                }
            } else if new_step || (tenth > s.tenth && total >= 100) {
                let _ = writeln!(err, "{}", line(command, what, done, total));
            }
            s.what = what;
            s.tenth = tenth;
        })
    }

    /// Ends the updating line on a terminal.
    pub fn finish(&self) {
        let drawn = self
            .state
            .lock()
            .map(|s| s.drawn.is_some())
            .unwrap_or(false);
        if self.tty && drawn {
            eprint!("\r\x1b[K");
        }
    }
}

fn line(command: &str, what: &str, done: u64, total: u64) -> String {
    match total {
        0 => format!("{command}: {what}"),
        t => format!("{command}: {what}: {done} of {t} ({}%)", done * 100 / t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_the_step_and_how_far() {
        assert_eq!(line("fsck", "listing blobs", 0, 0), "fsck: listing blobs");
        assert_eq!(
            line("fsck", "hashing blobs", 250, 1000),
            "fsck: hashing blobs: 250 of 1000 (25%)"
        );
    }
}
