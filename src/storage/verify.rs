//! Checking a blob's bytes as a pull reads them, so that bytes which changed on disk since
//! they were stored (bit rot, a bad sector, a stray write) never reach a client as a clean,
//! complete blob.
//!
//! Hashing with the blob's digest costs more CPU than the rest of a pull together (SHA-256
//! runs at about 1.4 GB/s per core even with the CPU's SHA instructions, and far slower on
//! ARM boards without them: `bench/run` measured a pull at 0.55 CPU-seconds per GiB
//! unchecked, 1.33 with the digest checked). So pulls check a CRC-32 of the blob's bytes,
//! about fifty times cheaper, recorded whenever the bytes are known to match the digest:
//! at commit (an upload is hashed as it arrives), by a scrub, or by a pull that checked the
//! digest because no checksum was recorded (a blob stored by an older version, or a record
//! lost in a crash). Content-addressed bytes never change, so a record never goes stale. A checksum
//! detects every burst of up to 32 flipped bits and all but one in 2^32 other corruptions;
//! it is not meant to resist someone who can write the data directory (out of scope: they
//! could rewrite the record too).

use std::io;

use crate::oci::{Digest, Hasher};

/// What the bytes must match.
pub enum Expect {
    /// The blob's digest: the first check (the checksum is computed alongside).
    Digest(Digest),
    /// A CRC-32 recorded when the digest last matched.
    Checksum(u32),
}

/// How a verified read ended, once its last piece was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes matched; their checksum, to record after a digest check.
    Sound { checksum: u32 },
    /// They did not: the client gets an error in place of the last piece.
    Wrong,
}

/// A whole-blob read's check and whom to tell how it ended.
pub struct Verify {
    pub expect: Expect,
    pub report: Box<dyn FnOnce(Outcome) + Send>,
}

/// A check under way: fed each piece in order.
pub(super) struct Check {
    /// The digest's hasher runs only when the digest is what is checked.
    against: Against,
    crc: crc32fast::Hasher,
    report: Box<dyn FnOnce(Outcome) + Send>,
}

enum Against {
    /// Boxed: the hasher is large, and this arm is the rare one (a blob with no checksum).
    Digest {
        expected: Digest,
        hasher: Box<Hasher>,
    },
    Checksum(u32),
}

impl Check {
    pub(super) fn new(verify: Verify) -> Check {
        Check {
            against: match verify.expect {
                Expect::Digest(expected) => Against::Digest {
                    hasher: Box::new(Hasher::new(expected.algorithm())),
                    expected,
                },
                Expect::Checksum(c) => Against::Checksum(c),
            },
            crc: crc32fast::Hasher::new(),
            report: verify.report,
        }
    }

    pub(super) fn feed(&mut self, piece: &[u8]) {
        if let Against::Digest { hasher, .. } = &mut self.against {
            hasher.update(piece);
        }
        self.crc.update(piece);
    }

    /// After the last piece: reports the outcome, and turns a mismatch into the error the
    /// client's stream ends with.
    pub(super) fn conclude(self) -> io::Result<()> {
        let checksum = self.crc.finalize();
        let (sound, what) = match self.against {
            Against::Digest { expected, hasher } => (hasher.finish() == expected, "its digest"),
            Against::Checksum(c) => (
                c == checksum,
                "the checksum recorded when its digest last matched",
            ),
        };
        if sound {
            (self.report)(Outcome::Sound { checksum });
            return Ok(());
        }
        (self.report)(Outcome::Wrong);
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the blob read back from disk does not match {what}: not sent"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn run(expect: Expect, pieces: &[&[u8]]) -> (io::Result<()>, Option<Outcome>) {
        let got = Arc::new(Mutex::new(None));
        let g2 = got.clone();
        let mut c = Check::new(Verify {
            expect,
            report: Box::new(move |o| *g2.lock().unwrap() = Some(o)),
        });
        for p in pieces {
            c.feed(p);
        }
        let r = c.conclude();
        let o = *got.lock().unwrap();
        (r, o)
    }

    #[test]
    fn a_digest_check_yields_the_checksum_that_later_checks_use() {
        let d = Digest::sha256_of(b"hello, world");
        let (r, o) = run(Expect::Digest(d.clone()), &[b"hello, ", b"world"]);
        assert!(r.is_ok());
        let Some(Outcome::Sound { checksum }) = o else {
            panic!("{o:?}")
        };
        // Known CRC-32 of the bytes, whatever the pieces.
        assert_eq!(checksum, crc32fast::hash(b"hello, world"));
        let (r, o) = run(Expect::Checksum(checksum), &[b"hel", b"lo, world"]);
        assert!(r.is_ok());
        assert_eq!(o, Some(Outcome::Sound { checksum }));
        // A flipped bit fails both checks.
        let (r, o) = run(Expect::Checksum(checksum), &[b"hello, worle"]);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(o, Some(Outcome::Wrong));
        let (r, o) = run(Expect::Digest(d), &[b"hello, worle"]);
        assert!(r.is_err());
        assert_eq!(o, Some(Outcome::Wrong));
    }
}
