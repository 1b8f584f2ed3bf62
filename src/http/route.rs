//! Route parsing, pure: a method-independent `Route` from a request path. Repository names
//! contain slashes, so the path is split at the last resource marker that has exactly one
//! segment (or nothing) after it, and the name before it is then validated.

use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, Reference, RepoName, UploadId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/ca.crt`: the registry's CA certificate
    CaCert,
    /// `/metrics`, `/healthz`, `/readyz`: for monitoring, no login (`/metrics` may be
    /// configured to need one: `[auth] metrics_login`)
    Metrics,
    Health,
    Ready,
    /// `/token`: the token endpoint of docker's token authentication
    Token,
    /// `/api/v1/...`: the HTTP API the console and `--server` commands use (most of it for
    /// administrators; `handlers::console` decides who may call what)
    Api(AdminRoute),
    /// `/` and `/console/<file>`: the web console's static files
    Console(String),
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<text>` where the text is neither a tag nor a digest: no
    /// manifest can be found by it (404 MANIFEST_UNKNOWN, as the spec's conformance suite
    /// expects), and none can be stored under it (a PUT answers why, 400).
    BadReference(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

/// Resources of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRoute {
    Users,
    User(String),
    UserPassword(String),
    Robots,
    Robot(String),
    Rules,
    Rule(u64),
    Immutability,
    ImmutabilityRule(u64),
    /// `/api/v1/trust/keys`: keys trusted to sign images
    TrustKeys,
    TrustKey(String),
    /// `/api/v1/trust/policies`: which repositories need which signatures
    TrustPolicies,
    TrustPolicy(u64),
    Gc,
    /// `/api/v1/fsck`: check the store
    Fsck,
    Quotas,
    Quota(u64),
    Retention,
    RetentionRule(u64),
    RetentionApply,
    Repositories,
    Repository(RepoName),
    RepositoryTags(RepoName),
    RepositoryDescription(RepoName),
    /// `/api/v1/pins/<name>:<tag>`
    Pin(RepoName, crate::oci::Tag),
    Pins,
    Mirrors,
    Sync,
    /// `/api/v1/export`: an OCI layout tarball of the named images
    Export,
    /// `/api/v1/import`: load a bundle
    Import,
    /// `/api/v1/push-to`: copy images to another registry
    PushTo,
    /// `/api/v1/replicate`: run `[[replication]]` rules now
    Replicate,
    /// `/api/v1/session`: console sign-in, who-am-I and sign-out
    Session,
    /// `/api/v1/repositories/<name>/tags/<tag>`: one tag in detail, or its deletion. A
    /// repository whose name holds `/tags/` is reached by its tags here, not by itself.
    RepositoryTag(RepoName, crate::oci::Tag),
    /// `/api/v1/storage`: disk usage and the last garbage collection
    Storage,
    /// `/api/v1/ca`: the CA clients should trust, with its fingerprints
    Ca,
}

impl AdminRoute {
    /// `None` for a path that names no operation (404). A path of a known shape whose
    /// repository name or tag breaks the grammar is an error, as on `/v2/`: 400 with
    /// NAME_INVALID or TAG_INVALID, so a script learns what it got wrong.
    fn parse(rest: &str) -> Result<Option<AdminRoute>> {
        let rest = rest.trim_end_matches('/');
        // Repository names contain slashes: split off a known suffix, then validate.
        if rest == "repositories" {
            return Ok(Some(AdminRoute::Repositories));
        }
        // `pins/NAME:TAG`: neither a name nor a tag holds a colon.
        if let Some(r) = rest.strip_prefix("pins/") {
            let Some((name, tag)) = r.rsplit_once(':') else {
                return Ok(None);
            };
            return Ok(Some(AdminRoute::Pin(name.parse()?, tag.parse()?)));
        }
        if let Some(r) = rest.strip_prefix("repositories/") {
            let (name, kind): (&str, fn(RepoName) -> AdminRoute) =
                if let Some(n) = r.strip_suffix("/tags") {
                    (n, AdminRoute::RepositoryTags)
                } else if let Some(n) = r.strip_suffix("/description") {
                    (n, AdminRoute::RepositoryDescription)
                } else if let Some((n, t)) = split_last(r, "/tags/") {
                    return Ok(Some(AdminRoute::RepositoryTag(n.parse()?, t.parse()?)));
                } else {
                    (r, AdminRoute::Repository)
                };
            return Ok(Some(kind(name.parse()?)));
        }
        Ok(Self::by_segments(rest))
    }

    /// The operations named by fixed segments and, for rules and quotas, a numeric id.
    fn by_segments(rest: &str) -> Option<AdminRoute> {
        let parts: Vec<&str> = rest.split('/').collect();
        Some(match parts.as_slice() {
            ["users"] => AdminRoute::Users,
            ["users", n] => AdminRoute::User(n.to_string()),
            ["users", n, "password"] => AdminRoute::UserPassword(n.to_string()),
            ["robots"] => AdminRoute::Robots,
            ["robots", n] => AdminRoute::Robot(n.to_string()),
            ["rules"] => AdminRoute::Rules,
            ["rules", id] => AdminRoute::Rule(id.parse().ok()?),
            ["immutability"] => AdminRoute::Immutability,
            ["gc"] => AdminRoute::Gc,
            ["fsck"] => AdminRoute::Fsck,
            ["pins"] => AdminRoute::Pins,
            ["mirrors"] => AdminRoute::Mirrors,
            ["sync"] => AdminRoute::Sync,
            ["export"] => AdminRoute::Export,
            ["import"] => AdminRoute::Import,
            ["push-to"] => AdminRoute::PushTo,
            ["replicate"] => AdminRoute::Replicate,
            ["session"] => AdminRoute::Session,
            ["storage"] => AdminRoute::Storage,
            ["ca"] => AdminRoute::Ca,
            ["quotas"] => AdminRoute::Quotas,
            ["quotas", id] => AdminRoute::Quota(id.parse().ok()?),
            ["retention"] => AdminRoute::Retention,
            ["retention", "apply"] => AdminRoute::RetentionApply,
            ["retention", id] => AdminRoute::RetentionRule(id.parse().ok()?),
            ["immutability", id] => AdminRoute::ImmutabilityRule(id.parse().ok()?),
            ["trust", "keys"] => AdminRoute::TrustKeys,
            ["trust", "keys", n] => AdminRoute::TrustKey(n.to_string()),
            ["trust", "policies"] => AdminRoute::TrustPolicies,
            ["trust", "policies", id] => AdminRoute::TrustPolicy(id.parse().ok()?),
            _ => return None,
        })
    }
}

impl Route {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Api(_) => "admin",
            Route::Console(_) => "console",
            Route::CaCert => "ca_cert",
            Route::Metrics => "metrics",
            Route::Health => "healthz",
            Route::Ready => "readyz",
            Route::Token => "token",
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) | Route::BadReference(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::UploadStart(_) => "upload_start",
            Route::Upload(..) => "upload",
            Route::Referrers(..) => "referrers",
        }
    }

    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Route::Api(_)
            | Route::Console(_)
            | Route::CaCert
            | Route::Metrics
            | Route::Health
            | Route::Ready
            | Route::Token
            | Route::Base
            | Route::Catalog => None,
            Route::Tags(r)
            | Route::Manifest(r, _)
            | Route::BadReference(r, _)
            | Route::Blob(r, _)
            | Route::UploadStart(r)
            | Route::Upload(r, _)
            | Route::Referrers(r, _) => Some(r),
        }
    }
}

fn not_found() -> Error {
    Error::api(ErrorCode::NameUnknown, "no such endpoint").with_status(http::StatusCode::NOT_FOUND)
}

/// Splits `rest` at the last `marker` followed by exactly one non-empty segment.
fn split_last<'a>(rest: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let i = rest.rfind(marker)?;
    let (name, tail) = (&rest[..i], &rest[i + marker.len()..]);
    (!tail.is_empty() && !tail.contains('/')).then_some((name, tail))
}

pub fn parse(path: &str) -> Result<Route> {
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        // Names in admin paths may be percent-encoded (robot$name). A path is not a form: `+`
        // stays a plus and `&` an ampersand, and a path that decodes to invalid UTF-8 names
        // nothing.
        let Ok(decoded) = percent_encoding::percent_decode_str(rest).decode_utf8() else {
            return Err(not_found());
        };
        return AdminRoute::parse(&decoded)?
            .map(Route::Api)
            .ok_or_else(not_found);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return match path {
            "/v2" => Ok(Route::Base),
            "/ca.crt" => Ok(Route::CaCert),
            "/token" => Ok(Route::Token),
            "/metrics" => Ok(Route::Metrics),
            "/healthz" => Ok(Route::Health),
            "/readyz" => Ok(Route::Ready),
            "/" => Ok(Route::Console("index.html".into())),
            p => match p.strip_prefix("/console/") {
                Some(file) => Ok(Route::Console(file.to_string())),
                None => Err(not_found()),
            },
        };
    };
    if rest.is_empty() {
        return Ok(Route::Base);
    }
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let name = |s: &str| -> Result<RepoName> { Ok(s.parse::<RepoName>()?) };
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags(name(n)?));
    }
    if let Some(n) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Ok(Route::UploadStart(name(n)?));
    }
    if let Some((n, id)) = split_last(rest, "/blobs/uploads/") {
        let id = id
            .parse::<UploadId>()
            .map_err(|()| Error::code(ErrorCode::BlobUploadUnknown))?;
        return Ok(Route::Upload(name(n)?, id));
    }
    if let Some((n, r)) = split_last(rest, "/manifests/") {
        let repo = name(n)?;
        return Ok(match r.parse() {
            Ok(reference) => Route::Manifest(repo, reference),
            Err(_) => Route::BadReference(repo, r.to_string()),
        });
    }
    if let Some((n, d)) = split_last(rest, "/blobs/") {
        let repo = name(n)?;
        return Ok(Route::Blob(repo, d.parse()?));
    }
    if let Some((n, d)) = split_last(rest, "/referrers/") {
        let repo = name(n)?;
        return Ok(Route::Referrers(repo, d.parse()?));
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> String {
        format!("sha256:{}", "a".repeat(64))
    }

    #[test]
    fn routes() {
        let id = "0123456789abcdef0123456789abcdef";
        let cases: Vec<(String, &str, Option<&str>)> = vec![
            ("/v2/".into(), "base", None),
            ("/v2".into(), "base", None),
            ("/v2/_catalog".into(), "catalog", None),
            ("/ca.crt".into(), "ca_cert", None),
            ("/api/v1/users".into(), "admin", None),
            ("/api/v1/robots/robot%24ci".into(), "admin", None),
            ("/api/v1/repositories/a/b/tags".into(), "admin", None),
            ("/api/v1/repositories/a/b/tags/v1".into(), "admin", None),
            ("/api/v1/session".into(), "admin", None),
            ("/".into(), "console", None),
            ("/console/app.js".into(), "console", None),
            (
                "/v2/library/alpine/tags/list".into(),
                "tags",
                Some("library/alpine"),
            ),
            (
                "/v2/a/manifests/b/manifests/latest".into(),
                "manifest",
                Some("a/manifests/b"),
            ),
            (
                "/v2/a/manifests/b/tags/list".into(),
                "tags",
                Some("a/manifests/b"),
            ),
            (format!("/v2/ns/app/blobs/{}", d()), "blob", Some("ns/app")),
            (
                "/v2/ns/app/blobs/uploads/".into(),
                "upload_start",
                Some("ns/app"),
            ),
            (
                "/v2/ns/app/blobs/uploads".into(),
                "upload_start",
                Some("ns/app"),
            ),
            (
                format!("/v2/ns/app/blobs/uploads/{id}"),
                "upload",
                Some("ns/app"),
            ),
            (
                format!("/v2/blobs/uploads/blobs/{}", d()),
                "blob",
                Some("blobs/uploads"),
            ),
            (
                format!("/v2/ns/app/referrers/{}", d()),
                "referrers",
                Some("ns/app"),
            ),
            (
                format!("/v2/ns/app/manifests/{}", d()),
                "manifest",
                Some("ns/app"),
            ),
        ];
        for (path, kind, repo) in cases {
            let r = parse(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(r.kind(), kind, "{path}");
            assert_eq!(r.repo().map(|r| r.as_str()), repo, "{path}");
        }
    }

    #[test]
    fn console_admin_routes() {
        let admin = |p: &str| match parse(p) {
            Ok(Route::Api(r)) => Some(r),
            _ => None,
        };
        let name = |n: &str| n.parse::<RepoName>().unwrap();
        assert_eq!(
            admin("/api/v1/repositories/a/b/tags/v1.2"),
            Some(AdminRoute::RepositoryTag(
                name("a/b"),
                "v1.2".parse().unwrap()
            ))
        );
        assert_eq!(
            admin("/api/v1/repositories/a/b/tags"),
            Some(AdminRoute::RepositoryTags(name("a/b")))
        );
        assert_eq!(
            admin("/api/v1/repositories/a/b"),
            Some(AdminRoute::Repository(name("a/b")))
        );
        assert!(parse("/api/v1/repositories/a/b/tags/.bad").is_err());
        assert_eq!(admin("/api/v1/session"), Some(AdminRoute::Session));
        assert_eq!(admin("/api/v1/storage"), Some(AdminRoute::Storage));
        assert_eq!(admin("/api/v1/ca"), Some(AdminRoute::Ca));
        assert_eq!(parse("/").unwrap(), Route::Console("index.html".into()));
        assert_eq!(
            parse("/console/app.css").unwrap(),
            Route::Console("app.css".into())
        );
    }

    #[test]
    fn bad_paths() {
        let code = |p: &str| parse(p).unwrap_err().error_code();
        assert_eq!(code("/v2/Test/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/../../etc/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(
            parse("/v2/ab/manifests/.bad").unwrap(),
            Route::BadReference("ab".parse().unwrap(), ".bad".into())
        );
        assert_eq!(
            parse("/v2/ab/manifests/sha256:abc").unwrap(),
            Route::BadReference("ab".parse().unwrap(), "sha256:abc".into())
        );
        assert_eq!(code("/v2/ab/blobs/sha256:abc"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/ab/blobs/md5:abcd"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/ab/blobs/uploads/../../x"), ErrorCode::NameUnknown);
        assert_eq!(
            code("/v2/ab/blobs/uploads/zz"),
            ErrorCode::BlobUploadUnknown
        );
        assert_eq!(code("/v1/x"), ErrorCode::NameUnknown);
        assert_eq!(code("/v2/ab/unknown"), ErrorCode::NameUnknown);
    }

    /// The admin API judges names and tags as `/v2/` does: a known operation on a bad name
    /// says so (400), only a path that names no operation is 404.
    #[test]
    fn admin_paths_with_bad_names_or_tags() {
        let code = |p: &str| parse(p).unwrap_err().error_code();
        assert_eq!(code("/api/v1/repositories/Bad"), ErrorCode::NameInvalid);
        assert_eq!(code("/api/v1/repositories/a"), ErrorCode::NameInvalid);
        assert_eq!(
            code("/api/v1/repositories/..%2F..%2Foutside"),
            ErrorCode::NameInvalid
        );
        assert_eq!(
            code("/api/v1/repositories/ab/../../x/tags"),
            ErrorCode::NameInvalid
        );
        assert_eq!(
            code("/api/v1/repositories/ab/description%00"),
            ErrorCode::NameInvalid
        );
        assert_eq!(
            code("/api/v1/repositories/ab/tags/.bad"),
            ErrorCode::TagInvalid
        );
        assert_eq!(code("/api/v1/pins/..%2Foutside:v1"), ErrorCode::NameInvalid);
        assert_eq!(code("/api/v1/pins/ab:.v1"), ErrorCode::TagInvalid);
        // Unknown shapes and malformed ids stay 404.
        assert_eq!(code("/api/v1/pins/ab"), ErrorCode::NameUnknown);
        assert_eq!(code("/api/v1/rules/.."), ErrorCode::NameUnknown);
        assert_eq!(code("/api/v1/retention/x"), ErrorCode::NameUnknown);
        assert_eq!(code("/api/v1/nothing"), ErrorCode::NameUnknown);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/route.rs): admin paths were decoded as a form, so
    /// `+` became a space and everything from a `&` on was dropped (`users/alice&x` named
    /// alice).
    #[test]
    fn admin_path_plus_and_ampersand_are_literal() {
        let user = |p: &str| match parse(p) {
            Ok(Route::Api(AdminRoute::User(n))) => n,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(user("/api/v1/users/a+b"), "a+b");
        assert_eq!(user("/api/v1/users/alice&x"), "alice&x");
        assert_eq!(user("/api/v1/users/a%2Bb%26c"), "a+b&c");
        assert_eq!(user("/api/v1/users/robot%24ci"), "robot$ci");
        assert_eq!(
            parse("/api/v1/users/%FF").unwrap_err().error_code(),
            ErrorCode::NameUnknown
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::oci::digest::strategies::digest;
        use crate::oci::name::strategies::{repo_name, tag};

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn registry_paths_route_to_their_name_and_reference(
                n in repo_name(), t in tag(), d in digest(), id in "[0-9a-f]{32}"
            ) {
                let name: RepoName = n.parse().unwrap();
                let digest: Digest = d.parse().unwrap();
                let upload: UploadId = id.parse().unwrap();
                let cases = [
                    (format!("/v2/{n}/tags/list"), Route::Tags(name.clone())),
                    (
                        format!("/v2/{n}/manifests/{t}"),
                        Route::Manifest(name.clone(), Reference::Tag(t.parse().unwrap())),
                    ),
                    (
                        format!("/v2/{n}/manifests/{d}"),
                        Route::Manifest(name.clone(), Reference::Digest(digest.clone())),
                    ),
                    (format!("/v2/{n}/blobs/{d}"), Route::Blob(name.clone(), digest.clone())),
                    (format!("/v2/{n}/blobs/uploads/"), Route::UploadStart(name.clone())),
                    (format!("/v2/{n}/blobs/uploads"), Route::UploadStart(name.clone())),
                    (format!("/v2/{n}/blobs/uploads/{id}"), Route::Upload(name.clone(), upload)),
                    (format!("/v2/{n}/referrers/{d}"), Route::Referrers(name.clone(), digest)),
                    (
                        format!("/api/v1/repositories/{n}/tags"),
                        Route::Api(AdminRoute::RepositoryTags(name.clone())),
                    ),
                    (
                        format!("/api/v1/pins/{n}:{t}"),
                        Route::Api(AdminRoute::Pin(name, t.parse().unwrap())),
                    ),
                ];
                for (path, want) in cases {
                    prop_assert_eq!(parse(&path).unwrap(), want, "{}", path);
                }
            }

            #[test]
            fn invalid_names_never_route(n in repo_name(), t in tag()) {
                let upper = format!("/v2/{}/manifests/{t}", n.to_uppercase());
                if upper != format!("/v2/{n}/manifests/{t}") {
                    prop_assert_eq!(parse(&upper).unwrap_err().error_code(), ErrorCode::NameInvalid);
                }
                let dotted = format!("/v2/{n}/../manifests/{t}");
                prop_assert_eq!(parse(&dotted).unwrap_err().error_code(), ErrorCode::NameInvalid);
            }
        }
    }
}
