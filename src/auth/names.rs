//! What an operator may write as a user name, and the error for what they may not.

use super::ROBOT_PREFIX;

/// A user name, rule subject or action an operator wrote that is not one; the message says
/// what would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Checks a user name for the CLI and the admin API.
pub fn check_user_name(name: &str) -> Result<(), Invalid> {
    let body = name.strip_prefix(ROBOT_PREFIX).unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 64
        && body.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "{name:?}: user names are 1 to 64 of a-z 0-9 . _ -"
        )))
    }
}
