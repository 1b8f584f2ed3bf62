//! `Content-Range` on upload chunks (`ContentRange::parse`) and `Range` on blob reads
//! (`BlobRange::parse` and `resolve`).
//!
//! An accepted range must hold the numbers written in the header (no silent truncation),
//! claim a length that fits in a u64, print back to a form that parses equal, and resolve
//! only to bytes that exist in the blob, exactly the ones RFC 9110 says it selects.

#![no_main]

use edgeyard::registry::{range_header, BlobRange, ContentRange};
use libfuzzer_sys::fuzz_target;

/// The decimal numbers in `s`, in order (as u128, so a value past u64 shows).
fn numbers(s: &str) -> Vec<u128> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<u128>().unwrap_or(u128::MAX))
        .collect()
}

fn check_content_range(s: &str) {
    let Some(r) = ContentRange::parse(s) else {
        return;
    };
    assert!(r.start <= r.end, "{s:?} -> {r:?}");
    // The length the upload expects from the chunk: at least one byte, and it must fit.
    let len = u128::from(r.end) - u128::from(r.start) + 1;
    assert_eq!(u128::from(r.len()), len, "{s:?} -> {r:?}");
    assert!(!r.is_empty());
    // The two numbers of the range are the first two written (a "/total" may follow).
    let n = numbers(s);
    assert_eq!(&n[..2], &[u128::from(r.start), u128::from(r.end)], "{s:?}");
    for printed in [
        format!("{}-{}", r.start, r.end),
        format!("bytes {}-{}/*", r.start, r.end),
    ] {
        assert_eq!(ContentRange::parse(&printed), Some(r), "{printed:?}");
    }
}

fn check_blob_range(s: &str, sizes: &[u64]) {
    let Some(r) = BlobRange::parse(s) else {
        return;
    };
    let n = numbers(s);
    let printed = match r {
        BlobRange::Between(a, b) => {
            assert!(a <= b, "{s:?}");
            assert_eq!(n, [u128::from(a), u128::from(b)], "{s:?}");
            format!("bytes={a}-{b}")
        }
        BlobRange::From(a) => {
            assert_eq!(n, [u128::from(a)], "{s:?}");
            format!("bytes={a}-")
        }
        BlobRange::Suffix(k) => {
            assert_eq!(n, [u128::from(k)], "{s:?}");
            format!("bytes=-{k}")
        }
    };
    assert_eq!(BlobRange::parse(&printed), Some(r), "{printed:?}");
    for &size in sizes {
        let got = r.resolve(size);
        // RFC 9110 section 14.1.2, for one range spec over a representation of `size`
        // bytes, computed in wider integers than the code under test uses.
        let (size_w, last) = (i128::from(size), i128::from(size) - 1);
        let want = match r {
            BlobRange::Between(a, b) => Some((i128::from(a), i128::from(b).min(last))),
            BlobRange::From(a) => Some((i128::from(a), last)),
            BlobRange::Suffix(0) => None,
            BlobRange::Suffix(k) => Some(((size_w - i128::from(k)).max(0), last)),
        }
        .filter(|&(first, last)| first <= last)
        .map(|(first, last)| (first as u64, last as u64));
        assert_eq!(got, want, "{r:?} over {size} bytes");
        if let Some((a, b)) = got {
            // Inside the blob, at least one byte, and a Content-Length that fits.
            assert!(a <= b && b < size, "{r:?} over {size} -> {a}-{b}");
            assert!(b - a < u64::MAX);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first eight bytes, when there are that many, are a blob size to resolve against.
    let mut sizes = vec![0, 1, 2, 10, 4096, u64::MAX - 1, u64::MAX];
    if let Some(b) = data.get(..8) {
        let size = u64::from_le_bytes(b.try_into().unwrap());
        sizes.push(size);
        // What the upload answers for a session holding `size` bytes parses back.
        if size > 0 {
            let held = ContentRange::parse(&range_header(size));
            assert_eq!(
                held,
                Some(ContentRange {
                    start: 0,
                    end: size - 1
                })
            );
        }
    }
    for text in [data, data.get(8..).unwrap_or_default()] {
        let Ok(s) = std::str::from_utf8(text) else {
            continue;
        };
        check_content_range(s);
        check_blob_range(s, &sizes);
    }
});
