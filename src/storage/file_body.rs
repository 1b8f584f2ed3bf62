//! A response body that streams a byte range of a blob file.
//!
//! Reads happen on a blocking thread in large pieces (`pread`, 256 KiB) and cross to the
//! connection through a channel of two pieces, so a pull costs a bounded amount of memory
//! however large the blob and however slow the client.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

const PIECE: usize = 256 << 10;

pub struct FileBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl FileBody {
    /// Streams `len` bytes of `file` starting at `offset`.
    pub fn spawn(file: File, offset: u64, len: u64) -> FileBody {
        let (tx, rx) = mpsc::channel(2);
        if len > 0 {
            tokio::task::spawn_blocking(move || {
                let mut pos = offset;
                let end = offset + len;
                while pos < end {
                    let n = PIECE.min((end - pos) as usize);
                    let mut buf = vec![0u8; n];
                    let piece = match file.read_exact_at(&mut buf, pos) {
                        Ok(()) => Ok(Bytes::from(buf)),
                        Err(e) => Err(e),
                    };
                    let failed = piece.is_err();
                    if tx.blocking_send(piece).is_err() || failed {
                        return; // client gone, or the error is on its way
                    }
                    pos += n as u64;
                }
            });
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
