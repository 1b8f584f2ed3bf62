//! Repository names, tags, references, digests and `NAME[:TAG|@DIGEST]` images.
//!
//! Every parser is checked against the distribution spec's grammar written independently as
//! a regular expression (accepted exactly when the grammar and the length limits say so), and
//! every accepted value must print back to its input and parse again to an equal value.

#![no_main]

use std::sync::LazyLock;

use edgeyard::oci::name::{NAME_MAX, NAME_MIN, TAG_MAX};
use edgeyard::oci::{parse_image, Digest, DigestError, NameError, Reference, RepoName, Tag};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// The spec's `<name>` grammar: path components of `[a-z0-9]+` runs joined by `.`, `_`, `__`
/// or any number of `-`, separated by `/`.
static NAME: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*";
    Regex::new(&format!("^{component}(?:/{component})*$")).unwrap()
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").unwrap());
/// The spec's digest grammar (any algorithm), and the two edgeyard implements.
static DIGEST_GRAMMAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):[a-zA-Z0-9=_-]+$").unwrap());
static DIGEST_OK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$").unwrap());

fn check_name(s: &str) {
    let expected = (NAME_MIN..=NAME_MAX).contains(&s.len()) && NAME.is_match(s);
    match s.parse::<RepoName>() {
        Ok(n) => {
            assert!(expected, "accepted a name outside the grammar: {s:?}");
            assert_eq!(n.as_str(), s);
            assert_eq!(n.to_string().parse::<RepoName>().as_ref(), Ok(&n));
            // Safe below the data directory: no empty, `.` or `..` component.
            assert!(n
                .as_str()
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."));
        }
        Err(e) => {
            assert!(!expected, "refused a valid name {s:?}: {e}");
            assert!(matches!(e, NameError::Name(_)));
        }
    }
}

fn check_tag(s: &str) {
    let expected = s.len() <= TAG_MAX && TAG.is_match(s);
    match s.parse::<Tag>() {
        Ok(t) => {
            assert!(expected, "accepted a tag outside the grammar: {s:?}");
            assert_eq!(t.as_str(), s);
            assert_eq!(t.to_string().parse::<Tag>().as_ref(), Ok(&t));
        }
        Err(e) => {
            assert!(!expected, "refused a valid tag {s:?}: {e}");
            assert!(matches!(e, NameError::Tag(_)));
        }
    }
}

fn check_digest(s: &str) -> Result<Digest, DigestError> {
    let parsed = s.parse::<Digest>();
    match &parsed {
        Ok(d) => {
            assert!(DIGEST_OK.is_match(s), "accepted a bad digest: {s:?}");
            assert_eq!(d.to_string(), s);
            assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(d));
            assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(String::from_utf8(d.to_key()).unwrap(), s);
            // The serde form is the string form.
            let json = serde_json::to_string(d).unwrap();
            assert_eq!(&serde_json::from_str::<Digest>(&json).unwrap(), d);
        }
        Err(DigestError::UnsupportedAlgorithm(alg)) => {
            let caps = DIGEST_GRAMMAR
                .captures(s)
                .unwrap_or_else(|| panic!("{s:?} is outside the grammar, not unsupported"));
            assert_eq!(&caps[1], alg.as_str());
            assert!(alg != "sha256" && alg != "sha512", "{s:?}");
        }
        Err(DigestError::Malformed) => {
            assert!(!DIGEST_OK.is_match(s), "refused a valid digest {s:?}");
            if let Some(caps) = DIGEST_GRAMMAR.captures(s) {
                // Well-formed for the grammar: only a known algorithm with bad hex is malformed.
                assert!(matches!(&caps[1], "sha256" | "sha512"), "{s:?}");
            }
        }
    }
    parsed
}

fn check_reference(s: &str, digest: &Result<Digest, DigestError>) {
    match s.parse::<Reference>() {
        Ok(r) => {
            assert_eq!(r.to_string(), s);
            match &r {
                Reference::Digest(d) => assert_eq!(Ok(d), digest.as_ref()),
                Reference::Tag(t) => {
                    assert!(!s.contains(':'));
                    assert_eq!(t.as_str(), s);
                }
            }
        }
        Err(NameError::Digest(e)) => {
            assert!(s.contains(':'));
            assert_eq!(Err(&e), digest.as_ref());
        }
        Err(NameError::Tag(_)) => assert!(!s.contains(':') && s.parse::<Tag>().is_err()),
        Err(NameError::Name(_)) => panic!("a reference parse reported a name error: {s:?}"),
    }
}

fn check_image(s: &str) {
    let Ok((name, reference)) = parse_image(s) else {
        return;
    };
    let printed = match &reference {
        Reference::Digest(d) => format!("{name}@{d}"),
        Reference::Tag(t) => format!("{name}:{t}"),
    };
    // Nothing in the input was dropped: it is the printed form, or a bare name meaning latest.
    let latest = Reference::Tag("latest".parse().unwrap());
    assert!(
        printed == s || (name.as_str() == s && reference == latest),
        "{s:?} parsed as {printed:?}"
    );
    assert_eq!(parse_image(&printed), Ok((name, reference)));
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_name(s);
    check_tag(s);
    let digest = check_digest(s);
    check_reference(s, &digest);
    check_image(s);
});
