//! A response body that streams a byte range of a blob file.
//!
//! Reads are large (`pread`, 256 KiB: few syscalls per byte) and run briefly on the blocking
//! pool, one piece at a time. Every piece in flight, whichever pull it belongs to, holds one
//! of a fixed number of buffers until the connection has written it, so all pulls together
//! use at most `BUFFERS` x 256 KiB however many clients there are and however large the blobs:
//! a fiftieth concurrent client waits a moment for a buffer instead of growing the process.
//!
//! A piece also holds a place in its connection's and its client's share ([`ReadShare`]), so
//! a client that stops reading (or holds its HTTP/2 window at 0) ties up at most its share,
//! never the buffers other clients' pulls need. A piece nobody takes for the share's send
//! timeout is dropped, the body ends in an error, and its buffers go back at once.
//!
//! A whole blob can be read [`Verify`]-ing it (see `verify`): each piece is checked as it
//! is read, and the last one is sent only once the whole checks out. A blob whose bytes
//! changed on disk then ends in an error instead of a clean end, so a client never takes
//! wrong bytes for a whole blob.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::verify::{Check, Verify};

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
    _permits: [Option<OwnedSemaphorePermit>; 3],
}

/// The buffers one connection, and one client (an address), may hold at once, and how long
/// a piece may wait to be taken. Cheap to clone; the server makes one per connection.
#[derive(Clone)]
pub struct ReadShare {
    connection: Arc<Semaphore>,
    client: Arc<Semaphore>,
    send_timeout: std::time::Duration,
}

/// Buffers one connection may hold at once (1 MiB).
pub const CONNECTION_SHARE: usize = 4;
/// Buffers the connections of one client address may hold at once (2 MiB).
pub const CLIENT_SHARE: usize = 8;

impl ReadShare {
    /// A connection's share, within `client`'s (one semaphore per client address, of
    /// [`CLIENT_SHARE`] permits, shared by that client's connections).
    pub fn new(client: Arc<Semaphore>, send_timeout: std::time::Duration) -> ReadShare {
        ReadShare {
            connection: Arc::new(Semaphore::new(CONNECTION_SHARE)),
            client,
            send_timeout,
        }
    }

    pub fn client_semaphore() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(CLIENT_SHARE))
    }
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
    /// The reader, not started until the body is first polled, so that the share it reads
    /// under can still be set.
    pending: Option<Reader>,
    share: Option<ReadShare>,
}

/// A reader not yet started: the file, where to start, and where its pieces go.
struct Reader {
    file: File,
    offset: u64,
    tx: mpsc::Sender<io::Result<Bytes>>,
    verify: Option<Verify>,
}

impl FileBody {
    /// Streams `len` bytes of `file` starting at `offset`.
    pub fn spawn(file: File, offset: u64, len: u64) -> FileBody {
        let (tx, rx) = mpsc::channel(1);
        FileBody {
            rx,
            remaining: len,
            pending: (len > 0).then_some(Reader {
                file,
                offset,
                tx,
                verify: None,
            }),
            share: None,
        }
    }

    /// Checks the content against `verify` as it streams. Only meaningful for a body that
    /// is a whole blob (offset 0, the file's full length); set before the body is polled.
    pub fn verified(mut self, verify: Verify) -> FileBody {
        if let Some(r) = &mut self.pending {
            r.verify = Some(verify);
        }
        self
    }

    /// Reads within `share` (the connection and client the body is sent to).
    pub fn within(&mut self, share: ReadShare) {
        self.share = Some(share);
    }

    /// A body of `len` bytes fed through the returned sender: a blob streamed from an
    /// upstream registry while it is stored. Ends in an error if the sender stops early.
    pub fn channel(len: u64) -> (mpsc::Sender<io::Result<Bytes>>, FileBody) {
        let (tx, rx) = mpsc::channel(4);
        (
            tx,
            FileBody {
                rx,
                remaining: len,
                pending: None,
                share: None,
            },
        )
    }
}

/// Places for one piece: the connection's, the client's, then the pool's, taken in that
/// order so that a client waiting on its own share holds none of the pool meanwhile.
async fn permits(
    pool: &Pool,
    share: Option<&ReadShare>,
) -> Option<[Option<OwnedSemaphorePermit>; 3]> {
    let (connection, client) = match share {
        Some(s) => (
            Some(s.connection.clone().acquire_owned().await.ok()?),
            Some(s.client.clone().acquire_owned().await.ok()?),
        ),
        None => (None, None),
    };
    let global = pool.permits.clone().acquire_owned().await.ok()?;
    Some([connection, client, Some(global)])
}

async fn read_pieces(reader: Reader, len: u64, share: Option<ReadShare>) {
    let Reader {
        file,
        offset,
        tx,
        verify,
    } = reader;
    let file = Arc::new(file);
    let mut check = verify.map(Check::new);
    let pool = pool();
    let (mut pos, end) = (offset, offset + len);
    while pos < end {
        let Some(permits) = permits(pool, share.as_ref()).await else {
            return;
        };
        let n = PIECE.min((end - pos) as usize);
        let mut buf = pool
            .spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default();
        buf.resize(n, 0);
        let read = match read_cached(&file, &mut buf, pos) {
            Some(got) => {
                buf.truncate(got);
                Ok(buf)
            }
            None => {
                let f = file.clone();
                tokio::task::spawn_blocking(move || f.read_exact_at(&mut buf, pos).map(|()| buf))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e)))
            }
        };
        // Hashed here, and the last piece held back until the whole checks out.
        let read = read.and_then(|buf| {
            let Some(c) = check.as_mut() else {
                return Ok(buf);
            };
            c.feed(&buf);
            if pos + buf.len() as u64 >= end {
                check.take().map_or(Ok(()), Check::conclude)?;
            }
            Ok(buf)
        });
        let piece = read.map(|buf| {
            Bytes::from_owner(Piece {
                buf,
                _permits: permits,
            })
        });
        let got = piece.as_ref().map_or(0, |p| p.len() as u64);
        let failed = piece.is_err();
        // A piece nobody takes for the send timeout: the client stopped reading. Dropping
        // it gives its buffers back; the body then ends in an error.
        let delivered = match &share {
            Some(s) => matches!(
                tokio::time::timeout(s.send_timeout, tx.send(piece)).await,
                Ok(Ok(()))
            ),
            None => tx.send(piece).await.is_ok(),
        };
        if !delivered || failed {
            return; // client gone, or the error is on its way
        }
        pos += got;
    }
}

/// Reads what of `buf.len()` bytes at `pos` is already in the page cache, right here on the
/// async thread: `preadv2` with `RWF_NOWAIT` copies from the cache and never waits for the
/// disk. Handing every piece to the blocking pool instead costs two thread wake-ups per
/// piece, which on a small box is a large share of a pull's CPU (a hot blob is nearly always
/// cached). `None` when nothing could be read this way (not cached, or the kernel or
/// filesystem does not support the flag): the caller then reads on the blocking pool.
#[cfg(target_os = "linux")]
fn read_cached(file: &File, buf: &mut [u8], pos: u64) -> Option<usize> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Set once the kernel says it does not know the flag, so it is not asked again.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // The system call takes the offset as two halves of a `long` each (the high half is
    // unused on 64-bit targets). Called directly because not every libc wraps preadv2.
    let half = libc::c_long::BITS / 2;
    let (lo, hi) = (pos as libc::c_ulong, (pos >> half) >> half);
    // SAFETY: the one iovec points at `buf`, which is valid for writes of `buf.len()` bytes
    // and borrowed mutably for the whole call; the descriptor belongs to `file`, open for the
    // call's duration. The kernel writes at most `iov_len` bytes.
    let n = unsafe {
        libc::syscall(
            libc::SYS_preadv2,
            file.as_raw_fd(),
            &iov as *const libc::iovec,
            1 as libc::c_int,
            lo as libc::c_long,
            hi as libc::c_long,
            libc::RWF_NOWAIT,
        )
    };
    if n > 0 {
        return Some(n as usize);
    }
    if n < 0 {
        let e = io::Error::last_os_error().raw_os_error();
        if matches!(e, Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_file: &File, _buf: &mut [u8], _pos: u64) -> Option<usize> {
    None
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
        if let Some(reader) = self.pending.take() {
            let len = self.remaining;
            let share = self.share.clone();
            tokio::spawn(read_pieces(reader, len, share));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::storage::verify::{Expect, Outcome};
    use http_body_util::BodyExt;
    use std::io::Write;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn streams_exactly_the_requested_range_across_pieces() {
        let data = pattern(3 * PIECE + 12345);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        for (offset, len) in [
            (0, data.len()),
            (1, PIECE),
            (PIECE - 3, 2 * PIECE + 7),
            (data.len() - 1, 1),
        ] {
            let file = File::open(f.path()).unwrap();
            let body = FileBody::spawn(file, offset as u64, len as u64);
            let got = body.collect().await.unwrap().to_bytes();
            assert_eq!(
                &got[..],
                &data[offset..offset + len],
                "range {offset}+{len}"
            );
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_ends_in_an_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&pattern(1000)).unwrap();
        let body = FileBody::spawn(File::open(f.path()).unwrap(), 0, 5000);
        assert!(body.collect().await.is_err());
    }

    /// A verified body: what was sent, how it ended, and the outcome reported.
    async fn read_verified(
        data: &[u8],
        expect: Expect,
    ) -> (Vec<u8>, Option<io::Error>, Option<Outcome>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        let reported = Arc::new(Mutex::new(None));
        let r2 = reported.clone();
        let mut body = FileBody::spawn(File::open(f.path()).unwrap(), 0, data.len() as u64)
            .verified(Verify {
                expect,
                report: Box::new(move |o| *r2.lock().unwrap() = Some(o)),
            });
        let (mut sent, mut error) = (Vec::new(), None);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => sent.extend_from_slice(&f.into_data().unwrap()),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let got = *reported.lock().unwrap();
        (sent, error, got)
    }

    #[tokio::test]
    async fn a_verified_blob_that_checks_out_is_sent_whole() {
        for n in [1, PIECE, 2 * PIECE + 5] {
            let data = pattern(n);
            let checksum = crc32fast::hash(&data);
            for expect in [
                Expect::Digest(Digest::sha256_of(&data)),
                Expect::Checksum(checksum),
            ] {
                let (sent, error, reported) = read_verified(&data, expect).await;
                assert_eq!(sent, data, "{n} bytes");
                assert!(error.is_none(), "{n} bytes");
                assert_eq!(reported, Some(Outcome::Sound { checksum }));
            }
        }
    }

    #[tokio::test]
    async fn a_verified_blob_with_a_flipped_byte_never_ends_cleanly() {
        for n in [1, PIECE, 2 * PIECE + 5] {
            let good = pattern(n);
            let mut bad = good.clone();
            bad[n / 2] ^= 0x20;
            for expect in [
                Expect::Digest(Digest::sha256_of(&good)),
                Expect::Checksum(crc32fast::hash(&good)),
            ] {
                let (sent, error, reported) = read_verified(&bad, expect).await;
                // What went out is a prefix of the file short of its last piece (at most
                // one piece, held back for the error).
                assert!(sent.len() < n && sent.len() + PIECE >= n, "{n} bytes");
                assert_eq!(sent[..], bad[..sent.len()]);
                let error = error.expect("the body must end in an error");
                assert_eq!(error.kind(), io::ErrorKind::InvalidData);
                assert_eq!(reported, Some(Outcome::Wrong), "{n} bytes");
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cached_reads_return_the_file_bytes() {
        let data = pattern(PIECE);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let file = File::open(f.path()).unwrap();
        let mut buf = vec![0u8; 4096];
        // Just written, so cached: the non-blocking read succeeds (unless the kernel lacks
        // RWF_NOWAIT, in which case it must say so rather than return wrong bytes).
        if let Some(n) = read_cached(&file, &mut buf, 100) {
            assert_eq!(&buf[..n], &data[100..100 + n]);
        }
        assert_eq!(
            read_cached(&file, &mut buf, data.len() as u64),
            None,
            "at the end"
        );
    }
}
