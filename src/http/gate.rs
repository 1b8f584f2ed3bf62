//! Finding the caller in a request (Basic or Bearer credentials) and answering for missing
//! rights the way docker expects: 401 with a Bearer challenge that sends the client to the
//! token endpoint, 403 DENIED when the credentials are fine but the rights are not, and 429
//! when logins are being throttled.

use std::net::SocketAddr;

use base64::Engine;
use http::Request;

use crate::auth::{token_entry, Actions, Auth, AuthError, Caller, Principal};
use crate::error::{Error, ErrorCode, Result};

/// The caller of one request and the means to judge it. With authentication off, every
/// question is answered yes.
pub struct Gate {
    auth: Option<Auth>,
    caller: Caller,
    /// Token endpoint announced in challenges.
    realm: String,
    /// The connection's address: who an anonymous caller is, for per-client bounds.
    peer: std::net::IpAddr,
    /// The console session the caller came with (cookie), if any.
    session: Option<super::cookie::SessionRef>,
}

pub use crate::auth::limiter::client_address;

/// Credentials as they appear in an `Authorization` header.
pub enum Credentials {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

pub fn credentials<B>(req: &Request<B>) -> Result<Credentials> {
    let Some(v) = req.headers().get(http::header::AUTHORIZATION) else {
        return Ok(Credentials::None);
    };
    let malformed = || Error::api(ErrorCode::Unauthorized, "malformed Authorization header");
    let v = v.to_str().map_err(|_| malformed())?;
    let (scheme, rest) = v.split_once(' ').ok_or_else(malformed)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| malformed())?;
        let text = String::from_utf8(raw).map_err(|_| malformed())?;
        let (user, password) = text.split_once(':').ok_or_else(malformed)?;
        Ok(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credentials::Bearer(rest.trim().to_string()))
    } else {
        Err(malformed())
    }
}

/// Turns a failed login into its answer; the reason is never more specific than this.
pub fn login_error(e: AuthError) -> Error {
    match e {
        AuthError::BadCredentials => {
            Error::api(ErrorCode::Unauthorized, "incorrect username or password")
        }
        AuthError::Throttled(wait) => {
            let secs = wait.as_secs().max(1);
            Error::api(
                ErrorCode::TooManyRequests,
                format!("too many failed logins: try again in {secs} s"),
            )
            .with_header(http::header::RETRY_AFTER, secs.to_string())
        }
        AuthError::Internal(e) => e,
    }
}

/// `https://HOST/token` from the request's own Host, unless configured.
fn realm<B>(auth: &Auth, req: &Request<B>, tls: bool) -> String {
    if let Some(r) = auth.realm() {
        return r.to_string();
    }
    let host = super::cookie::request_host(req)
        .map(str::to_string)
        // Only what a host[:port] is made of: the value lands inside a quoted challenge
        // parameter, where a quote or backslash would let a client rewrite the challenge.
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
                })
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{}://{host}/token", if tls { "https" } else { "http" })
}

impl Gate {
    /// Authentication off: everything is allowed.
    pub fn open(peer: SocketAddr) -> Gate {
        Gate {
            auth: None,
            caller: Caller::Anonymous,
            realm: String::new(),
            peer: peer.ip(),
            session: None,
        }
    }

    /// The logged-in user or robot, for the request log; `None` when anonymous.
    pub fn user(&self) -> Option<&str> {
        let name = match &self.caller {
            Caller::Anonymous => "",
            Caller::Principal(p) => p.name(),
            Caller::Token(c) => c.sub.as_str(),
        };
        (!name.is_empty()).then_some(name)
    }

    /// Who the caller is for per-client bounds (open upload sessions): the user or robot
    /// when logged in (wherever it connects from), else the address it connects from.
    pub fn client(&self) -> String {
        match self.user() {
            Some(name) => format!("user {name}"),
            None => format!("address {}", client_address(self.peer)),
        }
    }

    /// Identifies the caller. Bad credentials fail here; missing rights are judged later.
    pub async fn identify<B>(
        auth: &Auth,
        req: &Request<B>,
        peer: SocketAddr,
        tls: bool,
    ) -> Result<Gate> {
        let realm = realm(auth, req, tls);
        let mut session = None;
        let caller = match credentials(req)? {
            Credentials::None => match super::cookie::identify(auth, req)? {
                Some((p, s)) => {
                    session = Some(s);
                    Caller::Principal(p)
                }
                None => Caller::Anonymous,
            },
            Credentials::Basic { user, password } => Caller::Principal(
                auth.login(&user, &password, peer.ip())
                    .await
                    .map_err(login_error)?,
            ),
            Credentials::Bearer(t) => match auth.verify_token(&t) {
                Ok(c) => Caller::Token(c),
                Err(e) => {
                    crate::metrics::global().auth_failure("invalid_token");
                    return Err(challenge(
                        auth,
                        &realm,
                        None,
                        Some(("invalid_token", e.to_string())),
                    ));
                }
            },
        };
        Ok(Gate {
            auth: Some(auth.clone()),
            caller,
            realm,
            peer: peer.ip(),
            session,
        })
    }

    /// The console session of this request, when it was made with the session cookie.
    pub fn session(&self) -> Option<&super::cookie::SessionRef> {
        self.session.as_ref()
    }

    pub fn can(&self, repo: &str, needed: Actions) -> bool {
        self.granted(repo).contains(needed)
    }

    /// Everything the caller may do on `repo` (all of it when authentication is off).
    pub fn granted(&self, repo: &str) -> Actions {
        match &self.auth {
            None => Actions::ALL,
            Some(a) => a.granted(&self.caller, repo),
        }
    }

    pub fn is_admin(&self) -> bool {
        match (&self.auth, &self.caller) {
            (None, _) => true,
            (Some(_), Caller::Principal(p)) => p.is_admin(),
            (Some(a), c @ Caller::Token(_)) => a.principal_for(c).is_admin(),
            _ => false,
        }
    }

    /// The caller as a principal, for listings judged by rules.
    pub fn principal(&self) -> Principal {
        match &self.auth {
            None => Principal::User {
                name: String::new(),
                admin: true,
                groups: vec![],
            },
            Some(a) => a.principal_for(&self.caller),
        }
    }

    /// Requires any valid login (the `/v2/` check docker makes before anything else).
    pub fn require_login(&self) -> Result<()> {
        match (&self.auth, &self.caller) {
            (Some(a), Caller::Anonymous) => Err(challenge(a, &self.realm, None, None)),
            _ => Ok(()),
        }
    }

    /// Requires an administrator (the admin API). Open when authentication is off.
    pub fn require_admin(&self) -> Result<()> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if matches!(self.caller, Caller::Anonymous) {
            return Err(challenge(auth, &self.realm, Some(ADMIN_SCOPE), None));
        }
        if let Caller::Token(c) = &self.caller {
            // A token must have been issued for the admin API, as repository tokens are for
            // their repositories: a pull token leaked from a pipeline opens nothing here.
            if self.is_admin() && !crate::auth::token_opens_admin_api(c) {
                return Err(self.insufficient_scope(&[ADMIN_SCOPE.to_string()]));
            }
        }
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::api(
                ErrorCode::Denied,
                "requested access to the resource is denied",
            )
            .with_detail(serde_json::json!({ "required": "admin" })))
        }
    }

    /// Whether the caller's principal may do `needed` on `repo` under the current rules,
    /// whatever a token it came with covers: what a fresh token would grant.
    fn could(&self, repo: &str, needed: Actions) -> bool {
        match &self.auth {
            None => true,
            Some(a) => a
                .allowed(&a.principal_for(&self.caller), repo)
                .contains(needed),
        }
    }

    /// A filter for listings that name repositories (the catalog): whether the caller's
    /// principal may pull `repo` under the current rules. A token is judged by its subject,
    /// not its scopes: clients fetch it for `registry:catalog:*`, which names no repository.
    pub fn lister(&self) -> impl Fn(&str) -> bool + '_ {
        let principal = self.auth.as_ref().map(|a| a.principal_for(&self.caller));
        move |repo| match (&self.auth, &principal) {
            (Some(a), Some(p)) => a.allowed(p, repo).contains(Actions::PULL),
            _ => true,
        }
    }

    /// Requires `needed` on `repo`.
    pub fn require(&self, repo: &str, needed: Actions) -> Result<()> {
        self.require_mounting(repo, needed, None)
    }

    /// Requires `needed` on `repo`; a challenge also asks for pull on `mount_from`, the
    /// source of a cross-repository mount, as distribution does, so that a client that
    /// follows challenges gets a token that lets the mount succeed.
    pub fn require_mounting(
        &self,
        repo: &str,
        needed: Actions,
        mount_from: Option<&str>,
    ) -> Result<()> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if auth.permits(&self.caller, repo, needed) {
            return Ok(());
        }
        let mut scopes = vec![scope(repo, needed)];
        scopes.extend(mount_from.map(|f| scope(f, Actions::PULL)));
        match &self.caller {
            // No credentials: ask for a token with these scopes.
            Caller::Anonymous => Err(challenge(auth, &self.realm, Some(&scopes.join(" ")), None)),
            // A token obtained for other repositories, or for fewer actions than the rules
            // grant its subject: ask for a token with this scope (docker, oras and python-dxf
            // then fetch one; a token with the right is all they lack).
            Caller::Token(c) if token_entry(c, repo).is_none() || self.could(repo, needed) => {
                Err(self.insufficient_scope(&scopes))
            }
            // Credentials are fine, the rights are not: docker prints
            // "denied: requested access to the resource is denied".
            _ => Err(Error::code(ErrorCode::Denied)),
        }
    }

    /// For a mount from `from`: `Ok(true)` when the caller may pull it, `Ok(false)` when it
    /// may not (the client then uploads), and a challenge when it came with a token that
    /// lacks a pull its rules grant (the client fetches a token with it and mounts).
    pub fn may_mount_from(&self, target: &str, from: &str) -> Result<bool> {
        if self.can(from, Actions::PULL) {
            return Ok(true);
        }
        match &self.caller {
            Caller::Token(_) if self.could(from, Actions::PULL) => Err(self
                .insufficient_scope(&[scope(target, Actions::PUSH), scope(from, Actions::PULL)])),
            _ => Ok(false),
        }
    }

    fn insufficient_scope(&self, scopes: &[String]) -> Error {
        let Some(auth) = &self.auth else {
            return Error::code(ErrorCode::Denied);
        };
        challenge(
            auth,
            &self.realm,
            Some(&scopes.join(" ")),
            Some((
                "insufficient_scope",
                "the token does not grant this access; ask for a token with the scope named in the challenge".into(),
            )),
        )
    }
}

/// The scope a token needs for the admin API.
const ADMIN_SCOPE: &str = "registry:admin:*";

/// `repository:NAME:ACTIONS` as docker writes it: a push or delete also asks for pull.
fn scope(repo: &str, needed: Actions) -> String {
    let mut words = needed.names();
    if !words.contains(&"pull") && !needed.is_empty() {
        words.insert(0, "pull");
    }
    format!("repository:{repo}:{}", words.join(","))
}

fn challenge(
    auth: &Auth,
    realm: &str,
    scope: Option<&str>,
    error: Option<(&str, String)>,
) -> Error {
    let mut v = format!("Bearer realm=\"{realm}\",service=\"{}\"", auth.service());
    if let Some(s) = scope {
        v.push_str(&format!(",scope=\"{s}\""));
    }
    let message = match &error {
        Some((code, why)) => {
            v.push_str(&format!(",error=\"{code}\""));
            why.clone()
        }
        None => "authentication required".into(),
    };
    Error::api(ErrorCode::Unauthorized, message).with_header(http::header::WWW_AUTHENTICATE, v)
}
