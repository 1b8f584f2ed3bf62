//! edgeyard vs CNCF Distribution, side by side, on loopback: see `bench/run` and README.
//!
//!     edgeyard-bench [--quick] --edgeyard PATH --distribution PATH --work DIR --out FILE
//!
//! Prints a table and writes one JSON object per workload to `--out`, each with `unit`,
//! `edgeyard`, `distribution` and `ratio` (edgeyard/distribution oriented so that above 1
//! means edgeyard is better).

mod client;
mod fill;
mod load;
mod servers;
mod slow;

use std::collections::HashMap;
use std::path::PathBuf;

use client::Target;
use load::Blob;
use servers::{Kind, Setup};

pub(crate) struct Sizes {
    big: u64,
    chunk: u64,
    reps: usize,
    pub manifest_secs: f64,
    manifest_conns: usize,
    small_n: usize,
    concurrent: usize,
    concurrent_len: u64,
    pub startup_reps: usize,
    pub fill: fill::Shape,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            big: 1 << 30,
            chunk: 16 << 20,
            reps: 3,
            manifest_secs: 20.0,
            manifest_conns: 64,
            small_n: 5000,
            concurrent: 50,
            concurrent_len: 64 << 20,
            startup_reps: 5,
            // 100,000 blobs and 20,000 tagged manifests.
            fill: fill::Shape {
                repos: 1000,
                blobs: 100,
                manifests: 20,
                clients: 8,
            },
        }
    }

    fn quick() -> Sizes {
        Sizes {
            big: 256 << 20,
            chunk: 16 << 20,
            reps: 3,
            manifest_secs: 4.0,
            manifest_conns: 64,
            small_n: 1000,
            concurrent: 50,
            concurrent_len: 16 << 20,
            startup_reps: 3,
            // A fifth of the full store.
            fill: fill::Shape {
                repos: 200,
                blobs: 100,
                manifests: 20,
                clients: 8,
            },
        }
    }
}

/// One row of the table: how to read it and the two figures.
struct Row {
    name: &'static str,
    unit: &'static str,
    /// Larger is better (throughput) or smaller is better (latency, memory, size, time).
    higher_better: bool,
    edgeyard: f64,
    distribution: f64,
    extra: Vec<(String, serde_json::Value)>,
}

impl Row {
    fn ratio(&self) -> f64 {
        if self.higher_better {
            self.edgeyard / self.distribution
        } else {
            self.distribution / self.edgeyard
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

const MIB: f64 = (1u64 << 20) as f64;

pub(crate) struct Args {
    pub quick: bool,
    /// Only the full-store workload (fill.rs), printed as it goes: for trying store settings.
    pub fill_only: bool,
    /// With `--fill-only`: edgeyard alone (Distribution's fill of the full store takes
    /// minutes and does not change with edgeyard's settings).
    pub edgeyard_only: bool,
    /// Only the slow-storage workload (slow.rs), with this `LD_PRELOAD` library.
    pub slow_disk: Option<PathBuf>,

    pub edgeyard: PathBuf,
    pub distribution: PathBuf,
    pub work: PathBuf,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        quick: false,
        fill_only: false,
        edgeyard_only: false,
        slow_disk: None,
        edgeyard: "target/release/edgeyard".into(),
        distribution: "/usr/bin/docker-registry".into(),
        work: "target/bench/work".into(),
        out: "target/bench/results.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--quick" => a.quick = true,
            "--fill-only" => a.fill_only = true,
            "--edgeyard-only" => a.edgeyard_only = true,
            "--slow-disk" => a.slow_disk = Some(v().into()),

            "--edgeyard" => a.edgeyard = v().into(),
            "--distribution" => a.distribution = v().into(),
            "--work" => a.work = v().into(),
            "--out" => a.out = v().into(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// CPU used by the server and by this client over a workload's repetitions: with both on
/// the same two cores, a server that needs less CPU per byte leaves more to the client, and
/// when the client's share is near one full core the client is what limits the figure.
#[derive(Default)]
struct CpuUse {
    server: f64,
    client: f64,
    wall: f64,
    bytes: u64,
}

/// Where the counters stood when a repetition began.
struct Mark {
    server: f64,
    client: f64,
    at: std::time::Instant,
}

impl CpuUse {
    fn mark(s: &servers::Server) -> Mark {
        Mark {
            server: s.cpu_secs(),
            client: servers::cpu_secs_of("/proc/self/stat"),
            at: std::time::Instant::now(),
        }
    }

    fn add(&mut self, s: &servers::Server, m: Mark, bytes: u64) {
        self.wall += m.at.elapsed().as_secs_f64();
        self.server += s.cpu_secs() - m.server;
        self.client += servers::cpu_secs_of("/proc/self/stat") - m.client;
        self.bytes += bytes;
    }

    fn record(
        &self,
        row: &'static str,
        name: &str,
        note: &mut impl FnMut(&'static str, String, f64),
    ) {
        let gib = self.bytes as f64 / (1u64 << 30) as f64;
        let (per_gib, busy) = (self.server / gib, self.client / self.wall);
        say(&format!(
            "  {name}: server {per_gib:.2} CPU-s/GiB, client {busy:.2} cores busy"
        ));
        note(row, format!("{name}_server_cpu_s_per_gib"), per_gib);
        note(row, format!("client_cores_busy_with_{name}"), busy);
    }
}

fn say(s: &str) {
    eprintln!("bench: {s}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let sizes = if a.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if a.fill_only {
        fill::measure(&a, &sizes).await;
        return;
    }
    if let Some(lib) = &a.slow_disk {
        slow::measure(&a, lib, a.quick).await;
        return;
    }
    // The previous run's files are deleted only after this run: ext4 skips inodes freed in
    // the last minutes when it allocates new ones, and after tens of thousands of deletions
    // that search made every file creation (every upload) several times slower.
    let old = a.work.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::rename(&a.work, &old);
    std::fs::create_dir_all(&a.work).expect("work directory");
    let setup = Setup {
        edgeyard: a.edgeyard.clone(),
        distribution: a.distribution.clone(),
        work: a.work.clone(),
        env: Vec::new(),
    };
    let kinds = [Kind::Edgeyard, Kind::Distribution];
    let mut rows: Vec<Row> = Vec::new();
    let pair = |f: &dyn Fn(Kind) -> f64| (f(Kind::Edgeyard), f(Kind::Distribution));

    // Footprint: binary size and start-to-ready (plain HTTP, an existing data directory).
    let (be, bd) = (
        servers::file_size(&a.edgeyard),
        servers::file_size(&a.distribution),
    );
    rows.push(Row {
        name: "binary_size",
        unit: "bytes",
        higher_better: false,
        edgeyard: be as f64,
        distribution: bd as f64,
        extra: vec![],
    });
    drop(setup.start(Kind::Edgeyard, true)); // first start: the CA and server certificate
    let (se, sd) = pair(&|k| {
        median(
            (0..sizes.startup_reps)
                .map(|_| setup.start(k, false).startup_ms)
                .collect(),
        )
    });
    rows.push(Row {
        name: "startup",
        unit: "ms",
        higher_better: false,
        edgeyard: se,
        distribution: sd,
        extra: vec![],
    });

    // Plain HTTP workloads.
    let mut figures: HashMap<(&str, Kind), f64> = Default::default();
    // 99th-percentile latencies, by row.
    let mut p99: HashMap<(&str, Kind), f64> = Default::default();
    // Figures that explain a row (disk ceiling, CPU per GiB, memory after a workload).
    let mut notes: HashMap<&str, Vec<(String, serde_json::Value)>> = Default::default();
    let mut note = |row: &'static str, key: String, v: f64| {
        notes
            .entry(row)
            .or_default()
            .push((key, serde_json::json!((v * 100.0).round() / 100.0)))
    };
    let big = Blob::new(sizes.big, 1);
    // Both servers run side by side and every repetition of a workload runs on one, then the
    // other, alternating which goes first: neither always meets the disk, the page cache or
    // the CPU in the state the other left them in.
    let order = |rep: usize| {
        if rep.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        }
    };
    let mut live: Vec<(Kind, servers::Server)> =
        kinds.iter().map(|&k| (k, setup.start(k, false))).collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    for (k, s) in &live {
        figures.insert(("idle_rss", *k), s.rss_mib());
    }
    let per_kind =
        |v: &HashMap<Kind, Vec<f64>>, k: Kind| median(v.get(&k).cloned().unwrap_or_default());

    // What the disk itself sustains for a durable write of the same size, before and after
    // the pushes.
    servers::settle_disk();
    let disk = servers::disk_write_mib_s(&a.work, sizes.big);
    say(&format!(
        "disk write + fdatasync of {} MiB: {disk:.0} MiB/s",
        sizes.big >> 20
    ));
    note(
        "push_monolithic",
        "disk_fdatasync_mib_s_before".into(),
        disk,
    );

    say(&format!(
        "push_monolithic, {} MiB x{}",
        sizes.big >> 20,
        sizes.reps
    ));
    for (_, s) in &live {
        s.reset_peak();
    }
    let mut v: HashMap<Kind, Vec<f64>> = Default::default();
    let mut cpu: HashMap<Kind, CpuUse> = Default::default();
    for rep in 0..sizes.reps {
        let b = if rep == 0 {
            big.clone()
        } else {
            Blob::new(sizes.big, 100 + rep as u64)
        };
        for i in order(rep) {
            let (k, s) = &live[i];
            servers::settle_disk();
            let m = CpuUse::mark(s);
            let secs = load::push_monolithic(&Target::http(&s.addr), "bench/big", &b)
                .await
                .expect("push");
            cpu.entry(*k).or_default().add(s, m, sizes.big);
            let rate = sizes.big as f64 / MIB / secs;
            say(&format!("  {}: {rate:.0} MiB/s", k.name()));
            v.entry(*k).or_default().push(rate);
        }
    }
    let mut peak_push = HashMap::new();
    for (k, s) in &live {
        figures.insert(("push_monolithic", *k), per_kind(&v, *k));
        peak_push.insert(*k, s.peak_mib());
        if let Some(c) = cpu.get(k) {
            c.record("push_monolithic", k.name(), &mut note);
        }
    }

    say(&format!(
        "push_chunked, {} MiB in {} MiB PATCHes x{}",
        sizes.big >> 20,
        sizes.chunk >> 20,
        sizes.reps
    ));
    let mut v: HashMap<Kind, Vec<f64>> = Default::default();
    let mut cpu: HashMap<Kind, CpuUse> = Default::default();
    for rep in 0..sizes.reps {
        let b = Blob::new(sizes.big, 200 + rep as u64);
        for i in order(rep) {
            let (k, s) = &live[i];
            servers::settle_disk();
            let m = CpuUse::mark(s);
            let secs = load::push_chunked(&Target::http(&s.addr), "bench/chunked", &b, sizes.chunk)
                .await
                .expect("chunked push");
            cpu.entry(*k).or_default().add(s, m, sizes.big);
            let rate = sizes.big as f64 / MIB / secs;
            say(&format!("  {}: {rate:.0} MiB/s", k.name()));
            v.entry(*k).or_default().push(rate);
        }
    }
    for (k, _) in &live {
        figures.insert(("push_chunked", *k), per_kind(&v, *k));
        if let Some(c) = cpu.get(k) {
            c.record("push_chunked", k.name(), &mut note);
        }
    }
    servers::settle_disk();
    let disk = servers::disk_write_mib_s(&a.work, sizes.big);
    say(&format!(
        "disk write + fdatasync after the pushes: {disk:.0} MiB/s"
    ));
    note("push_monolithic", "disk_fdatasync_mib_s_after".into(), disk);

    say(&format!("pull_http x{}", sizes.reps));
    let mut v: HashMap<Kind, Vec<f64>> = Default::default();
    let mut cpu: HashMap<Kind, CpuUse> = Default::default();
    for rep in 0..sizes.reps {
        for i in order(rep) {
            let (k, s) = &live[i];
            let m = CpuUse::mark(s);
            let secs = load::pull(&Target::http(&s.addr), "bench/big", &big.digest, big.len)
                .await
                .expect("pull");
            cpu.entry(*k).or_default().add(s, m, sizes.big);
            v.entry(*k).or_default().push(sizes.big as f64 / MIB / secs);
        }
    }
    for (k, _) in &live {
        figures.insert(("pull_http", *k), per_kind(&v, *k));
        if let Some(c) = cpu.get(k) {
            c.record("pull_http", k.name(), &mut note);
        }
    }

    for (k, s) in &live {
        let t = Target::http(&s.addr);
        say(&format!(
            "{}: manifest_get, {} connections, {} s",
            k.name(),
            sizes.manifest_conns,
            sizes.manifest_secs
        ));
        load::small_image(&t, "bench/manifest")
            .await
            .expect("small image");
        let (rps, lat) = load::manifest_get(
            &t,
            "bench/manifest",
            sizes.manifest_conns,
            sizes.manifest_secs,
        )
        .await
        .expect("manifest gets");
        figures.insert(("manifest_get", *k), rps);
        p99.insert(("manifest_get", *k), lat);
    }

    say(&format!(
        "small_blobs, {} x 4 KiB, 16 clients",
        sizes.small_n
    ));
    let mut v: HashMap<Kind, Vec<f64>> = Default::default();
    for rep in 0..sizes.reps {
        for i in order(rep) {
            let (k, s) = &live[i];
            let rate = load::small_blobs(
                &Target::http(&s.addr),
                "bench/small",
                sizes.small_n,
                4096,
                16,
                300 + rep as u64,
            )
            .await
            .expect("small blobs");
            say(&format!("  {}: {rate:.0} blobs/s", k.name()));
            v.entry(*k).or_default().push(rate);
        }
    }
    for (k, s) in &live {
        figures.insert(("small_blobs", *k), per_kind(&v, *k));
        // The metadata database's memory grows with the records it holds; the concurrent
        // pulls below run in fresh processes on the same stores, so their peak is their own.
        note(
            "peak_rss",
            format!("{}_after_small_blobs_mib", k.name()),
            s.rss_mib(),
        );
    }
    live.clear();
    let live: Vec<(Kind, servers::Server)> =
        kinds.iter().map(|&k| (k, setup.start(k, false))).collect();

    say(&format!(
        "concurrent_pull, {} x {} MiB",
        sizes.concurrent,
        sizes.concurrent_len >> 20
    ));
    let mid = Blob::new(sizes.concurrent_len, 2);
    for (_, s) in &live {
        load::push_monolithic(&Target::http(&s.addr), "bench/mid", &mid)
            .await
            .expect("push");
        s.reset_peak();
    }
    let mut v: HashMap<Kind, Vec<f64>> = Default::default();
    for rep in 0..sizes.reps {
        for i in order(rep) {
            let (k, s) = &live[i];
            let secs = load::concurrent_pull(
                &Target::http(&s.addr),
                "bench/mid",
                &mid.digest,
                mid.len,
                sizes.concurrent,
            )
            .await
            .expect("concurrent pulls");
            v.entry(*k)
                .or_default()
                .push(sizes.concurrent as f64 * mid.len as f64 / MIB / secs);
        }
    }
    for (k, s) in &live {
        figures.insert(("concurrent_pull", *k), per_kind(&v, *k));
        let (push, pull) = (peak_push.get(k).copied().unwrap_or(0.0), s.peak_mib());
        figures.insert(("peak_rss", *k), push.max(pull));
        figures.insert(("peak_rss_push", *k), push);
        figures.insert(("peak_rss_pull", *k), pull);
    }
    drop(live);

    // HTTPS: the same 1 GiB pull over TLS 1.3 (Distribution uses edgeyard's certificate).
    let ca = std::fs::read(setup.edgeyard_data().join("tls/ca.crt")).expect("edgeyard's CA");
    let live: Vec<(Kind, servers::Server)> =
        kinds.iter().map(|&k| (k, setup.start(k, true))).collect();
    say(&format!("pull_https x{}", sizes.reps));
    let mut v: HashMap<Kind, Vec<f64>> = Default::default();
    let mut cpu: HashMap<Kind, CpuUse> = Default::default();
    for rep in 0..sizes.reps {
        for i in order(rep) {
            let (k, s) = &live[i];
            let t = Target::https(&s.addr, &ca).expect("TLS setup");
            let m = CpuUse::mark(s);
            let secs = load::pull(&t, "bench/big", &big.digest, big.len)
                .await
                .expect("pull over TLS");
            cpu.entry(*k).or_default().add(s, m, sizes.big);
            v.entry(*k).or_default().push(sizes.big as f64 / MIB / secs);
        }
    }
    for (k, _) in &live {
        figures.insert(("pull_https", *k), per_kind(&v, *k));
        if let Some(c) = cpu.get(k) {
            c.record("pull_https", k.name(), &mut note);
        }
    }
    drop(live);

    // What verifying a pull as it is sent costs (`[storage] verify_pulls`, on by default,
    // so the pull rows above are verified). Pulls check a CRC-32 recorded when the blob
    // was pushed (a blob stored by an older version has its digest checked once instead).
    // Each repetition pushes a fresh blob and pulls it twice from edgeyard with
    // verification on (`first`, then `checksum`), then once with it off (`unverified`),
    // each server a fresh process on the same data directory.
    say(&format!("pull_http: verification's cost x{}", sizes.reps));
    let off = a.work.join("verify-off.toml");
    std::fs::write(&off, "[storage]\nverify_pulls = false\n").expect("config");
    let off_args = ["--config", off.to_str().expect("utf-8 path")];
    let modes = ["first", "checksum", "unverified"];
    let mut v: HashMap<&str, Vec<f64>> = Default::default();
    let mut cpu: HashMap<&str, CpuUse> = Default::default();
    for rep in 0..sizes.reps {
        let fresh = Blob::new(sizes.big, 500 + rep as u64);
        for verified in [true, false] {
            let extra: &[&str] = if verified { &[] } else { &off_args };
            let s = setup.start_with(Kind::Edgeyard, false, extra);
            let t = Target::http(&s.addr);
            if verified {
                load::push_monolithic(&t, "bench/verify", &fresh)
                    .await
                    .expect("push");
            }
            let runs: &[&str] = if verified { &modes[..2] } else { &modes[2..] };
            for mode in runs {
                let m = CpuUse::mark(&s);
                let secs = load::pull(&t, "bench/verify", &fresh.digest, fresh.len)
                    .await
                    .expect("pull");
                cpu.entry(mode).or_default().add(&s, m, sizes.big);
                v.entry(mode)
                    .or_default()
                    .push(sizes.big as f64 / MIB / secs);
            }
        }
    }
    for mode in modes {
        let rate = median(v.remove(mode).unwrap_or_default());
        say(&format!("  edgeyard, {mode} pull: {rate:.0} MiB/s"));
        note("pull_http", format!("edgeyard_{mode}_pull_mib_s"), rate);
        if let Some(c) = cpu.get(mode) {
            let key = match mode {
                "first" => "edgeyard_first_pull",
                "checksum" => "edgeyard_checksum_pull",
                _ => "edgeyard_unverified_pull",
            };
            c.record("pull_http", key, &mut note);
        }
    }

    // Manifest GETs (8 connections) while 8 clients push small images and delete each one's
    // previous image, and edgeyard collects garbage every second: the latency a pull sees
    // on a box that is busy storing. Distribution collects garbage only offline, so it has
    // the pushes alone.
    say(&format!(
        "manifest_get_under_writes, 8 readers, 8 writers, {} s",
        sizes.manifest_secs
    ));
    let busy = a.work.join("gc-busy.toml");
    std::fs::write(&busy, "[gc]\ninterval_secs = 1\ngrace_secs = 2\n").expect("config");
    let busy_args = ["--config", busy.to_str().expect("utf-8 path")];
    for k in kinds {
        let s = setup.start_with(k, false, &busy_args);
        let t = Target::http(&s.addr);
        load::small_image(&t, "bench/busy")
            .await
            .expect("small image");
        let (rps, lat, images) =
            load::manifest_get_under_writes(&t, "bench/busy", 8, 8, sizes.manifest_secs)
                .await
                .expect("manifest gets under writes");
        say(&format!(
            "  {}: {rps:.0} GETs/s, p99 {lat:.1} ms, {images:.0} images pushed/s",
            k.name()
        ));
        figures.insert(("manifest_get_under_writes", k), rps);
        p99.insert(("manifest_get_under_writes", k), lat);
        note(
            "manifest_get_under_writes",
            format!("{}_images_pushed_per_s", k.name()),
            images,
        );
    }

    // A full store (fill.rs) on fresh data directories, then what that size costs.
    for (k, f) in fill::measure(&a, &sizes).await {
        for (row, v) in f.rows() {
            figures.insert((row, k), v);
        }
        for (key, v) in f.notes(k) {
            note("fill", key, v);
        }
    }

    let get = |n: &str, k: Kind| figures.get(&(n, k)).copied().unwrap_or(0.0);
    for (name, unit, higher) in [
        ("push_monolithic", "MiB/s", true),
        ("push_chunked", "MiB/s", true),
        ("pull_http", "MiB/s", true),
        ("pull_https", "MiB/s", true),
        ("manifest_get", "requests/s", true),
        ("manifest_get_under_writes", "requests/s", true),
        ("small_blobs", "blobs/s", true),
        ("concurrent_pull", "MiB/s", true),
        ("fill", "objects/s", true),
        ("full_store_rss", "MiB", false),
        ("full_store_startup", "ms", false),
        ("full_store_manifest_p99", "ms", false),
        ("full_store_tags_list", "ms", false),
        ("idle_rss", "MiB", false),
        ("peak_rss", "MiB", false),
    ] {
        let mut extra = notes.remove(name).unwrap_or_default();
        if name == "peak_rss" {
            for (part, k) in [
                ("push", Kind::Edgeyard),
                ("pull", Kind::Edgeyard),
                ("push", Kind::Distribution),
                ("pull", Kind::Distribution),
            ] {
                let key = format!("{}_{part}_mib", k.name());
                let v = get(
                    if part == "push" {
                        "peak_rss_push"
                    } else {
                        "peak_rss_pull"
                    },
                    k,
                );
                extra.push((key, serde_json::json!(v)));
            }
        }
        if name.starts_with("manifest_get") {
            let (pe, pd) = (
                p99.get(&(name, Kind::Edgeyard)).copied().unwrap_or(0.0),
                p99.get(&(name, Kind::Distribution)).copied().unwrap_or(0.0),
            );
            extra.push(("edgeyard_p99_ms".to_string(), serde_json::json!(pe)));
            extra.push(("distribution_p99_ms".to_string(), serde_json::json!(pd)));
        }
        rows.push(Row {
            name,
            unit,
            higher_better: higher,
            edgeyard: get(name, Kind::Edgeyard),
            distribution: get(name, Kind::Distribution),
            extra,
        });
    }
    rows.sort_by_key(|r| ORDER.iter().position(|n| *n == r.name).unwrap_or(99));

    println!(
        "{:<26} {:>14} {:>14} {:>8}  unit",
        "workload", "edgeyard", "distribution", "ratio"
    );
    for r in &rows {
        println!(
            "{:<26} {:>14.1} {:>14.1} {:>7.2}x  {}{}",
            r.name,
            r.edgeyard,
            r.distribution,
            r.ratio(),
            r.unit,
            if r.name.starts_with("manifest_get") {
                format!(
                    " (p99 {:.1} ms vs {:.1} ms)",
                    p99.get(&(r.name, Kind::Edgeyard)).unwrap_or(&0.0),
                    p99.get(&(r.name, Kind::Distribution)).unwrap_or(&0.0)
                )
            } else {
                String::new()
            }
        );
    }
    println!(
        "(ratio: above 1 means edgeyard is better; {} run)",
        if a.quick { "quick" } else { "full" }
    );

    let mut json = serde_json::Map::new();
    for r in &rows {
        let mut o = serde_json::Map::new();
        o.insert("unit".into(), r.unit.into());
        o.insert("edgeyard".into(), r.edgeyard.into());
        o.insert("distribution".into(), r.distribution.into());
        o.insert("ratio".into(), r.ratio().into());
        for (k, v) in &r.extra {
            o.insert(k.clone(), v.clone());
        }
        json.insert(r.name.into(), o.into());
    }
    json.insert("_run".into(), serde_json::json!({"quick": a.quick, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}));
    if let Some(dir) = a.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&a.out, serde_json::to_vec_pretty(&json).unwrap_or_default())
        .expect("results.json");
    say(&format!("results written to {}", a.out.display()));
    let _ = std::fs::remove_dir_all(&old);
}

const ORDER: [&str; 17] = [
    "push_monolithic",
    "push_chunked",
    "pull_http",
    "pull_https",
    "manifest_get",
    "manifest_get_under_writes",
    "small_blobs",
    "concurrent_pull",
    "fill",
    "full_store_rss",
    "full_store_startup",
    "full_store_manifest_p99",
    "full_store_tags_list",
    "idle_rss",
    "peak_rss",
    "startup",
    "binary_size",
];
