//! Repository names, tags and manifest references, validated against the distribution
//! spec's grammar. A `RepoName` can never contain `..`, an empty segment or a character
//! outside `[a-z0-9._/-]`, so nothing built from one can escape the data directory.

use std::fmt;
use std::str::FromStr;

use super::digest::{Digest, DigestError};

/// Shortest and longest accepted repository name, in bytes (the spec's 255 limit; one
/// character names are refused so that a bare `/v2/x` cannot be mistaken for a route).
pub const NAME_MIN: usize = 2;
pub const NAME_MAX: usize = 255;
/// The spec's tag grammar allows 128 characters in all.
pub const TAG_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Name(String),
    Tag(String),
    Digest(DigestError),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Name(why) => write!(f, "invalid repository name: {why}"),
            NameError::Tag(why) => write!(f, "invalid tag: {why}"),
            NameError::Digest(e) => write!(f, "invalid digest: {e}"),
        }
    }
}

impl std::error::Error for NameError {}

/// A repository name such as `library/alpine` or `factory-1/vision.model`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: decide which separator it is, then require an alnum after it.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let valid = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !valid {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < NAME_MIN || s.len() > NAME_MAX {
            return Err(NameError::Name(format!(
                "must be {NAME_MIN} to {NAME_MAX} characters long"
            )));
        }
        if !s.split('/').all(component_ok) {
            return Err(NameError::Name(
                "must be lowercase path components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'".into(),
            ));
        }
        Ok(RepoName(s.to_string()))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > TAG_MAX {
            return Err(NameError::Tag(format!(
                "must be 1 to {TAG_MAX} characters long"
            )));
        }
        let first_ok = b[0].is_ascii_alphanumeric() || b[0] == b'_';
        let rest_ok = b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'));
        if !first_ok || !rest_ok {
            return Err(NameError::Tag(
                "must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}".into(),
            ));
        }
        Ok(Tag(s.to_string()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What a manifest URL names: a tag or a digest. A string with a `:` is a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(Reference::Digest).map_err(NameError::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

/// An image as people write it in this registry: `NAME:TAG`, `NAME@DIGEST`, or `NAME`
/// (meaning `NAME:latest`).
/// What follows `@` must be a digest: `NAME@TAG` is refused, not read as `NAME:TAG`.
pub fn parse_image(s: &str) -> Result<(RepoName, Reference), NameError> {
    if let Some((name, d)) = s.split_once('@') {
        let name = name.parse()?;
        return Ok((
            name,
            Reference::Digest(d.parse().map_err(NameError::Digest)?),
        ));
    }
    let (name, tag) = s
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .unwrap_or((s, "latest"));
    Ok((name.parse()?, tag.parse()?))
}

/// `NAME:TAG` or `NAME@DIGEST`, the form [`parse_image`] reads, as messages and bundle
/// indexes name an image.
pub fn image_name(repo: &RepoName, reference: &Reference) -> String {
    match reference {
        Reference::Tag(t) => format!("{repo}:{t}"),
        Reference::Digest(d) => format!("{repo}@{d}"),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for ok in [
            "ab",
            "library/alpine",
            "a/b",
            "factory-1/vision.model",
            "a__b",
            "a---b/c_d/e.f",
            "0/1/2",
            &"a".repeat(255),
        ] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "",
            "a",
            "A/b",
            "Test",
            "a//b",
            "/ab",
            "ab/",
            "../etc",
            "a/../b",
            "a/./b",
            "a...b",
            "a___b",
            "a_-b",
            "-ab",
            "ab-",
            "a b",
            "a%2fb",
            "a\\b",
            &"a".repeat(256),
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".bad",
            "-x",
            "a+b",
            "a/b",
            "a:b",
            &"t".repeat(129),
            "ümlaut",
        ] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!("latest".parse(), Ok(Reference::Tag(_))));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(d.parse(), Ok(Reference::Digest(_))));
        assert!(matches!(
            "sha256:zz".parse::<Reference>(),
            Err(NameError::Digest(_))
        ));
    }
}

/// Generators of valid names, tags and references for property tests here and in the
/// modules that parse them out of requests.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::{NAME_MAX, NAME_MIN};

    /// One path component of the spec's grammar, sometimes one of the words the router
    /// splits on, which a name may contain.
    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}",
            1 => prop::sample::select(vec!["manifests", "blobs", "uploads", "tags", "list", "referrers"])
                .prop_map(str::to_string),
        ]
    }

    /// Strings the spec's `<name>` grammar accepts, within the length limits.
    pub fn repo_name() -> impl Strategy<Value = String> {
        prop::collection::vec(component(), 1..5)
            .prop_map(|c| c.join("/"))
            .prop_filter("length limits", |s| {
                (NAME_MIN..=NAME_MAX).contains(&s.len())
            })
    }

    pub fn tag() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::strategies::{repo_name, tag};
    use super::*;
    use crate::oci::digest::strategies::digest;

    /// A character no name, tag or digest may hold.
    fn forbidden() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            ' ', '%', '@', '\\', '\n', '\0', 'é', '+', '#', ':', '/',
        ])
    }

    /// Uppercase letters are fine in tags but never in names.
    fn forbidden_in_name() -> impl Strategy<Value = char> {
        prop_oneof![
            forbidden().prop_filter("not a separator", |&c| c != '/'),
            Just('A'),
            Just('Z')
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn valid_names_parse_and_print_back(s in repo_name()) {
            let n: RepoName = s.parse().unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert_eq!(n.to_string().parse::<RepoName>().unwrap(), n);
        }

        #[test]
        fn names_with_a_forbidden_character_are_refused(
            s in repo_name(), c in forbidden_in_name(), at in any::<prop::sample::Index>()
        ) {
            let mut bad = s.clone();
            bad.insert(at.index(s.len() + 1), c);
            prop_assert!(bad.parse::<RepoName>().is_err(), "{:?}", bad);
        }

        #[test]
        fn names_with_a_dangling_separator_are_refused(
            s in repo_name(), sep in prop::sample::select(vec![".", "_", "-", "/", "//"]), front: bool
        ) {
            let bad = if front { format!("{sep}{s}") } else { format!("{s}{sep}") };
            prop_assert!(bad.parse::<RepoName>().is_err(), "{:?}", bad);
            let doubled = s.replacen('/', "//", 1);
            if doubled != s {
                prop_assert!(doubled.parse::<RepoName>().is_err(), "{:?}", doubled);
            }
        }

        #[test]
        fn names_longer_than_255_are_refused(s in repo_name()) {
            let long = format!("{s}/{}", "a".repeat(NAME_MAX - s.len()));
            prop_assert!(long.len() > NAME_MAX);
            prop_assert!(long.parse::<RepoName>().is_err());
        }

        #[test]
        fn valid_tags_parse_as_tags_and_references(s in tag()) {
            let t: Tag = s.parse().unwrap();
            prop_assert_eq!(t.as_str(), s.as_str());
            prop_assert_eq!(s.parse::<Reference>().unwrap(), Reference::Tag(t));
        }

        #[test]
        fn bad_tags_are_refused(
            s in tag(), c in forbidden(), lead in prop::sample::select(vec!['.', '-'])
        ) {
            let (trailing, leading) = (format!("{s}{c}"), format!("{lead}{s}"));
            prop_assert!(trailing.parse::<Tag>().is_err());
            prop_assert!(leading.parse::<Tag>().is_err());
            let long = format!("{s}{}", "x".repeat(TAG_MAX + 1 - s.len()));
            prop_assert!(long.parse::<Tag>().is_err());
        }

        #[test]
        fn images_print_back(n in repo_name(), t in tag(), d in digest()) {
            let name: RepoName = n.parse().unwrap();
            let tagged = format!("{n}:{t}");
            prop_assert_eq!(
                parse_image(&tagged).unwrap(),
                (name.clone(), Reference::Tag(t.parse().unwrap()))
            );
            let pinned = format!("{n}@{d}");
            prop_assert_eq!(
                parse_image(&pinned).unwrap(),
                (name.clone(), Reference::Digest(d.parse().unwrap()))
            );
            for image in [&tagged, &pinned] {
                let (repo, reference) = parse_image(image).unwrap();
                prop_assert_eq!(&image_name(&repo, &reference), image);
            }
            prop_assert_eq!(
                parse_image(&n).unwrap(),
                (name, Reference::Tag("latest".parse().unwrap()))
            );
            // `@` introduces a digest, never a tag.
            let at_tag = format!("{n}@{t}");
            prop_assert!(parse_image(&at_tag).is_err());
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/names.rs): `NAME@TAG` was read as `NAME:TAG`.
    #[test]
    fn image_at_tag_is_refused() {
        for bad in ["kq@qq--", "7/q@A", "library/alpine@latest"] {
            assert_eq!(
                parse_image(bad),
                Err(NameError::Digest(DigestError::Malformed)),
                "{bad}"
            );
        }
    }
}
