//! edgeyard vs CNCF Distribution, side by side, on loopback: see `bench/run` and README.
//!
//!     edgeyard-bench [--quick] --edgeyard PATH --distribution PATH --work DIR --out FILE
//!
//! Prints a table and writes one JSON object per workload to `--out`, each with `unit`,
//! `edgeyard`, `distribution` and `ratio` (edgeyard/distribution oriented so that above 1
//! means edgeyard is better).

mod client;
mod load;
mod servers;

use std::path::PathBuf;

use client::Target;
use load::Blob;
use servers::{Kind, Setup};

struct Sizes {
    big: u64,
    chunk: u64,
    reps: usize,
    manifest_secs: f64,
    manifest_conns: usize,
    small_n: usize,
    concurrent: usize,
    concurrent_len: u64,
    startup_reps: usize,
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

struct Args {
    quick: bool,

    edgeyard: PathBuf,
    distribution: PathBuf,
    work: PathBuf,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        quick: false,
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

            "--edgeyard" => a.edgeyard = v().into(),
            "--distribution" => a.distribution = v().into(),
            "--work" => a.work = v().into(),
            "--out" => a.out = v().into(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// CPU used by the server and by this client over a workload: with both on the same two
/// cores, a server that needs less CPU per byte leaves more to the client, and when the
/// client's share is near one full core the client is what limits the figure.
struct Cpu {
    server: f64,
    client: f64,
    at: std::time::Instant,
}

impl Cpu {
    fn start(s: &servers::Server) -> Cpu {
        Cpu {
            server: s.cpu_secs(),
            client: servers::cpu_secs_of("/proc/self/stat"),
            at: std::time::Instant::now(),
        }
    }

    fn record(
        self,
        s: &servers::Server,
        bytes: u64,
        row: &'static str,
        name: &str,
        note: &mut impl FnMut(&'static str, String, f64),
    ) {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        let wall = self.at.elapsed().as_secs_f64();
        let server = s.cpu_secs() - self.server;
        let client = servers::cpu_secs_of("/proc/self/stat") - self.client;
        say(&format!(
            "  server {:.2} CPU-s/GiB, client {:.2} cores busy",
            server / gib,
            client / wall
        ));
        note(row, format!("{name}_server_cpu_s_per_gib"), server / gib);
        note(row, format!("client_cores_busy_with_{name}"), client / wall);
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
    let _ = std::fs::remove_dir_all(&a.work);
    std::fs::create_dir_all(&a.work).expect("work directory");
    let setup = Setup {
        edgeyard: a.edgeyard.clone(),
        distribution: a.distribution.clone(),
        work: a.work.clone(),
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
    let mut figures: std::collections::HashMap<(&str, Kind), f64> = Default::default();
    let mut p99: std::collections::HashMap<Kind, f64> = Default::default();
    // Figures that explain a row (disk ceiling, CPU per GiB, memory after a workload).
    let mut notes: std::collections::HashMap<&str, Vec<(String, serde_json::Value)>> =
        Default::default();
    let mut note = |row: &'static str, key: String, v: f64| {
        notes
            .entry(row)
            .or_default()
            .push((key, serde_json::json!((v * 100.0).round() / 100.0)))
    };
    let big = Blob::new(sizes.big, 1);
    for kind in kinds {
        let s = setup.start(kind, false);
        std::thread::sleep(std::time::Duration::from_secs(2));
        figures.insert(("idle_rss", kind), s.rss_mib());
        let t = Target::http(&s.addr);
        let name = kind.name();

        // What the disk itself sustains for a durable write of the same size, right now.
        let disk = servers::disk_write_mib_s(&a.work, sizes.big);
        say(&format!(
            "{name}: disk write + fdatasync of {} MiB: {disk:.0} MiB/s",
            sizes.big >> 20
        ));
        note(
            "push_monolithic",
            format!("disk_fdatasync_mib_s_before_{name}"),
            disk,
        );

        say(&format!(
            "{name}: push_monolithic, {} MiB x{}",
            sizes.big >> 20,
            sizes.reps
        ));
        s.reset_peak();
        let mut v = Vec::new();
        for rep in 0..sizes.reps {
            let b = if rep == 0 {
                big.clone()
            } else {
                Blob::new(sizes.big, 100 + rep as u64)
            };
            v.push(
                sizes.big as f64
                    / MIB
                    / load::push_monolithic(&t, "bench/big", &b)
                        .await
                        .expect("push"),
            );
            say(&format!("  {:.0} MiB/s", v[v.len() - 1]));
        }
        figures.insert(("push_monolithic", kind), median(v));
        let peak_push = s.peak_mib();

        say(&format!(
            "{name}: push_chunked, {} MiB in {} MiB PATCHes x{}",
            sizes.big >> 20,
            sizes.chunk >> 20,
            sizes.reps
        ));
        let mut v = Vec::new();
        for rep in 0..sizes.reps {
            let b = Blob::new(sizes.big, 200 + rep as u64);
            v.push(
                sizes.big as f64
                    / MIB
                    / load::push_chunked(&t, "bench/chunked", &b, sizes.chunk)
                        .await
                        .expect("chunked push"),
            );
        }
        figures.insert(("push_chunked", kind), median(v));

        say(&format!("{name}: pull_http x{}", sizes.reps));
        let mut v = Vec::new();
        let cpu = Cpu::start(&s);
        for _ in 0..sizes.reps {
            v.push(
                sizes.big as f64
                    / MIB
                    / load::pull(&t, "bench/big", &big.digest, big.len)
                        .await
                        .expect("pull"),
            );
        }
        figures.insert(("pull_http", kind), median(v));
        cpu.record(
            &s,
            sizes.reps as u64 * sizes.big,
            "pull_http",
            name,
            &mut note,
        );

        say(&format!(
            "{name}: manifest_get, {} connections, {} s",
            sizes.manifest_conns, sizes.manifest_secs
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
        figures.insert(("manifest_get", kind), rps);
        p99.insert(kind, lat);

        say(&format!(
            "{name}: small_blobs, {} x 4 KiB, 16 clients",
            sizes.small_n
        ));
        let mut v = Vec::new();
        for rep in 0..sizes.reps {
            v.push(
                load::small_blobs(&t, "bench/small", sizes.small_n, 4096, 16, 300 + rep as u64)
                    .await
                    .expect("small blobs"),
            );
        }
        figures.insert(("small_blobs", kind), median(v));
        // sled's memory grows with the number of records it holds; the concurrent pulls
        // below then run in a fresh process on the same store, so their peak is their own.
        note(
            "peak_rss",
            format!("{name}_after_small_blobs_mib"),
            s.rss_mib(),
        );
        drop(s);
        let s = setup.start(kind, false);
        let t = Target::http(&s.addr);

        say(&format!(
            "{name}: concurrent_pull, {} x {} MiB",
            sizes.concurrent,
            sizes.concurrent_len >> 20
        ));
        let mid = Blob::new(sizes.concurrent_len, 2);
        load::push_monolithic(&t, "bench/mid", &mid)
            .await
            .expect("push");
        s.reset_peak();
        let mut v = Vec::new();
        for _ in 0..sizes.reps {
            let secs =
                load::concurrent_pull(&t, "bench/mid", &mid.digest, mid.len, sizes.concurrent)
                    .await
                    .expect("concurrent pulls");
            v.push(sizes.concurrent as f64 * mid.len as f64 / MIB / secs);
        }
        figures.insert(("concurrent_pull", kind), median(v));
        let peak_pull = s.peak_mib();
        figures.insert(("peak_rss", kind), peak_push.max(peak_pull));
        figures.insert(("peak_rss_push", kind), peak_push);
        figures.insert(("peak_rss_pull", kind), peak_pull);
    }

    // HTTPS: the same 1 GiB pull over TLS 1.3 (Distribution uses edgeyard's certificate).
    let ca = std::fs::read(setup.edgeyard_data().join("tls/ca.crt")).expect("edgeyard's CA");
    for kind in kinds {
        let s = setup.start(kind, true);
        let t = Target::https(&s.addr, &ca).expect("TLS setup");
        say(&format!("{}: pull_https x{}", kind.name(), sizes.reps));
        let mut v = Vec::new();
        let cpu = Cpu::start(&s);
        for _ in 0..sizes.reps {
            v.push(
                sizes.big as f64
                    / MIB
                    / load::pull(&t, "bench/big", &big.digest, big.len)
                        .await
                        .expect("pull over TLS"),
            );
        }
        figures.insert(("pull_https", kind), median(v));
        cpu.record(
            &s,
            sizes.reps as u64 * sizes.big,
            "pull_https",
            kind.name(),
            &mut note,
        );
    }

    let get = |n: &str, k: Kind| figures.get(&(n, k)).copied().unwrap_or(0.0);
    for (name, unit, higher) in [
        ("push_monolithic", "MiB/s", true),
        ("push_chunked", "MiB/s", true),
        ("pull_http", "MiB/s", true),
        ("pull_https", "MiB/s", true),
        ("manifest_get", "requests/s", true),
        ("small_blobs", "blobs/s", true),
        ("concurrent_pull", "MiB/s", true),
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
        if name == "manifest_get" {
            let (pe, pd) = (
                p99.get(&Kind::Edgeyard).copied().unwrap_or(0.0),
                p99.get(&Kind::Distribution).copied().unwrap_or(0.0),
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
        "{:<18} {:>14} {:>14} {:>8}  unit",
        "workload", "edgeyard", "distribution", "ratio"
    );
    for r in &rows {
        println!(
            "{:<18} {:>14.1} {:>14.1} {:>7.2}x  {}{}",
            r.name,
            r.edgeyard,
            r.distribution,
            r.ratio(),
            r.unit,
            if r.name == "manifest_get" {
                format!(
                    " (p99 {:.1} ms vs {:.1} ms)",
                    p99.get(&Kind::Edgeyard).unwrap_or(&0.0),
                    p99.get(&Kind::Distribution).unwrap_or(&0.0)
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
}

const ORDER: [&str; 11] = [
    "push_monolithic",
    "push_chunked",
    "pull_http",
    "pull_https",
    "manifest_get",
    "small_blobs",
    "concurrent_pull",
    "idle_rss",
    "peak_rss",
    "startup",
    "binary_size",
];
