//! Tokens: issued for a login or a refresh token, verified on every request, and what a
//! token's access entries grant.

use super::*;

impl Auth {
    /// The principal behind a refresh token (docker's stored identity token).
    pub fn redeem_refresh(&self, token: &str) -> Result<Principal, AuthError> {
        let rec = self
            .inner
            .meta
            .refresh_token(&sha256_hex(token))?
            .filter(|r| r.expires_at > now())
            .ok_or(AuthError::BadCredentials)?;
        let user = self
            .inner
            .meta
            .user(&rec.user)?
            .ok_or(AuthError::BadCredentials)?;
        // A robot that has expired since the token was issued is refused here too, as at a
        // password login: every grant checks it, not just the first.
        if robot_expired(&user) {
            return Err(AuthError::BadCredentials);
        }
        Ok(principal_of(&rec.user, &user))
    }

    pub fn verify_token(&self, token: &str) -> Result<Claims, TokenError> {
        self.inner.keys.verify(token, now())
    }

    /// Issues an access token granting, for each requested scope, the requested actions the
    /// principal actually has (possibly none: the entry is then listed with no actions, as
    /// the token spec describes). With `offline`, a refresh token comes too.
    pub fn issue(
        &self,
        p: &Principal,
        scopes: &[Scope],
        offline: bool,
    ) -> crate::error::Result<TokenResponse> {
        let access: Vec<Access> = scopes
            .iter()
            .map(|s| match s {
                Scope::Repository { name, actions } => Access {
                    kind: "repository".into(),
                    name: name.clone(),
                    actions: actions
                        .intersect(self.allowed(p, name))
                        .names()
                        .into_iter()
                        .map(String::from)
                        .collect(),
                },
                Scope::Catalog => Access {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: if matches!(p, Principal::Anonymous) {
                        vec![]
                    } else {
                        vec!["*".into()]
                    },
                },
                Scope::Admin => Access {
                    kind: "registry".into(),
                    name: "admin".into(),
                    actions: if p.is_admin() {
                        vec!["*".into()]
                    } else {
                        vec![]
                    },
                },
            })
            .collect();
        let t = now();
        let lifetime = self.inner.settings.token_lifetime.as_secs();
        let claims = Claims {
            iss: self.inner.keys.issuer().to_string(),
            sub: p.name().to_string(),
            aud: self.inner.keys.service().to_string(),
            exp: t + lifetime,
            nbf: t,
            iat: t,
            jti: password::random_secret()?,
            access,
        };
        let token = self.inner.keys.sign(&claims)?;
        let refresh_token = match (offline, p) {
            (true, Principal::User { name, .. } | Principal::Robot { name, .. }) => {
                let secret = password::random_secret()?;
                // A robot's refresh token lives no longer than the robot.
                let robot_end = self
                    .inner
                    .meta
                    .user(name)?
                    .and_then(|u| u.robot)
                    .and_then(|r| r.expires_at);
                let rec = RefreshRecord {
                    user: name.clone(),
                    created_at: t,
                    expires_at: (t + self.inner.settings.refresh_lifetime.as_secs())
                        .min(robot_end.unwrap_or(u64::MAX)),
                };
                self.inner
                    .meta
                    .put_refresh_token(&sha256_hex(&secret), &rec)?;
                Some(secret)
            }
            _ => None,
        };
        let issued_at = time::OffsetDateTime::from_unix_timestamp(t as i64)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Ok(TokenResponse {
            token: token.clone(),
            access_token: token,
            expires_in: lifetime,
            issued_at,
            refresh_token,
            scope: None,
        })
    }
}

/// Whether a token was issued for the admin API (`registry:admin:*`, granted to an
/// administrator): a token fetched for pulls does not open the admin API, even an
/// administrator's.
pub fn token_opens_admin_api(c: &Claims) -> bool {
    c.access
        .iter()
        .any(|a| a.kind == "registry" && a.name == "admin" && a.actions.iter().any(|x| x == "*"))
}

/// What a token's access claim grants on `repo`; `None` when it does not mention `repo`.
pub fn token_entry(c: &Claims, repo: &str) -> Option<Actions> {
    c.access
        .iter()
        .filter(|a| a.kind == "repository" && a.name == repo)
        .map(|a| Actions::parse_lenient(&a.actions.join(",")))
        .reduce(Actions::union)
}

pub(super) fn token_grants(c: &Claims, repo: &str) -> Actions {
    token_entry(c, repo).unwrap_or(Actions::NONE)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{add_user, robot, setup};
    use super::*;
    use crate::auth::{AuthError, Caller, Scope};
    use crate::meta::{now, RuleRecord};

    #[tokio::test]
    async fn tokens_grant_the_intersection_of_request_and_rules() {
        let (_t, auth, meta) = setup();
        add_user(&meta, "alice", "pw");
        meta.add_rule(&RuleRecord {
            subject: "user:alice".into(),
            repos: "team/**".into(),
            actions: vec!["pull".into()],
        })
        .unwrap();
        auth.reload_rules().unwrap();
        let p = auth
            .login("alice", "pw", "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        let scopes = Scope::parse_all(["repository:team/app:pull,push repository:other/x:pull"]);
        let resp = auth.issue(&p, &scopes, true).unwrap();
        let claims = auth.verify_token(&resp.token).unwrap();
        assert_eq!(token_entry(&claims, "team/app"), Some(Actions::PULL));
        assert_eq!(token_entry(&claims, "other/x"), Some(Actions::NONE));
        assert_eq!(token_entry(&claims, "unmentioned/x"), None);
        assert!(auth.permits(&Caller::Token(claims.clone()), "team/app", Actions::PULL));
        assert!(!auth.permits(&Caller::Token(claims), "team/app", Actions::PUSH));
        // The refresh token stands for alice until she is deleted.
        let refresh = resp.refresh_token.unwrap();
        assert_eq!(auth.redeem_refresh(&refresh).unwrap().name(), "alice");
        assert!(matches!(
            auth.redeem_refresh("made-up"),
            Err(AuthError::BadCredentials)
        ));
        meta.delete_user("alice").unwrap();
        assert!(auth.redeem_refresh(&refresh).is_err());
    }

    /// Regression: an expired robot kept its access for 90 days through the refresh token
    /// docker stores, since the refresh grant never checked the robot's expiry.
    #[tokio::test]
    async fn a_robots_refresh_token_ends_with_the_robot() {
        let (_t, auth, meta) = setup();
        let robot = |expires_at| robot("edge/**", "pull", Some(expires_at));
        let day = now() + 86_400;
        meta.put_user("robot$line3", &robot(day)).unwrap();
        let p = auth
            .login("robot$line3", "robot-secret", "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        let refresh = auth.issue(&p, &[], true).unwrap().refresh_token.unwrap();
        let rec = meta.refresh_token(&sha256_hex(&refresh)).unwrap().unwrap();
        assert_eq!(rec.expires_at, day, "no longer than the robot");
        assert_eq!(auth.redeem_refresh(&refresh).unwrap().name(), "robot$line3");

        // The robot expires: its refresh token is refused from then on.
        meta.put_user("robot$line3", &robot(now() - 1)).unwrap();
        assert!(matches!(
            auth.redeem_refresh(&refresh),
            Err(AuthError::BadCredentials)
        ));
    }
}
