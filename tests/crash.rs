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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::soft::{call, header, Rng};
use common::*;

/// A blob the test can regenerate from its seed and length instead of keeping it.
#[derive(Clone, Copy, Debug)]
struct BlobSpec {
    seed: u64,
    len: usize,
}

impl BlobSpec {
    fn bytes(self) -> Vec<u8> {
        bytes(self.len, self.seed)
    }
}

/// An upload the crash interrupted: where it is and what of it the server acknowledged.
#[derive(Debug)]
struct Interrupted {
    repo: String,
    location: String,
    acked: usize,
    spec: BlobSpec,
}

/// What the server acknowledged, hence must hold after any crash.
#[derive(Default)]
struct Ledger {
    blobs: Mutex<Vec<(String, String, BlobSpec)>>,
    tags: Mutex<Vec<(String, String, String)>>,
    interrupted: Mutex<Vec<Interrupted>>,
}

/// Opens an upload session: its location, or `None` when the server is gone.
fn start_upload(addr: &str, repo: &str) -> Option<String> {
    let Ok((202, hs, _)) = call(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &[],
    ) else {
        return None;
    };
    let loc = header(&hs, "location").expect("upload started without a Location");
    Some(loc.to_string())
}

/// Monolithic upload: POST, then PUT with the whole body and the digest.
fn push_monolithic(addr: &str, repo: &str, spec: BlobSpec, ledger: &Ledger) -> bool {
    let data = spec.bytes();
    let digest = sha256(&data);
    let Some(loc) = start_upload(addr, repo) else {
        return false;
    };
    match call(addr, "PUT", &closing(&loc, &digest), &[], &data) {
        Ok((201, _, _)) => {
            ledger
                .blobs
                .lock()
                .unwrap()
                .push((repo.to_string(), digest, spec));
            true
        }
        Ok((status, _, body)) => panic!(
            "monolithic PUT answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => false,
    }
}

/// Chunked upload in PATCHes of `chunk` bytes with Content-Range, then an empty PUT.
fn push_chunked(addr: &str, repo: &str, spec: BlobSpec, chunk: usize, ledger: &Ledger) -> bool {
    let data = spec.bytes();
    let digest = sha256(&data);
    let Some(loc) = start_upload(addr, repo) else {
        return false;
    };
    let mut acked = 0;
    let remember = |acked| {
        ledger.interrupted.lock().unwrap().push(Interrupted {
            repo: repo.to_string(),
            location: loc.clone(),
            acked,
            spec,
        })
    };
    while acked < data.len() {
        let end = (acked + chunk).min(data.len());
        let range = format!("{acked}-{}", end - 1);
        match call(
            addr,
            "PATCH",
            &loc,
            &[
                ("Content-Range", range),
                ("Content-Type", "application/octet-stream".into()),
            ],
            &data[acked..end],
        ) {
            Ok((202, _, _)) => acked = end,
            Ok((status, _, body)) => panic!(
                "PATCH answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(_) => {
                remember(acked);
                return false;
            }
        }
    }
    match call(addr, "PUT", &closing(&loc, &digest), &[], &[]) {
        Ok((201, _, _)) => {
            ledger
                .blobs
                .lock()
                .unwrap()
                .push((repo.to_string(), digest, spec));
            true
        }
        Ok((status, _, body)) => panic!(
            "closing PUT answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => {
            remember(acked);
            false
        }
    }
}

/// A config and a layer, then a manifest under `tag`.
fn push_image(addr: &str, repo: &str, tag: &str, rng: &mut Rng, ledger: &Ledger) -> bool {
    let layer = BlobSpec {
        seed: rng.next(),
        len: 1 + rng.below(300_000) as usize,
    };
    let config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{}}}",
        rng.next()
    );
    if !push_monolithic(addr, repo, layer, ledger) {
        return false;
    }
    let (cd, ld) = (sha256(config.as_bytes()), sha256(&layer.bytes()));
    let Some(loc) = start_upload(addr, repo) else {
        return false;
    };
    match call(addr, "PUT", &closing(&loc, &cd), &[], config.as_bytes()) {
        Ok((201, _, _)) => {}
        Ok((status, _, body)) => panic!("config PUT {status}: {}", String::from_utf8_lossy(&body)),
        Err(_) => return false,
    }
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len)]);
    let md = sha256(&m);
    match call(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        &m,
    ) {
        Ok((201, _, _)) => {
            ledger
                .tags
                .lock()
                .unwrap()
                .push((repo.to_string(), tag.to_string(), md));
            true
        }
        Ok((status, _, body)) => panic!(
            "manifest PUT answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => false,
    }
}

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
                    ledger
                        .tags
                        .lock()
                        .unwrap()
                        .push(("crash/skopeo".into(), tag, digest));
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

/// Checks one acknowledged blob: present in its repository, bytes hashing to the digest.
fn verify_blob(addr: &str, repo: &str, digest: &str, spec: BlobSpec) {
    let (status, hs, body) = call(addr, "GET", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])
        .unwrap_or_else(|e| panic!("GET {digest}: {e}"));
    assert_eq!(status, 200, "acknowledged blob {digest} in {repo} is gone");
    assert_eq!(header(&hs, "docker-content-digest"), Some(digest));
    assert_eq!(body.len(), spec.len, "length of {digest}");
    assert_eq!(sha256(&body), digest, "bytes of acknowledged blob {digest}");
}

fn verify_tag(addr: &str, repo: &str, tag: &str, digest: &str) {
    let (status, hs, body) = call(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        &[],
    )
    .unwrap_or_else(|e| panic!("GET {repo}:{tag}: {e}"));
    assert_eq!(status, 200, "acknowledged tag {repo}:{tag} is gone");
    assert_eq!(header(&hs, "docker-content-digest"), Some(digest));
    assert_eq!(sha256(&body), digest);
    // Every blob it names is there too.
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut refs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        refs.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in refs {
        let (status, _, b) = call(addr, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], &[])
            .unwrap_or_else(|e| panic!("GET {d}: {e}"));
        assert_eq!(status, 200, "{repo}:{tag} names {d}, which is gone");
        assert_eq!(sha256(&b), d);
    }
}

/// An upload the crash cut off: resumed from where the server says it stands, or gone.
fn resume(addr: &str, up: &Interrupted, ledger: &Ledger) -> &'static str {
    let (status, hs, body) = call(addr, "GET", &up.location, &[], &[]).expect("upload status");
    match status {
        204 => {
            // `Range: 0-(n-1)`; "0-0" is ambiguous on the wire (nothing or one byte), so a
            // PATCH from 0 that the server refuses as out of order is retried from 1.
            let range = header(&hs, "range").unwrap_or("0-0").to_string();
            let end: usize = range
                .rsplit('-')
                .next()
                .and_then(|e| e.parse().ok())
                .expect("Range header");
            // A process crash keeps what the kernel was given: never fewer bytes than
            // the PATCHes the server acknowledged.
            assert!(
                end + 1 >= up.acked || (range == "0-0" && up.acked <= 1),
                "upload at {range} after {} bytes were acknowledged",
                up.acked
            );
            let data = up.spec.bytes();
            let digest = sha256(&data);
            let mut candidates = if range == "0-0" {
                vec![0, 1]
            } else {
                vec![end + 1]
            };
            candidates.retain(|c| *c <= data.len());
            let mut resumed = false;
            let mut tried = Vec::new();
            for stored in candidates {
                if stored == data.len() {
                    resumed = true; // all there: only the closing PUT is missing
                    break;
                }
                assert!(
                    stored <= up.spec.len,
                    "upload claims {stored} bytes of a {}-byte blob",
                    up.spec.len
                );
                let (status, _, body) = call(
                    addr,
                    "PATCH",
                    &up.location,
                    &[("Content-Range", format!("{stored}-{}", data.len() - 1))],
                    &data[stored..],
                )
                .expect("resume PATCH");
                if status == 416 {
                    tried.push((stored, String::from_utf8_lossy(&body).into_owned()));
                    continue;
                }
                assert_eq!(status, 202, "resume: {}", String::from_utf8_lossy(&body));
                resumed = true;
                break;
            }
            assert!(
                resumed,
                "no offset the server accepts for {} (Range {range}, {} bytes, {} acknowledged): {tried:?}",
                up.location,
                data.len(),
                up.acked
            );
            let (status, _, body) =
                call(addr, "PUT", &closing(&up.location, &digest), &[], &[]).expect("resume PUT");
            assert_eq!(
                status,
                201,
                "a resumed upload completes with a verified digest: {}",
                String::from_utf8_lossy(&body)
            );
            ledger
                .blobs
                .lock()
                .unwrap()
                .push((up.repo.clone(), digest, up.spec));
            "resumed"
        }
        404 => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
            "unknown"
        }
        other => panic!(
            "interrupted upload answered {other}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
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
        // Whatever the previous crash interrupted: resume it or see it cleanly gone.
        let pending: Vec<Interrupted> = std::mem::take(&mut *ledger.interrupted.lock().unwrap());
        for up in &pending {
            match resume(&addr, up, &ledger) {
                "resumed" => resumed += 1,
                _ => unknown += 1,
            }
        }
        // Everything acknowledged so far is whole (the newest in full, older ones sampled
        // so the check stays bounded as the store grows).
        let blobs = ledger.blobs.lock().unwrap().clone();
        for (i, (repo, d, spec)) in blobs.iter().enumerate().rev() {
            if i + 40 >= blobs.len() || rng.below(8) == 0 {
                verify_blob(&addr, repo, d, *spec);
                checked += 1;
            }
        }
        let tags = ledger.tags.lock().unwrap().clone();
        for (i, (repo, tag, d)) in tags.iter().enumerate().rev() {
            if i + 20 >= tags.len() || rng.below(8) == 0 {
                verify_tag(&addr, repo, tag, d);
            }
        }

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
                            &ledger,
                        ),
                        _ => push_image(&addr, "crash/images", &format!("t{n}"), &mut wr, &ledger),
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
        eprintln!(
            "round {round}: killed pid {pid}; acknowledged so far: {} blobs, {} tags; {} uploads cut off",
            ledger.blobs.lock().unwrap().len(),
            ledger.tags.lock().unwrap().len(),
            ledger.interrupted.lock().unwrap().len()
        );
    }

    // Last restart: everything acknowledged, in full this time.
    let server = Server::start_with(&data, &[]);
    let pending: Vec<Interrupted> = std::mem::take(&mut *ledger.interrupted.lock().unwrap());
    for up in &pending {
        match resume(&server.addr, up, &ledger) {
            "resumed" => resumed += 1,
            _ => unknown += 1,
        }
    }
    for (repo, d, spec) in ledger.blobs.lock().unwrap().iter() {
        verify_blob(&server.addr, repo, d, *spec);
        checked += 1;
    }
    for (repo, tag, d) in ledger.tags.lock().unwrap().iter() {
        verify_tag(&server.addr, repo, tag, d);
    }
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
    let by_skopeo = ledger
        .tags
        .lock()
        .unwrap()
        .iter()
        .filter(|(repo, _, _)| repo == "crash/skopeo")
        .count();
    assert!(
        !skopeo || by_skopeo > 0,
        "skopeo never completed a push: the real-client part did not run"
    );
    eprintln!(
        "crash test: {iterations} kills survived; {} acknowledged blobs and {} tags ({by_skopeo} pushed by skopeo) intact ({checked} blob reads verified), {files} blob files all hash to their names; interrupted uploads: {resumed} resumed, {unknown} cleanly unknown",
        ledger.blobs.lock().unwrap().len(),
        ledger.tags.lock().unwrap().len()
    );
    assert!(
        !ledger.blobs.lock().unwrap().is_empty() && !ledger.tags.lock().unwrap().is_empty(),
        "the load acknowledged nothing: the test did not test anything"
    );
}
