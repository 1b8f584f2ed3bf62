//! An image with everything a copy of it needs: what a bundle export, `push-to` and
//! replication send, and what the admin API checks before it starts one.

use std::collections::HashSet;

use super::Registry;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, Reference, RepoName};

/// An image with everything a copy of it needs: manifests children first (the top one last)
/// and the blobs they reference, with sizes.
pub struct ImageClosure {
    pub manifests: Vec<super::ManifestContent>,
    pub blobs: Vec<(Digest, u64)>,
}

impl Registry {
    /// The closure of `repo`'s image `reference`; unknown when any part is missing.
    pub fn image_closure(&self, repo: &RepoName, reference: &Reference) -> Result<ImageClosure> {
        let top = self.get_manifest(repo, reference)?;
        let mut manifests = Vec::new();
        let mut blobs = Vec::new();
        let mut seen: HashSet<Digest> = HashSet::new();
        // Depth-first, emitting a manifest after its children.
        let mut stack = vec![(top.digest.clone(), false)];
        while let Some((d, children_done)) = stack.pop() {
            let rec = self
                .meta()
                .manifest(repo, &d)?
                .ok_or_else(|| Error::code(ErrorCode::ManifestUnknown))?;
            if !children_done {
                if !seen.insert(d.clone()) {
                    continue;
                }
                stack.push((d, true));
                stack.extend(rec.children.iter().map(|c| (c.clone(), false)));
                continue;
            }
            for b in &rec.blobs {
                if seen.insert(b.clone()) {
                    let size = self
                        .meta()
                        .link(repo.as_str(), b)?
                        .map(|l| l.size)
                        .unwrap_or(0);
                    blobs.push((b.clone(), size));
                }
            }
            manifests.push(self.get_manifest(repo, &Reference::Digest(d))?);
        }
        Ok(ImageClosure { manifests, blobs })
    }
}
