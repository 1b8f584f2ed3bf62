//! Manifest parsing (`Manifest::parse`) under every Content-Type a client may send, and the
//! registry's whole PUT validation (`Registry::put_manifest`) on a real registry.
//!
//! The first input byte picks the Content-Type, the rest is the body. A parsed manifest must
//! agree with its JSON (kind from the header, the body's `mediaType` or its shape; the fields
//! its kind requires and forbids; the blobs it requires), and the registry must store it
//! exactly when everything it references is present, serve back the same bytes, and refuse
//! everything else with a client error, never a 500.

#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use edgeyard::error::ErrorCode;
use edgeyard::oci::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use edgeyard::oci::{Descriptor, Digest, Manifest, ManifestError, MediaKind, Reference, RepoName};
use edgeyard::registry::Registry;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Content-Types the first byte chooses from (`None`: no header).
const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_LIST),
    Some("application/json"),
    Some("application/octet-stream"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some(" application/vnd.docker.distribution.manifest.list.v2+json ;q=1"),
    Some(SCHEMA1),
    Some(SCHEMA1_SIGNED),
    Some("text/plain"),
    Some(""),
];

/// Blobs linked into the fuzzed repository, and one image manifest stored there (by digest),
/// so that manifests naming them get past the reference checks. The seed corpus uses them.
const BLOBS: &[&[u8]] = &[b"{}", b"layer-1", b"layer-2"];
const CHILD: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

struct Fixture {
    rt: tokio::runtime::Runtime,
    registry: Registry,
    repo: RepoName,
    blobs: Vec<Digest>,
    child: Digest,
    /// The size of every stored blob and of the child manifest: a descriptor must state it.
    sizes: std::collections::HashMap<Digest, u64>,
}

/// A registry in a fresh directory below `$TMPDIR` (scripts/fuzz points it at fuzz/tmp and
/// removes it after the run).
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("edgeyard-fuzz-manifest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::open(&dir).unwrap();
    let repo: RepoName = "fuzz/repo".parse().unwrap();
    let (blobs, child) = rt.block_on(async {
        let mut blobs = Vec::new();
        for bytes in BLOBS {
            let digest = Digest::sha256_of(bytes);
            let up = registry.start_upload(&repo, "fuzz").await.unwrap();
            let body = http_body_util::Full::new(Bytes::from_static(bytes));
            registry
                .finish_upload(&repo, &up.id, &digest, None, body)
                .await
                .unwrap();
            blobs.push(digest);
        }
        let child = Digest::sha256_of(CHILD.as_bytes());
        let reference = Reference::Digest(child.clone());
        registry
            .put_manifest(&repo, &reference, Some(OCI_MANIFEST), CHILD.as_bytes())
            .await
            .unwrap();
        (blobs, child)
    });
    let mut sizes: std::collections::HashMap<Digest, u64> = blobs
        .iter()
        .cloned()
        .zip(BLOBS.iter().map(|b| b.len() as u64))
        .collect();
    sizes.insert(child.clone(), CHILD.len() as u64);
    Fixture {
        rt,
        registry,
        repo,
        blobs,
        child,
        sizes,
    }
});

fn bare(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

fn digests(v: &Value, field: &str) -> Vec<String> {
    match &v[field] {
        Value::Array(items) => items
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect(),
        Value::Object(d) => vec![d["digest"].as_str().unwrap().to_string()],
        _ => Vec::new(),
    }
}

/// Whether a JSON value holds a non-integer number somewhere.
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Descriptors survive a trip through their JSON form. (serde_json parses floats fast rather
/// than exactly, so one may come back an ulp off: those are compared without the free-form
/// `platform` and `annotations` maps that can hold them.)
fn round_trips(d: &Descriptor) {
    let json = serde_json::to_vec(d).unwrap();
    let mut back: Descriptor = serde_json::from_slice(&json).unwrap();
    let mut d = d.clone();
    let floats = d.platform.as_ref().is_some_and(has_float)
        || d.annotations
            .as_ref()
            .is_some_and(|a| a.values().any(has_float));
    if floats {
        (d.platform, d.annotations, back.platform, back.annotations) = (None, None, None, None);
    }
    assert_eq!(back, d);
}

/// JSON text per RFC 8259: UTF-8, and one value of the grammar (of any size).
fn is_json(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn check_parsed(ct: Option<&str>, body: &[u8], m: &Manifest) {
    assert!(is_json(body), "a parsed manifest is JSON");
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        // serde_json's Value is stricter than the grammar: it holds numbers only within f64's
        // range and refuses unpaired surrogate escapes, both valid JSON text (RFC 8259 6, 8.2).
        // The parser decodes the fields it keeps the same strict way, so such a value can only
        // sit in a field it ignores: nothing to compare.
        return;
    };
    assert_eq!(v["schemaVersion"], 2);
    let header = ct.map(bare).and_then(MediaKind::from_media_type);
    if let Some(h) = header {
        assert_eq!(m.kind, h);
    }
    match v["mediaType"].as_str() {
        Some(mt) => assert_eq!(mt, m.kind.media_type()),
        None if header.is_none() => {
            let want = if v["manifests"].is_null() {
                MediaKind::OciManifest
            } else {
                MediaKind::OciIndex
            };
            assert_eq!(m.kind, want);
        }
        None => {}
    }
    if matches!(m.kind, MediaKind::DockerManifest | MediaKind::DockerList) {
        assert!(
            v["mediaType"].is_string(),
            "Docker manifests carry their mediaType"
        );
    }
    if m.kind.is_index() {
        assert!(m.config.is_none() && m.layers.is_empty());
        assert!(v["config"].is_null() && v["layers"].is_null());
        assert_eq!(m.manifests.len(), v["manifests"].as_array().unwrap().len());
    } else {
        assert!(m.manifests.is_empty() && v["manifests"].is_null());
        assert!(m.config.is_some());
        if m.kind == MediaKind::DockerManifest {
            assert!(!m.layers.is_empty());
        }
    }
    // The digests the manifest names are the ones in the JSON, in order.
    let names = |ds: &[Descriptor]| ds.iter().map(|d| d.digest.to_string()).collect::<Vec<_>>();
    if let Some(c) = &m.config {
        assert_eq!(vec![c.digest.to_string()], digests(&v, "config"));
    }
    assert_eq!(names(&m.layers), digests(&v, "layers"));
    assert_eq!(names(&m.manifests), digests(&v, "manifests"));
    assert_eq!(names(m.subject.as_slice()), digests(&v, "subject"));
    // Required: the config and every layer that is not foreign; foreign ones name urls.
    let foreign = |d: &Descriptor| {
        d.media_type
            .starts_with("application/vnd.oci.image.layer.nondistributable.")
            || d.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    };
    let want: Vec<&Digest> = m
        .config
        .iter()
        .chain(m.layers.iter().filter(|l| !foreign(l)))
        .map(|d| &d.digest)
        .collect();
    assert_eq!(m.required_blobs().collect::<Vec<_>>(), want);
    assert!(m
        .layers
        .iter()
        .filter(|l| foreign(l))
        .all(|l| !l.urls.is_empty()));
    for d in m
        .config
        .iter()
        .chain(&m.layers)
        .chain(&m.manifests)
        .chain(&m.subject)
    {
        round_trips(d);
    }
    // The same body is accepted as the same kind when the header names that kind exactly.
    let again = Manifest::parse(Some(m.kind.media_type()), body).unwrap();
    assert_eq!(again.kind, m.kind);
}

fn check_put(ct: Option<&str>, body: &[u8], parsed: &Result<Manifest, ManifestError>) {
    let f = &*FIXTURE;
    let digest = Digest::sha256_of(body);
    let reference = Reference::Digest(digest.clone());
    let result =
        f.rt.block_on(f.registry.put_manifest(&f.repo, &reference, ct, body));
    let (m, result) = match (parsed, result) {
        (Err(_), Err(e)) => {
            assert_eq!(e.error_code(), ErrorCode::ManifestInvalid, "{e}");
            return;
        }
        (Err(p), Ok(_)) => panic!("the registry stored a manifest that does not parse: {p}"),
        (Ok(m), r) => (m, r),
    };
    let linked = |d: &Digest| f.blobs.contains(d);
    let present = m.required_blobs().all(linked) && m.manifests.iter().all(|c| c.digest == f.child);
    // A descriptor of stored content that states another size than the content has.
    let misstated = m
        .config
        .iter()
        .chain(&m.layers)
        .chain(&m.manifests)
        .any(|d| f.sizes.get(&d.digest).is_some_and(|n| *n != d.size));
    match result {
        Ok(out) => {
            assert!(present, "stored a manifest that references missing content");
            assert!(
                !misstated,
                "stored a manifest whose descriptors misstate sizes"
            );
            assert_eq!(out.digest, digest);
            assert_eq!(out.subject, m.subject.as_ref().map(|s| s.digest.clone()));
            let got = f.registry.get_manifest(&f.repo, &reference).unwrap();
            assert_eq!(&got.bytes[..], body);
            assert_eq!(got.media_type, m.kind.media_type());
            assert_eq!(got.digest, digest);
            // Back to the fixture's state for the next input.
            if digest != f.child {
                f.rt.block_on(f.registry.delete_manifest(&f.repo, &reference))
                    .unwrap();
            }
        }
        Err(e) => {
            assert!(e.status().is_client_error(), "{e} ({})", e.status());
            match e.error_code() {
                ErrorCode::ManifestBlobUnknown => assert!(!present, "{e}"),
                // A manifest naming itself as its subject, or misstating a size.
                ErrorCode::ManifestInvalid => assert!(
                    misstated || m.subject.as_ref().map(|s| &s.digest) == Some(&digest),
                    "{e}"
                ),
                other => panic!("unexpected {other:?}: {e}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let ct = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let parsed = Manifest::parse(ct, body);
    match &parsed {
        Ok(m) => check_parsed(ct, body, m),
        Err(e) => {
            if matches!(ct, Some(SCHEMA1 | SCHEMA1_SIGNED)) {
                assert_eq!(e, &ManifestError::Schema1);
            }
            if !is_json(body) {
                assert!(
                    matches!(e, ManifestError::Json(_) | ManifestError::Schema1),
                    "{e}"
                );
            }
        }
    }
    check_put(ct, body, &parsed);
});
