//! Password logins: verified off the async threads, a few at a time, throttled per client
//! and per (user, client), and cached briefly so that a pull of many layers hashes once.

use super::*;

impl Auth {
    /// Checks a user name and password, throttling repeated failures per client address and
    /// per user. Verified credentials are cached briefly (keyed by a hash of both), so a pull
    /// of many layers runs argon2 once. The hash itself runs on the blocking pool, at most
    /// [`HASHING_AT_ONCE`] at a time: the async threads keep serving meanwhile, and requests
    /// that queued with the same credentials find them cached when their turn comes (when
    /// the cache entry of a busy client expires, one check serves them all).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Principal, AuthError> {
        let key = {
            let mut h = sha2::Sha256::new();
            h.update(user.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
            <[u8; 32]>::from(h.finalize())
        };
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let client = limiter::client_address(client);
        let ip_key = format!("ip:{client}");
        if check_user_name(user).is_err() {
            // No account can have this name: refused without hashing anything, counted
            // against the address only, and logged as a short escaped prefix (a name may be
            // hundreds of kilobytes of anything).
            if let Some(wait) = self.inner.limiter.wait(&ip_key, Instant::now()) {
                self.refused("throttled");
                return Err(AuthError::Throttled(wait));
            }
            tracing::info!(user = %name_prefix(user), %client, "login failed: no such user name can exist");
            self.refused("bad_credentials");
            self.inner.limiter.failure(&ip_key, Instant::now());
            return Err(AuthError::BadCredentials);
        }
        // Failures count per address and per (user, address): a client that guesses slows
        // itself, never the user it guesses for when they log in from elsewhere.
        let user_key = format!("user:{user}@{client}");
        let throttled = |now_i| {
            for k in [&ip_key, &user_key] {
                if let Some(wait) = self.inner.limiter.wait(k, now_i) {
                    self.refused("throttled");
                    return Err(AuthError::Throttled(wait));
                }
            }
            Ok(())
        };
        throttled(Instant::now())?;
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .map_err(|e| crate::error::Error::internal("waiting to hash a password", e))?;
        // While this request waited its turn, another may have checked the same credentials
        // or run into the throttle.
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let now_i = Instant::now();
        throttled(now_i)?;
        let rec = self.inner.meta.user(user)?;
        self.inner.password_checks.fetch_add(1, Ordering::Relaxed);
        // Unknown users cost the same work, so timing does not tell which names exist.
        let stored = rec
            .as_ref()
            .map_or_else(|| dummy_hash().to_string(), |r| r.password_hash.clone());
        let given = password.to_string();
        let matched = tokio::task::spawn_blocking(move || password::verify(&given, &stored))
            .await
            .map_err(|e| crate::error::Error::internal("verifying a password", e))?;
        let ok = matched && rec.is_some();
        let expired = rec.as_ref().is_some_and(robot_expired);
        let Some(rec) = rec.filter(|_| ok && !expired) else {
            tracing::info!(user, %client, "login failed");
            self.refused("bad_credentials");
            self.inner.limiter.failure(&ip_key, now_i);
            self.inner.limiter.failure(&user_key, now_i);
            return Err(AuthError::BadCredentials);
        };
        tracing::debug!(user, "verified a password hash");
        self.inner.limiter.success(&user_key);
        if password::is_bcrypt(&rec.password_hash) {
            // Imported from htpasswd: upgrade to argon2id now that we know the password.
            if let Ok(h) = password::hash(password) {
                let upgraded = UserRecord {
                    password_hash: h,
                    ..rec.clone()
                };
                if self.inner.meta.put_user(user, &upgraded).is_ok() {
                    tracing::info!(user, "rehashed an imported bcrypt password with argon2id");
                }
            }
        }
        let p = principal_of(user, &rec);
        let mut cache = self.inner.cache.lock().unwrap_or_else(|x| x.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (p.clone(), now_i));
        Ok(p)
    }

    /// The principal of recently verified credentials (by the hash of name and password).
    fn cached(&self, key: &[u8; 32]) -> Option<Principal> {
        let cache = self.inner.cache.lock().unwrap_or_else(|x| x.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }
}

/// An argon2id hash of a random string, verified against for unknown user names so that
/// they cost the same time as known ones.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        password::random_secret()
            .and_then(|s| password::hash(&s))
            .unwrap_or_default()
    })
}
