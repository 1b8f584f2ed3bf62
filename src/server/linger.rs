//! Lingering close: a connection the server ends while the client is still sending (an
//! upload refused before its body was read) is closed the way nginx and Go's server close
//! it, so that its answer reaches the client.
//!
//! Closing a socket whose receive buffer holds unread bytes makes the kernel send a reset,
//! and a reset makes the client's kernel drop whatever it had not read yet: a client that
//! writes its whole body before reading (python-requests, many scripts) then sees
//! "connection reset" instead of the 404 or 413 that explains the refusal. So when a
//! connection ends, its write side is shut (the client reads the answer, then end of
//! stream) and what the client still sends is read and discarded, within bounds, before
//! the socket is closed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::activity::Activity;

/// At most this many closed connections linger at once; beyond it they close at once.
const MAX_LINGERING: usize = 128;
/// A lingering connection ends after this long, whatever the client does.
const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// ... or once the client has sent nothing for this long.
const LINGER_IDLE: Duration = Duration::from_secs(5);
/// ... or once this much has been discarded.
const LINGER_BYTES: u64 = 256 << 20;

static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// A TCP stream that lingers when dropped (see the module documentation).
pub struct Lingering {
    stream: Option<TcpStream>,
    /// Told when writes block and when they go through (the connection's watchdog).
    activity: Option<Arc<Activity>>,
}

impl Lingering {
    pub fn new(stream: TcpStream, activity: Option<Arc<Activity>>) -> Lingering {
        Lingering {
            stream: Some(stream),
            activity,
        }
    }

    /// The first bytes the client sent, left unread (for telling TLS from plain HTTP).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.stream {
            Some(s) => s.peek(buf).await,
            None => Ok(0),
        }
    }

    /// Notes whether a write went through or the socket refused it.
    fn note<T>(&self, polled: &Poll<io::Result<T>>) {
        if let Some(a) = &self.activity {
            match polled {
                Poll::Pending => a.write_blocked(),
                Poll::Ready(_) => a.write_progressed(),
            }
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match this.stream() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        };
        this.note(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match this.stream() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        };
        this.note(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        runtime.spawn(async move {
            let _ = tokio::time::timeout(LINGER_TOTAL, linger(stream)).await;
            LINGERING.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Shuts the write side (if the connection has not) and discards what the client sends until
/// it closes, goes quiet, or the bound is reached.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 16 << 10];
    let mut discarded = 0u64;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout(LINGER_IDLE, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n as u64,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The answer written before the server dropped the connection reaches a client that
    /// only reads after writing 8 MiB more than the server ever read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_writes_everything_first_still_reads_the_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&vec![7u8; 8 << 20]).unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).map(|_| answer)
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Lingering::new(stream, None);
        let mut first = [0u8; 1024];
        conn.read_exact(&mut first).await.unwrap();
        conn.write_all(b"refused").await.unwrap();
        drop(conn);
        assert_eq!(client.join().unwrap().unwrap(), "refused");
    }
}
