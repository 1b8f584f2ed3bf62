//! Crash consistency: pushes under way from several clients at once (raw monolithic and
//! chunked uploads, manifest pushes, and skopeo copying OCI layouts), edgeyard killed with
//! SIGKILL at a random moment, restarted on the same data directory, and checked:
//!
//! - every push that was acknowledged (201, or skopeo exiting 0) is fully there: each blob
//!   reads back with the bytes that hash to its digest, each tag names the pushed manifest;
//! - nothing half-written is visible under a digest: every file in the blob tree hashes to
//!   its name, and `edgeyard fsck` agrees (run at the end, on the stopped store);
//! - uploads interrupted by the crash either resume from the offset the server reports (and
//!   then complete with a verified digest) or are cleanly unknown (404 BLOB_UPLOAD_UNKNOWN);
//! - the metadata database opens every time, without any repair step.
//!
//! `EDGEYARD_CRASH_ITERATIONS` (default 12) sets the number of kills; `EDGEYARD_CRASH_SEED`
//! replays a run (the seed is printed). The README gives the longer documented run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pushload::{push_chunked, push_image, push_monolithic, BlobSpec, Ledger};
use common::soft::Rng;
use common::*;

/// skopeo copies a fresh OCI layout in; acknowledged when skopeo exits 0.
fn push_skopeo(addr: &str, work: &Path, n: u64, ledger: &Ledger) {
    let layout = work.join(format!("layout-{n}"));
    let digest = oci_image_layout(&layout, 7_000 + n);
    let tag = format!("s{n}");
    let mut child = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--retry-times",
            "0",
        ])
        .arg(format!("oci:{}:img", layout.display()))
        .arg(format!("docker://{addr}/crash/skopeo:{tag}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("skopeo");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    ledger.tag_acked("crash/skopeo", &tag, &digest);
                }
                break;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&layout);
}

/// Every file in the blob tree hashes to its own name: nothing half-written is visible.
fn blob_tree_is_clean(data_dir: &Path) -> usize {
    let mut n = 0;
    for (path, bytes) in snapshot(&data_dir.join("blobs")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            sha256(&bytes),
            format!("sha256:{name}"),
            "{} does not hash to its name",
            path.display()
        );
        n += 1;
    }
    n
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn acknowledged_pushes_survive_sigkill_at_random_moments() {
    let skopeo = require_tool("skopeo");
    let iterations = env_u64("EDGEYARD_CRASH_ITERATIONS", 12);
    let seed = env_u64(
        "EDGEYARD_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    );
    eprintln!("crash test: {iterations} iterations, EDGEYARD_CRASH_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let ledger = Arc::new(Ledger::default());
    let mut rng = Rng(seed);
    let counter = Arc::new(AtomicU64::new(0));
    let (mut resumed, mut unknown, mut checked) = (0, 0, 0);

    for round in 0..iterations {
        let server = Server::start_with(&data, &[]);
        let addr = server.addr.clone();
        // Whatever the previous crash interrupted: resumed or cleanly gone; everything
        // acknowledged so far whole (the newest in full, older ones sampled).
        let c = ledger.check(&addr, &mut rng, true, true);
        (resumed, unknown, checked) = (resumed + c.resumed, unknown + c.unknown, checked + c.blobs);

        // Load from several clients at once, then a kill at a random moment.
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..4u64 {
            let (addr, ledger, stop, counter) =
                (addr.clone(), ledger.clone(), stop.clone(), counter.clone());
            let mut wr = Rng(rng.next() | 1);
            workers.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let spec = BlobSpec {
                        seed: wr.next(),
                        len: 1 + wr.below(3 << 20) as usize,
                    };
                    let ok = match w {
                        0 => push_monolithic(&addr, "crash/mono", spec, &ledger),
                        1 => push_chunked(
                            &addr,
                            "crash/chunked",
                            spec,
                            64 * 1024 + wr.below(512 * 1024) as usize,
                            None,
                            &ledger,
                        ),
                        2 => push_chunked(
                            &addr,
                            "crash/small",
                            BlobSpec {
                                len: 1 + spec.len % 70_000,
                                ..spec
                            },
                            8 * 1024,
                            None,
                            &ledger,
                        ),
                        _ => push_image(
                            &addr,
                            "crash/images",
                            Some(&format!("t{n}")),
                            &mut wr,
                            &ledger,
                        )
                        .is_some(),
                    };
                    if !ok {
                        break; // the server is gone
                    }
                }
            }));
        }
        if skopeo {
            let (addr, ledger, stop, work, counter) = (
                addr.clone(),
                ledger.clone(),
                stop.clone(),
                work.clone(),
                counter.clone(),
            );
            workers.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    push_skopeo(&addr, &work, n, &ledger);
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(150 + rng.below(1_200)));
        let pid = server.pid();
        let _ = server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("a client thread panicked (see above)");
        }
        let (blobs, tags, _, cut_off) = ledger.counts();
        eprintln!(
            "round {round}: killed pid {pid}; acknowledged so far: {blobs} blobs, {tags} tags; {cut_off} uploads cut off"
        );
    }

    // Last restart: everything acknowledged, in full this time.
    let server = Server::start_with(&data, &[]);
    let c = ledger.check(&server.addr, &mut rng, false, true);
    (resumed, unknown, checked) = (resumed + c.resumed, unknown + c.unknown, checked + c.blobs);
    let log = server.log_text();
    assert!(
        !log.contains(" ERROR "),
        "the restarted server logged errors:\n{log}"
    );
    assert!(server.terminate().success(), "clean stop after the run");
    let files = blob_tree_is_clean(&data);
    // And the scrub agrees: every blob, manifest, link and tag checks out (leftover upload
    // files of cut-off sessions are warnings, which exit 0).
    let fsck = edgeyard(&data, &["fsck"], "");
    eprintln!(
        "fsck after the last crash: {}",
        fsck.lines().last().unwrap_or("")
    );
    let by_skopeo = ledger.tags_in("crash/skopeo");
    assert!(
        !skopeo || by_skopeo > 0,
        "skopeo never completed a push: the real-client part did not run"
    );
    eprintln!(
        "crash test: {iterations} kills survived; {} acknowledged blobs and {} tags ({by_skopeo} pushed by skopeo) intact ({checked} blob reads verified), {files} blob files all hash to their names; interrupted uploads: {resumed} resumed, {unknown} cleanly unknown",
        ledger.counts().0,
        ledger.counts().1
    );
    assert!(
        ledger.counts().0 > 0 && ledger.counts().1 > 0,
        "the load acknowledged nothing: the test did not test anything"
    );
}
