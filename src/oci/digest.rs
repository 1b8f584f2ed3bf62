//! Content digests (`algorithm:hex`) and the hasher that produces them while bytes stream by.
//!
//! Only sha256 (the canonical algorithm) and sha512 are accepted. A digest is validated once
//! when parsed, so its hex part is safe to use as a file name anywhere below the data dir.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// Hash algorithms edgeyard verifies and stores blobs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest: a known algorithm and lowercase hex of exactly the right length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a usable digest. The distinction matters to clients: a well-formed
/// digest with an algorithm we do not implement is `UNSUPPORTED`, anything else is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    Malformed,
    UnsupportedAlgorithm(String),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Malformed => f.write_str("digest is not of the form algorithm:hex"),
            DigestError::UnsupportedAlgorithm(a) => {
                write!(f, "digest algorithm {a:?} is not supported (use sha256)")
            }
        }
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part; safe as a path component (validated on construction).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 digest of a byte slice (manifests are small and arrive whole).
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    /// Encodes the digest as stable bytes for metadata keys.
    pub fn to_key(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        // The spec's grammar: algorithm-component ([a-z0-9]+) joined by [+._-], encoded [a-zA-Z0-9=_-]+
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let enc_ok = !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        if !alg_ok || !enc_ok {
            return Err(DigestError::Malformed);
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(DigestError::Malformed);
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher: fed as bytes arrive so a blob is never read twice to verify it.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far; the hasher itself keeps going (clone-and-finish).
    pub fn peek(&self) -> Digest {
        self.clone().finish()
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_sha256() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
    }

    #[test]
    fn hashes_incrementally() {
        let mut h = Hasher::new(Algorithm::Sha256);
        assert_eq!(h.peek().to_string(), EMPTY);
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn sha512_accepted() {
        let s = format!("sha512:{}", "0".repeat(128));
        assert_eq!(s.parse::<Digest>().unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:{}", "0".repeat(65)),
            "sha256:../../etc/passwd",
            &format!("SHA256:{}", "0".repeat(64)),
            &format!("sha256:{}/x", "0".repeat(64)),
        ] {
            assert_eq!(bad.parse::<Digest>(), Err(DigestError::Malformed), "{bad}");
        }
    }

    #[test]
    fn unknown_algorithm_is_unsupported() {
        assert_eq!(
            "md5:0123456789abcdef0123456789abcdef".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm("md5".into()))
        );
    }
}

/// Generators of digests for property tests here and in the modules that parse them.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    /// A digest edgeyard accepts, as text.
    pub fn digest() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-f0-9]{64}".prop_map(|h| format!("sha256:{h}")),
            1 => "[a-f0-9]{128}".prop_map(|h| format!("sha512:{h}")),
        ]
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::strategies::digest;
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn valid_digests_print_back(s in digest()) {
            let d: Digest = s.parse().unwrap();
            prop_assert_eq!(d.to_string(), s.clone());
            prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d.clone());
            let json = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        }

        #[test]
        fn hex_of_the_wrong_length_or_case_is_malformed(
            s in digest(), cut in 1usize..64, upper in 0usize..64
        ) {
            let short = &s[..s.len() - cut];
            prop_assert_eq!(short.parse::<Digest>(), Err(DigestError::Malformed));
            let long = format!("{s}0");
            prop_assert_eq!(long.parse::<Digest>(), Err(DigestError::Malformed));
            // One hex digit made uppercase (a digit stays a digit, so force a letter).
            let (alg, hex) = s.split_once(':').unwrap();
            let mut hex = hex.as_bytes().to_vec();
            hex[upper] = b'A' + hex[upper] % 6;
            let shouting = format!("{alg}:{}", String::from_utf8(hex).unwrap());
            prop_assert_eq!(shouting.parse::<Digest>(), Err(DigestError::Malformed));
        }

        #[test]
        fn other_algorithms_are_unsupported(
            alg in "[a-z0-9]{1,8}([+._-][a-z0-9]{1,4})?", enc in "[a-zA-Z0-9=_-]{1,80}"
        ) {
            prop_assume!(alg != "sha256" && alg != "sha512");
            prop_assert_eq!(
                format!("{alg}:{enc}").parse::<Digest>(),
                Err(DigestError::UnsupportedAlgorithm(alg))
            );
        }
    }
}
