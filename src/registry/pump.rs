//! Moves a request body into an upload file: the connection task receives, a blocking thread
//! writes and hashes, and a small bounded channel between them keeps memory fixed while both
//! run at once. Small frames are gathered into 1 MiB writes.

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::error::{Error, ErrorCode, Result};
use crate::storage::UploadFile;

const WRITE_SIZE: usize = 1 << 20;

/// How the body ended. The file always comes back, consistent with its hash, holding every
/// byte that arrived before an error.
pub struct Pumped {
    pub file: UploadFile,
    pub outcome: Result<u64>,
}

/// Appends `body` to `file`. `limit` is the exact number of bytes the client promised
/// (Content-Range), if any: more is refused, the bytes past it are never written.
pub async fn pump<B>(
    file: UploadFile,
    body: B,
    limit: Option<u64>,
    events: &dyn super::Events,
) -> Pumped
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || {
        let mut file = file;
        // Allocated on demand: a small blob (most configs, many layers) needs only its own
        // size, a large one grows it once to the full write size.
        let mut buf: Vec<u8> = Vec::new();
        let mut result = Ok(());
        while let Some(piece) = rx.blocking_recv() {
            if buf.len() + piece.len() > WRITE_SIZE && !buf.is_empty() {
                result = file.append(&buf);
                buf.clear();
            }
            if result.is_ok() {
                if piece.len() >= WRITE_SIZE {
                    result = file.append(&piece);
                } else {
                    if buf.len() + piece.len() > buf.capacity() {
                        let want = if buf.capacity() == 0 {
                            piece.len()
                        } else {
                            WRITE_SIZE
                        };
                        buf.reserve_exact(want - buf.len());
                    }
                    buf.extend_from_slice(&piece);
                }
            }
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() && !buf.is_empty() {
            result = file.append(&buf);
        }
        (file, result)
    });

    let _in_flight = super::events::InFlight::start(events);
    let mut body = std::pin::pin!(body);
    let mut received: u64 = 0;
    let mut failure: Option<Error> = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                if limit.is_some_and(|l| received > l) {
                    failure = Some(Error::api(
                        ErrorCode::SizeInvalid,
                        "body is longer than its Content-Range says",
                    ));
                    break;
                }
                if tx.send(data).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failure = Some(Error::api(
                    ErrorCode::BlobUploadInvalid,
                    format!("reading the request body failed: {e}"),
                ));
                break;
            }
        }
    }
    drop(tx);
    events.bytes_received(received);
    let (file, written) = match writer.await {
        Ok(r) => r,
        Err(e) => {
            // The writer thread panicked: its file handle is gone with it. This is a bug,
            // so there is nothing sensible to hand back but an error; callers reopen.
            std::panic::resume_unwind(e.into_panic())
        }
    };
    let outcome = match (written, failure) {
        (Err(e), _) => Err(storage_error(e)),
        (Ok(()), Some(f)) => Err(f),
        (Ok(()), None) => Ok(received),
    };
    Pumped { file, outcome }
}

/// 507 with a message docker prints as is.
pub fn disk_full(message: impl Into<String>) -> Error {
    Error::api(ErrorCode::Denied, message)
        .with_status(http::StatusCode::INSUFFICIENT_STORAGE)
        .with_detail(serde_json::json!({ "reason": "insufficient storage" }))
}

/// A write failure, with a full disk made recognisable to the client.
pub fn storage_error(e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) {
        // ENOSPC: the client should know the registry is full, not that it broke. DENIED,
        // because docker does not retry it (retrying into a full disk only wastes time).
        tracing::error!(
            "the data directory's disk is full: an upload failed midway and was discarded"
        );
        disk_full("the registry's disk is full: the upload was discarded; free space (edgeyard gc) and push again")
    } else if matches!(
        e.raw_os_error(),
        Some(libc::EROFS | libc::EACCES | libc::EPERM)
    ) {
        // The data directory cannot be written (mounted read-only, permissions changed): as
        // with a full disk, the registry cannot store anything, and the client should know.
        tracing::error!(error = %e, "the data directory cannot be written: an upload was discarded");
        disk_full("the registry's storage cannot be written (read-only or permission denied): the upload was discarded; the operator must make the data directory writable")
    } else {
        Error::internal("writing upload data", e)
    }
}
