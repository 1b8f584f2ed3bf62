//! Bearer tokens per the docker registry token spec: a JWT signed with ES256 (ring), whose
//! `access` claim lists what the holder may do. Verification is strict: algorithm, key id,
//! signature, issuer, audience, expiry and not-before are all checked.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// One entry of the `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<Access>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Algorithm,
    Signature,
    Issuer,
    Audience,
    Expired,
    NotYetValid,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::Algorithm => "token algorithm or key id not accepted",
            TokenError::Signature => "token signature is invalid",
            TokenError::Issuer => "token issuer is wrong",
            TokenError::Audience => "token is for another service",
            TokenError::Expired => "token has expired",
            TokenError::NotYetValid => "token is not valid yet",
        })
    }
}

/// Clock skew tolerated on `nbf`/`iat`, seconds.
const LEEWAY: u64 = 30;

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// The signing key (P-256, PKCS#8 in a 0600 file) and the names tokens are bound to.
pub struct TokenKeys {
    key: EcdsaKeyPair,
    kid: String,
    issuer: String,
    service: String,
    rng: SystemRandom,
}

impl TokenKeys {
    /// Loads the key from `path`, creating it on first use.
    pub fn load_or_create(
        path: &Path,
        issuer: &str,
        service: &str,
    ) -> crate::error::Result<TokenKeys> {
        let failed = |what: &'static str, e: String| {
            crate::error::Error::internal(what, format!("{}: {e}", path.display()))
        };
        let rng = SystemRandom::new();
        let der = match crate::storage::files::read_opt(path)
            .map_err(|e| failed("reading the token signing key", e.to_string()))?
        {
            Some(d) => d,
            None => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| failed("generating the token signing key", e.to_string()))?;
                crate::storage::files::write_atomic(
                    path,
                    doc.as_ref(),
                    crate::storage::files::SECRET,
                )
                .map_err(|e| failed("writing the token signing key", e.to_string()))?;
                doc.as_ref().to_vec()
            }
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| failed("loading the token signing key (unusable)", e.to_string()))?;
        let kid = hex::encode(&sha2::Sha256::digest(key.public_key().as_ref())[..12]);
        Ok(TokenKeys {
            key,
            kid,
            issuer: issuer.to_string(),
            service: service.to_string(),
            rng,
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn sign(&self, claims: &Claims) -> crate::error::Result<String> {
        let header = Header {
            alg: "ES256".into(),
            typ: "JWT".into(),
            kid: self.kid.clone(),
        };
        let enc = |v: &[u8]| B64.encode(v);
        let json = |e| crate::error::Error::internal("encoding a token", e);
        let h = serde_json::to_vec(&header).map_err(json)?;
        let c = serde_json::to_vec(claims).map_err(json)?;
        let signing_input = format!("{}.{}", enc(&h), enc(&c));
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| crate::error::Error::internal("signing a token", e.to_string()))?;
        Ok(format!("{signing_input}.{}", enc(sig.as_ref())))
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > 16 * 1024 {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let dec = |p: &str| B64.decode(p).map_err(|_| TokenError::Malformed);
        let header: Header = serde_json::from_slice(&dec(h)?).map_err(|_| TokenError::Malformed)?;
        if header.alg != "ES256" || header.kid != self.kid {
            return Err(TokenError::Algorithm);
        }
        let sig = dec(s)?;
        let signing_input = &token[..h.len() + 1 + c.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = serde_json::from_slice(&dec(c)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if claims.aud != self.service {
            return Err(TokenError::Audience);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + LEEWAY || claims.iat > now + LEEWAY {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, name: &str) -> TokenKeys {
        TokenKeys::load_or_create(&dir.join(name), "edgeyard", "edgeyard").unwrap()
    }

    fn claims(now: u64) -> Claims {
        Claims {
            iss: "edgeyard".into(),
            sub: "alice".into(),
            aud: "edgeyard".into(),
            exp: now + 300,
            nbf: now,
            iat: now,
            jti: "1".into(),
            access: vec![Access {
                kind: "repository".into(),
                name: "a/b".into(),
                actions: vec!["pull".into()],
            }],
        }
    }

    #[test]
    fn sign_verify_and_reject() {
        let tmp = tempfile::tempdir().unwrap();
        let k = keys(tmp.path(), "k1");
        let now = 1_700_000_000;
        let t = k.sign(&claims(now)).unwrap();
        assert_eq!(k.verify(&t, now).unwrap(), claims(now));
        // The key persists: a reloaded key verifies old tokens.
        assert!(keys(tmp.path(), "k1").verify(&t, now).is_ok());
        // Expired.
        assert_eq!(k.verify(&t, now + 301), Err(TokenError::Expired));
        // Not yet valid.
        assert_eq!(
            k.verify(
                &k.sign(&Claims {
                    nbf: now + 100,
                    ..claims(now)
                })
                .unwrap(),
                now
            ),
            Err(TokenError::NotYetValid)
        );
        // Wrong audience, wrong issuer.
        assert_eq!(
            k.verify(
                &k.sign(&Claims {
                    aud: "other".into(),
                    ..claims(now)
                })
                .unwrap(),
                now
            ),
            Err(TokenError::Audience)
        );
        assert_eq!(
            k.verify(
                &k.sign(&Claims {
                    iss: "other".into(),
                    ..claims(now)
                })
                .unwrap(),
                now
            ),
            Err(TokenError::Issuer)
        );
        // Another key (its kid differs).
        let other = keys(tmp.path(), "k2");
        assert_eq!(other.verify(&t, now), Err(TokenError::Algorithm));
        // Tampered claims: granting push instead of pull.
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(now);
        c.access[0].actions = vec!["push".into()];
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert_eq!(k.verify(&forged, now), Err(TokenError::Signature));
        // alg=none.
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
        assert_eq!(
            k.verify(&format!("{none_header}.{}.", parts[1]), now),
            Err(TokenError::Algorithm)
        );
        assert_eq!(k.verify("a.b", now), Err(TokenError::Malformed));
        assert_eq!(k.verify("", now), Err(TokenError::Malformed));
    }

    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        keys(tmp.path(), "k");
        let mode = std::fs::metadata(tmp.path().join("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
