//! Power cuts: edgeyard in a VM (tests/common/vm.rs) under pushes from several clients at
//! once (monolithic and chunked uploads, images under new tags, tags moved from image to
//! image, images deleted, uploads left half-done) while garbage collection runs every two
//! seconds; at a random moment the power is cut: from then on nothing the guest writes
//! reaches the disk (device-mapper's dm-flakey switched to dropping writes, so the page
//! cache and every later write are lost), and the VM is killed. It boots again on the same
//! disk, ext4 recovers its journal, `edgeyard fsck` checks the store before the server
//! starts, and the host checks:
//!
//! - fsck found 0 errors;
//! - every blob whose upload was acknowledged before the cut reads back whole;
//! - every tag names its last acknowledged manifest (or one pushed after it, which the cut
//!   may or may not have caught), with every blob it references;
//! - every acknowledged delete still holds;
//! - uploads cut off resume from the offset the server reports, or are cleanly unknown; a
//!   session whose `202` came before the cut is never unknown after it (the server's log is
//!   shown if one is: with sled as the metadata store a long run lost one in 27 cuts);
//! - the recovered server logged no error.
//!
//! Why dm-flakey rather than dm-log-writes replayed to a mark: the cut happens while the
//! guest runs, at a moment the host picks, with no replay tool in the guest, and the
//! suspend that switches the table holds in-flight writes and drops them (`--noflush`).
//!
//! `EDGEYARD_POWERCUT_CUTS` (default 20) sets the number of cuts; `EDGEYARD_POWERCUT_SEED`
//! replays a run (the seed is printed; a failure prints its machine's seed, which replays
//! that machine alone); `EDGEYARD_POWERCUT_BIN` tests another build of edgeyard (a release
//! build, say); `EDGEYARD_POWERCUT_MACHINES` (default 1) shares the cuts among that many
//! VMs cut side by side. SECURITY.md gives the long run's figures and command.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pushload::{
    open_session, push_and_delete, push_chunked, push_image, push_monolithic, BlobSpec, Ledger,
};
use common::soft::Rng;
use common::vm::{self, Vm};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One client's pushes until `stop`, of the kind its number says; ends early when the
/// server stops answering.
fn client(
    w: u64,
    addr: String,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
    mut rng: Rng,
) {
    while !stop.load(Ordering::Relaxed) {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let spec = BlobSpec {
            seed: rng.next(),
            len: 1 + rng.below(512 << 10) as usize,
        };
        let ok = match w {
            0 => push_monolithic(&addr, "pc/mono", spec, &ledger),
            1 => push_chunked(
                &addr,
                "pc/chunked",
                spec,
                16 << 10 | rng.below(128 << 10) as usize,
                None,
                &ledger,
            ),
            2 => push_image(
                &addr,
                "pc/images",
                Some(&format!("t{n}")),
                &mut rng,
                &ledger,
            )
            .is_some(),
            3 => {
                let tag = ["a", "b", "c"][rng.below(3) as usize];
                push_image(&addr, "pc/moving", Some(tag), &mut rng, &ledger).is_some()
            }
            4 => push_and_delete(&addr, "pc/deleted", &mut rng, &ledger),
            // Uploads a client gives up on halfway, resumed (or found unknown) after the cut.
            _ => push_chunked(
                &addr,
                "pc/abandoned",
                spec,
                32 << 10,
                Some(spec.len / 2),
                &ledger,
            ),
        };
        if !ok {
            break;
        }
    }
}

/// Where a boot's time went, from the guest's uptime at each step it reports: a long run's
/// lines say what to make faster.
fn vm_phases(console: &str) -> String {
    let at = |step: &str| {
        console
            .lines()
            .find_map(|l| l.strip_prefix(&format!("edgeyard-vm: {step} at ")))
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "mounted {}, fsck done {}, serving {}",
        at("mounted"),
        at("checked"),
        at("ready")
    )
}

/// What one machine's run found, summed over its cuts.
#[derive(Default)]
struct Totals {
    cuts: u64,
    /// Checks of acknowledged objects: blobs, tags, deletes; cut-off uploads resumed and
    /// cleanly unknown.
    blobs: usize,
    tags: usize,
    deletes: usize,
    resumed: usize,
    unknown: usize,
    /// What the load had acknowledged when the run ended: blobs, tags, deletes.
    acked: (usize, usize, usize),
    recoveries: Vec<Duration>,
}

#[test]
fn acknowledged_pushes_survive_power_cuts() {
    let cuts = env_u64("EDGEYARD_POWERCUT_CUTS", 20);
    // A long run may cut several VMs side by side (each its own disk, load and ledger):
    // on a host with cores to spare it takes that much less time.
    let machines = env_u64("EDGEYARD_POWERCUT_MACHINES", 1).clamp(1, 8);
    let seed = env_u64(
        "EDGEYARD_POWERCUT_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    );
    eprintln!("power-cut test: {cuts} cuts on {machines} VM(s), EDGEYARD_POWERCUT_SEED={seed}");
    let assets = vm::assets();
    // The binary under test; a long run may pass a release build, which boots and checks
    // faster under emulation.
    let bin = std::env::var_os("EDGEYARD_POWERCUT_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_edgeyard").into());
    eprintln!("power-cut test: edgeyard binary {}", bin.display());
    let failed = AtomicBool::new(false);
    let runs: Vec<Totals> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..machines)
            .map(|m| {
                let share = cuts / machines + u64::from(m < cuts % machines);
                // The first machine runs on the run's seed, the others on seeds derived from
                // it: a failure names its machine's seed, which replays it on one machine.
                let mut r = Rng(seed);
                let machine_seed = (0..m).map(|_| r.next()).last().unwrap_or(seed) | 1;
                let (assets, bin, failed) = (&assets, &bin, &failed);
                scope.spawn(move || {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_machine(m, share, machine_seed, assets, bin, failed)
                    }));
                    run.unwrap_or_else(|p| {
                        failed.store(true, Ordering::Relaxed);
                        std::panic::resume_unwind(p)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a machine's run failed (see above)"))
            .collect()
    });
    let mut all = Totals::default();
    for r in runs {
        all.cuts += r.cuts;
        (all.blobs, all.tags, all.deletes) = (
            all.blobs + r.blobs,
            all.tags + r.tags,
            all.deletes + r.deletes,
        );
        (all.resumed, all.unknown) = (all.resumed + r.resumed, all.unknown + r.unknown);
        all.recoveries.extend(r.recoveries);
        let (b, t, d) = r.acked;
        assert!(
            b > 0 && t > 0 && d > 0,
            "the load acknowledged too little ({b} blobs, {t} tags, {d} deletes): the test tested nothing"
        );
    }
    let recoveries = &all.recoveries;
    let mean = recoveries.iter().sum::<Duration>() / recoveries.len().max(1) as u32;
    let max = recoveries.iter().max().copied().unwrap_or_default();
    eprintln!(
        "power-cut test: {} cuts on {machines} VM(s), 0 lost, 0 corrupt, fsck clean after each; checks of acknowledged objects: {} blobs, {} tags, {} deletes; cut-off uploads {} resumed, {} cleanly unknown, 0 sessions lost; boot to serving after a cut: mean {:.1} s, max {:.1} s (seed {seed})",
        all.cuts,
        all.blobs,
        all.tags,
        all.deletes,
        all.resumed,
        all.unknown,
        mean.as_secs_f64(),
        max.as_secs_f64()
    );
}

/// One VM cut `cuts` times under load, checked after each cut; stops early (and reports
/// what it did) when another machine of the run has failed.
fn run_machine(
    m: u64,
    cuts: u64,
    seed: u64,
    assets: &vm::Assets,
    bin: &std::path::Path,
    failed: &AtomicBool,
) -> Totals {
    let tmp = tempfile::tempdir().unwrap();
    let initrd = tmp.path().join("initrd.cpio");
    vm::initramfs(assets, bin, &initrd);
    let disk = tmp.path().join("disk.img");
    vm::disk(&disk, 1 << 30);
    // Garbage collection keeps unreferenced blobs for 60 s (tests/vm/edgeyard.toml): a
    // blob no tag references must be there for 40 s after it was acknowledged.
    let ledger = Arc::new(Ledger::with_gc(Duration::from_secs(40)).counting_lost_sessions());
    let mut rng = Rng(seed);
    let counter = Arc::new(AtomicU64::new(0));
    let (mut blobs, mut tags, mut deletes, mut resumed, mut unknown) = (0, 0, 0, 0, 0);
    let mut recoveries: Vec<Duration> = Vec::new();
    for round in 0..=cuts {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let booted = Instant::now();
        let vm = Vm::boot(
            &assets.kernel,
            &initrd,
            &disk,
            &tmp.path().join("console.log"),
        );
        if round > 0 {
            recoveries.push(booted.elapsed());
        }
        let fsck = vm.control("fsck");
        assert!(
            fsck.starts_with("exit 0") && fsck.contains(": 0 errors"),
            "edgeyard fsck after cut {round} on machine {m} (seed {seed}):\n{fsck}\nconsole:\n{}",
            vm.console_text()
        );
        let checking = Instant::now();
        let c = ledger.check(&vm.addr, &mut rng, round < cuts, false);
        let check_took = checking.elapsed();
        (blobs, tags, deletes) = (blobs + c.blobs, tags + c.tags, deletes + c.deletes);
        (resumed, unknown) = (resumed + c.resumed, unknown + c.unknown);
        let log = vm.control("log");
        assert_eq!(
            c.lost_sessions, 0,
            "after cut {round} on machine {m} (seed {seed}) upload sessions acknowledged before the cut were unknown; the server's log:\n{log}"
        );
        assert!(
            !log.contains(" ERROR "),
            "the server logged errors after cut {round} on machine {m} (seed {seed}):\n{log}"
        );
        if round == cuts {
            vm.kill();
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut workers: Vec<_> = (0..6u64)
            .map(|w| {
                let (addr, ledger, stop, counter) = (
                    vm.addr.clone(),
                    ledger.clone(),
                    stop.clone(),
                    counter.clone(),
                );
                let r = Rng(rng.next() | 1);
                std::thread::spawn(move || client(w, addr, ledger, stop, counter, r))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500 + rng.below(3_000)));
        // Every other round the clients stop first, so that nothing else makes the last
        // session durable by chance (a flush for another push covers every earlier write).
        if round % 2 == 1 {
            stop.store(true, Ordering::Relaxed);
            for w in workers.drain(..) {
                w.join().expect("a client thread panicked (see above)");
            }
        }
        // A session opened the moment before the cut: it must be resumable after it.
        let spec = BlobSpec {
            seed: rng.next(),
            len: 1 + rng.below(64 << 10) as usize,
        };
        if let Err(e) = open_session(&vm.addr, "pc/last", spec, &ledger) {
            panic!(
                "machine {m}, round {round} (seed {seed}): the session opened before the cut was refused: {e}; the server's log:\n{}",
                vm.control("log")
            );
        }
        // Everything acknowledged before this line was acknowledged before the cut.
        ledger.cut();
        assert_eq!(vm.control("cut").trim(), "cut", "the cut itself failed");
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("a client thread panicked (see above)");
        }
        let boot = vm_phases(&vm.console_text());
        vm.kill();
        let (b, t, d, cut_off) = ledger.counts();
        // Running totals on every line, so that a long run stopped early still reports.
        eprintln!(
            "machine {m} cut {round}: acknowledged so far {b} blobs, {t} tags, {d} deletes; {cut_off} uploads cut off; checked so far {blobs} blobs, {tags} tags, {deletes} deletes, {resumed} uploads resumed, {unknown} cleanly unknown; took: boot {boot}, check {:.1} s, round {:.1} s",
            check_took.as_secs_f64(),
            booted.elapsed().as_secs_f64()
        );
    }
    let (b, t, d, _) = ledger.counts();
    Totals {
        cuts: recoveries.len() as u64,
        blobs,
        tags,
        deletes,
        resumed,
        unknown,
        acked: (b, t, d),
        recoveries,
    }
}
