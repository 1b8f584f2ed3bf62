//! Browser sessions for the web console. A session is opened by a login with a user name and
//! password (the same accounts, rules and throttling as `docker login`) and is then named by a
//! random id in an `HttpOnly` cookie. Sessions live in memory only: a restart signs everyone
//! out, which is the safe direction.
//!
//! Each session carries its own CSRF token, which every state-changing request made with the
//! cookie must echo in a header (checked in `http::cookie`). A session remembers a hash of the
//! user's password hash when it was opened and is dropped as soon as the user is gone or that
//! hash differs (deleted, re-created or given a new password), so a session never outlives
//! the credentials that opened it. Ids are stored hashed: the map never holds a usable id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::Digest as _;

use super::{principal_of, Auth, AuthError, Principal};

/// Name of the session cookie.
pub const COOKIE: &str = "edgeyard_session";
/// A session unused for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// No session lasts longer than this, used or not.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; past it, expired ones and then the least recently used go.
const MAX_SESSIONS: usize = 10_000;
/// Most sessions one account keeps; past it, its own least recently used goes. One account
/// signing in over and over (a robot's secret in a loop) thus evicts only its own sessions,
/// never anybody else's, and cannot fill the table.
const MAX_PER_USER: usize = 32;
/// Random bytes in a session id and in a CSRF token.
const SECRET_BYTES: usize = 32;

/// What the server keeps of one session.
struct Entry {
    user: String,
    /// SHA-256 of the user's password hash when the session was opened.
    credential: [u8; 32],
    csrf: String,
    opened: Instant,
    last_used: Instant,
}

/// A session found for a request: who it is for and its CSRF token.
#[derive(Clone, Debug)]
pub struct Found {
    pub user: String,
    pub csrf: String,
    /// Seconds until the session ends at the latest (idle timeout aside).
    pub expires_in: u64,
    credential: [u8; 32],
}

/// A session as its client holds it: the cookie value (the id, never logged or stored), its
/// CSRF token, and the seconds until it ends at the latest.
#[derive(Clone, Debug)]
pub struct Opened {
    pub id: String,
    pub csrf: String,
    pub expires_in: u64,
}

/// The session table, with its time limits.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
    idle: Duration,
    lifetime: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(IDLE_TIMEOUT, MAX_LIFETIME)
    }
}

fn random_token() -> crate::error::Result<String> {
    super::password::random_url_safe(SECRET_BYTES)
}

/// The map key of a session id; `None` for anything that cannot be an id we issued.
fn key_of(id: &str) -> Option<[u8; 32]> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()?;
    (raw.len() == SECRET_BYTES).then(|| sha2::Sha256::digest(&raw).into())
}

fn credential_of(password_hash: &str) -> [u8; 32] {
    sha2::Sha256::digest(password_hash.as_bytes()).into()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            lifetime,
        }
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.duration_since(e.last_used) >= self.idle
            || now.duration_since(e.opened) >= self.lifetime
    }

    /// Opens a session for `user`, whose current password hash is `password_hash`.
    pub fn open(
        &self,
        user: &str,
        password_hash: &str,
        now: Instant,
    ) -> crate::error::Result<Opened> {
        let id = random_token()?;
        let csrf = random_token()?;
        let key = key_of(&id).ok_or_else(|| {
            crate::error::Error::internal("encoding a session id", "not decodable")
        })?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<([u8; 32], Instant)> = map
            .iter()
            .filter(|(_, e)| e.user == user)
            .map(|(k, e)| (*k, e.last_used))
            .collect();
        if mine.len() >= MAX_PER_USER {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, used)| *used) {
                map.remove(oldest);
            }
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| !self.expired(e, now));
            if map.len() >= MAX_SESSIONS {
                if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(
            key,
            Entry {
                user: user.to_string(),
                credential: credential_of(password_hash),
                csrf: csrf.clone(),
                opened: now,
                last_used: now,
            },
        );
        Ok(Opened {
            id,
            csrf,
            expires_in: self.lifetime.as_secs(),
        })
    }

    /// The live session named by `id`, marked as used now; an expired one is removed.
    pub fn find(&self, id: &str, now: Instant) -> Option<Found> {
        let key = key_of(id)?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get_mut(&key)?;
        if self.expired(e, now) {
            map.remove(&key);
            return None;
        }
        e.last_used = now;
        Some(Found {
            user: e.user.clone(),
            csrf: e.csrf.clone(),
            expires_in: self
                .lifetime
                .saturating_sub(now.duration_since(e.opened))
                .as_secs(),
            credential: e.credential,
        })
    }

    /// Closes the session named by `id`; whether there was one.
    pub fn close(&self, id: &str) -> bool {
        match key_of(id) {
            Some(k) => self
                .map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&k)
                .is_some(),
            None => false,
        }
    }

    /// How many sessions are held (expired ones included until next looked at).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Auth {
    /// Opens a console session for a user whose password was just verified.
    pub fn open_session(&self, user: &str) -> Result<Opened, AuthError> {
        let rec = self
            .inner
            .meta
            .user(user)?
            .ok_or(AuthError::BadCredentials)?;
        self.inner
            .sessions
            .open(user, &rec.password_hash, Instant::now())
            .map_err(AuthError::Internal)
    }

    /// The principal behind a session cookie, judged by the user's current record, and the
    /// session's CSRF token. `None` when the session is unknown, expired, or its user was
    /// deleted or changed password since (the session is then closed).
    pub fn session(&self, id: &str) -> Option<(Principal, Found)> {
        let found = self.inner.sessions.find(id, Instant::now())?;
        let rec = match self.inner.meta.user(&found.user) {
            Ok(Some(rec)) if credential_of(&rec.password_hash) == found.credential => rec,
            Ok(_) => {
                self.inner.sessions.close(id);
                tracing::info!(user = %found.user, "closed a console session: the user was deleted or changed password");
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a user for a console session");
                return None;
            }
        };
        if super::robot_expired(&rec) {
            self.inner.sessions.close(id);
            return None;
        }
        Some((principal_of(&found.user, &rec), found))
    }

    /// Signs a session out; whether it was open.
    pub fn close_session(&self, id: &str) -> bool {
        self.inner.sessions.close(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{password, AuthSettings};
    use crate::meta::{Meta, UserRecord};

    /// Regression: any signed-in principal could evict every console session (an
    /// administrator's too) by signing in 10,001 times.
    #[test]
    fn one_account_signing_in_again_and_again_evicts_only_its_own_sessions() {
        let s = Sessions::default();
        let t = Instant::now();
        let admin = s.open("admin", "hash-a", t).unwrap();
        let first_robot = s.open("robot$ci", "hash-r", t).unwrap();
        for i in 1..=10_050u64 {
            s.open("robot$ci", "hash-r", t + Duration::from_millis(i))
                .unwrap();
        }
        assert!(s.find(&admin.id, t + Duration::from_secs(20)).is_some());
        assert!(s
            .find(&first_robot.id, t + Duration::from_secs(20))
            .is_none());
        assert_eq!(s.len(), 1 + MAX_PER_USER);
    }

    #[test]
    fn ids_are_random_and_only_issued_ids_are_found() {
        let s = Sessions::default();
        let t = Instant::now();
        let a = s.open("alice", "hash", t).unwrap();
        let b = s.open("alice", "hash", t).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        assert_ne!(a.id, a.csrf);
        assert_eq!(a.id.len(), 43, "32 random bytes, base64url");
        assert_eq!(s.find(&a.id, t).unwrap().user, "alice");
        assert_eq!(s.find(&a.id, t).unwrap().csrf, a.csrf);
        for bad in ["", "x", &a.csrf, &a.id[..42], "!!!!", &format!("{}A", a.id)] {
            assert!(s.find(bad, t).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_lifetime() {
        let s = Sessions::new(Duration::from_secs(10), Duration::from_secs(25));
        let t = Instant::now();
        let a = s.open("alice", "h", t).unwrap();
        // Used every 8 s: stays open while idle < 10 s, until the 25 s lifetime.
        for i in 1..=3 {
            assert!(s.find(&a.id, t + Duration::from_secs(8 * i)).is_some());
        }
        assert!(s.find(&a.id, t + Duration::from_secs(25)).is_none());
        assert!(s.is_empty(), "an expired session is removed when found");
        let b = s.open("bob", "h", t).unwrap();
        assert!(s.find(&b.id, t + Duration::from_secs(10)).is_none(), "idle");
    }

    #[test]
    fn close_revokes() {
        let s = Sessions::default();
        let t = Instant::now();
        let a = s.open("alice", "h", t).unwrap();
        assert!(s.close(&a.id));
        assert!(!s.close(&a.id));
        assert!(s.find(&a.id, t).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::new(Duration::from_secs(10), Duration::from_secs(100));
        let t = Instant::now();
        let first = s.open("u", "h", t).unwrap();
        // Many accounts, each within its own bound.
        for i in 1..MAX_SESSIONS + 5 {
            let user = format!("u{}", i % (MAX_SESSIONS / MAX_PER_USER + 1));
            s.open(&user, "h", t + Duration::from_millis(i as u64))
                .unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            s.find(&first.id, t).is_none(),
            "the least recently used went"
        );
    }

    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn sessions_end_with_the_user_or_their_password() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Meta::open(&tmp.path().join("meta")).unwrap();
        let auth = Auth::open(meta.clone(), tmp.path(), AuthSettings::default()).unwrap();
        let user = |pw: &str, admin: bool| UserRecord {
            password_hash: password::hash(pw).unwrap(),
            admin,
            groups: vec![],
            created_at: 0,
            robot: None,
        };
        meta.put_user("alice", &user("pw", false)).unwrap();
        let s = auth.open_session("alice").unwrap();
        let (p, found) = auth.session(&s.id).unwrap();
        assert_eq!((p.name(), p.is_admin()), ("alice", false));
        assert_eq!(found.csrf, s.csrf);
        // Rights follow the user's record at once.
        let mut rec = meta.user("alice").unwrap().unwrap();
        rec.admin = true;
        meta.put_user("alice", &rec).unwrap();
        assert!(auth.session(&s.id).unwrap().0.is_admin());
        // A new password ends it.
        meta.put_user("alice", &user("pw2", false)).unwrap();
        assert!(auth.session(&s.id).is_none());
        // So does deletion, even if the name comes back with the same password.
        let s = auth.open_session("alice").unwrap();
        meta.delete_user("alice").unwrap();
        assert!(auth.session(&s.id).is_none());
        meta.put_user("alice", &user("pw2", false)).unwrap();
        assert!(auth.session(&s.id).is_none());
        assert!(matches!(
            auth.open_session("nobody"),
            Err(AuthError::BadCredentials)
        ));
    }
}
