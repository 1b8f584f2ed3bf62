//! Manifest parsing: OCI image manifest and index, Docker schema2 manifest and manifest list.
//!
//! The registry stores the exact bytes it was given; this module only reads them to learn the
//! media type to serve, the blobs and child manifests that must exist before the manifest is
//! accepted, and the `subject` that makes it a referrer.

use std::fmt;

use serde::Deserialize;

use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The four manifest formats edgeyard stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerList,
}

impl MediaKind {
    pub fn from_media_type(s: &str) -> Option<MediaKind> {
        match s {
            OCI_MANIFEST => Some(MediaKind::OciManifest),
            OCI_INDEX => Some(MediaKind::OciIndex),
            DOCKER_MANIFEST => Some(MediaKind::DockerManifest),
            DOCKER_LIST => Some(MediaKind::DockerList),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            MediaKind::OciManifest => OCI_MANIFEST,
            MediaKind::OciIndex => OCI_INDEX,
            MediaKind::DockerManifest => DOCKER_MANIFEST,
            MediaKind::DockerList => DOCKER_LIST,
        }
    }

    pub fn is_index(self) -> bool {
        matches!(self, MediaKind::OciIndex | MediaKind::DockerList)
    }
}

/// Why a manifest was refused; the message is shown to the pushing client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    Schema1,
    Json(String),
    UnknownMediaType(String),
    MediaTypeMismatch { header: String, body: String },
    SchemaVersion(i64),
    Invalid(String),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Schema1 => f.write_str(
                "Docker schema1 manifests are unsupported; push with a current client (schema2 or OCI)",
            ),
            ManifestError::Json(e) => write!(f, "manifest is not valid JSON: {e}"),
            ManifestError::UnknownMediaType(m) => {
                write!(f, "unsupported manifest media type {m:?}")
            }
            ManifestError::MediaTypeMismatch { header, body } => write!(
                f,
                "Content-Type {header:?} does not match the manifest's mediaType {body:?}"
            ),
            ManifestError::SchemaVersion(v) => {
                write!(f, "schemaVersion {v} is unsupported (expected 2)")
            }
            ManifestError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ManifestError {}

/// A content descriptor, as found in `config`, `layers`, `manifests` and `subject`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

impl Descriptor {
    /// Foreign (Windows base) and non-distributable layers live elsewhere, named by `urls`;
    /// a registry must accept manifests that reference them without holding the bytes.
    pub fn is_foreign(&self) -> bool {
        self.media_type
            .starts_with("application/vnd.oci.image.layer.nondistributable.")
            || self.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    }
}

/// The fields of all four formats; which ones must be present depends on the kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
    // Schema1 only; seeing it lets us say "schema1" instead of a confusing field error.
    fs_layers: Option<serde_json::Value>,
}

/// A parsed manifest of one of the four supported kinds.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub kind: MediaKind,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Strips parameters (`; charset=utf-8`) and whitespace from a Content-Type value.
fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

impl Manifest {
    /// Parses `bytes` given the request's Content-Type. A generic or missing Content-Type
    /// falls back to the body's `mediaType`, then to the shape of the document (OCI allows
    /// manifests without `mediaType`).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let header = content_type.map(bare_media_type).filter(|s| !s.is_empty());
        if matches!(header, Some(DOCKER_SCHEMA1) | Some(DOCKER_SCHEMA1_SIGNED)) {
            return Err(ManifestError::Schema1);
        }
        // JSON is UTF-8 (RFC 8259). serde_json checks that only in the strings it keeps, so
        // invalid bytes in a field we ignore would otherwise be stored and served.
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ManifestError::Json(format!("not UTF-8: {e}")))?;
        let raw: Raw =
            serde_json::from_str(text).map_err(|e| ManifestError::Json(e.to_string()))?;
        // Only JSON that parses is checked for duplicate keys, so malformed JSON is always
        // reported as such, wherever a duplicate may sit before the fault.
        super::json::check_unique_keys(bytes).map_err(|e| match e {
            super::json::StrictJsonError::Syntax(e) => ManifestError::Json(e),
            dup => ManifestError::Invalid(format!("manifest JSON: {dup}")),
        })?;
        if raw.schema_version == Some(1) || raw.fs_layers.is_some() {
            return Err(ManifestError::Schema1);
        }
        match raw.schema_version {
            Some(2) => {}
            Some(v) => return Err(ManifestError::SchemaVersion(v)),
            None => return Err(ManifestError::Invalid("schemaVersion is missing".into())),
        }
        let header_kind = match header {
            None | Some("application/json") | Some("application/octet-stream") => None,
            Some(h) => Some(
                MediaKind::from_media_type(h)
                    .ok_or_else(|| ManifestError::UnknownMediaType(h.to_string()))?,
            ),
        };
        let body_kind = match raw.media_type.as_deref() {
            None => None,
            Some(m) => Some(
                MediaKind::from_media_type(m)
                    .ok_or_else(|| ManifestError::UnknownMediaType(m.to_string()))?,
            ),
        };
        let kind = match (header_kind, body_kind) {
            (Some(h), Some(b)) if h != b => {
                return Err(ManifestError::MediaTypeMismatch {
                    header: h.media_type().into(),
                    body: b.media_type().into(),
                })
            }
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) if raw.manifests.is_some() => MediaKind::OciIndex,
            (None, None) if raw.config.is_some() => MediaKind::OciManifest,
            (None, None) => {
                return Err(ManifestError::Invalid(
                    "cannot tell the manifest's media type: set Content-Type or mediaType".into(),
                ))
            }
        };
        if matches!(kind, MediaKind::DockerManifest | MediaKind::DockerList)
            && raw.media_type.is_none()
        {
            return Err(ManifestError::Invalid(
                "Docker manifests must carry their mediaType".into(),
            ));
        }
        let m = if kind.is_index() {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(ManifestError::Invalid(
                    "an index must not have config or layers".into(),
                ));
            }
            let manifests = raw
                .manifests
                .ok_or_else(|| ManifestError::Invalid("an index needs a manifests list".into()))?;
            Manifest {
                kind,
                config: None,
                layers: Vec::new(),
                manifests,
                subject: raw.subject,
                artifact_type: raw.artifact_type,
                annotations: raw.annotations,
            }
        } else {
            if raw.manifests.is_some() {
                return Err(ManifestError::Invalid(
                    "an image manifest must not have a manifests list".into(),
                ));
            }
            let config = raw
                .config
                .ok_or_else(|| ManifestError::Invalid("an image manifest needs a config".into()))?;
            let layers = raw.layers.unwrap_or_default();
            if kind == MediaKind::DockerManifest && layers.is_empty() {
                return Err(ManifestError::Invalid(
                    "a Docker image manifest needs at least one layer".into(),
                ));
            }
            Manifest {
                kind,
                config: Some(config),
                layers,
                manifests: Vec::new(),
                subject: raw.subject,
                artifact_type: raw.artifact_type,
                annotations: raw.annotations,
            }
        };
        for layer in &m.layers {
            if layer.is_foreign() && layer.urls.is_empty() {
                return Err(ManifestError::Invalid(format!(
                    "non-distributable layer {} needs at least one url",
                    layer.digest
                )));
            }
        }
        Ok(m)
    }

    /// Blobs that must be present in the repository: the config and every distributable layer
    /// (`parse` guarantees every foreign layer names its urls).
    pub fn required_blobs(&self) -> impl Iterator<Item = &Digest> {
        self.required_descriptors().map(|d| &d.digest)
    }

    /// The descriptors of [`Manifest::required_blobs`], with the sizes they claim.
    pub fn required_descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| !l.is_foreign()))
    }

    /// The artifact type a referrers response reports for this manifest: its own
    /// `artifactType`, else (for images) its config's media type.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":10}}]}}"#,
            d('a'),
            d('b')
        )
    }

    #[test]
    fn oci_image_from_header() {
        let m = Manifest::parse(Some(OCI_MANIFEST), image(None).as_bytes()).unwrap();
        assert_eq!(m.kind, MediaKind::OciManifest);
        let req: Vec<String> = m.required_blobs().map(|d| d.to_string()).collect();
        assert_eq!(req, vec![d('a'), d('b')]);
    }

    #[test]
    fn media_type_from_body_when_header_generic() {
        let body = image(Some(DOCKER_MANIFEST));
        let m = Manifest::parse(Some("application/json; charset=utf-8"), body.as_bytes()).unwrap();
        assert_eq!(m.kind, MediaKind::DockerManifest);
    }

    #[test]
    fn header_body_mismatch() {
        let body = image(Some(DOCKER_MANIFEST));
        assert!(matches!(
            Manifest::parse(Some(OCI_MANIFEST), body.as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
    }

    #[test]
    fn schema1_refused() {
        let body = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(
            Manifest::parse(None, body.as_bytes()).unwrap_err(),
            ManifestError::Schema1
        );
        assert_eq!(
            Manifest::parse(Some(DOCKER_SCHEMA1_SIGNED), b"{}").unwrap_err(),
            ManifestError::Schema1
        );
    }

    #[test]
    fn index_children() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
            d('c')
        );
        let m = Manifest::parse(None, body.as_bytes()).unwrap();
        assert!(m.kind.is_index());
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.required_blobs().count(), 0);
    }

    #[test]
    fn foreign_layers_with_urls_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":10,"urls":["https://example.invalid/x"]}}]}}"#,
            d('a'),
            d('b')
        );
        let m = Manifest::parse(None, body.as_bytes()).unwrap();
        let req: Vec<String> = m.required_blobs().map(|d| d.to_string()).collect();
        assert_eq!(req, vec![d('a')]);
    }

    #[test]
    fn rejects_garbage() {
        for (ct, body) in [
            (None, "not json".to_string()),
            (None, r#"{"schemaVersion":3}"#.to_string()),
            (None, r#"{"schemaVersion":2}"#.to_string()),
            (Some("text/plain"), image(None)),
            (None, image(None).replace("sha256:aaaa", "sha256:zzzz")),
            (None, image(None).replace(r#""size":2"#, r#""size":-2"#)),
            (
                None,
                image(None).replace(
                    r#"{"schemaVersion":2,"#,
                    r#"{"schemaVersion":2,"schemaVersion":2,"#,
                ),
            ),
            (Some(OCI_INDEX), image(None)),
        ] {
            assert!(
                Manifest::parse(ct, body.as_bytes()).is_err(),
                "{ct:?} {body}"
            );
        }
    }

    #[test]
    fn subject_and_artifact_type() {
        let body = image(None).replacen(
            r#""schemaVersion":2,"#,
            &format!(
                r#""schemaVersion":2,"artifactType":"application/x.sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7}},"#,
                d('e')
            ),
            1,
        );
        let m = Manifest::parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(m.subject.as_ref().unwrap().digest.to_string(), d('e'));
        assert_eq!(
            m.effective_artifact_type().as_deref(),
            Some("application/x.sig")
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/manifest.rs): invalid UTF-8 inside a field the
    /// parser ignores was accepted (serde_json checks only the strings it keeps), so a
    /// manifest that is not JSON could be stored and served.
    #[test]
    fn manifest_with_invalid_utf8_is_refused() {
        let mut body = image(None).into_bytes();
        body.pop(); // the closing brace
        body.extend_from_slice(b",\"note\":\"caf\xe9\"}");
        assert!(std::str::from_utf8(&body).is_err());
        assert!(matches!(
            Manifest::parse(Some(OCI_MANIFEST), &body),
            Err(ManifestError::Json(_))
        ));
        // The same manifest in UTF-8 is fine.
        let fixed = String::from_utf8_lossy(&body).into_owned();
        assert!(Manifest::parse(Some(OCI_MANIFEST), fixed.as_bytes()).is_ok());
    }
}
