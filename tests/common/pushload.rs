//! Pushes under way when the server goes down, a ledger of what it acknowledged, and the
//! checks that all of it survived. Shared by the crash test (the process is killed) and
//! the power-cut test (the VM's disk stops writing, then the VM is killed).
//!
//! After a kill, everything acknowledged must be there. After a power cut, only what was
//! acknowledged before the cut: the server in the VM goes on answering for a moment, into a
//! disk that keeps nothing, so the ledger is told when the cut is sent ([`Ledger::cut`]) and
//! later acknowledgements prove nothing. A tag may then name its last acknowledged manifest
//! or one pushed after it (the cut may have come after that write, or before).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::soft::{call, call_waiting, header, Rng};
use super::{bytes, closing, image_manifest, sha256};

/// A blob the test can regenerate from its seed and length instead of keeping it.
#[derive(Clone, Copy, Debug)]
pub struct BlobSpec {
    pub seed: u64,
    pub len: usize,
}

impl BlobSpec {
    pub fn bytes(self) -> Vec<u8> {
        bytes(self.len, self.seed)
    }
}

/// An upload the crash interrupted: where it is and what of it the server acknowledged.
#[derive(Debug)]
pub struct Interrupted {
    pub repo: String,
    pub location: String,
    pub acked: usize,
    pub spec: BlobSpec,
    /// The session was opened (POST answered) before any cut: it must still be known...
    pub session_sure: bool,
    /// ... unless its closing PUT was sent: then the upload may have completed (the session
    /// gone, the blob stored), or have been cut off while it committed; a retry must work.
    pub closing: bool,
}

/// What the ledger knows of one tag.
#[derive(Clone, Debug, Default)]
struct TagState {
    /// The manifest of its last acknowledged push.
    sure: Option<String>,
    /// Manifests pushed to it since, not (or not provably) acknowledged.
    tried: Vec<String>,
}

#[derive(Default)]
struct State {
    cut: bool,
    /// Acknowledged blobs, with when: (repository, digest, spec, acknowledged at).
    blobs: Vec<(String, String, BlobSpec, Instant)>,
    /// With garbage collection running: how long an acknowledged blob must stay (shorter
    /// than its grace period); after that only what a tag references must.
    blobs_kept_for: Option<Duration>,
    /// Count a session that was opened before the outage and is unknown after it, rather
    /// than fail (see [`Ledger::counting_lost_sessions`]).
    count_lost_sessions: bool,
    tags: BTreeMap<(String, String), TagState>,
    /// Manifests whose delete was acknowledged: (repository, digest).
    deleted: Vec<(String, String)>,
    interrupted: Vec<Interrupted>,
}

/// What the server acknowledged, hence must hold after the crash or cut.
#[derive(Default)]
pub struct Ledger(Mutex<State>);

/// What a check found, for the run's summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checked {
    pub blobs: usize,
    pub tags: usize,
    pub deletes: usize,
    pub resumed: usize,
    pub unknown: usize,
    /// Sessions opened before the outage and unknown after it (only counted with
    /// [`Ledger::counting_lost_sessions`]; otherwise the check fails on the first).
    pub lost_sessions: usize,
}

impl Ledger {
    /// A ledger for a server whose garbage collection keeps unreferenced blobs for a grace
    /// period: acknowledged blobs are checked while younger than `window` (keep it well
    /// inside the grace period); older ones only through the tags that reference them.
    pub fn with_gc(window: Duration) -> Ledger {
        let l = Ledger::default();
        l.state().blobs_kept_for = Some(window);
        l
    }

    /// Sessions opened before the outage and unknown after it are counted
    /// ([`Checked::lost_sessions`]) instead of failing the check at once, so that the
    /// power-cut test can show the guest's log with the failure. The crash test fails at once.
    pub fn counting_lost_sessions(self) -> Ledger {
        self.state().count_lost_sessions = true;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn blob_acked(&self, repo: &str, digest: String, spec: BlobSpec) {
        let mut s = self.state();
        if !s.cut {
            s.blobs
                .push((repo.to_string(), digest, spec, Instant::now()));
        }
    }

    fn tag_trying(&self, repo: &str, tag: &str, digest: &str) {
        let mut s = self.state();
        let t = s.tags.entry((repo.into(), tag.into())).or_default();
        t.tried.push(digest.to_string());
    }

    /// A push to `repo:tag` of manifest `digest` was acknowledged (by a client of its own,
    /// say skopeo exiting 0).
    pub fn tag_acked(&self, repo: &str, tag: &str, digest: &str) {
        let mut s = self.state();
        if !s.cut {
            let t = s.tags.entry((repo.into(), tag.into())).or_default();
            t.sure = Some(digest.to_string());
            t.tried.clear();
        }
    }

    fn delete_acked(&self, repo: &str, digest: &str) {
        let mut s = self.state();
        if !s.cut {
            s.deleted.push((repo.to_string(), digest.to_string()));
        }
    }

    fn interrupted(&self, up: Interrupted) {
        self.state().interrupted.push(up);
    }

    fn is_cut(&self) -> bool {
        self.state().cut
    }

    /// The power is being cut: acknowledgements from now on prove nothing. Call it just
    /// before asking for the cut, so every earlier acknowledgement arrived before it.
    pub fn cut(&self) {
        self.state().cut = true;
    }

    /// Acknowledged tags in `repo`.
    pub fn tags_in(&self, repo: &str) -> usize {
        let s = self.state();
        s.tags
            .iter()
            .filter(|((r, _), t)| r == repo && t.sure.is_some())
            .count()
    }

    /// (blobs, tags, deletes, uploads cut off) the ledger holds.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let s = self.state();
        (
            s.blobs.len(),
            s.tags.values().filter(|t| t.sure.is_some()).count(),
            s.deleted.len(),
            s.interrupted.len(),
        )
    }

    /// Checks the restarted server against the ledger: interrupted uploads resumed or
    /// cleanly unknown, acknowledged blobs and tags whole, acknowledged deletes still done.
    /// `sample` checks only the newest entries and a random eighth of the older ones, so
    /// the check stays bounded as the store grows. After it the ledger matches what the
    /// server holds, ready for the next round. `chunks_durable`: see [`resume`].
    pub fn check(&self, addr: &str, rng: &mut Rng, sample: bool, chunks_durable: bool) -> Checked {
        let mut c = Checked::default();
        let pending = std::mem::take(&mut self.state().interrupted);
        for up in &pending {
            match resume(addr, up, chunks_durable) {
                Some(digest) => {
                    self.blob_acked(&up.repo, digest, up.spec);
                    c.resumed += 1;
                }
                None if up.closing => {
                    // The closing PUT was under way: the server may have finished it, or
                    // moved the bytes into place and gone down before recording it. Either
                    // way a client's retry must complete (and never upload a blob twice
                    // into a corrupt state).
                    assert!(
                        push_monolithic(addr, &up.repo, up.spec, self),
                        "retrying the upload cut off in its closing PUT failed"
                    );
                    c.unknown += 1;
                }
                None => {
                    if up.session_sure && self.state().count_lost_sessions {
                        eprintln!(
                            "LOST SESSION: upload {} was opened before the server went down, and is unknown after",
                            up.location
                        );
                        c.lost_sessions += 1;
                        continue;
                    }
                    assert!(
                        !up.session_sure,
                        "upload {} was opened before the server went down, and is unknown after",
                        up.location
                    );
                    c.unknown += 1;
                }
            }
        }
        let mut keep =
            |i: usize, n: usize, newest: usize| !sample || i + newest >= n || rng.below(8) == 0;
        let blobs = {
            let mut s = self.state();
            if let Some(window) = s.blobs_kept_for {
                s.blobs.retain(|(_, _, _, at)| at.elapsed() < window);
            }
            s.blobs.clone()
        };
        for (i, (repo, d, spec, _)) in blobs.iter().enumerate() {
            if keep(i, blobs.len(), 40) {
                verify_blob(addr, repo, d, *spec);
                c.blobs += 1;
            }
        }
        let tags = self.state().tags.clone();
        let n = tags.len();
        for (i, ((repo, tag), t)) in tags.into_iter().enumerate() {
            if !t.tried.is_empty() || keep(i, n, 20) {
                let now = verify_tag(addr, &repo, &tag, &t);
                let mut s = self.state();
                let e = s.tags.entry((repo, tag)).or_default();
                *e = TagState {
                    sure: now,
                    tried: Vec::new(),
                };
                c.tags += 1;
            }
        }
        let deleted = self.state().deleted.clone();
        for (i, (repo, d)) in deleted.iter().enumerate() {
            if keep(i, deleted.len(), 20) {
                verify_deleted(addr, repo, d);
                c.deletes += 1;
            }
        }
        let mut s = self.state();
        s.cut = false;
        s.tags.retain(|_, t| t.sure.is_some());
        c
    }
}

/// Opens an upload session: its location, or `None` when the server is gone (or answered
/// anything but 202: a client under load stops there, the checks after the outage judge).
fn start_upload(addr: &str, repo: &str) -> Option<String> {
    open_upload(addr, repo, Duration::from_secs(30)).ok()
}

/// Opens an upload session, waiting up to `patience` for the answer: its location, or what
/// the server answered instead (status and body, or the I/O error and when it came).
fn open_upload(addr: &str, repo: &str, patience: Duration) -> Result<String, String> {
    let started = Instant::now();
    let path = format!("/v2/{repo}/blobs/uploads/");
    match call_waiting(addr, "POST", &path, &[], &[], patience) {
        Ok((202, hs, _)) => {
            let loc = header(&hs, "location").expect("upload started without a Location");
            Ok(loc.to_string())
        }
        Ok((status, _, body)) => Err(format!(
            "POST {path} answered {status} after {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!(
            "POST {path} failed after {:.1} s: {e}",
            started.elapsed().as_secs_f64()
        )),
    }
}

/// Monolithic upload: POST, then PUT with the whole body and the digest.
pub fn push_monolithic(addr: &str, repo: &str, spec: BlobSpec, ledger: &Ledger) -> bool {
    let data = spec.bytes();
    let digest = sha256(&data);
    let Some(loc) = start_upload(addr, repo) else {
        return false;
    };
    match call(addr, "PUT", &closing(&loc, &digest), &[], &data) {
        Ok((201, _, _)) => {
            ledger.blob_acked(repo, digest, spec);
            true
        }
        Ok((status, _, body)) => panic!(
            "monolithic PUT answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => false,
    }
}

/// Chunked upload in PATCHes of `chunk` bytes with Content-Range, then an empty PUT. With
/// `abandon_after`, the upload is left half-done after that many bytes (a client that went
/// away): the ledger keeps it for the next check to resume.
pub fn push_chunked(
    addr: &str,
    repo: &str,
    spec: BlobSpec,
    chunk: usize,
    abandon_after: Option<usize>,
    ledger: &Ledger,
) -> bool {
    let data = spec.bytes();
    let digest = sha256(&data);
    let Some(loc) = start_upload(addr, repo) else {
        return false;
    };
    // Read after the POST was answered: if no cut was asked for yet, none came before it.
    let session_sure = !ledger.is_cut();
    let mut acked = 0;
    let remember = |acked, closing| {
        ledger.interrupted(Interrupted {
            repo: repo.to_string(),
            location: loc.clone(),
            acked,
            spec,
            session_sure,
            closing,
        })
    };
    while acked < data.len() {
        if abandon_after.is_some_and(|a| acked >= a) {
            remember(acked, false);
            return true;
        }
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
                remember(acked, false);
                return false;
            }
        }
    }
    match call(addr, "PUT", &closing(&loc, &digest), &[], &[]) {
        Ok((201, _, _)) => {
            ledger.blob_acked(repo, digest, spec);
            true
        }
        Ok((status, _, body)) => panic!(
            "closing PUT answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => {
            remember(acked, true);
            false
        }
    }
}

/// Opens an upload and leaves it, as a client the power cut stops right after its `POST`
/// was answered: the session must be resumable after the cut. The server is expected up,
/// only perhaps slow (an emulated VM on a host busy with other tests), so the answer is
/// waited for up to two minutes; anything but a session is the error returned.
pub fn open_session(addr: &str, repo: &str, spec: BlobSpec, ledger: &Ledger) -> Result<(), String> {
    let location = open_upload(addr, repo, Duration::from_secs(120))?;
    let session_sure = !ledger.is_cut();
    ledger.interrupted(Interrupted {
        repo: repo.to_string(),
        location,
        acked: 0,
        spec,
        session_sure,
        closing: false,
    });
    Ok(())
}

/// An image: a layer and a config, then its manifest under `reference` (a tag, or its
/// digest when `reference` is `None`). The manifest's digest once acknowledged.
pub fn push_image(
    addr: &str,
    repo: &str,
    tag: Option<&str>,
    rng: &mut Rng,
    ledger: &Ledger,
) -> Option<String> {
    let layer = BlobSpec {
        seed: rng.next(),
        len: 1 + rng.below(300_000) as usize,
    };
    let config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{}}}",
        rng.next()
    );
    if !push_monolithic(addr, repo, layer, ledger) {
        return None;
    }
    let (cd, ld) = (sha256(config.as_bytes()), sha256(&layer.bytes()));
    let loc = start_upload(addr, repo)?;
    match call(addr, "PUT", &closing(&loc, &cd), &[], config.as_bytes()) {
        Ok((201, _, _)) => {}
        Ok((status, _, body)) => panic!("config PUT {status}: {}", String::from_utf8_lossy(&body)),
        Err(_) => return None,
    }
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len)]);
    let md = sha256(&m);
    if let Some(t) = tag {
        ledger.tag_trying(repo, t, &md);
    }
    match call(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{}", tag.unwrap_or(&md)),
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        &m,
    ) {
        Ok((201, _, _)) => {
            if let Some(t) = tag {
                ledger.tag_acked(repo, t, &md);
            }
            Some(md)
        }
        Ok((status, _, body)) => panic!(
            "manifest PUT answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => None,
    }
}

/// An image pushed by digest, then deleted: the delete, once acknowledged, must hold.
pub fn push_and_delete(addr: &str, repo: &str, rng: &mut Rng, ledger: &Ledger) -> bool {
    let Some(md) = push_image(addr, repo, None, rng, ledger) else {
        return false;
    };
    match call(
        addr,
        "DELETE",
        &format!("/v2/{repo}/manifests/{md}"),
        &[],
        &[],
    ) {
        Ok((202, _, _)) => {
            ledger.delete_acked(repo, &md);
            true
        }
        Ok((status, _, body)) => panic!(
            "manifest DELETE answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(_) => false,
    }
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

/// Checks one tag against what the ledger knows of it; the manifest it names now (whole,
/// with every blob it references), or `None` when it is absent (allowed only if no push
/// to it was acknowledged).
fn verify_tag(addr: &str, repo: &str, tag: &str, t: &TagState) -> Option<String> {
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
    if status == 404 {
        assert!(
            t.sure.is_none(),
            "acknowledged tag {repo}:{tag} ({:?}) is gone",
            t.sure
        );
        return None;
    }
    assert_eq!(status, 200, "GET {repo}:{tag}");
    let digest = header(&hs, "docker-content-digest")
        .expect("manifest without a digest header")
        .to_string();
    assert!(
        t.sure.as_deref() == Some(digest.as_str()) || t.tried.contains(&digest),
        "{repo}:{tag} names {digest}: neither its last acknowledged manifest ({:?}) nor one pushed after it ({:?})",
        t.sure,
        t.tried
    );
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
    Some(digest)
}

/// An acknowledged delete holds: the manifest is not served.
fn verify_deleted(addr: &str, repo: &str, digest: &str) {
    let (status, _, body) = call(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/{digest}"),
        &[],
        &[],
    )
    .unwrap_or_else(|e| panic!("GET {digest}: {e}"));
    assert_eq!(
        status,
        404,
        "manifest {digest} in {repo} is back after its delete was acknowledged: {}",
        String::from_utf8_lossy(&body)
    );
}

/// An upload the crash cut off: resumed from where the server says it stands (and then
/// completed with a verified digest: its digest), or cleanly unknown (`None`).
/// `chunks_durable`: the server may not report fewer bytes than it acknowledged. True after
/// a process kill (the kernel keeps what it was given); not after a power cut, since a
/// chunk's 202 promises nothing about the disk (only the final PUT does).
pub fn resume(addr: &str, up: &Interrupted, chunks_durable: bool) -> Option<String> {
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
            assert!(
                !chunks_durable || end + 1 >= up.acked || (range == "0-0" && up.acked <= 1),
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
            Some(digest)
        }
        404 => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
            None
        }
        other => panic!(
            "interrupted upload answered {other}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}
