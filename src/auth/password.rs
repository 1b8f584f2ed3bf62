//! Password hashing: argon2id for everything edgeyard stores; bcrypt only to verify hashes
//! imported from an htpasswd file (CNCF Distribution), which are replaced by argon2id at the
//! next successful login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{Error, Result};

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).map_err(|e| Error::internal("drawing a salt", e.to_string()))?;
    let salt = SaltString::encode_b64(&raw)
        .map_err(|e| Error::internal("encoding a salt", e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal("hashing a password", e.to_string()))
}

/// Whether `password` matches `stored` (argon2 PHC string or bcrypt `$2a$/$2b$/$2y$`). Both
/// libraries compare in constant time.
pub fn verify(password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// A random secret of 24 bytes, URL-safe base64 (32 characters): initial admin passwords,
/// robot secrets and refresh tokens.
pub fn random_secret() -> Result<String> {
    random_url_safe(24)
}

/// `len` random bytes, URL-safe base64 without padding.
pub fn random_url_safe(len: usize) -> Result<String> {
    use base64::Engine;
    let mut b = vec![0u8; len];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::internal("drawing random bytes", e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
        assert!(!verify("s3cret", "garbage"));
    }

    #[test]
    fn bcrypt_from_htpasswd() {
        let h = bcrypt::hash("old-password", 4).unwrap();
        assert!(is_bcrypt(&h));
        assert!(verify("old-password", &h));
        assert!(!verify("wrong", &h));
    }

    #[test]
    fn secrets_are_random() {
        let a = random_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_secret().unwrap());
    }
}
