//! The request router (`http::route::parse`) and query parameters (`http::query::param`).
//!
//! A path that routes must be exactly the route written back (so no part of it was ignored
//! or reinterpreted), the repository it names must appear verbatim in it, and printing the
//! route and parsing that again must give the same route. A path that does not route must be
//! refused with a client error, never a 500. Query values must be the spec's
//! form-urlencoding of the first pair with that key.

#![no_main]

use edgeyard::http::route::{parse, AdminRoute, Route};
use libfuzzer_sys::fuzz_target;

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// RFC 3986 percent-decoding: `%XX` becomes the byte, everything else stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |x: u8| (x as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (x, _, _) => {
                out.push(x);
                i += 1;
            }
        }
    }
    out
}

/// A path percent-decoded (in a path, `+` is a plus and `&` an ampersand). `None` when the
/// result is not UTF-8.
fn decode_path(s: &str) -> Option<String> {
    String::from_utf8(percent_decode(s)).ok()
}

/// The admin resource as a path below `/api/v1/`, unencoded; `None` for the numbered ones,
/// whose id may be written in several ways (`7`, `007`, `+7`).
fn admin_path(a: &AdminRoute) -> Option<String> {
    Some(match a {
        AdminRoute::Users => "users".into(),
        AdminRoute::User(n) => format!("users/{n}"),
        AdminRoute::UserPassword(n) => format!("users/{n}/password"),
        AdminRoute::Robots => "robots".into(),
        AdminRoute::Robot(n) => format!("robots/{n}"),
        AdminRoute::Rules => "rules".into(),
        AdminRoute::Immutability => "immutability".into(),
        AdminRoute::Gc => "gc".into(),
        AdminRoute::Quotas => "quotas".into(),
        AdminRoute::Retention => "retention".into(),
        AdminRoute::RetentionApply => "retention/apply".into(),
        AdminRoute::Repositories => "repositories".into(),
        AdminRoute::Repository(r) => format!("repositories/{r}"),
        AdminRoute::RepositoryTags(r) => format!("repositories/{r}/tags"),
        AdminRoute::RepositoryDescription(r) => format!("repositories/{r}/description"),
        AdminRoute::Pin(r, t) => format!("pins/{r}:{t}"),
        AdminRoute::Pins => "pins".into(),
        AdminRoute::Mirrors => "mirrors".into(),
        AdminRoute::Sync => "sync".into(),
        AdminRoute::Export => "export".into(),
        AdminRoute::Import => "import".into(),
        AdminRoute::PushTo => "push-to".into(),
        AdminRoute::Replicate => "replicate".into(),
        AdminRoute::Fsck => "fsck".into(),
        AdminRoute::Session => "session".into(),
        AdminRoute::Storage => "storage".into(),
        AdminRoute::Ca => "ca".into(),
        AdminRoute::RepositoryTag(r, t) => format!("repositories/{r}/tags/{t}"),
        AdminRoute::TrustKeys => "trust/keys".into(),
        AdminRoute::TrustKey(n) => format!("trust/keys/{n}"),
        AdminRoute::TrustPolicies => "trust/policies".into(),
        AdminRoute::TrustPolicy(_)
        | AdminRoute::Rule(_)
        | AdminRoute::ImmutabilityRule(_)
        | AdminRoute::Quota(_)
        | AdminRoute::RetentionRule(_) => return None,
    })
}

/// The route written as a request path, encoded so that it routes back to itself.
fn print(route: &Route) -> String {
    match route {
        Route::CaCert => "/ca.crt".into(),
        Route::Metrics => "/metrics".into(),
        Route::Health => "/healthz".into(),
        Route::Ready => "/readyz".into(),
        Route::Token => "/token".into(),
        Route::Console(file) => format!("/console/{file}"),
        Route::Base => "/v2/".into(),
        Route::Catalog => "/v2/_catalog".into(),
        Route::Tags(r) => format!("/v2/{r}/tags/list"),
        Route::Manifest(r, reference) => format!("/v2/{r}/manifests/{reference}"),
        Route::BadReference(r, text) => format!("/v2/{r}/manifests/{text}"),
        Route::Blob(r, d) => format!("/v2/{r}/blobs/{d}"),
        Route::UploadStart(r) => format!("/v2/{r}/blobs/uploads/"),
        Route::Upload(r, id) => format!("/v2/{r}/blobs/uploads/{id}"),
        Route::Referrers(r, d) => format!("/v2/{r}/referrers/{d}"),
        Route::Api(a) => {
            let rest = match a {
                AdminRoute::User(n) => format!("users/{}", encode(n)),
                AdminRoute::UserPassword(n) => format!("users/{}/password", encode(n)),
                AdminRoute::Robot(n) => format!("robots/{}", encode(n)),
                AdminRoute::Rule(id) => format!("rules/{id}"),
                AdminRoute::ImmutabilityRule(id) => format!("immutability/{id}"),
                AdminRoute::Quota(id) => format!("quotas/{id}"),
                AdminRoute::RetentionRule(id) => format!("retention/{id}"),
                other => admin_path(other).unwrap(),
            };
            format!("/api/v1/{rest}")
        }
    }
}

fn check_path(path: &str) {
    let route = match parse(path) {
        Ok(r) => r,
        Err(e) => {
            assert!(
                e.status().is_client_error(),
                "{path:?}: {e} ({})",
                e.status()
            );
            return;
        }
    };
    let printed = print(&route);
    assert_eq!(
        parse(&printed).ok().as_ref(),
        Some(&route),
        "{path:?} -> {route:?} -> {printed:?}"
    );
    if let Some(repo) = route.repo() {
        assert!(
            path.starts_with(&format!("/v2/{repo}/")),
            "{path:?} routed to repository {repo}"
        );
    }
    match &route {
        Route::Api(a) => {
            // What the path says, decoded once, is exactly the resource (less trailing '/').
            let rest = &path["/api/v1/".len()..];
            let decoded = decode_path(rest);
            let decoded = decoded.as_deref().map(|d| d.trim_end_matches('/'));
            match admin_path(a) {
                Some(want) => assert_eq!(decoded, Some(want.as_str()), "{path:?} -> {a:?}"),
                None => {
                    let (kind, id) = decoded.and_then(|d| d.rsplit_once('/')).unwrap();
                    let n = match a {
                        AdminRoute::Rule(n)
                        | AdminRoute::ImmutabilityRule(n)
                        | AdminRoute::Quota(n)
                        | AdminRoute::RetentionRule(n) => *n,
                        _ => unreachable!(),
                    };
                    assert!(["rules", "immutability", "quotas", "retention"].contains(&kind));
                    assert_eq!(id.parse::<u64>(), Ok(n), "{path:?}");
                }
            }
        }
        Route::Base => assert!(path == "/v2/" || path == "/v2"),
        Route::Console(file) => {
            assert!(
                path == printed || (path == "/" && file == "index.html"),
                "{path:?}"
            )
        }
        Route::UploadStart(_) => {
            assert!(
                path == printed || path == printed.trim_end_matches('/'),
                "{path:?}"
            )
        }
        // Nothing else is decoded or trimmed: the path is the printed route.
        _ => assert_eq!(path, printed),
    }
}

/// The spec's form-urlencoded parsing, written independently: pairs split at `&`, key and
/// value at the first `=`, `+` is a space, then percent-decoding (invalid UTF-8 replaced).
fn form_pairs(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| String::from_utf8_lossy(&percent_decode(&s.replace('+', " "))).into_owned();
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn check_uri(s: &str) {
    let Ok(req) = http::Request::builder().uri(s).body(()) else {
        return;
    };
    // What the server routes: the path of a URI that parsed.
    check_path(req.uri().path());
    let pairs = form_pairs(req.uri().query().unwrap_or(""));
    let mut names: Vec<&str> = vec!["n", "last", "digest", "mount", "from", "ns", "artifactType"];
    names.extend(pairs.iter().map(|(k, _)| k.as_str()).take(4));
    for name in names {
        let want = pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let got = edgeyard::http::query::param(&req, name);
        assert_eq!(got, want, "{s:?} ?{name}");
        if let Some(v) = got {
            // A value written back with the serializer reads back the same.
            let q = format!("{}={}", encode(name), encode(&v));
            let again = http::Request::builder()
                .uri(format!("/v2/?{q}"))
                .body(())
                .unwrap();
            assert_eq!(edgeyard::http::query::param(&again, name), Some(v), "{q:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if s.starts_with('/') {
        check_path(s);
    }
    check_uri(s);
});
