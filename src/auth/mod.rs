//! Authentication and authorization: users (argon2id), docker's token protocol (ES256 JWTs
//! with refresh tokens), HTTP Basic with a short cache of verified credentials, access rules
//! per repository glob, robot accounts, and failed-login throttling.
//!
//! Who may do what is decided here; `http` only finds the credentials in a request and shapes
//! the 401/403/429 answers.

mod accounts;
pub mod admin;
mod bootstrap;
mod issue;
pub mod limiter;
mod login;
mod names;
pub mod password;
pub mod rules;
pub mod scope;
pub mod session;
pub mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::meta::{now, Meta, RefreshRecord, UserRecord};
/// The records an administrator writes rules and robot grants as.
pub use crate::meta::{GrantRecord, RuleRecord};
pub use accounts::Accounts;
use issue::token_grants;
pub use issue::{token_entry, token_opens_admin_api};
pub use names::{check_user_name, Invalid};
pub use rules::{Actions, Principal, Rule, Subject};
pub use scope::Scope;
pub use token::{Access, Claims, TokenError, TokenKeys};

/// Prefix that marks robot account names (as Harbor spells them).
pub const ROBOT_PREFIX: &str = "robot$";
/// How long a verified Basic credential is trusted without re-running argon2.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 4096;
/// Password hashes verified at once. argon2id as configured takes 19 MiB and tens of
/// milliseconds of a core per check: unbounded, a burst of logins (or of wrong passwords
/// from many addresses) would take hundreds of megabytes and every core of a small box.
const HASHING_AT_ONCE: usize = 2;

#[derive(Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The `service` tokens are issued for (their audience).
    pub service: String,
    pub issuer: String,
    pub token_lifetime: Duration,
    pub refresh_lifetime: Duration,
    /// Token endpoint URL announced in challenges; default: this server's `/token`.
    pub realm: Option<String>,
    /// Initial admin password (from a file or the environment) instead of a random one.
    pub admin_password: Option<String>,
    /// `/metrics` answers logged-in callers only (a monitoring robot with Basic auth).
    pub metrics_login: bool,
}

/// Written by hand so the initial admin password can never reach a log line.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("token_lifetime", &self.token_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("realm", &self.realm)
            .field("metrics_login", &self.metrics_login)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            service: "edgeyard".into(),
            issuer: "edgeyard".into(),
            token_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(90 * 24 * 3600),
            realm: None,
            admin_password: None,
            metrics_login: false,
        }
    }
}

/// Why a login failed. Deliberately unspecific towards the client: unknown user and wrong
/// password look the same.
#[derive(Debug)]
pub enum AuthError {
    BadCredentials,
    Throttled(Duration),
    /// The store or the machine failed, not the caller.
    Internal(crate::error::Error),
}

impl From<crate::error::Error> for AuthError {
    fn from(e: crate::error::Error) -> AuthError {
        AuthError::Internal(e)
    }
}

/// The caller of one request.
#[derive(Clone, Debug)]
pub enum Caller {
    Anonymous,
    /// Credentials checked against the user store (HTTP Basic).
    Principal(Principal),
    /// A bearer token: what it grants is in its claims.
    Token(Claims),
}

/// The answer to a token request.
#[derive(serde::Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Meta,
    keys: TokenKeys,
    settings: AuthSettings,
    rules: RwLock<Arc<Vec<Rule>>>,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    limiter: limiter::Limiter,
    password_checks: AtomicU64,
    /// Permits to run a password hash (see [`HASHING_AT_ONCE`]).
    hashing: tokio::sync::Semaphore,
    /// Web console sessions (`session`).
    sessions: session::Sessions,
    /// Told why each refused login or token was refused (the server counts them in its
    /// metrics); nobody until set.
    on_refusal: std::sync::OnceLock<Refusals>,
}

/// See [`Auth::count_refusals`].
pub type Refusals = Arc<dyn Fn(&'static str) + Send + Sync>;

/// At most 64 characters of a name someone tried to log in with, escaped, for the log.
fn name_prefix(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().nth(64).is_some() {
        out.push_str(&format!("... ({} bytes)", name.len()));
    }
    out
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Parses stored rules; a rule that no longer parses is skipped with an error in the log
/// rather than silently granting anything.
pub fn load_rules(meta: &Meta) -> crate::error::Result<Vec<Rule>> {
    let mut out = Vec::new();
    for (id, r) in meta.rules()? {
        let parsed = Subject::parse(&r.subject)
            .and_then(|s| Actions::parse(r.actions.iter().map(String::as_str)).map(|a| (s, a)));
        match parsed {
            Ok((subject, actions)) => out.push(Rule {
                id,
                subject,
                repos: r.repos,
                actions,
            }),
            Err(e) => tracing::error!(rule = id, error = %e, "ignoring an unreadable access rule"),
        }
    }
    Ok(out)
}

/// The principal a user record stands for.
/// Whether `rec` is a robot account past its expiry date.
fn robot_expired(rec: &UserRecord) -> bool {
    rec.robot
        .as_ref()
        .and_then(|r| r.expires_at)
        .is_some_and(|t| t <= now())
}

pub fn principal_of(name: &str, rec: &UserRecord) -> Principal {
    match &rec.robot {
        Some(robot) => Principal::Robot {
            name: name.to_string(),
            grants: robot
                .grants
                .iter()
                .map(|g| {
                    (
                        g.repos.clone(),
                        Actions::parse(g.actions.iter().map(String::as_str)).unwrap_or_default(),
                    )
                })
                .collect(),
        },
        None => Principal::User {
            name: name.to_string(),
            admin: rec.admin,
            groups: rec.groups.clone(),
        },
    }
}

impl Auth {
    /// Opens the user store and token key; creates the first admin account if there is none.
    pub fn open(meta: Meta, data_dir: &Path, settings: AuthSettings) -> crate::error::Result<Auth> {
        let keys = TokenKeys::load_or_create(
            &data_dir.join("auth/token-signing.key"),
            &settings.issuer,
            &settings.service,
        )?;
        let rules = load_rules(&meta)?;
        let auth = Auth {
            inner: Arc::new(Inner {
                meta,
                keys,
                settings,
                rules: RwLock::new(Arc::new(rules)),
                cache: Mutex::new(HashMap::new()),
                limiter: limiter::Limiter::default(),
                password_checks: AtomicU64::new(0),
                hashing: tokio::sync::Semaphore::new(HASHING_AT_ONCE),
                sessions: session::Sessions::default(),
                on_refusal: std::sync::OnceLock::new(),
            }),
        };
        auth.bootstrap_admin(data_dir)?;
        Ok(auth)
    }

    /// Installs who is told the reason of every refused login or token: `throttled`,
    /// `bad_credentials`, `invalid_token`, `csrf` (once; later calls are ignored).
    pub fn count_refusals(&self, f: Refusals) {
        let _ = self.inner.on_refusal.set(f);
    }

    /// Reports a refusal (see [`Auth::count_refusals`]).
    pub fn refused(&self, reason: &'static str) {
        if let Some(f) = self.inner.on_refusal.get() {
            f(reason);
        }
    }
    pub fn service(&self) -> &str {
        self.inner.keys.service()
    }

    pub fn realm(&self) -> Option<&str> {
        self.inner.settings.realm.as_deref()
    }

    /// Whether `/metrics` needs a login.
    pub fn metrics_login(&self) -> bool {
        self.inner.settings.metrics_login
    }

    /// How many password hashes were verified (argon2 or bcrypt runs) since start.
    pub fn password_checks(&self) -> u64 {
        self.inner.password_checks.load(Ordering::Relaxed)
    }

    /// Re-reads the access rules (after the admin API changed them).
    pub fn reload_rules(&self) -> crate::error::Result<()> {
        let rules = load_rules(&self.inner.meta)?;
        *self.inner.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        Ok(())
    }

    /// Forgets every cached credential (after users changed).
    pub fn clear_cache(&self) {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn rules(&self) -> Arc<Vec<Rule>> {
        self.inner
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What `p` may do on `repo`.
    pub fn allowed(&self, p: &Principal, repo: &str) -> Actions {
        let granted = p.allowed(repo, &self.rules());
        // Public repositories: pull for everyone but robots, which keep to their grants.
        if !matches!(p, Principal::Robot { .. }) && self.is_public(repo) {
            granted.union(Actions::PULL)
        } else {
            granted
        }
    }

    fn is_public(&self, repo: &str) -> bool {
        repo.parse::<crate::oci::RepoName>()
            .ok()
            .and_then(|r| self.inner.meta.repo_record(&r).ok().flatten())
            .is_some_and(|r| r.public)
    }

    /// Whether a caller may do `needed` on `repo`.
    pub fn permits(&self, caller: &Caller, repo: &str, needed: Actions) -> bool {
        self.granted(caller, repo).contains(needed)
    }

    /// Everything `caller` may do on `repo`.
    pub fn granted(&self, caller: &Caller, repo: &str) -> Actions {
        match caller {
            Caller::Anonymous => self.allowed(&Principal::Anonymous, repo),
            Caller::Principal(p) => self.allowed(p, repo),
            Caller::Token(c) => token_grants(c, repo),
        }
    }

    /// For catalog listings: what the caller may pull, judged by current rules (a token
    /// names its subject; its scopes rarely list every repository).
    pub fn principal_for(&self, caller: &Caller) -> Principal {
        match caller {
            Caller::Anonymous => Principal::Anonymous,
            Caller::Principal(p) => p.clone(),
            Caller::Token(c) if c.sub.is_empty() => Principal::Anonymous,
            Caller::Token(c) => match self.inner.meta.user(&c.sub) {
                Ok(Some(rec)) => principal_of(&c.sub, &rec),
                _ => Principal::Anonymous,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{GrantRecord, RobotRecord};

    /// A fresh store and `Auth` on it (for the tests of every auth module).
    pub(super) fn setup() -> (tempfile::TempDir, Auth, Meta) {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Meta::open(&tmp.path().join("meta")).unwrap();
        let auth = Auth::open(meta.clone(), tmp.path(), AuthSettings::default()).unwrap();
        (tmp, auth, meta)
    }

    /// A robot with password `robot-secret` granted `action` on `repos`.
    pub(super) fn robot(repos: &str, action: &str, expires_at: Option<u64>) -> UserRecord {
        UserRecord {
            password_hash: password::hash("robot-secret").unwrap(),
            admin: false,
            groups: vec![],
            created_at: 0,
            robot: Some(RobotRecord {
                grants: vec![GrantRecord {
                    repos: repos.into(),
                    actions: vec![action.into()],
                }],
                expires_at,
            }),
        }
    }

    pub(super) fn add_user(meta: &Meta, name: &str, pw: &str) {
        meta.put_user(
            name,
            &UserRecord {
                password_hash: password::hash(pw).unwrap(),
                admin: false,
                groups: vec![],
                created_at: 0,
                robot: None,
            },
        )
        .unwrap();
    }

    #[tokio::test]
    async fn first_start_creates_admin_with_private_password_file() {
        let (tmp, auth, _) = setup();
        let file = tmp.path().join("admin-password");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pw = std::fs::read_to_string(&file).unwrap();
        let p = auth
            .login("admin", pw.trim(), "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        assert!(p.is_admin());
    }

    #[tokio::test]
    async fn logins_are_cached_and_throttled() {
        let (_t, auth, meta) = setup();
        add_user(&meta, "alice", "right");
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..50 {
            auth.login("alice", "right", ip).await.unwrap();
        }
        assert_eq!(auth.password_checks(), 1, "one argon2 run for 50 logins");
        for _ in 0..5 {
            assert!(matches!(
                auth.login("alice", "wrong", ip).await,
                Err(AuthError::BadCredentials)
            ));
        }
        assert!(matches!(
            auth.login("alice", "wrong", ip).await,
            Err(AuthError::Throttled(_))
        ));
        // Another address is not: failures slow the address they come from (see
        // `failed_logins_slow_the_address_that_fails_not_the_user_elsewhere`).
        assert!(matches!(
            auth.login("alice", "wrong", "10.0.0.2".parse().unwrap())
                .await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            auth.login("nobody", "x", "10.0.0.3".parse().unwrap()).await,
            Err(AuthError::BadCredentials)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_logins_with_the_same_credentials_hashes_at_most_twice() {
        let (_t, auth, meta) = setup();
        add_user(&meta, "alice", "right");
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let logins: Vec<_> = (0..32)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.login("alice", "right", ip).await })
            })
            .collect();
        for l in logins {
            assert_eq!(l.await.unwrap().unwrap().name(), "alice");
        }
        // Those that queued for a hashing permit found the credentials verified already.
        assert!(
            auth.password_checks() <= HASHING_AT_ONCE as u64,
            "{} checks",
            auth.password_checks()
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn password_hashing_leaves_the_async_thread_free() {
        let (_t, auth, meta) = setup();
        add_user(&meta, "alice", "right");
        let a = auth.clone();
        let login =
            tokio::spawn(
                async move { a.login("alice", "right", "10.0.0.8".parse().unwrap()).await },
            );
        // One turn of the only async thread: the login starts, and hands its argon2 run to
        // the blocking pool instead of holding this thread for its whole duration.
        tokio::task::yield_now().await;
        assert!(!login.is_finished(), "the hash ran on the async thread");
        assert_eq!(login.await.unwrap().unwrap().name(), "alice");
    }

    /// Regression: five wrong passwords for a user from one address throttled that user's
    /// correct password from every other address (anyone could lock anyone out).
    #[tokio::test]
    async fn failed_logins_slow_the_address_that_fails_not_the_user_elsewhere() {
        let (_t, auth, meta) = setup();
        add_user(&meta, "carol", "right");
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        for _ in 0..6 {
            let _ = auth.login("carol", "wrong", attacker).await;
        }
        assert!(matches!(
            auth.login("carol", "right", attacker).await,
            Err(AuthError::Throttled(_))
        ));
        let p = auth
            .login("carol", "right", "10.0.0.7".parse().unwrap())
            .await;
        assert_eq!(p.unwrap().name(), "carol");
        // IPv6 clients count by /64: another address of the attacker's /64 is the attacker.
        let v6: IpAddr = "2001:db8:1:2::66".parse().unwrap();
        for _ in 0..6 {
            let _ = auth.login("carol", "wrong", v6).await;
        }
        assert!(matches!(
            auth.login("dave", "x", "2001:db8:1:2:ffff::1".parse().unwrap())
                .await,
            Err(AuthError::Throttled(_))
        ));
    }

    /// A name no account can have (180 KB of anything) is refused without hashing, and
    /// leaves nothing of its size behind in the throttle.
    #[tokio::test]
    async fn impossible_user_names_are_refused_cheaply() {
        let (_t, auth, _meta) = setup();
        let before = auth.password_checks();
        let huge = "Z".repeat(180 << 10);
        for i in 0..3u8 {
            let ip = IpAddr::from([10, 1, 0, i]);
            assert!(matches!(
                auth.login(&huge, "pw", ip).await,
                Err(AuthError::BadCredentials)
            ));
        }
        assert_eq!(auth.password_checks(), before, "no argon2 run");
        assert!(name_prefix(&huge).len() < 100);
        assert_eq!(name_prefix("a\nb"), "a\\nb");
    }

    #[tokio::test]
    async fn robots_and_bcrypt_upgrade() {
        let (_t, auth, meta) = setup();
        meta.put_user("robot$ci", &robot("ci/**", "push", None))
            .unwrap();
        let p = auth
            .login("robot$ci", "robot-secret", "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        assert!(auth.allowed(&p, "ci/app").contains(Actions::PUSH));
        assert!(auth.allowed(&p, "prod/app").is_empty());

        meta.put_user(
            "legacy",
            &UserRecord {
                password_hash: bcrypt::hash("from-htpasswd", 4).unwrap(),
                admin: false,
                groups: vec![],
                created_at: 0,
                robot: None,
            },
        )
        .unwrap();
        auth.login("legacy", "from-htpasswd", "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        assert!(meta
            .user("legacy")
            .unwrap()
            .unwrap()
            .password_hash
            .starts_with("$argon2id$"));
    }
}
