//! Globs over repository names and tags, as access, immutability and retention rules write
//! them: `*` matches within one path segment, `**` across segments, everything else is
//! literal. Pure and bounded: names are at most 255 bytes.

/// Whether `glob` matches the repository `name`: `*` stays within one path segment, `**`
/// crosses segments, everything else is literal. `team/**` matches `team/a` and `team/a/b`.
pub fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[u8], n: &[u8]) -> bool {
        match g.first() {
            None => n.is_empty(),
            Some(b'*') if g.get(1) == Some(&b'*') => {
                let rest = &g[2..];
                (0..=n.len()).any(|i| go(rest, &n[i..]))
            }
            Some(b'*') => {
                let rest = &g[1..];
                let seg_end = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=seg_end).any(|i| go(rest, &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && go(&g[1..], &n[1..]),
        }
    }
    // Globs are short and names at most 255 bytes; the recursion is bounded by both.
    glob.len() <= 255 && go(glob.as_bytes(), name.as_bytes())
}

/// Validates a glob as written by an operator.
pub fn check_glob(glob: &str) -> Result<(), String> {
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
        Err(format!(
            "{glob:?} is not a repository glob (lowercase names, '/', '*', '**')"
        ))
    }
}

/// Validates a tag glob (tags allow upper case; no `/`).
pub fn check_tag_glob(glob: &str) -> Result<(), String> {
    let ok = !glob.is_empty()
        && glob.len() <= 128
        && glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{glob:?} is not a tag glob (letters, digits, '.', '_', '-', '*')"
        ))
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

    #[test]
    fn tag_globs() {
        assert!(glob_match("v*", "v1.2.3"));
        assert!(!glob_match("v*", "latest"));
        assert!(check_tag_glob("release-*").is_ok());
        assert!(check_tag_glob("a/b").is_err());
    }
}
