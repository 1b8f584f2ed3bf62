//! Reading and unlinking blobs. A blob is visible in a repository only through that
//! repository's link to it, even though its bytes are shared by all. A blob recorded
//! corrupt (by `fsck`, or by a pull that read it back wrong) is refused in every repository.

use super::{blocking, Registry};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, RepoName};
use crate::storage::FileBody;
use std::sync::atomic::Ordering;

/// A `Range` request header on a blob GET (single ranges only; RFC 9110 lets a server
/// ignore anything else and send the whole blob).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobRange {
    /// `bytes=a-b`
    Between(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes
    Suffix(u64),
}

impl BlobRange {
    /// `None` for a header we do not understand; the caller then serves the whole blob.
    pub fn parse(s: &str) -> Option<BlobRange> {
        let spec = s.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let num = |x: &str| -> Option<u64> {
            if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
                None
            } else {
                x.parse().ok()
            }
        };
        match (a.trim(), b.trim()) {
            ("", n) => num(n).map(BlobRange::Suffix),
            (a, "") => num(a).map(BlobRange::From),
            (a, b) => {
                let (a, b) = (num(a)?, num(b)?);
                (a <= b).then_some(BlobRange::Between(a, b))
            }
        }
    }

    /// The inclusive byte range this selects in a blob of `size` bytes, or `None` when it is
    /// unsatisfiable (416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            BlobRange::Between(a, b) if a < size => Some((a, b.min(size - 1))),
            BlobRange::From(a) if a < size => Some((a, size - 1)),
            BlobRange::Suffix(n) if n > 0 && size > 0 => Some((size - n.min(size), size - 1)),
            _ => None,
        }
    }
}

/// An open blob ready to stream: its total size, the inclusive range served (if a Range
/// was asked), and the body.
pub struct BlobRead {
    pub size: u64,
    pub range: Option<(u64, u64)>,
    pub body: FileBody,
}

impl Registry {
    /// BLOB_UNKNOWN naming the digest.
    pub fn blob_unknown(digest: &Digest) -> Error {
        Error::code(ErrorCode::BlobUnknown)
            .with_detail(serde_json::json!({ "digest": digest.to_string() }))
    }

    /// Size of a blob linked into `repo` (`HEAD`).
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        if !self.meta().is_linked(repo, digest)? {
            return Err(Self::blob_unknown(digest));
        }
        self.check_not_corrupt(digest, true)?;
        let storage = self.storage().clone();
        let d2 = digest.clone();
        match blocking("reading blob size", move || storage.blob_size(&d2)).await? {
            Some(size) => Ok(size),
            None => {
                tracing::error!(%repo, %digest, "blob is linked but its file is missing");
                Err(Self::blob_unknown(digest))
            }
        }
    }

    /// Opens a blob linked into `repo` for streaming, whole or a range of it.
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<BlobRange>,
    ) -> Result<BlobRead> {
        if !self.meta().is_linked(repo, digest)? {
            return Err(Self::blob_unknown(digest));
        }
        self.check_not_corrupt(digest, false)?;
        let storage = self.storage().clone();
        let d2 = digest.clone();
        let opened = blocking("opening a blob", move || {
            Ok(match storage.open_blob(&d2)? {
                Some(f) => {
                    let size = f.metadata()?.len();
                    Some((f, size))
                }
                None => None,
            })
        })
        .await?;
        let Some((file, size)) = opened else {
            tracing::error!(%repo, %digest, "blob is linked but its file is missing");
            return Err(Self::blob_unknown(digest));
        };
        match range {
            None => {
                let body = FileBody::spawn(file, 0, size);
                let body = if self.inner.policy.verify_pulls.load(Ordering::Relaxed) {
                    body.verified(self.verify_served(digest)?)
                } else {
                    body
                };
                Ok(BlobRead {
                    size,
                    range: None,
                    body,
                })
            }
            Some(r) => match r.resolve(size) {
                Some((a, b)) => Ok(BlobRead {
                    size,
                    range: Some((a, b)),
                    body: FileBody::spawn(file, a, b - a + 1),
                }),
                None => Err(Error::api(
                    ErrorCode::RangeInvalid,
                    format!("range is outside the blob's {size} bytes"),
                )
                .with_header(http::header::CONTENT_RANGE, format!("bytes */{size}"))),
            },
        }
    }

    /// Removes a blob from a repository (`DELETE`). The bytes stay until garbage collection,
    /// since other repositories may share them.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        if let Some(tag) = self.immutable_holder(repo, digest)? {
            return Err(self.immutable_error(
                repo,
                &tag,
                &format!("changed by deleting blob {digest}, which its image holds"),
            ));
        }
        if !self.meta().unlink_blob(repo, digest)? {
            return Err(Self::blob_unknown(digest));
        }
        self.meta().flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            BlobRange::parse("bytes=0-9"),
            Some(BlobRange::Between(0, 9))
        );
        assert_eq!(BlobRange::parse("bytes=5-"), Some(BlobRange::From(5)));
        assert_eq!(BlobRange::parse("bytes=-3"), Some(BlobRange::Suffix(3)));
        for ignored in [
            "",
            "bytes=",
            "bytes=9-0",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(BlobRange::parse(ignored), None, "{ignored}");
        }
        assert_eq!(BlobRange::Between(0, 99).resolve(10), Some((0, 9)));
        assert_eq!(BlobRange::Between(10, 20).resolve(10), None);
        assert_eq!(BlobRange::From(9).resolve(10), Some((9, 9)));
        assert_eq!(BlobRange::Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(BlobRange::Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(BlobRange::Suffix(0).resolve(10), None);
        assert_eq!(BlobRange::From(0).resolve(0), None);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// A blob range with small numbers often, so that some fall inside small blobs.
        fn number() -> impl Strategy<Value = u64> {
            prop_oneof![0u64..64, any::<u64>()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn ranges_parse_and_resolve_inside_the_blob(
                a in number(), b in number(), size in number()
            ) {
                let (first, last) = (a.min(b), a.max(b));
                let cases = [
                    (format!("bytes={first}-{last}"), BlobRange::Between(first, last)),
                    (format!("bytes={a}-"), BlobRange::From(a)),
                    (format!("bytes=-{b}"), BlobRange::Suffix(b)),
                ];
                for (s, want) in cases {
                    prop_assert_eq!(BlobRange::parse(&s), Some(want), "{}", s);
                    match want.resolve(size) {
                        Some((x, y)) => {
                            prop_assert!(x <= y && y < size, "{:?} over {}: {}-{}", want, size, x, y);
                            let len = y - x + 1;
                            match want {
                                BlobRange::Between(p, q) => {
                                    prop_assert_eq!((x, y), (p, q.min(size - 1)))
                                }
                                BlobRange::From(p) => prop_assert_eq!((x, y), (p, size - 1)),
                                BlobRange::Suffix(n) => prop_assert_eq!(len, n.min(size)),
                            }
                        }
                        None => {
                            let unsatisfiable = match want {
                                BlobRange::Between(p, _) | BlobRange::From(p) => p >= size,
                                BlobRange::Suffix(n) => n == 0 || size == 0,
                            };
                            prop_assert!(unsatisfiable, "{:?} over {}", want, size);
                        }
                    }
                }
                if first < last {
                    let backwards = format!("bytes={last}-{first}");
                    prop_assert_eq!(BlobRange::parse(&backwards), None);
                }
            }
        }
    }
}
