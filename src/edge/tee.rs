//! The copy of an upstream blob to the client that pulls it and into the cache at once,
//! for pull-through mirrors and sync (which copies with nobody reading along).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::oci::{Digest, RepoName};
use crate::registry::{Incoming, Registry};

/// An upstream that sends nothing for this long is given up on.
const STALL: Duration = Duration::from_secs(60);

/// Bytes gathered before each write to the cache file.
const WRITE_BATCH: usize = 1 << 20;

/// Why an upstream blob was not cached (already logged).
#[derive(Debug)]
pub(super) struct NotCached(pub String);

impl std::fmt::Display for NotCached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Copies an upstream blob to the client and into the cache file. The last piece is held
/// back until the whole blob is verified, so a client never gets a clean end of bad bytes.
/// A client that goes away does not stop the caching.
pub(super) async fn tee(
    registry: Registry,
    local: RepoName,
    digest: Digest,
    size: u64,
    mut body: hyper::body::Incoming,
    mut store: Option<Incoming>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> std::result::Result<(), NotCached> {
    let mut client = Some(tx);
    // Bytes are hashed once: by the cache file as they are written (sha256), or here
    // when nothing is stored or the digest uses another algorithm.
    let mut hasher = (store.is_none() || digest.algorithm() != crate::oci::Algorithm::Sha256)
        .then(|| crate::oci::Hasher::new(digest.algorithm()));
    let mut held: Option<Bytes> = None;
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    let mut got = 0u64;
    let failure: Option<String> = loop {
        let frame = match tokio::time::timeout(STALL, body.frame()).await {
            Err(_) => break Some(format!("the upstream sent nothing for {STALL:?}")),
            Ok(None) => break None,
            Ok(Some(Err(e))) => break Some(format!("reading from the upstream: {e}")),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        got += data.len() as u64;
        if got > size {
            break Some(format!(
                "the upstream sent more than the {size} bytes it announced"
            ));
        }
        if let Some(h) = &mut hasher {
            h.update(&data);
        }
        if let Some(prev) = held.replace(data.clone()) {
            if let Some(c) = &client {
                if c.send(Ok(prev)).await.is_err() {
                    client = None;
                }
            }
        }
        if store.is_some() {
            pending.extend_from_slice(&data);
            if pending.len() >= WRITE_BATCH {
                match write(store.take(), std::mem::take(&mut pending)).await {
                    Ok(s) => store = s,
                    Err(e) => {
                        tracing::error!(error = %e, "writing a mirrored blob failed; passing it through");
                    }
                }
            }
        }
        if client.is_none() && store.is_none() {
            return Err(NotCached(
                "the client went away and the blob could not be cached".into(),
            ));
        }
    };
    let mut failure = match failure {
        None if got != size => Some(format!("the upstream sent {got} of {size} bytes")),
        f => f,
    };
    if failure.is_none() {
        match write(store.take(), std::mem::take(&mut pending)).await {
            Ok(s) => store = s,
            Err(e) => tracing::error!(error = %e, "writing a mirrored blob failed"),
        }
        let actual = match (hasher, &store) {
            (Some(h), _) => Some(h.finish()),
            (None, Some(f)) => f.sha256(),
            // The cache file failed midway and held the only hash.
            (None, None) => None,
        };
        failure = match actual {
            None => Some("a write to the cache failed, so the bytes could not be verified".into()),
            Some(a) if a != digest => Some(format!("the upstream sent bytes with digest {a}")),
            Some(_) => None,
        };
    }
    if let Some(why) = failure {
        tracing::error!(%digest, repo = %local, reason = %why, "mirrored blob refused");
        registry.events().mirror("failed");
        if let Some(c) = &client {
            let _ = c.send(Err(std::io::Error::other(why.clone()))).await;
        }
        // Dropping the cache file removes it.
        drop(store);
        return Err(NotCached(why));
    }
    if let Some(c) = client.take() {
        if let Some(last) = held.take() {
            let _ = c.send(Ok(last)).await;
        }
    }
    let Some(f) = store else {
        return Err(NotCached(
            "the blob could not be cached (see the log)".into(),
        ));
    };
    registry
        .commit_incoming(f, &digest, std::slice::from_ref(&local))
        .await
        .map_err(|e| {
            tracing::error!(%digest, repo = %local, error = %e, "caching a mirrored blob failed");
            NotCached(e.to_string())
        })
}

/// Appends `bytes` to the cache file on a blocking thread; on failure the file is removed.
async fn write(store: Option<Incoming>, bytes: Vec<u8>) -> std::io::Result<Option<Incoming>> {
    let Some(mut f) = store else {
        return Ok(None);
    };
    if bytes.is_empty() {
        return Ok(Some(f));
    }
    // On failure the file is dropped, which removes it.
    match tokio::task::spawn_blocking(move || f.append(&bytes).map(|()| f)).await {
        Ok(Ok(f)) => Ok(Some(f)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e)),
    }
}
