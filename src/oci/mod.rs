//! Pure OCI vocabulary, no I/O: digests and their incremental hasher, the repository-name,
//! tag and reference grammar, and manifest parsing down to the descriptors a manifest
//! references. Everything from a request is parsed into these types once, at the edge.

pub mod digest;
pub mod glob;
pub mod json;
pub mod manifest;
pub mod name;
pub mod upload;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, Manifest, ManifestError, MediaKind};
pub use name::{image_name, parse_image, NameError, Reference, RepoName, Tag};
pub use upload::UploadId;
