//! Globs over repository names and tags, as access, immutability and retention rules write
//! them: `*` matches within one path segment, `**` across segments, everything else is
//! literal. Pure and bounded: names are at most 255 bytes.

/// Whether `glob` matches the repository `name`: `*` stays within one path segment, `**`
/// crosses segments, everything else is literal. `team/**` matches `team/a` and `team/a/b`.
///
/// Names come from clients, so the match is linear in both lengths whatever the pattern: a
/// backtracking matcher takes exponential time on `*-*-*-*-*-x` against a long name of
/// dashes. This one walks the name once, keeping the set of pattern positions reached.
pub fn glob_match(glob: &str, name: &str) -> bool {
    glob.len() <= 255 && run(glob, name, &mut 0)
}

/// One piece of a glob.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`: any run of bytes other than `/`.
    Star,
    /// `**`: any run of bytes.
    Stars,
}

fn tokens(glob: &str) -> Vec<Token> {
    let g = glob.as_bytes();
    let mut out = Vec::with_capacity(g.len());
    let mut i = 0;
    while i < g.len() {
        out.push(match (g[i], g.get(i + 1)) {
            (b'*', Some(b'*')) => {
                i += 1;
                Token::Stars
            }
            (b'*', _) => Token::Star,
            (c, _) => Token::Byte(c),
        });
        i += 1;
    }
    out
}

/// The match itself; `steps` counts the state visits (at most one per pattern position
/// per name byte, plus one pass at the start), so a test can bound the work.
fn run(glob: &str, name: &str, steps: &mut u64) -> bool {
    let t = tokens(glob);
    // reached[i]: the first i tokens can match the name read so far.
    let mut reached = vec![false; t.len() + 1];
    let mut next = vec![false; t.len() + 1];
    reached[0] = true;
    close(&t, &mut reached, steps);
    for &c in name.as_bytes() {
        next.iter_mut().for_each(|r| *r = false);
        for (i, tok) in t.iter().enumerate() {
            *steps += 1;
            if !reached[i] {
                continue;
            }
            match *tok {
                Token::Byte(b) if b == c => next[i + 1] = true,
                Token::Byte(_) => {}
                Token::Star if c == b'/' => {}
                // A star takes the byte and stays where it is.
                Token::Star | Token::Stars => next[i] = true,
            }
        }
        close(&t, &mut next, steps);
        std::mem::swap(&mut reached, &mut next);
        if !reached.contains(&true) {
            return false;
        }
    }
    reached[t.len()]
}

/// A star may match nothing: wherever one is reached, the position after it is too.
fn close(t: &[Token], reached: &mut [bool], steps: &mut u64) {
    for (i, tok) in t.iter().enumerate() {
        *steps += 1;
        if reached[i] && matches!(tok, Token::Star | Token::Stars) {
            reached[i + 1] = true;
        }
    }
}

/// A glob an operator wrote that is not one; its message says what a glob may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadGlob(String);

impl std::fmt::Display for BadGlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadGlob {}

/// Validates a glob as written by an operator.
pub fn check_glob(glob: &str) -> Result<(), BadGlob> {
    let ok = !glob.is_empty()
        && glob.len() <= 255
        && glob.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/' | b'*')
        });
    if ok {
        Ok(())
    } else {
        Err(BadGlob(format!(
            "{glob:?} is not a repository glob (lowercase names, '/', '*', '**')"
        )))
    }
}

/// Validates a tag glob (tags allow upper case; no `/`).
pub fn check_tag_glob(glob: &str) -> Result<(), BadGlob> {
    let ok = !glob.is_empty()
        && glob.len() <= 128
        && glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(BadGlob(format!(
            "{glob:?} is not a tag glob (letters, digits, '.', '_', '-', '*')"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("team/**", "team/a"));
        assert!(glob_match("team/**", "team/a/b"));
        assert!(!glob_match("team/**", "team"));
        assert!(!glob_match("team/**", "teamx/a"));
        assert!(glob_match("team/*", "team/a"));
        assert!(!glob_match("team/*", "team/a/b"));
        assert!(glob_match("*/base", "lib/base"));
        assert!(glob_match("**", "anything/at/all"));
        assert!(glob_match("exact/name", "exact/name"));
        assert!(!glob_match("exact/name", "exact/name2"));
        assert!(glob_match("prod-*", "prod-line1"));
        assert!(check_glob("prod/**").is_ok());
        assert!(check_glob("Prod/**").is_err());
        assert!(check_glob("").is_err());
    }

    /// The matcher this one replaced: the semantics by definition, in exponential time.
    fn reference(g: &[u8], n: &[u8]) -> bool {
        match g.first() {
            None => n.is_empty(),
            Some(b'*') if g.get(1) == Some(&b'*') => {
                (0..=n.len()).any(|i| reference(&g[2..], &n[i..]))
            }
            Some(b'*') => {
                let seg_end = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=seg_end).any(|i| reference(&g[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && reference(&g[1..], &n[1..]),
        }
    }

    proptest::proptest! {
        /// Same answers as the definition, on short patterns and names over a small
        /// alphabet (so that stars, slashes and letters meet often).
        #[test]
        fn agrees_with_the_definition(g in "[ab/*-]{0,10}", n in "[ab/-]{0,12}") {
            proptest::prop_assert_eq!(glob_match(&g, &n), reference(g.as_bytes(), n.as_bytes()));
        }

        /// Linear work whatever the pattern: at most one visit per pattern position per
        /// name byte (plus the first pass), on patterns made to make backtracking explode.
        #[test]
        fn work_is_bounded_by_the_lengths(
            parts in proptest::collection::vec("(\\*|\\*\\*|-|a|/)", 1..120),
            n in "[-a/]{0,255}",
            tail in "[xa-]{0,3}",
        ) {
            let g = format!("{}{tail}", parts.concat());
            let mut steps = 0;
            run(&g, &n, &mut steps);
            let k = tokens(&g).len() as u64;
            proptest::prop_assert!(steps <= 2 * k * (n.len() as u64 + 1), "{steps} steps");
        }
    }

    #[test]
    fn the_review_s_pattern_is_fast_and_right() {
        // `*-*-*-*-*-x` against 60 dashes took seconds with the old matcher.
        let name = "-".repeat(60);
        let mut steps = 0;
        assert!(!run("*-*-*-*-*-x", &name, &mut steps));
        assert!(steps <= 2 * 11 * 61, "{steps}");
        let long = "*-".repeat(100) + "x";
        assert!(!glob_match(&long, &"-".repeat(250)));
        assert!(glob_match(&("*-".repeat(5) + "x"), &("-".repeat(60) + "x")));
        assert!(glob_match("**-**-**-x", "a/-b/-/c-x"));
    }

    #[test]
    fn tag_globs() {
        assert!(glob_match("v*", "v1.2.3"));
        assert!(!glob_match("v*", "latest"));
        assert!(check_tag_glob("release-*").is_ok());
        assert!(check_tag_glob("a/b").is_err());
    }
}
