//! A full store: `repos` repositories, each with `blobs` small blobs and `manifests` tagged
//! images made of them, pushed by `clients` concurrent clients; then what a store that size
//! costs: resident memory, start-up time, manifest GETs and tag listings, and the size of the
//! metadata on disk. Edge boxes keep years of images; these are the figures that grow with
//! them (the other workloads run on a near-empty store).

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;

use crate::client::{Conn, Error, ReqBody, Target};
use crate::load::{manifest, manifest_get, push_small, put_manifest};
use crate::servers::{Kind, Setup};
use crate::{median, say, Args, Sizes, MIB};

/// How big the store gets.
#[derive(Clone, Copy)]
pub struct Shape {
    pub repos: usize,
    pub blobs: usize,
    pub manifests: usize,
    pub clients: usize,
}

impl Shape {
    pub fn objects(&self) -> usize {
        self.repos * (self.blobs + self.manifests)
    }
}

/// Bytes of blob `i` of repository `r`: 1 KiB, distinct everywhere.
fn blob(r: usize, i: usize) -> Bytes {
    let mut v = vec![0u8; 1024];
    let mut x = ((r as u64) << 32 | i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

/// Name of repository `r` (two levels, as real stores are laid out).
pub fn repo(r: usize) -> String {
    format!("fill/team{}/app{r}", r % 16)
}

/// Fills the store; objects (blobs and manifests) stored per second.
pub async fn fill(t: &Target, shape: Shape) -> Result<f64, Error> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..shape.clients {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&t).await?;
            for r in (c..shape.repos).step_by(shape.clients) {
                let name = repo(r);
                let mut digests = Vec::with_capacity(shape.blobs);
                for i in 0..shape.blobs {
                    digests.push(push_small(&mut conn, &name, blob(r, i)).await?);
                }
                // Each image: a config and up to four layers among the repository's blobs.
                for m in 0..shape.manifests {
                    let pick = |k: usize| digests[(m * 5 + k) % digests.len()].clone();
                    let layers: Vec<(String, u64)> = (1..5).map(|k| (pick(k), 1024)).collect();
                    let body = manifest((&pick(0), 1024), &layers);
                    put_manifest(&mut conn, &name, &format!("v{m}"), body).await?;
                }
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(shape.objects() as f64 / started.elapsed().as_secs_f64())
}

/// Median time of `n` tag listings of repository `r`, milliseconds.
pub async fn tags_list_ms(t: &Target, r: usize, n: usize) -> Result<f64, Error> {
    let mut conn = Conn::open(t).await?;
    let path = format!("/v2/{}/tags/list", repo(r));
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        conn.call("GET", &path, &[], ReqBody::Empty, 200).await?;
        v.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[v.len() / 2])
}

/// Manifest GETs by tag of one image in the full store: its 99th percentile, milliseconds.
pub async fn manifest_p99_ms(t: &Target, r: usize, secs: f64) -> Result<f64, Error> {
    // `manifest_get` asks for `latest`: tag one of the repository's images so.
    let mut conn = Conn::open(t).await?;
    let name = repo(r);
    let (_, body) = conn
        .call(
            "GET",
            &format!("/v2/{name}/manifests/v0"),
            &[("accept", "application/vnd.oci.image.manifest.v1+json")],
            ReqBody::Empty,
            200,
        )
        .await?;
    put_manifest(&mut conn, &name, "latest", body.to_vec()).await?;
    Ok(manifest_get(t, &name, 8, secs).await?.1)
}

/// Bytes under `dir`, recursively.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// What the full store cost one registry.
pub struct Figures {
    /// Objects stored per second while filling.
    pub rate: f64,
    /// Resident memory right after the fill (the server still warm from the writes), MiB.
    pub rss: f64,
    /// Start to first answer on the full store, median, ms.
    pub startup: f64,
    /// Manifest GETs by tag in the full store: 99th percentile, ms.
    pub manifest_p99: f64,
    /// A tag listing in the full store: median, ms.
    pub tags_list: f64,
    /// The store on disk, and (edgeyard) its metadata, MiB.
    pub store_mib: f64,
    pub metadata_mib: Option<f64>,
}

impl Figures {
    /// The figures as table rows.
    pub fn rows(&self) -> [(&'static str, f64); 5] {
        [
            ("fill", self.rate),
            ("full_store_rss", self.rss),
            ("full_store_startup", self.startup),
            ("full_store_manifest_p99", self.manifest_p99),
            ("full_store_tags_list", self.tags_list),
        ]
    }

    /// The figures that explain the rows (sizes on disk).
    pub fn notes(&self, k: Kind) -> Vec<(String, f64)> {
        let mut v = vec![(format!("{}_store_mib", k.name()), self.store_mib)];
        if let Some(m) = self.metadata_mib {
            v.push((format!("{}_metadata_mib", k.name()), m));
        }
        v
    }
}

/// Fills a fresh store on each registry and measures it (printing as it goes).
pub async fn measure(a: &Args, sizes: &Sizes) -> Vec<(Kind, Figures)> {
    let shape = sizes.fill;
    say(&format!(
        "fill: {} repositories x ({} blobs + {} tagged images), {} clients",
        shape.repos, shape.blobs, shape.manifests, shape.clients
    ));
    let work = a.work.join("fill");
    let _ = std::fs::remove_dir_all(&work);
    let full = Setup {
        edgeyard: a.edgeyard.clone(),
        distribution: a.distribution.clone(),
        work,
        env: Vec::new(),
    };
    let mut out = Vec::new();
    let kinds: &[Kind] = if a.edgeyard_only {
        &[Kind::Edgeyard]
    } else {
        &[Kind::Edgeyard, Kind::Distribution]
    };
    for &k in kinds {
        let s = full.start(k, false);
        let rate = fill(&Target::http(&s.addr), shape).await.expect("fill");
        let rss = s.rss_mib();
        drop(s);
        let startup = median(
            (0..sizes.startup_reps)
                .map(|_| full.start(k, false).startup_ms)
                .collect(),
        );
        let s = full.start(k, false);
        let t = Target::http(&s.addr);
        let manifest_p99 = manifest_p99_ms(&t, shape.repos / 2, sizes.manifest_secs)
            .await
            .expect("manifest gets on the full store");
        let tags_list = tags_list_ms(&t, shape.repos / 3, 200)
            .await
            .expect("tag listings on the full store");
        let data = match k {
            Kind::Edgeyard => full.edgeyard_data(),
            Kind::Distribution => full.work.join("distribution/data"),
        };
        let f = Figures {
            rate,
            rss,
            startup,
            manifest_p99,
            tags_list,
            store_mib: dir_bytes(&data) as f64 / MIB,
            metadata_mib: (k == Kind::Edgeyard).then(|| dir_bytes(&data.join("meta")) as f64 / MIB),
        };
        say(&format!(
            "  {}: {rate:.0} objects/s, {rss:.1} MiB after the fill, start-up {startup:.0} ms, manifest GET p99 {manifest_p99:.1} ms, tags list {tags_list:.2} ms, store {:.0} MiB{}",
            k.name(),
            f.store_mib,
            f.metadata_mib.map(|m| format!(" (metadata {m:.0} MiB)")).unwrap_or_default()
        ));
        out.push((k, f));
    }
    out
}
