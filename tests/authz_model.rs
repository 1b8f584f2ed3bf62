//! Model-based authorization test (issue 16 §1). A seeded generator builds users in groups,
//! administrators, robots, access rules (globs with `*` and `**`, every action, `user:`,
//! `group:`, `authenticated`, `anonymous`, a rule naming a robot), public repositories, and
//! repositories holding images, referrers and blobs shared between them; then thousands of
//! random operations run through every kind of credential (none, HTTP Basic, Bearer tokens
//! of random scopes, anonymous tokens, console session cookies): blob GET (whole and ranged),
//! HEAD (HTTP/1.1 and HTTP/2) and DELETE, mounts with and without `from`, manifests by tag,
//! by digest and by an impossible reference, referrers, tag lists, the catalog, other
//! clients' upload sessions (status, PATCH, PUT, DELETE), tag pushes and deletions, blob
//! pushes, the admin API and the console's API, in repositories that exist and that do not;
//! now and then the admin changes a rule or a repository's visibility.
//!
//! An oracle computed from the rules says what each caller may do and what each answer must
//! be: refusals exactly as docker expects them (401 challenge naming the scope, with
//! `insufficient_scope` for tokens, or 403 DENIED), allowed operations answered right (bytes,
//! digests, lengths, tag and repository lists equal to the model's). Every answer is also
//! searched, headers and body, for any repository name, tag, digest or upload id its caller
//! may not see; error answers must be bare spec errors (no content headers, no bytes), and
//! HEAD answers must have no body.
//!
//! `EDGEYARD_AUTHZ_SEED` fixes the seed (printed in every failure), `EDGEYARD_AUTHZ_OPS` the
//! number of operations (default 4,000: 10 to 30 s in a debug build), `EDGEYARD_AUTHZ_BIN`
//! another build of the server to put to the same model. Failures are gathered by kind
//! (count and first example, with seed and operation number) and reported together.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------------------
// Randomness

/// splitmix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit((self.next() % 16) as u32, 16).unwrap())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Actions and globs, as README "Users, logins and access rules" defines them

const PULL: u8 = 1;
const PUSH: u8 = 2;
const DELETE: u8 = 4;
const ADMIN: u8 = 8;
const ALL: u8 = 15;

fn expand(a: u8) -> u8 {
    let mut a = a;
    if a & ADMIN != 0 {
        a = ALL;
    }
    if a & (PUSH | DELETE) != 0 {
        a |= PULL;
    }
    a
}

fn parse_actions(s: &str) -> u8 {
    expand(s.split(',').fold(0, |a, w| {
        a | match w.trim() {
            "pull" => PULL,
            "push" => PUSH,
            "delete" => DELETE,
            "admin" | "*" => ADMIN,
            _ => 0,
        }
    }))
}

fn action_word(a: u8) -> &'static str {
    match a {
        PULL => "pull",
        PUSH => "push",
        DELETE => "delete",
        _ => "admin",
    }
}

/// `*` within a path segment, `**` across them, everything else literal.
fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[u8], n: &[u8]) -> bool {
        match g.first() {
            None => n.is_empty(),
            Some(b'*') if g.get(1) == Some(&b'*') => (0..=n.len()).any(|i| go(&g[2..], &n[i..])),
            Some(b'*') => {
                let end = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=end).any(|i| go(&g[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && go(&g[1..], &n[1..]),
        }
    }
    go(glob.as_bytes(), name.as_bytes())
}

// ---------------------------------------------------------------------------------------
// The model

#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
    Authenticated,
    Anonymous,
}

impl Subject {
    fn text(&self) -> String {
        match self {
            Subject::User(n) => format!("user:{n}"),
            Subject::Group(g) => format!("group:{g}"),
            Subject::Authenticated => "authenticated".into(),
            Subject::Anonymous => "anonymous".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Rule {
    id: u64,
    subject: Subject,
    repos: String,
    actions: u8,
}

struct Account {
    name: String,
    password: String,
    admin: bool,
    groups: Vec<String>,
    /// Robot grants (glob, actions); `None` for users.
    robot: Option<Vec<(String, u8)>>,
}

/// Who a caller is, for the rules: nobody, or an account (index into `Model::accounts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Who {
    Anon,
    Account(usize),
}

struct ManifestInfo {
    bytes: Vec<u8>,
    /// Blobs it references (config and layers).
    blobs: Vec<String>,
    subject: Option<String>,
}

#[derive(Default)]
struct Model {
    accounts: Vec<Account>,
    rules: Vec<Rule>,
    public: BTreeSet<String>,
    repos: Vec<String>,
    /// Blob digests linked into each repository.
    links: BTreeMap<String, BTreeSet<String>>,
    /// Manifest digests held by each repository.
    manifests: BTreeMap<String, BTreeSet<String>>,
    tags: BTreeMap<String, BTreeMap<String, String>>,
    /// (repository, subject digest) -> referrer digests.
    referrers: BTreeMap<(String, String), BTreeSet<String>>,
    blobs: BTreeMap<String, Vec<u8>>,
    manifest_info: BTreeMap<String, ManifestInfo>,
    /// Upload sessions opened by the admin at set-up: (repository, id, bytes held).
    sessions: Vec<(String, String, Vec<u8>)>,
    /// Repositories that do not exist: asked about, never created.
    ghosts: Vec<String>,
}

impl Model {
    fn is_admin(&self, who: Who) -> bool {
        matches!(who, Who::Account(i) if self.accounts[i].admin)
    }

    /// What `who` may do on `repo` under the current rules (README's semantics).
    fn rights(&self, who: Who, repo: &str) -> u8 {
        let acc = match who {
            Who::Anon => None,
            Who::Account(i) => Some(&self.accounts[i]),
        };
        if let Some(a) = acc {
            if a.admin {
                return ALL;
            }
            if let Some(grants) = &a.robot {
                return grants
                    .iter()
                    .filter(|(g, _)| glob_match(g, repo))
                    .fold(0, |x, (_, a)| x | a);
            }
        }
        let applies = |s: &Subject| match (s, acc) {
            (Subject::Anonymous, _) => true,
            (Subject::Authenticated, Some(_)) => true,
            (Subject::User(n), Some(a)) => &a.name == n,
            (Subject::Group(g), Some(a)) => a.groups.contains(g),
            _ => false,
        };
        let mut r = self
            .rules
            .iter()
            .filter(|r| applies(&r.subject) && glob_match(&r.repos, repo))
            .fold(0, |x, r| x | r.actions);
        if self.public.contains(repo) {
            r |= PULL;
        }
        r
    }

    fn visible_repos(&self, who: Who) -> Vec<String> {
        let mut v: Vec<String> = self
            .repos
            .iter()
            .filter(|r| self.rights(who, r) & PULL != 0)
            .cloned()
            .collect();
        v.sort();
        v
    }

    fn linked(&self, repo: &str, d: &str) -> bool {
        self.links.get(repo).is_some_and(|s| s.contains(d))
    }

    fn holds_manifest(&self, repo: &str, d: &str) -> bool {
        self.manifests.get(repo).is_some_and(|s| s.contains(d))
    }

    fn tags_of(&self, repo: &str) -> Vec<String> {
        self.tags
            .get(repo)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every string `who` must never receive: names, tags and digests of repositories it
    /// may not pull (unless a repository it may pull holds them too), and upload ids.
    fn hidden(&self, who: Who) -> Vec<String> {
        let mut out: Vec<String> = self.sessions.iter().map(|s| s.1.clone()).collect();
        if self.is_admin(who) {
            return out;
        }
        let visible: BTreeSet<String> = self.visible_repos(who).into_iter().collect();
        let mut seen_tags = BTreeSet::new();
        let mut seen_digests = BTreeSet::new();
        for r in &visible {
            seen_tags.extend(self.tags_of(r));
            seen_digests.extend(self.links.get(r).into_iter().flatten().cloned());
            for d in self.manifests.get(r).into_iter().flatten() {
                seen_digests.insert(d.clone());
                // What a visible manifest names is seen with it.
                if let Some(i) = self.manifest_info.get(d) {
                    seen_digests.extend(i.blobs.iter().cloned());
                    seen_digests.extend(i.subject.iter().cloned());
                }
            }
        }
        for r in self.repos.iter().filter(|r| !visible.contains(*r)) {
            out.push(r.clone());
            out.extend(
                self.tags_of(r)
                    .into_iter()
                    .filter(|t| !seen_tags.contains(t)),
            );
            for d in self
                .links
                .get(r)
                .into_iter()
                .flatten()
                .chain(self.manifests.get(r).into_iter().flatten())
            {
                if !seen_digests.contains(d) {
                    // The hex alone: found however the digest is written around it.
                    out.push(d["sha256:".len()..].to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

// ---------------------------------------------------------------------------------------
// HTTP: one connection a request, read to the end, so a HEAD answer's body would show

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn code(&self) -> String {
        self.json()
            .and_then(|j| j["errors"][0]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
    fn brief(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        let www = self
            .header("www-authenticate")
            .map(|w| format!(" www-authenticate: {w};"))
            .unwrap_or_default();
        format!("{}{www} body {body:?}", self.status)
    }
}

fn call(addr: &str, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let rest = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked && method != "HEAD" {
        dechunk(&rest)
    } else {
        rest
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// HEAD over HTTP/2 (prior knowledge on the plain port). hyper drops a HEAD answer's body
/// on HTTP/1.1 by itself, so only HTTP/2 shows whether the server sends one (Go's client
/// then resets the stream). A body that cannot be read is reported as a body.
fn h2_head(addr: &str, path: &str, headers: &[(String, String)]) -> Answer {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method("HEAD")
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.expect("HTTP/2 request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(e) => format!("<unreadable body: {e}>").into_bytes(),
        };
        Answer {
            status,
            headers,
            body,
        }
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let line = String::from_utf8_lossy(&b[..eol]);
        let size =
            usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The actions a Bearer challenge's `scope` (space-separated scopes) asks for on `repo`.
fn challenge_asks(www: &str, repo: &str) -> u8 {
    let Some((_, rest)) = www.split_once("scope=\"") else {
        return 0;
    };
    let value = rest.split('"').next().unwrap_or("");
    value
        .split(' ')
        .filter_map(|s| s.strip_prefix("repository:"))
        .filter_map(|s| s.rsplit_once(':'))
        .filter(|(name, _)| *name == repo)
        .fold(0, |a, (_, acts)| a | parse_actions(acts))
}

// ---------------------------------------------------------------------------------------
// Credentials

#[derive(Clone)]
struct Token {
    value: String,
    who: Who,
    scope: String,
    /// What the token grants per repository it names, as the model computes it.
    entries: BTreeMap<String, u8>,
}

#[derive(Clone)]
enum Cred {
    Anon,
    Basic(usize),
    Bearer(Token),
    Session(usize),
}

impl Cred {
    fn who(&self) -> Who {
        match self {
            Cred::Anon => Who::Anon,
            Cred::Basic(i) | Cred::Session(i) => Who::Account(*i),
            Cred::Bearer(t) => t.who,
        }
    }
    fn label(&self, m: &Model) -> String {
        let name = |w: Who| match w {
            Who::Anon => "anonymous".to_string(),
            Who::Account(i) => m.accounts[i].name.clone(),
        };
        match self {
            Cred::Anon => "anonymous".into(),
            Cred::Basic(i) => format!("Basic {}", m.accounts[*i].name),
            Cred::Session(i) => format!("console session of {}", m.accounts[*i].name),
            Cred::Bearer(t) => format!("Bearer of {} for {:?}", name(t.who), t.scope),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Cred::Anon => "anon",
            Cred::Basic(_) => "basic",
            Cred::Bearer(_) => "bearer",
            Cred::Session(_) => "session",
        }
    }
}

/// What the oracle expects of the gate in front of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allow,
    /// 401 with a Bearer challenge naming the scope (and `insufficient_scope` for tokens).
    Challenge {
        insufficient: bool,
    },
    /// 403 DENIED.
    Forbidden,
    /// 401 or 403 (an anonymous token: either is defensible).
    AnyDenial,
}

// ---------------------------------------------------------------------------------------
// The run

struct Run {
    seed: u64,
    rng: Rng,
    addr: String,
    m: Model,
    admin_auth: String,
    tokens: HashMap<(Who, String), Token>,
    sessions: HashMap<usize, (String, String)>,
    /// Failures by category: (count, first example).
    failures: BTreeMap<String, (usize, String)>,
    /// Operations by kind: (allowed, denied).
    counts: BTreeMap<&'static str, (usize, usize)>,
    requests: usize,
    /// HEAD requests sent over HTTP/2.
    h2_heads: usize,
    /// Whether the last request went over HTTP/2.
    last_h2: bool,
    op: usize,
    /// Lets `gated` hand a 401 of an allowed operation to the caller (a mount's challenge
    /// for its source).
    pass_401: bool,
    /// Headers the next `gated` request carries besides the credentials.
    extra: Vec<(String, String)>,
}

impl Run {
    fn fail(&mut self, category: impl Into<String>, detail: String) {
        let e = self
            .failures
            .entry(category.into())
            .or_insert((0, String::new()));
        if e.0 == 0 {
            e.1 = format!("seed {} op #{}: {detail}", self.seed, self.op);
        }
        e.0 += 1;
    }

    fn count(&mut self, kind: &'static str, allowed: bool) {
        let c = self.counts.entry(kind).or_default();
        if allowed {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }

    fn raw(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Answer {
        self.requests += 1;
        self.last_h2 = method == "HEAD" && self.rng.pct(40);
        if self.last_h2 {
            self.h2_heads += 1;
            return h2_head(&self.addr, path, headers);
        }
        call(&self.addr, method, path, headers, body)
    }

    /// A request as the admin, for set-up and after-checks; asserts the status.
    fn admin(&mut self, method: &str, path: &str, body: &[u8], want: u16) -> Answer {
        let mut h = vec![("Authorization".to_string(), self.admin_auth.clone())];
        if method == "PUT" && path.contains("/manifests/") {
            h.push((
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            ));
        }
        let a = self.raw(method, path, &h, body);
        assert_eq!(
            a.status,
            want,
            "seed {}: admin {method} {path}: {}",
            self.seed,
            a.brief()
        );
        a
    }

    fn account_auth(&self, i: usize) -> String {
        let a = &self.m.accounts[i];
        basic(&a.name, &a.password)
    }

    /// A token for `who` and `scope` (space-separated scopes), fetched once and kept.
    fn token(&mut self, who: Who, scope: &str) -> Token {
        if let Some(t) = self.tokens.get(&(who, scope.to_string())) {
            return t.clone();
        }
        let mut path = "/token?service=edgeyard".to_string();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            path.push_str(&format!("&scope={}", enc(s)));
        }
        let mut h = Vec::new();
        if let Who::Account(i) = who {
            h.push(("Authorization".to_string(), self.account_auth(i)));
        }
        let a = self.raw("GET", &path, &h, b"");
        assert_eq!(
            a.status,
            200,
            "seed {}: token {path}: {}",
            self.seed,
            a.brief()
        );
        let value = a.json().unwrap()["token"].as_str().unwrap().to_string();
        let mut entries: BTreeMap<String, u8> = BTreeMap::new();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            let Some(rest) = s.strip_prefix("repository:") else {
                continue; // registry:admin:*, judged by the admin API's oracle
            };
            let (name, acts) = rest.rsplit_once(':').unwrap();
            let granted = expand(parse_actions(acts) & self.m.rights(who, name));
            *entries.entry(name.to_string()).or_default() |= granted;
        }
        let t = Token {
            value,
            who,
            scope: scope.to_string(),
            entries,
        };
        self.tokens.insert((who, scope.to_string()), t.clone());
        t
    }

    /// The console session of account `i` (signed in once): cookie and CSRF token.
    fn session(&mut self, i: usize) -> (String, String) {
        if let Some(s) = self.sessions.get(&i) {
            return s.clone();
        }
        let h = vec![("Authorization".to_string(), self.account_auth(i))];
        let a = self.raw("POST", "/api/v1/session", &h, b"");
        assert_eq!(a.status, 201, "seed {}: sign-in: {}", self.seed, a.brief());
        let cookie = a
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let csrf = a.json().unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        self.sessions.insert(i, (cookie.clone(), csrf.clone()));
        (cookie, csrf)
    }

    fn headers(&mut self, cred: &Cred, method: &str) -> Vec<(String, String)> {
        match cred {
            Cred::Anon => vec![],
            Cred::Basic(i) => vec![("Authorization".into(), self.account_auth(*i))],
            Cred::Bearer(t) => vec![("Authorization".into(), format!("Bearer {}", t.value))],
            Cred::Session(i) => {
                let (cookie, csrf) = self.session(*i);
                let mut h = vec![("Cookie".to_string(), cookie)];
                if !matches!(method, "GET" | "HEAD") {
                    h.push(("X-CSRF-Token".into(), csrf));
                    h.push(("Origin".into(), format!("http://{}", self.addr)));
                    h.push(("Sec-Fetch-Site".into(), "same-origin".into()));
                }
                h
            }
        }
    }

    /// A random credential; Bearer tokens are asked for `scope_repos` with random actions
    /// (or for other repositories, or for nothing).
    fn random_cred(&mut self, scope_repos: &[&str]) -> Cred {
        let n = self.m.accounts.len();
        match self.rng.below(100) {
            0..=14 => Cred::Anon,
            15..=49 => Cred::Basic(self.rng.below(n)),
            50..=84 => {
                let who = if self.rng.pct(15) {
                    Who::Anon
                } else {
                    Who::Account(self.rng.below(n))
                };
                let acts = ["pull", "push", "pull,push", "delete", "pull,delete", "*"];
                let mut scopes = Vec::new();
                let roll = self.rng.below(100);
                if roll < 80 {
                    for r in scope_repos {
                        if scope_repos.len() == 1 || self.rng.pct(75) {
                            scopes.push(format!("repository:{r}:{}", self.rng.pick(&acts)));
                        }
                    }
                }
                if (60..95).contains(&roll) {
                    let other = self.rng.pick(&self.m.repos).clone();
                    scopes.push(format!("repository:{other}:{}", self.rng.pick(&acts)));
                }
                if self.rng.pct(30) {
                    scopes.push("registry:admin:*".to_string());
                }
                let scope = scopes.join(" ");
                Cred::Bearer(self.token(who, &scope))
            }
            _ => Cred::Session(self.rng.below(n)),
        }
    }

    /// The oracle for the gate: `needed` on `repo` for `cred`.
    fn verdict(&self, cred: &Cred, repo: &str, needed: u8) -> Verdict {
        match cred {
            Cred::Anon => {
                if self.m.rights(Who::Anon, repo) & needed == needed {
                    Verdict::Allow
                } else {
                    Verdict::Challenge {
                        insufficient: false,
                    }
                }
            }
            Cred::Basic(i) | Cred::Session(i) => {
                if self.m.rights(Who::Account(*i), repo) & needed == needed {
                    Verdict::Allow
                } else {
                    Verdict::Forbidden
                }
            }
            Cred::Bearer(t) => match t.entries.get(repo) {
                Some(e) if e & needed == needed => Verdict::Allow,
                None => Verdict::Challenge { insufficient: true },
                Some(_) if self.m.rights(t.who, repo) & needed == needed => {
                    Verdict::Challenge { insufficient: true }
                }
                Some(_) if t.who == Who::Anon => Verdict::AnyDenial,
                Some(_) => Verdict::Forbidden,
            },
        }
    }

    /// Checks a denied answer against the verdict; `scope` is what a challenge must name
    /// (`None` for routes whose challenge names none).
    fn check_denied(
        &mut self,
        kind: &str,
        ctx: &str,
        v: Verdict,
        a: &Answer,
        head: bool,
        scope: Option<(&str, u8)>,
    ) {
        let www = a.header("www-authenticate").unwrap_or("").to_string();
        let ok = match v {
            Verdict::Allow => unreachable!(),
            Verdict::AnyDenial => a.status == 401 || a.status == 403,
            Verdict::Forbidden => a.status == 403 && (head || a.code() == "DENIED"),
            Verdict::Challenge { insufficient } => {
                let scope_ok = match scope {
                    None => true,
                    Some((repo, needed)) => challenge_asks(&www, repo) & needed == needed,
                };
                a.status == 401
                    && www.starts_with("Bearer realm=")
                    && scope_ok
                    && (!insufficient || www.contains("error=\"insufficient_scope\""))
                    && (head || a.code() == "UNAUTHORIZED")
            }
        };
        if !ok {
            let want = match v {
                Verdict::Forbidden => "403 DENIED".to_string(),
                Verdict::AnyDenial => "401 or 403".to_string(),
                Verdict::Challenge { insufficient } => format!(
                    "401 Bearer challenge{}{}",
                    if scope.is_some() {
                        " with the scope"
                    } else {
                        ""
                    },
                    if insufficient {
                        " and insufficient_scope"
                    } else {
                        ""
                    }
                ),
                Verdict::Allow => unreachable!(),
            };
            self.fail(
                format!("{kind}: want {want}, got {}", a.status),
                format!("{ctx}: want {want}, got {}", a.brief()),
            );
        }
    }

    /// Checks every answer: nothing hidden from the caller in headers or body, HEAD answers
    /// without a body, error answers in the spec's shape without content headers.
    fn inspect(
        &mut self,
        kind: &str,
        ctx: &str,
        who: Who,
        request: &str,
        method: &str,
        a: &Answer,
    ) {
        let mut text = String::new();
        for (k, v) in &a.headers {
            if k != "set-cookie" {
                text.push_str(&format!("{k}: {v}\n"));
            }
        }
        text.push_str(&String::from_utf8_lossy(&a.body));
        let hidden = self.m.hidden(who);
        let leaked: Vec<&String> = hidden
            .iter()
            .filter(|s| text.contains(s.as_str()) && !request.contains(s.as_str()))
            .collect();
        if !leaked.is_empty() {
            let l = format!("{leaked:?}");
            self.fail(
                format!("{kind}: LEAK of names/tags/digests/upload ids"),
                format!("{ctx}: answer {} carries {l}", a.brief()),
            );
        }
        if method == "HEAD" && !a.body.is_empty() {
            self.fail(
                format!("{kind}: HEAD answer with a body"),
                format!(
                    "{ctx}: {} bytes after the headers: {}",
                    a.body.len(),
                    a.brief()
                ),
            );
        }
        if a.status >= 400 {
            let spec_error = method == "HEAD" || !a.code().is_empty();
            let clean = [
                "docker-content-digest",
                "location",
                "range",
                "docker-upload-uuid",
            ]
            .iter()
            .all(|h| a.header(h).is_none());
            let small = a
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .is_none_or(|n| n < 600);
            if !(spec_error && clean && small) {
                self.fail(
                    format!("{kind}: error answer not a bare spec error"),
                    format!("{ctx}: {} headers {:?}", a.brief(), a.headers),
                );
            }
        }
    }

    /// Sends a request as `cred`, inspects the answer, returns it with a context line.
    fn send(
        &mut self,
        kind: &str,
        cred: &Cred,
        method: &str,
        path: &str,
        extra: &[(String, String)],
        body: &[u8],
    ) -> (Answer, String) {
        let mut h = self.headers(cred, method);
        h.extend_from_slice(extra);
        let a = self.raw(method, path, &h, body);
        let proto = if self.last_h2 { " (HTTP/2)" } else { "" };
        let ctx = format!("{} {method} {path}{proto}", cred.label(&self.m));
        let request = format!("{path}\n{}", String::from_utf8_lossy(body));
        self.inspect(kind, &ctx, cred.who(), &request, method, &a);
        (a, ctx)
    }

    /// One gated `/v2/` operation: sends, then either checks the denial or hands the
    /// answer to `allowed`.
    fn gated(
        &mut self,
        kind: &'static str,
        cred: &Cred,
        method: &str,
        path: &str,
        (repo, needed): (&str, u8),
        body: &[u8],
    ) -> Option<(Answer, String)> {
        let mut extra = std::mem::take(&mut self.extra);
        if method == "PUT" && path.contains("/manifests/") {
            extra.push((
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            ));
        }
        let (a, ctx) = self.send(kind, cred, method, path, &extra, body);
        let v = self.verdict(cred, repo, needed);
        self.count(kind, v == Verdict::Allow);
        if v == Verdict::Allow {
            if (a.status == 401 && !self.pass_401) || a.status == 403 {
                self.fail(
                    format!("{kind}: allowed operation refused ({})", a.status),
                    format!(
                        "{ctx}: the rules allow {} on {repo}; got {}",
                        action_word(needed),
                        a.brief()
                    ),
                );
                return None;
            }
            Some((a, ctx))
        } else {
            self.check_denied(kind, &ctx, v, &a, method == "HEAD", Some((repo, needed)));
            None
        }
    }

    fn expect(
        &mut self,
        kind: &str,
        ctx: &str,
        a: &Answer,
        status: u16,
        code: Option<&str>,
    ) -> bool {
        let ok = a.status == status && code.is_none_or(|c| a.code() == c);
        if !ok {
            let want = format!(
                "{status}{}",
                code.map(|c| format!(" {c}")).unwrap_or_default()
            );
            self.fail(
                format!("{kind}: want {want}, got {}", a.status),
                format!("{ctx}: want {want}, got {}", a.brief()),
            );
        }
        ok
    }

    // ---- set-up ------------------------------------------------------------------------

    fn push_blob(&mut self, repo: &str, data: &[u8]) -> String {
        let d = sha256(data);
        self.admin(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            data,
            201,
        );
        self.m.blobs.insert(d.clone(), data.to_vec());
        self.m
            .links
            .entry(repo.into())
            .or_default()
            .insert(d.clone());
        d
    }

    fn put_manifest(
        &mut self,
        repo: &str,
        reference: &str,
        bytes: Vec<u8>,
        blobs: Vec<String>,
        subject: Option<String>,
    ) -> String {
        let d = sha256(&bytes);
        self.admin(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &bytes,
            201,
        );
        self.m
            .manifests
            .entry(repo.into())
            .or_default()
            .insert(d.clone());
        if !reference.starts_with("sha256:") {
            self.m
                .tags
                .entry(repo.into())
                .or_default()
                .insert(reference.into(), d.clone());
        }
        if let Some(s) = &subject {
            self.m
                .referrers
                .entry((repo.into(), s.clone()))
                .or_default()
                .insert(d.clone());
        }
        self.m.manifest_info.insert(
            d.clone(),
            ManifestInfo {
                bytes,
                blobs,
                subject,
            },
        );
        d
    }

    fn random_bytes(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = lo + self.rng.below(hi - lo);
        bytes(n, self.rng.next())
    }

    fn random_glob(&mut self) -> String {
        let repo = self.rng.pick(&self.m.repos).clone();
        let ns = repo.split('/').next().unwrap().to_string();
        let last = repo.rsplit('/').next().unwrap().to_string();
        match self.rng.below(100) {
            0..=29 => format!("{ns}/*"),
            30..=59 => format!("{ns}/**"),
            60..=79 => repo,
            80..=89 => format!("*/{last}"),
            90..=96 => format!("**/{last}"),
            _ => "**".into(),
        }
    }

    fn random_actions(&mut self) -> &'static str {
        match self.rng.below(100) {
            0..=39 => "pull",
            40..=64 => "push",
            65..=79 => "delete",
            80..=91 => "pull,push",
            _ => "admin",
        }
    }

    fn add_rule(&mut self) {
        let users: Vec<String> = self.m.accounts.iter().map(|a| a.name.clone()).collect();
        let subject = match self.rng.below(100) {
            0..=34 => Subject::User(self.rng.pick(&users[1..]).clone()),
            35..=54 => Subject::Group(self.rng.pick(&["dev", "ops", "qa"]).to_string()),
            55..=74 => Subject::Authenticated,
            75..=89 => Subject::Anonymous,
            // A rule naming a robot: robots keep to their grants, so it must give nothing.
            _ => Subject::User("robot$r1".into()),
        };
        let repos = self.random_glob();
        let actions = self.random_actions();
        let body = serde_json::json!({
            "subject": subject.text(), "repos": repos,
            "actions": actions.split(',').collect::<Vec<_>>(),
        });
        let a = self.admin("POST", "/api/v1/rules", body.to_string().as_bytes(), 201);
        let id = a.json().unwrap()["id"].as_u64().unwrap();
        self.m.rules.push(Rule {
            id,
            subject,
            repos,
            actions: parse_actions(actions),
        });
    }

    fn setup(&mut self) {
        // Accounts: the first admin, users in groups, a second admin, two robots.
        for (name, admin, groups) in [
            ("ana", false, vec!["dev"]),
            ("ben", false, vec!["dev", "ops"]),
            ("cam", false, vec![]),
            ("dot", false, vec!["ops"]),
            ("eve", true, vec![]),
        ] {
            let password = format!("{name}-pw-{}", self.rng.hex(8));
            let body = serde_json::json!({"name": name, "password": password, "admin": admin, "groups": groups});
            self.admin("POST", "/api/v1/users", body.to_string().as_bytes(), 201);
            self.m.accounts.push(Account {
                name: name.into(),
                password,
                admin,
                groups: groups.iter().map(|g| g.to_string()).collect(),
                robot: None,
            });
        }
        for r in ["r1", "r2"] {
            let mut grants = Vec::new();
            for _ in 0..1 + self.rng.below(2) {
                let g = self.random_glob();
                // Robots are granted pull, push or delete, never admin.
                let a = *self.rng.pick(&["pull", "push", "delete", "pull,push"]);
                grants.push((g, a));
            }
            let body = serde_json::json!({
                "name": r,
                "grants": grants.iter().map(|(g, a)| serde_json::json!({"repos": g, "actions": a.split(',').collect::<Vec<_>>()})).collect::<Vec<_>>(),
            });
            let a = self.admin("POST", "/api/v1/robots", body.to_string().as_bytes(), 201);
            let j = a.json().unwrap();
            self.m.accounts.push(Account {
                name: j["name"].as_str().unwrap().into(),
                password: j["secret"].as_str().unwrap().into(),
                admin: false,
                groups: vec![],
                robot: Some(
                    grants
                        .into_iter()
                        .map(|(g, a)| (g, parse_actions(a)))
                        .collect(),
                ),
            });
        }
        for _ in 0..9 {
            self.add_rule();
        }
        // Repositories: blobs of their own, blobs shared with others, images, referrers.
        let shared: Vec<Vec<u8>> = (0..6).map(|_| self.random_bytes(700, 4000)).collect();
        let repos = self.m.repos.clone();
        for repo in &repos {
            let own = self.random_bytes(700, 4000);
            let own_d = self.push_blob(repo, &own);
            let loose = self.random_bytes(700, 4000);
            self.push_blob(repo, &loose);
            let mut first = None;
            for _ in 0..2 {
                let pad = self.rng.hex(800);
                let config = serde_json::to_vec(
                    &serde_json::json!({"architecture": "amd64", "os": "linux", "pad": pad}),
                )
                .unwrap();
                let cd = self.push_blob(repo, &config);
                let s = shared[self.rng.below(shared.len())].clone();
                let sd = self.push_blob(repo, &s);
                let manifest =
                    image_manifest((&cd, config.len()), &[(&own_d, own.len()), (&sd, s.len())]);
                let tag = format!("tag-{}", self.rng.hex(6));
                let d = self.put_manifest(repo, &tag, manifest, vec![cd, own_d.clone(), sd], None);
                first.get_or_insert(d);
            }
            if self.rng.pct(60) {
                let subject = first.clone().unwrap();
                let size = self.m.manifest_info[&subject].bytes.len();
                let empty = b"{}".to_vec();
                let ed = self.push_blob(repo, &empty);
                let sig = self.random_bytes(700, 1500);
                let sigd = self.push_blob(repo, &sig);
                let art = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": "application/vnd.example.sig",
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2},
                    "layers": [{"mediaType": "application/octet-stream", "digest": sigd, "size": sig.len()}],
                    "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": size},
                }))
                .unwrap();
                let ad = sha256(&art);
                self.put_manifest(repo, &ad, art, vec![ed, sigd], Some(subject));
            }
        }
        // Some images copied into another repository: subjects and blobs held by two.
        for _ in 0..4 {
            let from = self.rng.pick(&repos).clone();
            let to = self.rng.pick(&repos).clone();
            if from == to {
                continue;
            }
            let d = self.m.tags[&from].values().next().unwrap().clone();
            let blobs = self.m.manifest_info[&d].blobs.clone();
            for b in &blobs {
                let data = self.m.blobs[b].clone();
                self.push_blob(&to, &data);
            }
            let bytes = self.m.manifest_info[&d].bytes.clone();
            let tag = format!("tag-{}", self.rng.hex(6));
            self.put_manifest(&to, &tag, bytes, blobs, None);
        }
        // Public repositories.
        for _ in 0..2 {
            let r = self.rng.pick(&repos).clone();
            self.admin(
                "PATCH",
                &format!("/api/v1/repositories/{r}"),
                br#"{"public":true}"#,
                204,
            );
            self.m.public.insert(r);
        }
        // Upload sessions of the admin, holding a few bytes each.
        for _ in 0..3 {
            let r = self.rng.pick(&repos).clone();
            let a = self.admin("POST", &format!("/v2/{r}/blobs/uploads/"), b"", 202);
            let loc = a.header("location").unwrap().to_string();
            let id = loc
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string();
            let data = self.random_bytes(100, 300);
            let h = vec![
                ("Authorization".to_string(), self.admin_auth.clone()),
                (
                    "Content-Type".to_string(),
                    "application/octet-stream".to_string(),
                ),
            ];
            let p = self.raw("PATCH", &loc, &h, &data);
            assert_eq!(
                p.status,
                202,
                "seed {}: PATCH {loc}: {}",
                self.seed,
                p.brief()
            );
            self.m.sessions.push((r, id, data));
        }
    }

    // ---- operations --------------------------------------------------------------------

    fn any_digest(&mut self, repo: &str) -> String {
        let roll = self.rng.below(100);
        let own: Vec<String> = self
            .m
            .links
            .get(repo)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if roll < 45 && !own.is_empty() {
            return self.rng.pick(&own).clone();
        }
        if roll < 85 {
            let all: Vec<String> = self.m.blobs.keys().cloned().collect();
            return self.rng.pick(&all).clone();
        }
        if roll < 93 {
            let all: Vec<String> = self.m.manifest_info.keys().cloned().collect();
            return self.rng.pick(&all).clone();
        }
        sha256(self.rng.hex(16).as_bytes())
    }

    /// A repository to read from: now and then one that does not exist, which must be
    /// refused exactly as an existing one is to a caller without the right.
    fn read_repo(&mut self) -> (String, bool) {
        if self.rng.pct(8) {
            (self.rng.pick(&self.m.ghosts).clone(), true)
        } else {
            (self.rng.pick(&self.m.repos).clone(), false)
        }
    }

    fn op_blob(&mut self, head: bool) {
        let (repo, _) = self.read_repo();
        let d = self.any_digest(&repo);
        let range = (!head && self.rng.pct(25)).then(|| self.rng.below(200));
        let kind = match (head, range) {
            (true, _) => "blob HEAD",
            (false, None) => "blob GET",
            (false, Some(_)) => "blob GET with Range",
        };
        let cred = self.random_cred(&[&repo]);
        let method = if head { "HEAD" } else { "GET" };
        let path = format!("/v2/{repo}/blobs/{d}");
        if let Some(end) = range {
            self.extra = vec![("Range".into(), format!("bytes=0-{end}"))];
        }
        let Some((a, ctx)) = self.gated(kind, &cred, method, &path, (&repo, PULL), b"") else {
            return;
        };
        if !self.m.linked(&repo, &d) {
            let code = (!head).then_some("BLOB_UNKNOWN");
            self.expect(kind, &ctx, &a, 404, code);
            return;
        }
        let data = self.m.blobs[&d].clone();
        let (status, want) = match range {
            Some(end) => (206, data[..(end + 1).min(data.len())].to_vec()),
            None => (200, data.clone()),
        };
        if self.expect(kind, &ctx, &a, status, None) {
            let len_ok = a.header("content-length") == Some(want.len().to_string().as_str());
            let digest_ok = a.header("docker-content-digest") == Some(d.as_str());
            let range_ok = range.is_none()
                || a.header("content-range")
                    == Some(format!("bytes 0-{}/{}", want.len() - 1, data.len()).as_str());
            if !len_ok || !digest_ok || !range_ok || (!head && a.body != want) {
                self.fail(
                    format!("{kind}: wrong content"),
                    format!("{ctx}: {:?}", a.headers),
                );
            }
        }
    }

    fn op_blob_delete(&mut self) {
        let kind = "blob DELETE";
        let repo = self.rng.pick(&self.m.repos).clone();
        let d = self.any_digest(&repo);
        let cred = self.random_cred(&[&repo]);
        let path = format!("/v2/{repo}/blobs/{d}");
        let linked = self.m.linked(&repo, &d);
        let Some((a, ctx)) = self.gated(kind, &cred, "DELETE", &path, (&repo, DELETE), b"") else {
            if linked {
                // Still there for those who may read it.
                let h = vec![("Authorization".to_string(), self.admin_auth.clone())];
                let g = self.raw("HEAD", &path, &h, b"");
                if g.status != 200 {
                    self.fail(
                        format!("{kind}: refused, yet the blob is gone"),
                        format!("{path}: {}", g.brief()),
                    );
                }
            }
            return;
        };
        if linked {
            if self.expect(kind, &ctx, &a, 202, None) {
                self.m.links.get_mut(&repo).unwrap().remove(&d);
            }
        } else {
            self.expect(kind, &ctx, &a, 404, Some("BLOB_UNKNOWN"));
        }
    }

    /// PATCH, PUT or DELETE of another client's upload session through a repository it
    /// was not opened in: unknown there, and the session is untouched.
    fn op_foreign_session_write(&mut self) {
        let kind = "write to someone else's upload session";
        let (srepo, id, data) = self.m.sessions[self.rng.below(self.m.sessions.len())].clone();
        let repo = loop {
            let r = self.rng.pick(&self.m.repos).clone();
            if r != srepo {
                break r;
            }
        };
        let digest = sha256(&data);
        let method = *self.rng.pick(&["PATCH", "PUT", "DELETE"]);
        let (path, body) = match method {
            "PATCH" => (
                format!("/v2/{repo}/blobs/uploads/{id}"),
                b"more bytes".to_vec(),
            ),
            "PUT" => (
                format!("/v2/{repo}/blobs/uploads/{id}?digest={digest}"),
                vec![],
            ),
            _ => (format!("/v2/{repo}/blobs/uploads/{id}"), vec![]),
        };
        let cred = self.random_cred(&[&repo]);
        if let Some((a, ctx)) = self.gated(kind, &cred, method, &path, (&repo, PUSH), &body) {
            self.expect(kind, &ctx, &a, 404, Some("BLOB_UPLOAD_UNKNOWN"));
        }
        let h = vec![("Authorization".to_string(), self.admin_auth.clone())];
        let st = self.raw("GET", &format!("/v2/{srepo}/blobs/uploads/{id}"), &h, b"");
        let range = format!("0-{}", data.len() - 1);
        if st.status != 204 || st.header("range") != Some(range.as_str()) {
            self.fail(
                format!("{kind}: the session changed"),
                format!(
                    "{method} {path} as {}: the owner's status is now {} {:?}",
                    cred.label(&self.m),
                    st.brief(),
                    st.headers
                ),
            );
        }
        if method == "PUT" && !self.m.linked(&repo, &digest) {
            self.after_mount_not_linked(kind, &repo, &digest, "finishing another's session");
        }
    }

    fn cancel_session(&mut self, kind: &str, ctx: &str, cred: &Cred, a: &Answer, repo: &str) {
        let loc = a.header("location").unwrap_or("").to_string();
        if !loc.starts_with(&format!("/v2/{repo}/blobs/uploads/")) {
            self.fail(
                format!("{kind}: 202 without the session's Location"),
                format!("{ctx}: {:?}", a.headers),
            );
            return;
        }
        let (c, cctx) = self.send(kind, cred, "DELETE", &loc, &[], b"");
        self.expect(
            kind,
            &format!("{cctx} (cancelling the mount's session)"),
            &c,
            204,
            None,
        );
    }

    fn op_mount(&mut self, with_from: bool) {
        let kind = if with_from {
            "mount from"
        } else {
            "mount without from"
        };
        let target = self.rng.pick(&self.m.repos).clone();
        let from = self.rng.pick(&self.m.repos).clone();
        let d = if with_from && self.rng.pct(50) {
            let held: Vec<String> = self.m.links[&from].iter().cloned().collect();
            self.rng.pick(&held).clone()
        } else {
            self.any_digest(&target)
        };
        let cred = if with_from {
            self.random_cred(&[&target, &from])
        } else {
            self.random_cred(&[&target])
        };
        let path = if with_from {
            format!("/v2/{target}/blobs/uploads/?mount={d}&from={from}")
        } else {
            format!("/v2/{target}/blobs/uploads/?mount={d}")
        };
        let was_linked = self.m.linked(&target, &d);
        // A token that lacks the pull on the source its subject's rules grant may be
        // challenged for it (as distribution does), so that docker fetches one and mounts.
        let challenge_ok = with_from
            && matches!(&cred, Cred::Bearer(t)
                if t.entries.get(&from).is_none_or(|e| e & PULL == 0)
                    && self.m.rights(t.who, &from) & PULL != 0);
        self.pass_401 = challenge_ok;
        let gated = self.gated(kind, &cred, "POST", &path, (&target, PUSH), b"");
        self.pass_401 = false;
        if let Some((a, ctx)) = gated.as_ref().filter(|(a, _)| a.status == 401) {
            let www = a.header("www-authenticate").unwrap_or("");
            let ok = www.contains("error=\"insufficient_scope\"")
                && challenge_asks(www, &from) & PULL != 0
                && challenge_asks(www, &target) & PUSH != 0;
            if !ok {
                self.fail(
                    format!("{kind}: 401 without a challenge for the source"),
                    format!("{ctx}: {}", a.brief()),
                );
            }
            if !was_linked {
                self.after_mount_not_linked(kind, &target, &d, "a challenged mount");
            }
            return;
        }
        let Some((a, ctx)) = gated else {
            if !was_linked {
                self.after_mount_not_linked(kind, &target, &d, "a refused mount");
            }
            return;
        };
        let who = cred.who();
        // (must be 201, may be 201)
        // (must be 201, may be 201). A manifest held by the source is as readable as its
        // blobs, so mounting it as a blob is no leak (nor required).
        let (must, may) = if with_from {
            let linked = self.m.linked(&from, &d);
            let readable = linked || self.m.holds_manifest(&from, &d);
            let principal_pulls = self.m.rights(who, &from) & PULL != 0;
            let cred_pulls = match &cred {
                Cred::Bearer(t) => t.entries.get(&from).is_some_and(|e| e & PULL != 0),
                _ => principal_pulls,
            };
            // A token keeps what it was issued with until it expires.
            (
                linked && cred_pulls,
                readable && (principal_pulls || cred_pulls),
            )
        } else {
            let admin = self.m.is_admin(who);
            let exists = self.m.blobs.contains_key(&d);
            (
                exists && admin,
                admin && (exists || self.m.manifest_info.contains_key(&d)),
            )
        };
        match a.status {
            201 if may => {
                let ok = a.header("docker-content-digest") == Some(d.as_str());
                if !ok {
                    self.fail(
                        format!("{kind}: 201 without the digest"),
                        format!("{ctx}: {:?}", a.headers),
                    );
                }
                self.m
                    .links
                    .entry(target.clone())
                    .or_default()
                    .insert(d.clone());
                let data = self.m.blobs[&d].clone();
                let g = self.admin("GET", &format!("/v2/{target}/blobs/{d}"), b"", 200);
                if g.body != data {
                    self.fail(format!("{kind}: mounted blob reads wrong"), ctx.clone());
                }
            }
            201 => {
                // An administrator may read everything: a 201 for it is wrong, not a leak.
                let what = if self.m.is_admin(who) {
                    "201 for a blob the source does not hold (administrator: no leak)"
                } else {
                    "201 LEAK: blob mounted without the right to read it"
                };
                self.fail(
                    format!("{kind}: {what}"),
                    format!(
                        "{ctx}: {d} linked in from: {}, caller may pull from: {}, admin: {}; got {}",
                        self.m.linked(&from, &d),
                        self.m.rights(who, &from) & PULL != 0,
                        self.m.is_admin(who),
                        a.brief()
                    ),
                );
                // Keep the model true to the server.
                if let Some(i) = self.m.manifest_info.get(&d) {
                    let bytes = i.bytes.clone();
                    self.m.blobs.entry(d.clone()).or_insert(bytes);
                }
                if self.m.blobs.contains_key(&d) {
                    self.m
                        .links
                        .entry(target.clone())
                        .or_default()
                        .insert(d.clone());
                }
            }
            202 if !must => {
                self.cancel_session(kind, &ctx, &cred, &a, &target);
                if !was_linked {
                    self.after_mount_not_linked(kind, &target, &d, "a mount answered 202");
                }
            }
            _ => {
                self.expect(kind, &ctx, &a, if must { 201 } else { 202 }, None);
                if a.status == 202 {
                    self.cancel_session(kind, &ctx, &cred, &a, &target);
                }
            }
        }
    }

    fn after_mount_not_linked(&mut self, kind: &str, target: &str, d: &str, why: &str) {
        let h = vec![("Authorization".to_string(), self.admin_auth.clone())];
        let a = self.raw("HEAD", &format!("/v2/{target}/blobs/{d}"), &h, b"");
        if a.status != 404 {
            self.fail(
                format!("{kind}: blob readable in the target after {why}"),
                format!("HEAD /v2/{target}/blobs/{d} as admin: {}", a.brief()),
            );
            if a.status == 200 {
                self.m
                    .links
                    .entry(target.into())
                    .or_default()
                    .insert(d.into());
            }
        }
    }

    fn op_manifest(&mut self) {
        let (repo, _) = self.read_repo();
        let head = self.rng.pct(40);
        let roll = self.rng.below(100);
        let (kind, reference, digest): (&'static str, String, Option<String>) = if roll < 45 {
            let kind = if head {
                "manifest HEAD by tag"
            } else {
                "manifest GET by tag"
            };
            let own = self.m.tags_of(&repo);
            let all: Vec<String> = self
                .m
                .tags
                .values()
                .flat_map(|t| t.keys().cloned())
                .collect();
            let tag = if self.rng.pct(60) && !own.is_empty() {
                self.rng.pick(&own).clone()
            } else if self.rng.pct(85) {
                self.rng.pick(&all).clone()
            } else {
                format!("tag-{}", self.rng.hex(6))
            };
            let d = self.m.tags.get(&repo).and_then(|t| t.get(&tag)).cloned();
            (kind, tag, d)
        } else {
            let kind = if head {
                "manifest HEAD by digest"
            } else {
                "manifest GET by digest"
            };
            let own: Vec<String> = self
                .m
                .manifests
                .get(&repo)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            let all: Vec<String> = self.m.manifest_info.keys().cloned().collect();
            let d = if self.rng.pct(50) && !own.is_empty() {
                self.rng.pick(&own).clone()
            } else if self.rng.pct(85) {
                self.rng.pick(&all).clone()
            } else {
                sha256(self.rng.hex(8).as_bytes())
            };
            let held = self.m.holds_manifest(&repo, &d).then(|| d.clone());
            (kind, d, held)
        };
        let cred = self.random_cred(&[&repo]);
        let method = if head { "HEAD" } else { "GET" };
        let path = format!("/v2/{repo}/manifests/{reference}");
        let Some((a, ctx)) = self.gated(kind, &cred, method, &path, (&repo, PULL), b"") else {
            return;
        };
        match digest {
            Some(d) => {
                if self.expect(kind, &ctx, &a, 200, None) {
                    let bytes = self.m.manifest_info[&d].bytes.clone();
                    let ok = a.header("docker-content-digest") == Some(d.as_str())
                        && a.header("content-length") == Some(bytes.len().to_string().as_str())
                        && (head || a.body == bytes);
                    if !ok {
                        self.fail(
                            format!("{kind}: wrong manifest"),
                            format!("{ctx}: {:?}", a.headers),
                        );
                    }
                }
            }
            None => {
                let code = (!head).then_some("MANIFEST_UNKNOWN");
                self.expect(kind, &ctx, &a, 404, code);
            }
        }
    }

    fn op_invalid_reference(&mut self) {
        let kind = "manifest .INVALID reference";
        let (repo, _) = self.read_repo();
        let method = *self.rng.pick(&["GET", "HEAD", "DELETE"]);
        let needed = if method == "DELETE" { DELETE } else { PULL };
        let cred = self.random_cred(&[&repo]);
        let path = format!("/v2/{repo}/manifests/.INVALID");
        let Some((a, ctx)) = self.gated(kind, &cred, method, &path, (&repo, needed), b"") else {
            return;
        };
        let code = (method != "HEAD").then_some("MANIFEST_UNKNOWN");
        self.expect(kind, &ctx, &a, 404, code);
    }

    fn op_referrers(&mut self) {
        let kind = "referrers";
        let repo = self.rng.pick(&self.m.repos).clone();
        let subjects: Vec<String> = self.m.referrers.keys().map(|k| k.1.clone()).collect();
        let all: Vec<String> = self.m.manifest_info.keys().cloned().collect();
        let subject = if self.rng.pct(70) && !subjects.is_empty() {
            self.rng.pick(&subjects).clone()
        } else {
            self.rng.pick(&all).clone()
        };
        let cred = self.random_cred(&[&repo]);
        let filter = match self.rng.below(10) {
            0 => Some("application/vnd.example.sig"),
            1 => Some("application/vnd.example.sbom"),
            _ => None,
        };
        let path = match filter {
            Some(t) => format!("/v2/{repo}/referrers/{subject}?artifactType={}", enc(t)),
            None => format!("/v2/{repo}/referrers/{subject}"),
        };
        let Some((a, ctx)) = self.gated(kind, &cred, "GET", &path, (&repo, PULL), b"") else {
            return;
        };
        if self.expect(kind, &ctx, &a, 200, None) {
            let got: BTreeSet<String> = a
                .json()
                .and_then(|j| {
                    j["manifests"].as_array().map(|v| {
                        v.iter()
                            .filter_map(|m| m["digest"].as_str().map(str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default();
            // Every referrer here is a signature.
            let want = self
                .m
                .referrers
                .get(&(repo.clone(), subject))
                .filter(|_| filter != Some("application/vnd.example.sbom"))
                .cloned()
                .unwrap_or_default();
            if got != want {
                self.fail(
                    format!("{kind}: wrong list"),
                    format!("{ctx}: want {want:?}, got {got:?}"),
                );
            }
        }
    }

    fn op_tags(&mut self) {
        let kind = "tags list";
        let (repo, ghost) = self.read_repo();
        let cred = self.random_cred(&[&repo]);
        let n = self.rng.pct(30).then(|| 1 + self.rng.below(3));
        let mut path = match n {
            Some(n) => format!("/v2/{repo}/tags/list?n={n}"),
            None => format!("/v2/{repo}/tags/list"),
        };
        let mut got = Vec::new();
        for page in 0..50 {
            let Some((a, ctx)) = self.gated(kind, &cred, "GET", &path, (&repo, PULL), b"") else {
                return;
            };
            if ghost {
                self.expect(kind, &ctx, &a, 404, Some("NAME_UNKNOWN"));
                return;
            }
            if !self.expect(kind, &ctx, &a, 200, None) {
                return;
            }
            let j = a.json().unwrap_or_default();
            if j["name"].as_str() != Some(repo.as_str()) {
                self.fail(
                    format!("{kind}: wrong name"),
                    format!("{ctx}: {}", a.brief()),
                );
            }
            got.extend(
                j["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string)),
            );
            match a
                .header("link")
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, r)| r.split_once('>'))
            {
                Some((next, _)) if page < 49 => path = next.to_string(),
                _ => break,
            }
        }
        let want = self.m.tags_of(&repo);
        if got != want {
            self.fail(
                format!("{kind}: wrong tags"),
                format!("{} {repo}: want {want:?}, got {got:?}", cred.label(&self.m)),
            );
        }
    }

    fn op_catalog(&mut self) {
        let kind = "catalog";
        // A token's scopes (random, other repositories) must not matter to the catalog.
        let cred = self.random_cred(&[]);
        let n = self.rng.pct(60).then(|| 1 + self.rng.below(4));
        // Starting after a name the caller may not see says nothing about it.
        let last = self
            .rng
            .pct(20)
            .then(|| self.rng.pick(&self.m.repos).clone());
        let mut path = match n {
            Some(n) => format!("/v2/_catalog?n={n}"),
            None => "/v2/_catalog?n=".to_string(),
        };
        if let Some(l) = &last {
            path.push_str(&format!("&last={}", enc(l)));
        }
        let who = cred.who();
        let allowed = !matches!(cred, Cred::Anon);
        self.count(kind, allowed);
        let mut got = Vec::new();
        for page in 0..60 {
            let (a, ctx) = self.send(kind, &cred, "GET", &path, &[], b"");
            if !allowed {
                self.check_denied(
                    kind,
                    &ctx,
                    Verdict::Challenge {
                        insufficient: false,
                    },
                    &a,
                    false,
                    None,
                );
                return;
            }
            if matches!(cred, Cred::Bearer(_)) && who == Who::Anon && a.status == 401 {
                return;
            }
            if !self.expect(kind, &ctx, &a, 200, None) {
                return;
            }
            let j = a.json().unwrap_or_default();
            got.extend(
                j["repositories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string)),
            );
            match a
                .header("link")
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, r)| r.split_once('>'))
            {
                Some((next, _)) if page < 59 => path = next.to_string(),
                _ => break,
            }
        }
        let mut want = self.m.visible_repos(who);
        want.retain(|r| last.as_ref().is_none_or(|l| r > l));
        if got != want {
            let label = cred.label(&self.m);
            self.fail(
                format!(
                    "{kind} ({}): not exactly what the caller may pull",
                    cred.kind()
                ),
                format!("{label} GET /v2/_catalog (n={n:?}): want {want:?}, got {got:?}"),
            );
        }
    }

    fn op_upload_status(&mut self) {
        let kind = "someone else's upload session";
        let (srepo, id, data) = self.m.sessions[self.rng.below(self.m.sessions.len())].clone();
        let held = data.len();
        let repo = if self.rng.pct(50) {
            srepo.clone()
        } else {
            self.rng.pick(&self.m.repos).clone()
        };
        let cred = loop {
            let c = self.random_cred(&[&repo]);
            // The admin opened these sessions: its own status is not the question here.
            if c.who() != Who::Account(0) {
                break c;
            }
        };
        let path = format!("/v2/{repo}/blobs/uploads/{id}");
        let Some((a, ctx)) = self.gated(kind, &cred, "GET", &path, (&repo, PUSH), b"") else {
            return;
        };
        if repo != srepo {
            self.expect(kind, &ctx, &a, 404, Some("BLOB_UPLOAD_UNKNOWN"));
        } else if a.status == 204 {
            // The caller may push this repository; whether sessions are bound to their
            // opener is not decided, but what it says must be true.
            let range = format!("0-{}", held - 1);
            if a.header("range") != Some(range.as_str()) {
                self.fail(
                    format!("{kind}: wrong range"),
                    format!("{ctx}: {:?}", a.headers),
                );
            }
        } else {
            self.expect(kind, &ctx, &a, 404, Some("BLOB_UPLOAD_UNKNOWN"));
        }
    }

    fn op_push_tag(&mut self) {
        let kind = "manifest PUT (new tag)";
        let repo = self.rng.pick(&self.m.repos).clone();
        let all: Vec<String> = self
            .m
            .manifest_info
            .iter()
            .filter(|(_, i)| i.subject.is_none())
            .map(|(d, _)| d.clone())
            .collect();
        let own: Vec<String> = all
            .iter()
            .filter(|d| self.m.holds_manifest(&repo, d))
            .cloned()
            .collect();
        let d = if self.rng.pct(50) && !own.is_empty() {
            self.rng.pick(&own).clone()
        } else {
            self.rng.pick(&all).clone()
        };
        let tag = format!("tag-{}", self.rng.hex(6));
        let cred = self.random_cred(&[&repo]);
        let bytes = self.m.manifest_info[&d].bytes.clone();
        let path = format!("/v2/{repo}/manifests/{tag}");
        let Some((a, ctx)) = self.gated(kind, &cred, "PUT", &path, (&repo, PUSH), &bytes) else {
            return;
        };
        let blobs_here = self.m.manifest_info[&d]
            .blobs
            .iter()
            .all(|b| self.m.linked(&repo, b));
        if blobs_here {
            if self.expect(kind, &ctx, &a, 201, None) {
                self.m
                    .manifests
                    .entry(repo.clone())
                    .or_default()
                    .insert(d.clone());
                self.m.tags.entry(repo).or_default().insert(tag, d);
            }
        } else if !self.expect(kind, &ctx, &a, 400, Some("MANIFEST_BLOB_UNKNOWN"))
            && a.status == 201
        {
            self.m
                .manifests
                .entry(repo.clone())
                .or_default()
                .insert(d.clone());
            self.m.tags.entry(repo).or_default().insert(tag, d);
        }
    }

    fn op_delete_tag(&mut self) {
        let repo = self.rng.pick(&self.m.repos).clone();
        let own = self.m.tags_of(&repo);
        // Keep one tag a repository, so the lists stay interesting.
        let tag = if own.len() > 1 && self.rng.pct(60) {
            self.rng.pick(&own).clone()
        } else {
            format!("tag-{}", self.rng.hex(6))
        };
        let exists = own.contains(&tag);
        if self.rng.pct(50) {
            let kind = "manifest DELETE by tag";
            let cred = self.random_cred(&[&repo]);
            let path = format!("/v2/{repo}/manifests/{tag}");
            let Some((a, ctx)) = self.gated(kind, &cred, "DELETE", &path, (&repo, DELETE), b"")
            else {
                return;
            };
            if exists {
                if self.expect(kind, &ctx, &a, 202, None) {
                    self.m.tags.get_mut(&repo).unwrap().remove(&tag);
                }
            } else {
                self.expect(kind, &ctx, &a, 404, Some("MANIFEST_UNKNOWN"));
            }
        } else {
            let kind = "console tag DELETE";
            let cred = self.random_cred(&[&repo]);
            let path = format!("/api/v1/repositories/{repo}/tags/{tag}");
            let (a, ctx) = self.send(kind, &cred, "DELETE", &path, &[], b"");
            let v = match cred {
                Cred::Anon => Verdict::Challenge {
                    insufficient: false,
                },
                _ => self.verdict(&cred, &repo, DELETE),
            };
            self.count(kind, v == Verdict::Allow);
            if v != Verdict::Allow {
                self.check_denied(kind, &ctx, v, &a, false, None);
            } else if exists {
                if self.expect(kind, &ctx, &a, 204, None) {
                    self.m.tags.get_mut(&repo).unwrap().remove(&tag);
                }
            } else {
                self.expect(kind, &ctx, &a, 404, None);
            }
        }
    }

    fn op_blob_push(&mut self) {
        let kind = "blob push";
        let repo = self.rng.pick(&self.m.repos).clone();
        let data = self.random_bytes(700, 3000);
        let d = sha256(&data);
        let cred = self.random_cred(&[&repo]);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
        match self.gated(kind, &cred, "POST", &path, (&repo, PUSH), &data) {
            Some((a, ctx)) => {
                if self.expect(kind, &ctx, &a, 201, None) {
                    self.m.blobs.insert(d.clone(), data);
                    self.m.links.entry(repo).or_default().insert(d);
                }
            }
            None => self.after_mount_not_linked(kind, &repo, &d, "a refused push"),
        }
    }

    fn op_admin_api(&mut self) {
        let kind = "admin API";
        let cred = self.random_cred(&[]);
        let who = cred.who();
        let is_admin = self.m.is_admin(who);
        let repo = self.rng.pick(&self.m.repos).clone();
        let reads = [
            "/api/v1/users",
            "/api/v1/rules",
            "/api/v1/robots",
            "/api/v1/gc",
            "/api/v1/pins",
            "/api/v1/immutability",
            "/api/v1/quotas",
            "/api/v1/retention",
        ];
        let write = !is_admin && self.rng.pct(40);
        let (method, path, body): (&str, String, Vec<u8>) = if write {
            match self.rng.below(4) {
                0 => ("POST", "/api/v1/rules".into(), serde_json::json!({"subject": "anonymous", "repos": "**", "actions": ["admin"]}).to_string().into_bytes()),
                1 => ("PATCH", format!("/api/v1/repositories/{repo}"), br#"{"public":true}"#.to_vec()),
                2 => ("POST", "/api/v1/users".into(), br#"{"name":"mallory","password":"mallory-pw","admin":true}"#.to_vec()),
                _ => ("PUT", format!("/api/v1/repositories/{repo}/description"), br#"{"description":"owned"}"#.to_vec()),
            }
        } else {
            ("GET", self.rng.pick(&reads).to_string(), vec![])
        };
        let (a, ctx) = self.send(kind, &cred, method, &path, &[], &body);
        // An administrator's token opens the admin API only when it was asked for it
        // (`registry:admin:*`), as repository tokens open only their repositories.
        let scoped_for_admin = match &cred {
            Cred::Bearer(t) => t.scope.split(' ').any(|s| s == "registry:admin:*"),
            _ => true,
        };
        self.count(kind, is_admin && scoped_for_admin);
        if is_admin && scoped_for_admin {
            self.expect(kind, &ctx, &a, 200, None);
            return;
        }
        if is_admin {
            let v = Verdict::Challenge { insufficient: true };
            self.check_denied(kind, &ctx, v, &a, false, None);
            return;
        }
        let v = match &cred {
            Cred::Anon => Verdict::Challenge {
                insufficient: false,
            },
            Cred::Bearer(t) if t.who == Who::Anon => Verdict::AnyDenial,
            _ => Verdict::Forbidden,
        };
        self.check_denied(kind, &ctx, v, &a, false, None);
        if (200..300).contains(&a.status) {
            panic!(
                "seed {}: a non-admin changed the registry: {ctx}: {}",
                self.seed,
                a.brief()
            );
        }
    }

    fn op_console(&mut self) {
        let (repo, ghost) = self.read_repo();
        let cred = self.random_cred(&[&repo]);
        let who = cred.who();
        match self.rng.below(6) {
            5 => {
                // Summaries any signed-in caller may read: nothing in them may name what
                // the caller may not see.
                let kind = "console storage/CA summary";
                let path = *self.rng.pick(&["/api/v1/storage", "/api/v1/ca"]);
                let (a, ctx) = self.send(kind, &cred, "GET", path, &[], b"");
                let allowed = !matches!(cred, Cred::Anon);
                self.count(kind, allowed);
                if allowed {
                    self.expect(kind, &ctx, &a, 200, None);
                } else {
                    let v = Verdict::Challenge {
                        insufficient: false,
                    };
                    self.check_denied(kind, &ctx, v, &a, false, None);
                }
            }
            4 => {
                let kind = "console who-am-I";
                let (a, ctx) = self.send(kind, &cred, "GET", "/api/v1/session", &[], b"");
                let allowed = !matches!(cred, Cred::Anon);
                self.count(kind, allowed);
                if !allowed {
                    let v = Verdict::Challenge {
                        insufficient: false,
                    };
                    self.check_denied(kind, &ctx, v, &a, false, None);
                    return;
                }
                if self.expect(kind, &ctx, &a, 200, None) {
                    let j = a.json().unwrap_or_default();
                    let (name, robot) = match who {
                        Who::Anon => (String::new(), false),
                        Who::Account(i) => {
                            let acc = &self.m.accounts[i];
                            (acc.name.clone(), acc.robot.is_some())
                        }
                    };
                    let ok = j["user"].as_str() == Some(name.as_str())
                        && j["admin"].as_bool() == Some(self.m.is_admin(who))
                        && j["robot"].as_bool() == Some(robot);
                    if !ok {
                        self.fail(format!("{kind}: wrong"), format!("{ctx}: {}", a.brief()));
                    }
                }
            }
            0 => {
                let kind = "console repository list";
                let (a, ctx) = self.send(kind, &cred, "GET", "/api/v1/repositories", &[], b"");
                let allowed = !matches!(cred, Cred::Anon);
                self.count(kind, allowed);
                if !allowed {
                    self.check_denied(
                        kind,
                        &ctx,
                        Verdict::Challenge {
                            insufficient: false,
                        },
                        &a,
                        false,
                        None,
                    );
                    return;
                }
                if matches!(cred, Cred::Bearer(_)) && who == Who::Anon && a.status == 401 {
                    return;
                }
                if !self.expect(kind, &ctx, &a, 200, None) {
                    return;
                }
                let list = a.json().unwrap_or_default();
                let entries = list.as_array().cloned().unwrap_or_default();
                let names: Vec<String> = entries
                    .iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_string))
                    .collect();
                let visible = self.m.visible_repos(who);
                if matches!(cred, Cred::Bearer(_)) {
                    // A token's listing may be narrower (its scopes); never wider.
                    if let Some(extra) = names.iter().find(|n| !visible.contains(n)) {
                        self.fail(
                            format!("{kind}: LEAK of a repository"),
                            format!("{ctx}: {extra} listed; may pull {visible:?}"),
                        );
                    }
                    return;
                }
                let mut sorted = names.clone();
                sorted.sort();
                if sorted != visible {
                    self.fail(
                        format!("{kind}: not exactly what the caller may pull"),
                        format!("{ctx}: want {visible:?}, got {names:?}"),
                    );
                    return;
                }
                for e in &entries {
                    let name = e["name"].as_str().unwrap_or("");
                    let r = self.m.rights(who, name);
                    let want: Vec<&str> = [(PULL, "pull"), (PUSH, "push"), (DELETE, "delete")]
                        .into_iter()
                        .filter(|(x, _)| r & x != 0)
                        .map(|(_, w)| w)
                        .collect();
                    let got: Vec<&str> = e["actions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str())
                        .collect();
                    let tags = e["tags"].as_u64().unwrap_or(u64::MAX) as usize;
                    if got != want || tags != self.m.tags_of(name).len() {
                        self.fail(
                            format!("{kind}: wrong entry"),
                            format!(
                                "{ctx}: {name}: want actions {want:?} and {} tags, got {e}",
                                self.m.tags_of(name).len()
                            ),
                        );
                    }
                }
            }
            which => {
                let (kind, path, tag) = match which {
                    1 => (
                        "console repository",
                        format!("/api/v1/repositories/{repo}"),
                        None,
                    ),
                    2 => (
                        "console tags",
                        format!("/api/v1/repositories/{repo}/tags"),
                        None,
                    ),
                    _ => {
                        let own = self.m.tags_of(&repo);
                        let all: Vec<String> = self
                            .m
                            .tags
                            .values()
                            .flat_map(|t| t.keys().cloned())
                            .collect();
                        let t = if self.rng.pct(60) && !own.is_empty() {
                            self.rng.pick(&own).clone()
                        } else {
                            self.rng.pick(&all).clone()
                        };
                        (
                            "console tag",
                            format!("/api/v1/repositories/{repo}/tags/{t}"),
                            Some(t),
                        )
                    }
                };
                let (a, ctx) = self.send(kind, &cred, "GET", &path, &[], b"");
                let v = match cred {
                    // The console's routes ask for a login first.
                    Cred::Anon => Verdict::Challenge {
                        insufficient: false,
                    },
                    _ => self.verdict(&cred, &repo, PULL),
                };
                self.count(kind, v == Verdict::Allow);
                if v != Verdict::Allow {
                    self.check_denied(kind, &ctx, v, &a, false, None);
                    return;
                }
                if ghost {
                    self.expect(kind, &ctx, &a, 404, None);
                    return;
                }
                let tags = self.m.tags.get(&repo).cloned().unwrap_or_default();
                match tag {
                    Some(t) => match tags.get(&t) {
                        Some(d) => {
                            if self.expect(kind, &ctx, &a, 200, None) {
                                let j = a.json().unwrap_or_default();
                                if j["digest"].as_str() != Some(d.as_str())
                                    || j["repository"].as_str() != Some(repo.as_str())
                                {
                                    self.fail(
                                        format!("{kind}: wrong detail"),
                                        format!("{ctx}: {}", a.brief()),
                                    );
                                }
                            }
                        }
                        None => {
                            self.expect(kind, &ctx, &a, 404, None);
                        }
                    },
                    None if which == 1 => {
                        if self.expect(kind, &ctx, &a, 200, None) {
                            let j = a.json().unwrap_or_default();
                            if j["name"].as_str() != Some(repo.as_str())
                                || j["tags"].as_u64() != Some(tags.len() as u64)
                            {
                                self.fail(
                                    format!("{kind}: wrong summary"),
                                    format!("{ctx}: {}", a.brief()),
                                );
                            }
                        }
                    }
                    None => {
                        if self.expect(kind, &ctx, &a, 200, None) {
                            let got: BTreeMap<String, String> = a
                                .json()
                                .and_then(|j| j.as_array().cloned())
                                .unwrap_or_default()
                                .iter()
                                .map(|e| {
                                    (
                                        e["tag"].as_str().unwrap_or("").to_string(),
                                        e["digest"].as_str().unwrap_or("").to_string(),
                                    )
                                })
                                .collect();
                            if got != tags {
                                self.fail(
                                    format!("{kind}: wrong tags"),
                                    format!("{ctx}: want {tags:?}, got {got:?}"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Now and then the admin changes the rules or a repository's visibility; tokens keep
    /// what they were issued with, everything else follows the current rules.
    fn op_change(&mut self) {
        self.count("rule/visibility change", true);
        // Tokens keep what they were issued with; the model judges by the current rules, so
        // callers ask for new ones (as docker does after a 401).
        self.tokens.clear();
        match self.rng.below(3) {
            0 => self.add_rule(),
            1 if self.m.rules.len() > 4 => {
                let i = self.rng.below(self.m.rules.len());
                let id = self.m.rules[i].id;
                self.admin("DELETE", &format!("/api/v1/rules/{id}"), b"", 204);
                self.m.rules.remove(i);
            }
            _ => {
                let r = self.rng.pick(&self.m.repos).clone();
                let public = !self.m.public.contains(&r);
                let body = format!("{{\"public\":{public}}}");
                self.admin(
                    "PATCH",
                    &format!("/api/v1/repositories/{r}"),
                    body.as_bytes(),
                    204,
                );
                if public {
                    self.m.public.insert(r);
                } else {
                    self.m.public.remove(&r);
                }
            }
        }
    }

    fn step(&mut self) {
        match self.rng.below(1000) {
            0..=94 => self.op_blob(false),
            95..=179 => self.op_blob(true),
            180..=284 => self.op_mount(true),
            285..=329 => self.op_mount(false),
            330..=449 => self.op_manifest(),
            450..=484 => self.op_invalid_reference(),
            485..=539 => self.op_referrers(),
            540..=594 => self.op_tags(),
            595..=649 => self.op_catalog(),
            650..=689 => self.op_upload_status(),
            690..=719 => self.op_foreign_session_write(),
            720..=744 => self.op_push_tag(),
            745..=764 => self.op_delete_tag(),
            765..=779 => self.op_blob_delete(),
            780..=809 => self.op_blob_push(),
            810..=854 => self.op_admin_api(),
            855..=994 => self.op_console(),
            _ => self.op_change(),
        }
    }

    /// After the run: the admin's view of rules and accounts is the model's (no refused
    /// change landed), and every link the model holds reads back.
    fn final_checks(&mut self) {
        let rules = self.admin("GET", "/api/v1/rules", b"", 200).json().unwrap();
        let n = rules.as_array().map_or(0, |a| a.len());
        if n != self.m.rules.len() {
            self.fail(
                "final: rules changed",
                format!("want {} rules, server has {n}", self.m.rules.len()),
            );
        }
        let users = self.admin("GET", "/api/v1/users", b"", 200);
        if String::from_utf8_lossy(&users.body).contains("mallory") {
            self.fail(
                "final: a refused user creation landed",
                "mallory exists".into(),
            );
        }
        let links: Vec<(String, String)> = self
            .m
            .links
            .iter()
            .flat_map(|(r, ds)| ds.iter().map(move |d| (r.clone(), d.clone())))
            .collect();
        for (r, d) in links {
            let h = vec![("Authorization".to_string(), self.admin_auth.clone())];
            let a = self.raw("HEAD", &format!("/v2/{r}/blobs/{d}"), &h, b"");
            if a.status != 200 {
                self.fail(
                    "final: a linked blob is gone",
                    format!("HEAD /v2/{r}/blobs/{d}: {}", a.brief()),
                );
            }
        }
    }
}

#[test]
fn no_byte_digest_tag_or_name_reaches_a_caller_without_the_right() {
    let seed: u64 = std::env::var("EDGEYARD_AUTHZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let ops: usize = std::env::var("EDGEYARD_AUTHZ_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    eprintln!("authz model: seed {seed} (EDGEYARD_AUTHZ_SEED={seed} to repeat), {ops} operations");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let admin_pw = "admin-pw-authz-model";
    let mut cmd = serve_cmd(&dir, &["--insecure-http"], &[]);
    // Another build of the server (a release build, an older commit) can be put to the
    // same model.
    if let Ok(bin) = std::env::var("EDGEYARD_AUTHZ_BIN") {
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_owned()).collect();
        cmd = std::process::Command::new(bin);
        cmd.args(args);
    }
    cmd.env("EDGEYARD_ADMIN_PASSWORD", admin_pw);
    let server = Server::launch(cmd, &dir);
    let started = Instant::now();
    let mut run = Run {
        seed,
        rng: Rng(seed),
        addr: server.addr.clone(),
        m: Model::default(),
        admin_auth: basic("admin", admin_pw),
        tokens: HashMap::new(),
        sessions: HashMap::new(),
        failures: BTreeMap::new(),
        counts: BTreeMap::new(),
        requests: 0,
        h2_heads: 0,
        last_h2: false,
        op: 0,
        pass_401: false,
        extra: Vec::new(),
    };
    run.m.accounts.push(Account {
        name: "admin".into(),
        password: admin_pw.into(),
        admin: true,
        groups: vec![],
        robot: None,
    });
    run.m.repos = [
        "team/app-a1",
        "team/db-b2",
        "team/x/svc-c3",
        "prod/app-d4",
        "prod/edge-e5",
        "lab/tool-f6",
        "lab/y/deep-g7",
        "pub/base-h8",
        "pub/img-i9",
        "ci/build-j0",
    ]
    .map(String::from)
    .to_vec();
    run.m.ghosts = ["team/ghost-k1", "prod/x/ghost-l2"]
        .map(String::from)
        .to_vec();
    run.setup();
    let setup_secs = started.elapsed().as_secs_f64();
    for i in 0..ops {
        run.op = i;
        run.step();
    }
    run.final_checks();
    let (allowed, denied) = run
        .counts
        .values()
        .fold((0, 0), |(a, d), (x, y)| (a + x, d + y));
    let by_kind: Vec<String> = run
        .counts
        .iter()
        .map(|(k, (a, d))| format!("{k} {a}/{d}"))
        .collect();
    eprintln!(
        "authz model: seed {seed}: {ops} operations ({allowed} allowed, {denied} denied), {} requests ({} HEAD over HTTP/2), {} rules at the end, set-up {setup_secs:.1} s, total {:.1} s; by kind (allowed/denied): {}",
        run.requests,
        run.h2_heads,
        run.m.rules.len(),
        started.elapsed().as_secs_f64(),
        by_kind.join(", ")
    );
    if !run.failures.is_empty() {
        let mut report = String::new();
        for (cat, (n, first)) in &run.failures {
            report.push_str(&format!("\n- [{n}x] {cat}\n    first: {first}"));
        }
        panic!(
            "authz model, seed {seed} (EDGEYARD_AUTHZ_SEED={seed}): {} kinds of failure:{report}",
            run.failures.len()
        );
    }
}
