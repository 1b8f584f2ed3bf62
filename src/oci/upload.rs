//! Upload session identifiers: 128 random bits as 32 lowercase hex characters. Parsed from the
//! URL like every other name, so an id is always safe as a file name.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// A fresh id from the operating system's random source.
    pub fn random() -> std::io::Result<UploadId> {
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(UploadId(hex::encode(b)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UploadId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let ok = s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(UploadId(s.to_string()))
        } else {
            Err(())
        }
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back() {
        let id = UploadId::random().unwrap();
        assert_eq!(id.as_str().parse::<UploadId>().unwrap(), id);
        assert_ne!(UploadId::random().unwrap(), id);
    }

    #[test]
    fn rejects_paths() {
        for bad in [
            "",
            "../../etc/passwd",
            &"A".repeat(32),
            &"a".repeat(31),
            &"0".repeat(33),
        ] {
            assert!(bad.parse::<UploadId>().is_err(), "{bad}");
        }
    }
}
