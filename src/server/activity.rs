//! What a connection is doing, so that it can be closed when it idles or stalls.
//!
//! hyper closes an idle HTTP/1.1 keep-alive connection, but an HTTP/2 connection that made
//! one request and then only answers pings stays open for ever, and a connection whose
//! client stopped reading (or holds its HTTP/2 window at 0) keeps what its answers hold. So
//! each connection counts its requests in flight and the answers being sent, notes when
//! anything last moved (a request arrived, an answer's body handed a piece to the
//! connection, a request ended), and a watchdog closes it when nothing is in flight for the
//! idle bound, or when answers are being sent but none has taken anything for the send
//! bound, or when its socket has refused every write for the send bound. The counting costs
//! two atomic operations per frame.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's requests and answers.
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    sending: AtomicUsize,
    /// Of the answers being sent, those waiting for the server (their next piece is being
    /// read, or waits for a buffer): the connection is ready for them, so they do not stall.
    waiting: AtomicUsize,
    /// Milliseconds after `epoch` when something last moved.
    last: AtomicU64,
    /// Milliseconds after `epoch`, plus one, since when the socket has refused every write
    /// (its send buffer full: the client reads nothing); 0 while writes go through.
    blocked: AtomicU64,
    /// Wakes the watchdog when a change brings a deadline nearer than the one it sleeps
    /// until (an answer starts being sent, the last request ends, the socket blocks), so
    /// that it measures from then. Most changes do not (with the default bounds, none do), so
    /// a busy connection costs the watchdog no wake-up per request.
    changed: tokio::sync::Notify,
    /// Milliseconds after `epoch` the watchdog sleeps until; `u64::MAX` while it is looking.
    wake_at: AtomicU64,
    /// The bounds it watches for, in milliseconds (0 until it starts).
    idle_ms: AtomicU64,
    stall_ms: AtomicU64,
}

/// Why the watchdog closed a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing in flight for the idle bound.
    Idle,
    /// Answers being sent, none of which took anything for the send bound.
    Stalled,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            sending: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
            wake_at: AtomicU64::new(u64::MAX),
            idle_ms: AtomicU64::new(0),
            stall_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// The socket refused a write (see [`Activity::watch`]).
    pub fn write_blocked(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        if self
            .blocked
            .compare_exchange(0, ms, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            self.nudge(&self.stall_ms);
        }
    }

    /// The socket took bytes.
    pub fn write_progressed(&self) {
        if self.blocked.load(Ordering::Relaxed) != 0 {
            self.blocked.store(0, Ordering::Relaxed);
        }
    }

    /// Wakes the watchdog if a deadline `bound` from now is nearer than the one it sleeps
    /// until (or it is looking right now, and might have read the state before the change).
    fn nudge(&self, bound: &AtomicU64) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let wake = self.wake_at.load(Ordering::SeqCst);
        if wake == u64::MAX || now + bound.load(Ordering::Relaxed) < wake {
            self.changed.notify_one();
        }
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// A request has arrived; it counts as in flight until the guard is dropped (moved into
    /// its answer's body by [`Tracked::new`], so until the answer is sent).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        // No nudge: while a request is in flight only the send bound applies, and that
        // starts with its answer (`Tracked::new`).
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves when the connection should be closed: nothing in flight for `idle`, or
    /// answers being sent that took nothing for `stall` while they had something to give.
    pub async fn watch(&self, idle: Duration, stall: Duration) -> Verdict {
        self.idle_ms
            .store(idle.as_millis() as u64, Ordering::Relaxed);
        self.stall_ms
            .store(stall.as_millis() as u64, Ordering::Relaxed);
        loop {
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            let now = Instant::now();
            let last = self.last();
            let in_flight = self.in_flight.load(Ordering::Relaxed);
            let sending = self
                .sending
                .load(Ordering::Relaxed)
                .saturating_sub(self.waiting.load(Ordering::Relaxed));
            if in_flight == 0 && now >= last + idle {
                return Verdict::Idle;
            }
            if sending > 0 && now >= last + stall {
                return Verdict::Stalled;
            }
            // Whatever the bodies say (one may wait for a read buffer while its connection
            // holds others it cannot write), a socket that took nothing for the bound has a
            // client that reads nothing.
            let blocked = self.blocked.load(Ordering::Relaxed);
            let blocked_since =
                (blocked > 0).then(|| self.epoch + Duration::from_millis(blocked - 1));
            if blocked_since.is_some_and(|t| now >= t + stall) {
                return Verdict::Stalled;
            }
            let next = if in_flight == 0 {
                last + idle
            } else if sending > 0 {
                last + stall
            } else {
                // A request being handled (a long garbage collection, say): look again.
                now + stall.min(idle)
            };
            let next = blocked_since.map_or(next, |t| next.min(t + stall));
            let next = next.max(now + Duration::from_millis(50));
            let changed = self.changed.notified();
            self.wake_at.store(
                next.saturating_duration_since(self.epoch).as_millis() as u64,
                Ordering::SeqCst,
            );
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = changed => {}
            }
        }
    }
}

/// A request in flight (see [`Activity::begin`]).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        // The last request ended: the idle bound may now be nearer than the watchdog's
        // deadline (the send bound).
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.nudge(&self.0.idle_ms);
        }
    }
}

/// An answer's body that notes each piece the connection takes from it, and keeps its
/// request in flight until it is sent or dropped.
pub struct Tracked<B> {
    body: B,
    request: InFlight,
    sending: bool,
    /// The body's last poll found nothing ready (counted in `Activity::waiting`).
    waiting: bool,
}

impl<B: Body> Tracked<B> {
    pub fn new(body: B, request: InFlight) -> Tracked<B> {
        let sending = !body.is_end_stream();
        if sending {
            request.0.sending.fetch_add(1, Ordering::SeqCst);
            request.0.nudge(&request.0.stall_ms);
        }
        Tracked {
            body,
            request,
            sending,
            waiting: false,
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if std::mem::replace(&mut self.waiting, waiting) != waiting {
            if waiting {
                self.request.0.waiting.fetch_add(1, Ordering::Relaxed);
            } else {
                self.request.0.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<B> Tracked<B> {
    fn done(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.request.0.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        if std::mem::take(&mut self.sending) {
            self.request.0.sending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.done();
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                this.request.0.touch();
                this.set_waiting(false);
                if this.body.is_end_stream() {
                    this.done();
                }
            }
            Poll::Ready(_) => this.done(),
            Poll::Pending => this.set_waiting(true),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ResponseBody;
    use bytes::Bytes;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn idle_then_stalled_then_idle_again() {
        let a = Activity::new();
        let ms = Duration::from_millis;
        let (idle, stall) = (ms(600), ms(300));
        let about = |t: Instant, d: Duration| {
            let e = t.elapsed();
            assert!(e >= d && e < d + ms(2000), "{e:?} for {d:?}");
        };
        // Nothing in flight: idle after the idle bound.
        let t = Instant::now();
        assert_eq!(a.watch(idle, stall).await, Verdict::Idle);
        about(t, idle);

        // A request whose answer is being sent and is never read: stalled after the bound.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = Tracked::new(ResponseBody::Stream(rx), a.begin());
        tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
        assert!(body.frame().await.is_some());
        let t = Instant::now();
        assert_eq!(a.watch(idle, stall).await, Verdict::Stalled);
        about(t, stall);

        // Sent to the end: nothing in flight, idle again after the idle bound.
        drop(tx);
        assert!(body.frame().await.is_none());
        drop(body);
        let t = Instant::now();
        assert_eq!(a.watch(idle, stall).await, Verdict::Idle);
        about(t, idle);
    }

    /// A connection whose body waits for a read buffer while its socket refuses every
    /// write is stalled all the same (a slow reader holding buffers it cannot write).
    #[tokio::test]
    async fn a_socket_that_takes_nothing_is_stalled() {
        let a = Activity::new();
        let (idle, stall) = (Duration::from_secs(30), Duration::from_millis(300));
        let (_tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
        let mut body = Tracked::new(ResponseBody::Stream(rx), a.begin());
        // Polled, nothing ready: waiting for the server, so not stalled by itself.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), body.frame())
                .await
                .is_err()
        );
        a.write_blocked();
        let t = Instant::now();
        assert_eq!(a.watch(idle, stall).await, Verdict::Stalled);
        assert!(t.elapsed() < stall + Duration::from_secs(2));
        // Writes going through again: neither.
        a.write_progressed();
        let watch = a.watch(idle, stall);
        tokio::select! {
            v = watch => panic!("{v:?} while waiting for the server"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }

    /// Regression (seen in CI): a request that came and went while the watchdog waited for
    /// the send bound left it asleep until then, so an idle connection outlived the idle
    /// bound by the send bound.
    #[tokio::test]
    async fn the_idle_bound_counts_from_the_end_of_the_last_request() {
        let a = Activity::new();
        let (idle, stall) = (Duration::from_millis(300), Duration::from_secs(30));
        let watch = {
            let a = a.clone();
            tokio::spawn(async move { a.watch(idle, stall).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = Tracked::new(ResponseBody::Stream(rx), a.begin());
        tokio::time::sleep(Duration::from_millis(50)).await; // the watchdog sees it sending
        tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
        drop(tx);
        while body.frame().await.is_some() {}
        drop(body);
        let t = Instant::now();
        let verdict = tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("still open 5 s after its last request")
            .unwrap();
        assert_eq!(verdict, Verdict::Idle);
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_request_being_handled_is_neither_idle_nor_stalled() {
        let a = Activity::new();
        let request = a.begin();
        let watch = a.watch(Duration::from_millis(200), Duration::from_millis(100));
        tokio::select! {
            v = watch => panic!("closed while handling: {v:?}"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drop(request);
    }
}
