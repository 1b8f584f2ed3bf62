//! What a scrub (`edgeyard fsck`) reports: its options, each problem (severity, kind,
//! object, message) and the summary, as the CLI prints it and the admin API answers it.

/// Problems listed in a report at most (all are counted); keeps the admin API's answer small.
const LIST_MAX: usize = 1000;

#[derive(Clone, Copy, Debug, Default)]
pub struct FsckOptions {
    /// Move the files of corrupt blobs to `<data-dir>/quarantine/`.
    pub quarantine: bool,
    /// Verify every page of the metadata store against its checksum first. It needs the
    /// store to itself, so only the offline `edgeyard fsck` asks for it.
    pub metadata_pages: bool,
}

/// Errors make `edgeyard fsck` fail; warnings are reported but are harmless leftovers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A blob's content does not hash to its name (found now, or earlier and not repaired).
    BlobCorrupt,
    /// A blob file could not be read.
    BlobUnreadable,
    /// A sound blob whose size is not the one a repository's link records (quota figures).
    BlobSizeMismatch,
    /// A file or folder in the blob tree that does not fit the layout.
    StrayFile,
    /// A manifest record without stored content.
    ManifestMissing,
    /// Stored manifest content that does not hash to its digest.
    ManifestCorrupt,
    /// Stored manifest content that does not parse.
    ManifestInvalid,
    /// A manifest references a blob or child manifest the repository does not hold.
    ReferenceMissing,
    /// A manifest references a corrupt blob.
    ReferenceCorrupt,
    /// A repository links a blob whose file is missing.
    LinkDangling,
    /// A tag points at a manifest the repository does not hold.
    TagDangling,
    /// An upload session whose file is gone (garbage collection expires it).
    UploadWithoutFile,
    /// An upload file without a session (garbage collection removes it).
    UploadFileWithoutRecord,
    /// The metadata store failed its page checksums and was repaired (to its last sound
    /// durable commit).
    MetadataRepaired,
    /// The metadata store failed its page checksums and could not be repaired.
    MetadataCorrupt,
}

impl ProblemKind {
    pub fn severity(self) -> Severity {
        use ProblemKind::*;
        match self {
            BlobSizeMismatch
            | StrayFile
            | UploadWithoutFile
            | UploadFileWithoutRecord
            | MetadataRepaired => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The name in reports (as serialised).
    pub fn as_str(self) -> &'static str {
        use ProblemKind::*;
        match self {
            BlobCorrupt => "blob_corrupt",
            BlobUnreadable => "blob_unreadable",
            BlobSizeMismatch => "blob_size_mismatch",
            StrayFile => "stray_file",
            ManifestMissing => "manifest_missing",
            ManifestCorrupt => "manifest_corrupt",
            ManifestInvalid => "manifest_invalid",
            ReferenceMissing => "reference_missing",
            ReferenceCorrupt => "reference_corrupt",
            LinkDangling => "link_dangling",
            TagDangling => "tag_dangling",
            UploadWithoutFile => "upload_without_file",
            UploadFileWithoutRecord => "upload_file_without_record",
            MetadataRepaired => "metadata_repaired",
            MetadataCorrupt => "metadata_corrupt",
        }
    }
}

/// One finding: what kind, about which object (a digest, `repo@digest`, `repo:tag`, an
/// upload id or a path), and a sentence saying what it means.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub severity: Severity,
    pub object: String,
    pub message: String,
}

/// What a scrub checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FsckReport {
    pub started_at: u64,
    pub duration_ms: u64,
    pub quarantine: bool,
    pub blobs_checked: u64,
    pub bytes_hashed: u64,
    pub manifests_checked: u64,
    pub links_checked: u64,
    pub tags_checked: u64,
    pub uploads_checked: u64,
    pub errors: u64,
    pub warnings: u64,
    /// Errors first; at most 1,000 listed (`errors` and `warnings` count them all).
    pub problems: Vec<Problem>,
    /// Blobs recorded corrupt earlier that are sound again (their file was restored) or that
    /// nothing uses any more: their marks were cleared.
    pub cleared: Vec<String>,
}

impl FsckReport {
    pub(super) fn add(
        &mut self,
        kind: ProblemKind,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        match kind.severity() {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.problems.len() >= LIST_MAX {
            // A full list makes room for an error by dropping a warning.
            let warning = self
                .problems
                .iter()
                .rposition(|p| p.severity == Severity::Warning);
            match (kind.severity(), warning) {
                (Severity::Error, Some(i)) => {
                    self.problems.remove(i);
                }
                _ => return,
            }
        }
        self.problems.push(Problem {
            kind,
            severity: kind.severity(),
            object: object.into(),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_as_their_names() {
        use ProblemKind::*;
        for k in [
            BlobCorrupt,
            BlobUnreadable,
            BlobSizeMismatch,
            StrayFile,
            ManifestMissing,
            ManifestCorrupt,
            ManifestInvalid,
            ReferenceMissing,
            ReferenceCorrupt,
            LinkDangling,
            TagDangling,
            UploadWithoutFile,
            UploadFileWithoutRecord,
        ] {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert_eq!(BlobCorrupt.severity(), Severity::Error);
        assert_eq!(StrayFile.severity(), Severity::Warning);
    }

    #[test]
    fn errors_are_listed_first_and_the_list_is_capped() {
        let mut r = FsckReport::default();
        for i in 0..LIST_MAX + 5 {
            r.add(ProblemKind::StrayFile, i.to_string(), "x");
        }
        assert_eq!(
            (r.warnings, r.problems.len()),
            (LIST_MAX as u64 + 5, LIST_MAX)
        );
        r.add(ProblemKind::BlobCorrupt, "d", "x");
        assert_eq!((r.errors, r.problems.len()), (1, LIST_MAX));
        r.problems.sort_by_key(|p| p.severity);
        assert_eq!(r.problems[0].kind, ProblemKind::BlobCorrupt);
        assert_eq!(r.problems[1].object, "0");
    }
}
