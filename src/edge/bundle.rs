//! Image bundles for air-gapped sites: export images as an OCI image layout tarball, and
//! import an OCI layout tarball or a `docker save` tarball, verifying every digest.
//!
//! An import stores nothing visible until every byte is verified: blobs stream into upload
//! files while being hashed, and only when the whole bundle checks out are they committed and
//! the manifests and tags written. A corrupted bundle leaves the registry as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};

use serde::Serialize;

pub use super::bundle_trust::TrustCarry;
use super::Edge;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::manifest::{DOCKER_MANIFEST, OCI_INDEX};
use crate::oci::{image_name, Digest, Manifest, Reference, RepoName, Tag};
use crate::registry::trust_update::{TRUST_FILE, TRUST_SIGNATURE};
use crate::registry::Incoming;
use crate::trust::{cosign, notation};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Told about each file as it passes (path in the bundle, bytes): for progress output.
pub type Progress = std::sync::Arc<dyn Fn(&str, u64) + Send + Sync>;

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct BundleReport {
    pub images: Vec<String>,
    pub blobs: u64,
    pub bytes: u64,
    /// What the bundle's trust material did, when it carries some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
}

pub(super) fn invalid(msg: impl Into<String>) -> Error {
    Error::api(ErrorCode::Invalid, msg)
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::internal(context, e)
}

const NOT_A_TAR: &str = "it is not a tar archive (an OCI layout tarball or `docker save` output)";

/// Why the first bytes of a file are not a bundle, in words for the operator (the tar
/// reader's own messages, "numeric field was not a number", mean nothing to them).
/// `None`: the start of a tar archive (ustar or GNU header).
pub fn not_a_bundle(start: &[u8]) -> Option<&'static str> {
    if start.starts_with(&[0x1f, 0x8b]) {
        return Some("it is gzip-compressed: decompress it first (gunzip), bundles are plain tar");
    }
    if start.len() < 512 {
        return Some("it is too short to be a tar archive");
    }
    match &start[257..262] == b"ustar" {
        true => None,
        false => Some(NOT_A_TAR),
    }
}

/// What the read phase found.
#[derive(Default)]
pub(super) struct Staged {
    /// Blobs read into private files, verified, not yet committed (removed if dropped).
    pub(super) blobs: HashMap<Digest, Incoming>,
    /// docker save: tar path -> digest of that file.
    by_path: HashMap<String, Digest>,
    index_json: Option<Vec<u8>>,
    docker_manifest: Option<Vec<u8>>,
    /// The trust document and its signature, when the bundle carries them.
    pub(super) trust: Option<Vec<u8>>,
    pub(super) trust_signature: Option<Vec<u8>>,
}

/// `NAME:TAG` as a bundle names an image; a leading registry host is dropped.
fn split_image_name(full: &str) -> Option<(RepoName, Tag)> {
    let (name, tag) = full
        .rsplit_once(':')
        .filter(|(n, t)| !t.contains('/') && !n.is_empty())?;
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        parts.remove(0);
    }
    Some((parts.join("/").parse().ok()?, tag.parse().ok()?))
}

/// The staged bytes of a blob (manifests and configs are small).
pub(super) fn staged_bytes(staged: &Staged, d: &Digest) -> Result<Vec<u8>> {
    let p = staged
        .blobs
        .get(d)
        .ok_or_else(|| invalid(format!("the bundle lacks {d}")))?;
    p.read_all().map_err(io("reading a staged blob"))
}

impl Edge {
    /// Writes the images (`NAME:TAG` or `NAME@DIGEST`) as an OCI image layout tarball.
    pub fn export(
        &self,
        images: &[(RepoName, Reference)],
        out: impl Write,
        progress: Progress,
        carry: &TrustCarry,
    ) -> Result<BundleReport> {
        // Every image asked for, with every blob, before the first byte is written: a
        // missing image or a blob a mirror has not fetched yet is named, and no cut-off
        // bundle is left behind.
        for (repo, reference) in images {
            self.check_exportable(repo, reference)?;
        }
        let mut report = BundleReport::default();
        let mut tar = tar::Builder::new(out);
        let mut index = Vec::new();
        let mut written: HashSet<Digest> = HashSet::new();
        let add = |tar: &mut tar::Builder<_>,
                   path: String,
                   bytes: &mut dyn Read,
                   size: u64|
         -> Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, bytes)
                .map_err(io("writing the bundle"))
        };
        // The images asked for, then the cosign signatures of each manifest they hold (the
        // `sha256-<hex>.sig` tags), so that a site whose trust policy needs them can
        // import the bundle.
        let mut queue: Vec<(RepoName, Reference)> = images.to_vec();
        let mut next = 0;
        while next < queue.len() {
            let (repo, reference) = queue[next].clone();
            let (repo, reference) = (&repo, &reference);
            next += 1;
            let closure = self.registry().image_closure(repo, reference)?;
            for m in &closure.manifests {
                let Ok(tag) = cosign::signature_tag(&m.digest).parse::<Tag>() else {
                    continue;
                };
                let sig = (repo.clone(), Reference::Tag(tag));
                if !queue.contains(&sig) && self.registry().get_manifest(&sig.0, &sig.1).is_ok() {
                    queue.push(sig);
                }
                // Notary Project signatures: the image's referrers, carried by digest.
                let notary = self.registry().referrers(
                    repo,
                    &m.digest,
                    Some(notation::ARTIFACT_TYPE),
                    None,
                    usize::MAX,
                )?;
                for r in notary.manifests {
                    let sig = (repo.clone(), Reference::Digest(r.digest));
                    if !queue.contains(&sig) {
                        queue.push(sig);
                    }
                }
            }
            for m in &closure.manifests {
                if written.insert(m.digest.clone()) {
                    let d = &m.digest;
                    let path = format!("blobs/{}/{}", d.algorithm().as_str(), d.hex());
                    add(&mut tar, path, &mut m.bytes.as_ref(), m.bytes.len() as u64)?;
                }
            }
            for (b, _) in &closure.blobs {
                if !written.insert(b.clone()) {
                    continue;
                }
                let mut f = self.registry().open_blob_file(b)?;
                let size = f.metadata().map_err(io("reading a blob"))?.len();
                let path = format!("blobs/{}/{}", b.algorithm().as_str(), b.hex());
                add(&mut tar, path, &mut f, size)?;
                report.blobs += 1;
                report.bytes += size;
                progress(&b.to_string(), size);
            }
            // image_closure lists the top manifest last.
            let top = closure
                .manifests
                .last()
                .ok_or_else(|| Error::code(ErrorCode::ManifestUnknown))?;
            let name = image_name(repo, reference);
            index.push(serde_json::json!({
                "mediaType": top.media_type,
                "digest": top.digest.to_string(),
                "size": top.bytes.len(),
                "annotations": { REF_NAME: name, "io.containerd.image.name": name }
            }));
            report.images.push(name);
        }
        if let Some(key) = &carry.sign_with {
            let (doc, sig) = self.registry().export_trust(key)?;
            for (path, bytes) in [(TRUST_FILE, doc), (TRUST_SIGNATURE, sig)] {
                add(
                    &mut tar,
                    path.into(),
                    &mut bytes.as_slice(),
                    bytes.len() as u64,
                )?;
            }
            report.trust = Some(format!(
                "trust keys and policies signed by {}",
                key.public().fingerprint()
            ));
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add(
            &mut tar,
            "oci-layout".into(),
            &mut layout.as_ref(),
            layout.len() as u64,
        )?;
        let index = serde_json::to_vec(
            &serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index }),
        )
        .map_err(|e| Error::internal("writing index.json", e))?;
        add(
            &mut tar,
            "index.json".into(),
            &mut index.as_slice(),
            index.len() as u64,
        )?;
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io("writing the bundle"))?;
        Ok(report)
    }

    /// Reads a bundle (OCI layout or `docker save`), verifying every blob, then stores it.
    /// `repo` names the images of an OCI layout whose names carry only a tag.
    pub async fn import(
        &self,
        input: impl Read + Send + 'static,
        repo: Option<RepoName>,
        progress: Progress,
        carry: &TrustCarry,
    ) -> Result<BundleReport> {
        let me = self.clone();
        // Whatever is staged and not committed is removed when `staged` is dropped.
        let mut staged = tokio::task::spawn_blocking(move || me.stage(input, progress))
            .await
            .map_err(|e| Error::internal("reading the bundle", e))??;
        if carry.skip {
            staged.trust = None;
        }
        self.store(&mut staged, repo).await
    }

    /// An error naming the image when it, or one of its blobs, is not stored here (checked
    /// before a bundle is started, by the CLI and the admin API alike).
    pub fn check_exportable(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let name = image_name(repo, reference);
        let closure = self
            .registry()
            .image_closure(repo, reference)
            .map_err(|e| match e.error_code() {
                ErrorCode::ManifestUnknown | ErrorCode::NameUnknown => Error::api(
                    e.error_code(),
                    format!("{name}: no such image in this registry"),
                ),
                _ => e,
            })?;
        for (blob, _) in &closure.blobs {
            if let Err(e) = self.registry().open_blob_file(blob) {
                let why = match e.error_code() {
                    ErrorCode::BlobUnknown => "is not stored here (a mirror fetches an image's blobs when it is first pulled: pull it once, or run `edgeyard sync`)".to_string(),
                    _ => format!("cannot be read: {e}"),
                };
                return Err(Error::api(
                    ErrorCode::BlobUnknown,
                    format!("{name}: blob {blob} {why}; nothing was exported"),
                ));
            }
        }
        Ok(())
    }

    /// Read phase: every file of the tarball into an upload file, hashed on the way.
    fn stage(&self, input: impl Read, progress: Progress) -> Result<Staged> {
        let mut staged = Staged::default();
        let mut archive = tar::Archive::new(input);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => return Err(invalid(format!("not a tar archive: {e}"))),
        };
        for (n, entry) in entries.enumerate() {
            let mut entry = match entry {
                Ok(e) => e,
                Err(_) if n == 0 => return Err(invalid(format!("not a bundle: {NOT_A_TAR}"))),
                Err(e) => return Err(invalid(format!("the bundle is damaged: {e}"))),
            };
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = match entry.path() {
                Ok(p) => p.to_string_lossy().trim_start_matches("./").to_string(),
                Err(_) => continue,
            };
            match path.as_str() {
                "index.json" | "manifest.json" | "repositories" | "oci-layout" | TRUST_FILE
                | TRUST_SIGNATURE => {
                    let mut buf = Vec::new();
                    if entry.by_ref().take(8 << 20).read_to_end(&mut buf).is_err() {
                        return Err(invalid(format!("cannot read {path} from the bundle")));
                    }
                    match path.as_str() {
                        "index.json" => staged.index_json = Some(buf),
                        "manifest.json" => staged.docker_manifest = Some(buf),
                        TRUST_FILE => staged.trust = Some(buf),
                        TRUST_SIGNATURE => staged.trust_signature = Some(buf),
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            // A blob (OCI: blobs/<alg>/<hex>) or any other file (docker save: configs, layers).
            let mut file = self.registry().open_incoming()?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
                if n == 0 {
                    break;
                }
                file.append(&buf[..n])
                    .map_err(|e| Error::internal("staging a blob", e))?;
            }
            let actual = file
                .sha256()
                .ok_or_else(|| Error::internal("staging a blob", "no digest"))?;
            if let Some(named) = path
                .strip_prefix("blobs/")
                .map(|rest| rest.replacen('/', ":", 1))
                .and_then(|s| s.parse::<Digest>().ok())
            {
                if named != actual {
                    return Err(Error::api(
                        ErrorCode::DigestInvalid,
                        format!("the bundle is corrupt: {path} should have digest {named} but has {actual}; nothing was imported"),
                    )
                    .with_detail(serde_json::json!({ "digest": named.to_string(), "actual": actual.to_string() })));
                }
            }
            progress(&path, file.len());
            staged.by_path.insert(path, actual.clone());
            // A file seen twice: the older copy is dropped, which removes it.
            staged.blobs.insert(actual, file);
        }
        Ok(staged)
    }

    /// Store phase: commit the blobs, then manifests (children first), then tags.
    async fn store(
        &self,
        staged: &mut Staged,
        default_repo: Option<RepoName>,
    ) -> Result<BundleReport> {
        // (repository, tag or none, top manifest digest, media type)
        let mut images: Vec<(RepoName, Option<Tag>, Digest)> = Vec::new();
        let mut generated: HashMap<Digest, (Vec<u8>, &'static str)> = HashMap::new();
        if let Some(index) = &staged.index_json {
            let idx: serde_json::Value =
                serde_json::from_slice(index).map_err(|e| invalid(format!("index.json: {e}")))?;
            for m in idx["manifests"].as_array().into_iter().flatten() {
                let digest: Digest = m["digest"].as_str().unwrap_or("").parse()?;
                let name = m["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .or_else(|| m["annotations"][REF_NAME].as_str())
                    .unwrap_or("");
                // `NAME@DIGEST`: carried by digest (a signature, say), under no tag.
                if let Some((repo, named)) = name.split_once('@') {
                    let repo: RepoName = repo.parse()?;
                    if named != digest.to_string() {
                        return Err(invalid(format!(
                            "index.json names {name} for manifest {digest}"
                        )));
                    }
                    images.push((repo, None, digest));
                    continue;
                }
                let (repo, tag) = match split_image_name(name) {
                    Some((r, t)) => (r, Some(t)),
                    None => {
                        match (&default_repo, name.parse::<Tag>()) {
                            (Some(r), Ok(t)) => (r.clone(), Some(t)),
                            (Some(r), Err(_)) => (r.clone(), None),
                            (None, _) => {
                                return Err(invalid(format!("the bundle does not name the repository of {digest}: pass --repo")));
                            }
                        }
                    }
                };
                images.push((repo, tag, digest));
            }
        } else if let Some(manifest) = &staged.docker_manifest {
            // docker save (classic): build a schema2 manifest per image from its files.
            let list: serde_json::Value = serde_json::from_slice(manifest)
                .map_err(|e| invalid(format!("manifest.json: {e}")))?;
            for img in list.as_array().into_iter().flatten() {
                let by_path = |p: &str| {
                    staged
                        .by_path
                        .get(p)
                        .cloned()
                        .ok_or_else(|| invalid(format!("the bundle lacks {p}")))
                };
                let config = by_path(img["Config"].as_str().unwrap_or(""))?;
                let config_size = staged.blobs.get(&config).map(|p| p.len()).unwrap_or(0);
                let mut layers = Vec::new();
                for l in img["Layers"].as_array().into_iter().flatten() {
                    let d = by_path(l.as_str().unwrap_or(""))?;
                    let size = staged.blobs.get(&d).map(|p| p.len()).unwrap_or(0);
                    layers.push(serde_json::json!({ "mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": d.to_string(), "size": size }));
                }
                let bytes = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "digest": config.to_string(), "size": config_size },
                    "layers": layers,
                }))
                .map_err(|e| Error::internal("building a manifest", e))?;
                let digest = Digest::sha256_of(&bytes);
                generated.insert(digest.clone(), (bytes, DOCKER_MANIFEST));
                let tags: Vec<&str> = img["RepoTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .collect();
                if tags.is_empty() {
                    return Err(invalid(
                        "an image in the bundle has no name (docker save it by name:tag)",
                    ));
                }
                for t in tags {
                    let (repo, tag) = split_image_name(t)
                        .ok_or_else(|| invalid(format!("{t:?} is not a usable image name")))?;
                    images.push((repo, Some(tag), digest.clone()));
                }
            }
        } else {
            return Err(invalid(
                "neither index.json (OCI layout) nor manifest.json (docker save) is in the bundle",
            ));
        }
        if images.is_empty() {
            return Err(invalid("the bundle holds no image"));
        }

        // Every manifest of every image, children before parents, read and parsed up front:
        // a bundle whose manifests do not hold together is refused before anything is stored.
        let mut order: Vec<(RepoName, Digest, Vec<u8>, String)> = Vec::new();
        let mut blobs_for: BTreeMap<String, HashSet<Digest>> = BTreeMap::new();
        for (repo, _, top) in &images {
            let mut stack = vec![(top.clone(), false)];
            while let Some((d, expanded)) = stack.pop() {
                if order.iter().any(|(r, x, _, _)| r == repo && x == &d) {
                    continue;
                }
                let (bytes, media) = match generated.get(&d) {
                    Some((b, m)) => (b.clone(), m.to_string()),
                    None => {
                        let b = staged_bytes(staged, &d)?;
                        let m = Manifest::parse(None, &b)
                            .map_err(|e| invalid(format!("manifest {d}: {e}")))?;
                        (b, m.kind.media_type().to_string())
                    }
                };
                let m = Manifest::parse(Some(&media), &bytes)
                    .map_err(|e| invalid(format!("manifest {d}: {e}")))?;
                if !expanded && !m.manifests.is_empty() {
                    stack.push((d.clone(), true));
                    stack.extend(m.manifests.iter().map(|c| (c.digest.clone(), false)));
                    continue;
                }
                let set = blobs_for.entry(repo.to_string()).or_default();
                for b in m.required_blobs() {
                    if !staged.blobs.contains_key(b) {
                        return Err(invalid(format!(
                            "the bundle lacks blob {b} of manifest {d}"
                        )));
                    }
                    set.insert(b.clone());
                }
                order.push((repo.clone(), d, bytes, media));
            }
        }

        // The bundle's trust material, checked first: its images are judged under the keys
        // and policies it brings, and neither is stored unless both pass.
        let update = match &staged.trust {
            Some(doc) => Some(
                self.registry()
                    .check_trust_update(doc, staged.trust_signature.as_deref())?,
            ),
            None => None,
        };
        let plan = update.as_ref().and_then(|u| u.plan());
        self.check_trust(staged, &images, &generated, &order, plan)?;

        // Commit: blobs, then manifests, then tags.
        let mut report = BundleReport::default();
        let reg = self.registry();
        let mut repos_of: BTreeMap<Digest, Vec<RepoName>> = BTreeMap::new();
        for (repo, blobs) in &blobs_for {
            let Ok(repo) = repo.parse::<RepoName>() else {
                continue;
            };
            for d in blobs {
                repos_of.entry(d.clone()).or_default().push(repo.clone());
            }
        }
        for (d, repos) in repos_of {
            let Some(p) = staged.blobs.remove(&d) else {
                continue;
            };
            let size = p.len();
            reg.commit_incoming(p, &d, &repos).await?;
            report.blobs += 1;
            report.bytes += size;
        }
        for (repo, d, bytes, media) in &order {
            reg.put_manifest_anywhere(repo, &Reference::Digest(d.clone()), Some(media), bytes)
                .await?;
        }
        for (repo, tag, d) in images {
            let Some(tag) = tag else {
                report.images.push(format!("{repo}@{d}"));
                continue;
            };
            let (bytes, media) = match generated.get(&d) {
                Some((b, m)) => (b.clone(), m.to_string()),
                None => {
                    let (_, _, b, m) = order
                        .iter()
                        .find(|(r, x, _, _)| r == &repo && x == &d)
                        .ok_or_else(|| invalid("internal ordering"))?;
                    (b.clone(), m.clone())
                }
            };
            reg.put_manifest_anywhere(&repo, &Reference::Tag(tag.clone()), Some(&media), &bytes)
                .await?;
            report.images.push(format!("{repo}:{tag}"));
        }
        if let Some(update) = update {
            let (signer, a) = self.registry().apply_trust_update(update)?;
            report.trust = Some(match a.changed() {
                false => format!("trust material signed by {signer}: already applied"),
                true => format!(
                    "trust material signed by {signer} applied: keys added {:?}, replaced {:?}, removed {:?}; {} trust policies added, {} removed",
                    a.keys_added, a.keys_replaced, a.keys_removed, a.policies_added, a.policies_removed
                ),
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let (r, t) = split_image_name("127.0.0.1:5000/e2e/base:1").unwrap();
        assert_eq!((r.as_str(), t.as_str()), ("e2e/base", "1"));
        let (r, t) = split_image_name("factory/app:v2").unwrap();
        assert_eq!((r.as_str(), t.as_str()), ("factory/app", "v2"));
        let (r, _) = split_image_name("registry.local/x/y:z").unwrap();
        assert_eq!(r.as_str(), "x/y");
        assert!(split_image_name("notag").is_none());
        assert!(split_image_name("Bad/Name:1").is_none());
    }
}
