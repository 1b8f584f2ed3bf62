//! The request body as handlers see it (hyper's, with an idle timeout), the response body
//! type (nothing, a buffer, a streamed blob, or a stream of unknown length such as an export
//! tarball), and the bridges between async bodies and the blocking readers and writers of the
//! bundle code.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::error::{Error, ErrorCode};
use crate::storage::FileBody;

/// A request body that fails once it has delivered nothing for `idle`: a client that stalls
/// mid-body must not hold its connection, or an upload session's lock, for ever. The clock is
/// read once per frame (not per byte); the timer is only armed while the body waits.
pub struct RequestBody {
    inner: Option<hyper::body::Incoming>,
    idle: std::time::Duration,
    last: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// What the server keeps of the body after the handler: the bytes read, and the unread
    /// rest when the body is dropped before its end (see [`BodyTail`]).
    tail: Option<BodyTail>,
}

/// What is left of a request body once its handler is done: how many bytes were read (for
/// the request log), and the unread rest if the handler dropped the body early (a request
/// refused before its body was read: 401, 404 of an unknown upload). HTTP/1.1 cannot read
/// the next request on the connection before this one's body is through, so hyper closes the
/// connection, and without `Connection: close` a client that reuses it (python-requests,
/// oras-py) fails with "remote end closed the connection". [`BodyTail::settle`] reads a small
/// rest to its end, so the connection lives on, or says the connection will close.
#[derive(Clone, Default)]
pub struct BodyTail(std::sync::Arc<Tail>);

#[derive(Default)]
struct Tail {
    rest: std::sync::Mutex<Option<hyper::body::Incoming>>,
    received: std::sync::atomic::AtomicU64,
}

/// A rest up to this size is read and discarded; a larger one closes the connection.
const LEFTOVER_DRAIN: usize = 1 << 20;
/// ... if it arrives within this.
const LEFTOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl BodyTail {
    /// Bytes of the body read so far.
    pub fn received(&self) -> u64 {
        self.0.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads what was left of the request body (if anything) to its end. `false` when it
    /// was more than a small rest, or did not arrive in time: the connection then closes
    /// after the answer, which should say so.
    pub async fn settle(&self) -> bool {
        use http_body_util::BodyExt;
        let rest = self.0.rest.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut rest) = rest else {
            return true;
        };
        let drain = async {
            let mut read = 0usize;
            while let Some(frame) = rest.frame().await {
                match frame {
                    Ok(f) => read += f.data_ref().map_or(0, |d| d.len()),
                    Err(_) => return false,
                }
                if read > LEFTOVER_DRAIN {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(LEFTOVER_WAIT, drain)
            .await
            .unwrap_or(false)
    }
}

impl RequestBody {
    pub fn new(inner: hyper::body::Incoming, idle: std::time::Duration) -> RequestBody {
        RequestBody {
            inner: Some(inner),
            idle,
            last: tokio::time::Instant::now(),
            timer: None,
            tail: None,
        }
    }

    /// Counts the bytes read into `tail`, and leaves the unread rest there when dropped
    /// before its end.
    pub fn with_tail(mut self, tail: BodyTail) -> RequestBody {
        self.tail = Some(tail);
        self
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let (Some(tail), Some(inner)) = (&self.tail, self.inner.take()) {
            if !inner.is_end_stream() {
                *tail.0.rest.lock().unwrap_or_else(|p| p.into_inner()) = Some(inner);
            }
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            this.last = tokio::time::Instant::now();
            if let (Some(tail), Some(Ok(f))) = (&this.tail, &frame) {
                let n = f.data_ref().map_or(0, |d| d.len() as u64);
                tail.0
                    .received
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            return Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)));
        }
        // Lazily: the timer, armed for the first deadline, is only moved when it fires
        // early because frames came in meanwhile.
        let first = this.last + this.idle;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(first)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = this.last + this.idle;
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the request body sent nothing for {} s",
                        this.idle.as_secs()
                    ),
                ))));
            }
            timer.as_mut().reset(deadline);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// 413 for a body over its bound.
pub fn too_large(what: &str, limit: usize) -> Error {
    let size = if limit >= 1 << 20 {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{} KiB", limit >> 10)
    };
    Error::api(
        ErrorCode::SizeInvalid,
        format!("{what} is larger than the {size} limit"),
    )
    .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
}

/// Why a bounded body could not be read whole.
pub enum Collect {
    /// Over the bound (by its Content-Length, or while streaming): 413.
    TooLarge,
    /// The connection failed or stalled.
    Failed(String),
}

/// Reads a small body (manifest, JSON, form) whole, refusing it as soon as it is known to be
/// over `limit`: by its Content-Length before any byte is read, or once `limit` bytes have
/// arrived. Never holds more than `limit` bytes.
pub async fn collect_limited(
    req: http::Request<RequestBody>,
    limit: usize,
) -> Result<Bytes, Collect> {
    use http_body_util::BodyExt;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Collect::TooLarge);
    }
    match http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Collect::TooLarge),
        Err(e) => Err(Collect::Failed(e.to_string())),
    }
}

pub enum ResponseBody {
    Empty,
    Full(Option<Bytes>),
    File(FileBody),
    /// Pieces of unknown total length, sent chunked; an `Err` aborts the response.
    Stream(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>),
}

impl ResponseBody {
    pub fn full(b: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Full(Some(b.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::File(f) => Pin::new(f).poll_frame(cx),
            ResponseBody::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(b) => b.is_none(),
            ResponseBody::File(f) => f.is_end_stream(),
            ResponseBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::File(f) => f.size_hint(),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// A blocking `Write` whose bytes become a [`ResponseBody::Stream`]: for code that writes a
/// tarball on a blocking thread while the client downloads it.
pub struct StreamWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// Pieces handed to the connection at a time.
const PIECE: usize = 256 << 10;

impl StreamWriter {
    pub fn new() -> (StreamWriter, ResponseBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (
            StreamWriter {
                tx,
                buf: Vec::with_capacity(PIECE),
            },
            ResponseBody::Stream(rx),
        )
    }

    /// Ends the response with an error, so the client cannot take a cut-off stream for a
    /// complete one.
    pub fn fail(self, why: String) {
        let _ = self.tx.blocking_send(Err(std::io::Error::other(why)));
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx.blocking_send(Ok(piece)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for StreamWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A blocking `Read` over a request body: for code that reads a tarball on a blocking thread
/// while the client uploads it.
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    piece: Bytes,
}

impl BodyReader {
    /// Starts copying `body` (frame by frame, a few frames ahead) for a blocking reader.
    pub fn spawn(mut body: RequestBody) -> BodyReader {
        use http_body_util::BodyExt;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let piece =
                    match tokio::time::timeout(std::time::Duration::from_secs(60), body.frame())
                        .await
                    {
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the upload stalled",
                        )),
                        Ok(None) => return,
                        Ok(Some(Err(e))) => Err(std::io::Error::other(e)),
                        Ok(Some(Ok(f))) => match f.into_data() {
                            Ok(d) => Ok(d),
                            Err(_) => continue,
                        },
                    };
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
            }
        });
        BodyReader {
            rx,
            piece: Bytes::new(),
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.piece.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(p)) => self.piece = p,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.piece.len());
        out[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}
