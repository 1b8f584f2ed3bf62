//! A response body that streams a byte range of a blob file.
//!
//! Reads are large (`pread`, 256 KiB: few syscalls per byte) and run briefly on the blocking
//! pool, one piece at a time. Every piece in flight, whichever pull it belongs to, holds one
//! of a fixed number of buffers until the connection has written it, so all pulls together
//! use at most `BUFFERS` x 256 KiB however many clients there are and however large the blobs:
//! a fiftieth concurrent client waits a moment for a buffer instead of growing the process.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

const PIECE: usize = 256 << 10;

/// Buffers shared by all pulls (8 MiB).
const BUFFERS: usize = 32;

/// The buffers: a permit to hold one, and the spare ones for reuse.
struct Pool {
    permits: Arc<Semaphore>,
    spare: Mutex<Vec<Vec<u8>>>,
}

fn pool() -> &'static Pool {
    static P: OnceLock<Pool> = OnceLock::new();
    P.get_or_init(|| Pool {
        permits: Arc::new(Semaphore::new(BUFFERS)),
        spare: Mutex::new(Vec::new()),
    })
}

/// A filled buffer on its way to the socket; back to the pool when the connection drops it.
struct Piece {
    buf: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut spare) = pool().spare.lock() {
            spare.push(buf);
        }
    }
}

pub struct FileBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl FileBody {
    /// Streams `len` bytes of `file` starting at `offset`.
    pub fn spawn(file: File, offset: u64, len: u64) -> FileBody {
        let (tx, rx) = mpsc::channel(1);
        if len > 0 {
            tokio::spawn(read_pieces(Arc::new(file), offset, len, tx));
        }
        FileBody { rx, remaining: len }
    }

    /// A body of `len` bytes fed through the returned sender: a blob streamed from an
    /// upstream registry while it is stored. Ends in an error if the sender stops early.
    pub fn channel(len: u64) -> (mpsc::Sender<io::Result<Bytes>>, FileBody) {
        let (tx, rx) = mpsc::channel(4);
        (tx, FileBody { rx, remaining: len })
    }
}

async fn read_pieces(file: Arc<File>, offset: u64, len: u64, tx: mpsc::Sender<io::Result<Bytes>>) {
    let pool = pool();
    let (mut pos, end) = (offset, offset + len);
    while pos < end {
        let Ok(permit) = pool.permits.clone().acquire_owned().await else {
            return;
        };
        let n = PIECE.min((end - pos) as usize);
        let mut buf = pool
            .spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default();
        let f = file.clone();
        let read = tokio::task::spawn_blocking(move || {
            buf.resize(n, 0);
            f.read_exact_at(&mut buf, pos).map(|()| buf)
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        let piece = read.map(|buf| {
            Bytes::from_owner(Piece {
                buf,
                _permit: permit,
            })
        });
        let failed = piece.is_err();
        if tx.send(piece).await.is_err() || failed {
            return; // client gone, or the error is on its way
        }
        pos += n as u64;
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob reader stopped early",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
