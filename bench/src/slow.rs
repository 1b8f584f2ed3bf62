//! Slow storage (`bench/run --slow-disk`): edgeyard alone, with every `fsync` and
//! `fdatasync` delayed by 0, 10 and 30 ms (bench/slowsync, loaded with `LD_PRELOAD`), as on
//! the SD cards and eMMC of edge boxes. What it shows is group commit: one client's tag
//! write must be durable before its `201`, and if each waited for a flush of its own, in
//! turn, 16 writers together could never pass 1/delay tag writes per second (33/s at
//! 30 ms). Small-blob pushes add the blob's own fsync and its directory's, which run side
//! by side for concurrent clients.

use std::path::Path;

use crate::client::Target;
use crate::servers::{Kind, Setup};
use crate::{load, say, Args};

const DELAYS_MS: [u64; 3] = [0, 10, 30];
const CLIENTS: usize = 16;

pub async fn measure(a: &Args, lib: &Path, quick: bool) {
    let (blobs, secs) = if quick { (200, 3.0) } else { (800, 10.0) };
    say(&format!(
        "slow_disk: fsync delayed by {DELAYS_MS:?} ms; {blobs} blobs of 4 KiB and {secs} s of tag writes, {CLIENTS} clients each"
    ));
    for delay in DELAYS_MS {
        let work = a.work.join(format!("slow-{delay}"));
        let _ = std::fs::remove_dir_all(&work);
        let setup = Setup {
            edgeyard: a.edgeyard.clone(),
            distribution: a.distribution.clone(),
            work,
            env: vec![
                ("LD_PRELOAD".into(), lib.display().to_string()),
                ("EDGEYARD_BENCH_FSYNC_MS".into(), delay.to_string()),
            ],
        };
        let s = setup.start(Kind::Edgeyard, false);
        let t = Target::http(&s.addr);
        let per_s = load::small_blobs(&t, "slow/blobs", blobs, 4096, CLIENTS, 5)
            .await
            .expect("small blobs on slow storage");
        let tags = load::tag_writes(&t, "slow/tags", CLIENTS, secs)
            .await
            .expect("tag writes on slow storage");
        let bound = match 1000u64.checked_div(delay) {
            Some(most) => format!(" (one flush per write, in turn: at most {most} tag writes/s)"),
            None => String::new(),
        };
        say(&format!(
            "  fsync +{delay} ms: {per_s:.0} small blobs/s, {tags:.0} tag writes/s{bound}, {:.1} MiB resident",
            s.rss_mib()
        ));
    }
}
