//! The workloads, each against one registry. They time only the requests, never the
//! preparation (random data, digests).

use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::client::{location_path, Conn, Error, ReqBody, Target};

/// A blob to push: `len` bytes cut from a repeating random pattern (distinct per seed).
#[derive(Clone)]
pub struct Blob {
    pub pattern: Bytes,
    pub len: u64,
    pub digest: String,
}

/// Largest pattern generated; larger blobs repeat it.
const PATTERN_MAX: u64 = 64 << 20;

impl Blob {
    pub fn new(len: u64, seed: u64) -> Blob {
        let n = len.min(PATTERN_MAX) as usize;
        let mut v = vec![0u8; n.max(8)];
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for c in v.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
        v[..8].copy_from_slice(&seed.to_le_bytes());
        v.truncate(n);
        let pattern = Bytes::from(v);
        let mut h = Sha256::new();
        let mut left = len;
        while left > 0 {
            let k = left.min(pattern.len() as u64) as usize;
            h.update(&pattern[..k]);
            left -= k as u64;
        }
        Blob {
            pattern,
            len,
            digest: format!("sha256:{}", hex(&h.finalize())),
        }
    }

    /// `len` bytes from `offset` as a request body.
    fn body(&self, offset: u64, len: u64) -> ReqBody {
        ReqBody::Pattern {
            pattern: self.pattern.clone(),
            offset,
            remaining: len,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn sha256_of(b: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(b)))
}

async fn start_upload(c: &mut Conn, repo: &str) -> Result<String, Error> {
    let (h, _) = c
        .call(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            ReqBody::Empty,
            202,
        )
        .await?;
    location_path(&h)
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// POST, then PUT the whole blob with its digest. Seconds.
pub async fn push_monolithic(t: &Target, repo: &str, b: &Blob) -> Result<f64, Error> {
    let mut c = Conn::open(t).await?;
    let started = Instant::now();
    let loc = start_upload(&mut c, repo).await?;
    c.call(
        "PUT",
        &with_digest(&loc, &b.digest),
        &[("content-type", "application/octet-stream")],
        b.body(0, b.len),
        201,
    )
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// POST, PATCHes of `chunk` bytes, then PUT with the digest. Seconds.
pub async fn push_chunked(t: &Target, repo: &str, b: &Blob, chunk: u64) -> Result<f64, Error> {
    let mut c = Conn::open(t).await?;
    let started = Instant::now();
    let mut loc = start_upload(&mut c, repo).await?;
    let mut at = 0u64;
    while at < b.len {
        let n = chunk.min(b.len - at);
        let range = format!("{}-{}", at, at + n - 1);
        let (h, _) = c
            .call(
                "PATCH",
                &loc,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-range", &range),
                ],
                b.body(at, n),
                202,
            )
            .await?;
        loc = location_path(&h)?;
        at += n;
    }
    c.call(
        "PUT",
        &with_digest(&loc, &b.digest),
        &[],
        ReqBody::Empty,
        201,
    )
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// GETs a blob once. Seconds.
pub async fn pull(t: &Target, repo: &str, digest: &str, len: u64) -> Result<f64, Error> {
    let mut c = Conn::open(t).await?;
    let started = Instant::now();
    let n = c.drain(&format!("/v2/{repo}/blobs/{digest}"), &[]).await?;
    let secs = started.elapsed().as_secs_f64();
    if n != len {
        return Err(format!("pulled {n} bytes, expected {len}").into());
    }
    Ok(secs)
}

/// `clients` concurrent GETs of one blob. Seconds until the last finishes.
pub async fn concurrent_pull(
    t: &Target,
    repo: &str,
    digest: &str,
    len: u64,
    clients: usize,
) -> Result<f64, Error> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Conn::open(t).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in conns {
        let path = format!("/v2/{repo}/blobs/{digest}");
        tasks.push(tokio::spawn(async move { c.drain(&path, &[]).await }));
    }
    for task in tasks {
        let n = task.await??;
        if n != len {
            return Err(format!("pulled {n} bytes, expected {len}").into());
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// An OCI image manifest for a config and layers (digest, size).
pub(crate) fn manifest(config: (&str, u64), layers: &[(String, u64)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .unwrap_or_default()
}

/// Pushes a small blob in two requests (POST, PUT with the body).
pub(crate) async fn push_small(c: &mut Conn, repo: &str, data: Bytes) -> Result<String, Error> {
    let digest = sha256_of(&data);
    let loc = start_upload(c, repo).await?;
    c.call(
        "PUT",
        &with_digest(&loc, &digest),
        &[("content-type", "application/octet-stream")],
        ReqBody::Full(Some(data)),
        201,
    )
    .await?;
    Ok(digest)
}

pub(crate) async fn put_manifest(
    c: &mut Conn,
    repo: &str,
    tag: &str,
    m: Vec<u8>,
) -> Result<(), Error> {
    c.call(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        ReqBody::Full(Some(Bytes::from(m))),
        201,
    )
    .await?;
    Ok(())
}

/// A small image tagged `latest` in `repo`, for the manifest workload.
pub async fn small_image(t: &Target, repo: &str) -> Result<(), Error> {
    let mut c = Conn::open(t).await?;
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let layer = Blob::new(1 << 20, 7).pattern;
    let (cn, ln) = (config.len() as u64, layer.len() as u64);
    let cd = push_small(&mut c, repo, config).await?;
    let ld = push_small(&mut c, repo, layer).await?;
    put_manifest(&mut c, repo, "latest", manifest((&cd, cn), &[(ld, ln)])).await
}

/// Manifest GETs by tag on `conns` keep-alive connections for `secs`: requests per second
/// and the 99th percentile latency in milliseconds.
pub async fn manifest_get(
    t: &Target,
    repo: &str,
    conns: usize,
    secs: f64,
) -> Result<(f64, f64), Error> {
    let mut opened = Vec::new();
    for _ in 0..conns {
        opened.push(Conn::open(t).await?);
    }
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in opened {
        let path = format!("/v2/{repo}/manifests/latest");
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            while Instant::now() < until {
                let t0 = Instant::now();
                c.call(
                    "GET",
                    &path,
                    &[("accept", "application/vnd.oci.image.manifest.v1+json")],
                    ReqBody::Empty,
                    200,
                )
                .await?;
                lat.push(t0.elapsed().as_micros() as u32);
            }
            Ok::<_, Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let p99 = all
        .get((all.len() as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(0) as f64
        / 1e3;
    Ok((all.len() as f64 / elapsed, p99))
}

/// `n` blobs of `size` bytes pushed by `workers` concurrent clients, then one manifest
/// referencing them all. Blobs per second.
pub async fn small_blobs(
    t: &Target,
    repo: &str,
    n: usize,
    size: usize,
    workers: usize,
    seed: u64,
) -> Result<f64, Error> {
    let mut conns = Vec::new();
    for _ in 0..workers {
        conns.push(Conn::open(t).await?);
    }
    // Distinct contents, made before the clock starts.
    let blobs: Vec<Bytes> = (0..n)
        .map(|i| {
            let mut v = Blob::new(size as u64, seed * 1_000_000 + i as u64)
                .pattern
                .to_vec();
            v.truncate(size);
            Bytes::from(v)
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut c) in conns.into_iter().enumerate() {
        let mine: Vec<Bytes> = blobs.iter().skip(w).step_by(workers).cloned().collect();
        let repo = repo.to_string();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for b in mine {
                let len = b.len() as u64;
                out.push((push_small(&mut c, &repo, b).await?, len));
            }
            Ok::<_, Error>((c, out))
        }));
    }
    let mut layers = Vec::new();
    let mut last = None;
    for task in tasks {
        let (c, out) = task.await??;
        layers.extend(out);
        last = Some(c);
    }
    let mut c = last.ok_or("no workers")?;
    let config = Bytes::from(format!(r#"{{"seed":{seed}}}"#));
    let cn = config.len() as u64;
    let cd = push_small(&mut c, repo, config).await?;
    put_manifest(
        &mut c,
        repo,
        &format!("small-{seed}"),
        manifest((&cd, cn), &layers),
    )
    .await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Manifest GETs as in [`manifest_get`], while `writers` clients push small images (a 4 KiB
/// layer, a config, a tagged manifest) and delete each one's previous image, so every push
/// commits and flushes and a server that collects garbage has something to sweep. Requests
/// per second, the GETs' 99th percentile in milliseconds, and images pushed per second.
pub async fn manifest_get_under_writes(
    t: &Target,
    repo: &str,
    conns: usize,
    writers: usize,
    secs: f64,
) -> Result<(f64, f64, f64), Error> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut pushers = Vec::new();
    for w in 0..writers {
        let mut c = Conn::open(t).await?;
        let repo = format!("{repo}-w{w}");
        pushers.push(tokio::spawn(async move {
            let mut pushed = 0u64;
            let mut previous: Option<String> = None;
            while Instant::now() < until {
                let n = pushed + 1;
                let mut layer = Blob::new(4096, (w as u64) << 32 | n).pattern.to_vec();
                layer.truncate(4096);
                let ld = push_small(&mut c, &repo, Bytes::from(layer)).await?;
                let config = Bytes::from(format!(r#"{{"writer":{w},"n":{n}}}"#));
                let cn = config.len() as u64;
                let cd = push_small(&mut c, &repo, config).await?;
                let m = manifest((&cd, cn), &[(ld, 4096)]);
                let md = sha256_of(&m);
                put_manifest(&mut c, &repo, &format!("t{n}"), m).await?;
                if let Some(old) = previous.replace(md) {
                    c.call(
                        "DELETE",
                        &format!("/v2/{repo}/manifests/{old}"),
                        &[],
                        ReqBody::Empty,
                        202,
                    )
                    .await?;
                }
                pushed += 1;
            }
            Ok::<_, Error>(pushed)
        }));
    }
    let (rps, p99) = manifest_get(t, repo, conns, secs).await?;
    let mut images = 0;
    for p in pushers {
        images += p.await??;
    }
    Ok((rps, p99, images as f64 / secs))
}

/// Tag writes: `writers` clients each PUT the same small manifest under tags of their own for
/// `secs`, so every request is one metadata commit that must be durable before its `201`.
/// Tag writes per second.
pub async fn tag_writes(t: &Target, repo: &str, writers: usize, secs: f64) -> Result<f64, Error> {
    let mut c = Conn::open(t).await?;
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let mut layer = Blob::new(4096, 99).pattern.to_vec();
    layer.truncate(4096);
    let cn = config.len() as u64;
    let cd = push_small(&mut c, repo, config).await?;
    let ld = push_small(&mut c, repo, Bytes::from(layer)).await?;
    let m = manifest((&cd, cn), &[(ld, 4096)]);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (mut c, m, repo) = (Conn::open(t).await?, m.clone(), repo.to_string());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                put_manifest(&mut c, &repo, &format!("w{w}-{n}"), m.clone()).await?;
                n += 1;
            }
            Ok::<_, Error>(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
