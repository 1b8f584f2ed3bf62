//! Isolation between repositories and the answers token clients rely on, against the real
//! binary: a cross-repository mount never copies a blob its source does not hold, the
//! catalog lists what a token's subject may pull, a token that lacks an action the rules
//! grant gets a challenge for it (not 403), and a mount's challenge names its source.
//! The model-based test (`tests/authz_model.rs`) explores the same rules at random; these
//! are the reproductions each fault was found with.

mod common;

use common::*;

const ROOT_PW: &str = "root-password-1";
const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-1";

/// root (admin); alice: push on `alice/**`, pull on `public/**`; bob: pull on `alice/**`.
fn accounts(dir: &std::path::Path) {
    edgeyard(
        dir,
        &["user", "add", "root", "--admin", "--password-stdin"],
        &format!("{ROOT_PW}\n"),
    );
    edgeyard(
        dir,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    );
    edgeyard(
        dir,
        &["user", "add", "bob", "--password-stdin"],
        &format!("{BOB_PW}\n"),
    );
    for (subject, repos, actions) in [
        ("user:alice", "alice/**", "push"),
        ("user:alice", "public/**", "pull"),
        ("user:bob", "alice/**", "pull"),
    ] {
        access_add(dir, subject, repos, actions);
    }
}

fn start() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    accounts(&dir);
    let s = Server::start_auth(&dir, &[]);
    (tmp, s)
}

/// A Bearer header for `user` with the given scopes (each a `scope` parameter).
fn bearer(s: &Server, user: &str, pw: &str, scopes: &[&str]) -> String {
    let q: String = scopes.iter().map(|sc| format!("&scope={sc}")).collect();
    let r = s
        .req("GET", &format!("/token?service=edgeyard{q}"))
        .auth(&basic(user, pw))
        .send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    format!("Bearer {}", r.json()["token"].as_str().unwrap())
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn challenge(r: &Resp) -> &str {
    r.header("www-authenticate")
        .unwrap_or_else(|| panic!("no challenge on {} {:?}", r.status, r.headers))
}

/// Regression (security): alice, who may pull `public/**`, mounted a blob that only
/// `private/vault` held by naming `from=public/x`, got 201, then read the private bytes from
/// her own repository. Through Basic and Bearer credentials alike, the mount must fall back
/// to an upload session and the bytes must stay unreadable.
#[test]
fn a_mount_never_copies_a_blob_its_source_does_not_hold() {
    let (_tmp, s) = start();
    let admin = basic("root", ROOT_PW);
    let secret = b"factory line 3 signing key, not for alice".to_vec();
    let d = push_blob_as(&s, Some(&admin), "private/vault", &secret);
    // Something public exists, so `public/x` is a real repository.
    push_blob_as(&s, Some(&admin), "public/x", b"public bytes");

    let alice_basic = basic("alice", ALICE_PW);
    let alice_token = bearer(
        &s,
        "alice",
        ALICE_PW,
        &["repository:alice/app:pull,push", "repository:public/x:pull"],
    );
    for auth in [&alice_basic, &alice_token] {
        // Directly: refused.
        let r = s
            .req("GET", &format!("/v2/private/vault/blobs/{d}"))
            .auth(auth)
            .send();
        assert!(matches!(r.status, 401 | 403), "{}", r.status);
        assert!(!holds(&r.body, &secret));

        // Through a mount naming a source she may pull: an upload session, not the blob.
        let r = s
            .req(
                "POST",
                &format!("/v2/alice/app/blobs/uploads/?mount={d}&from=public/x"),
            )
            .auth(auth)
            .send();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        assert!(r
            .header("location")
            .unwrap()
            .starts_with("/v2/alice/app/blobs/uploads/"));
        assert_eq!(r.header("docker-content-digest"), None);

        // Naming the vault itself: she may not pull it, so no mount either.
        let r = s
            .req(
                "POST",
                &format!("/v2/alice/app/blobs/uploads/?mount={d}&from=private/vault"),
            )
            .auth(auth)
            .send();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));

        // And without a source (only administrators may mount by digest alone).
        let r = s
            .req("POST", &format!("/v2/alice/app/blobs/uploads/?mount={d}"))
            .auth(auth)
            .send();
        assert_eq!(r.status, 202);

        for method in ["GET", "HEAD"] {
            let r = s
                .req(method, &format!("/v2/alice/app/blobs/{d}"))
                .auth(auth)
                .send();
            assert_eq!(r.status, 404, "{method}");
            assert!(r.body.is_empty() || r.error_code() == "BLOB_UNKNOWN");
        }
    }

    // The mount works where the source does hold the blob and the caller may read it.
    let r = s
        .req(
            "POST",
            &format!("/v2/alice/app/blobs/uploads/?mount={d}&from=private/vault"),
        )
        .auth(&admin)
        .send();
    assert_eq!(r.status, 201);
    let r = s
        .req("GET", &format!("/v2/alice/app/blobs/{d}"))
        .auth(&alice_basic)
        .send();
    assert_eq!((r.status, r.body), (200, secret));
}

/// Regression: with a Bearer token the catalog was empty, even for an administrator
/// holding `registry:catalog:*`; podman search, python-dxf and Go clients saw nothing.
#[test]
fn the_catalog_lists_what_a_tokens_subject_may_pull() {
    let (_tmp, s) = start();
    let admin = basic("root", ROOT_PW);
    for repo in ["alice/app", "alice/tools", "private/vault", "public/x"] {
        push_blob_as(&s, Some(&admin), repo, repo.as_bytes());
    }
    let list = |auth: &str, n: Option<usize>| -> Vec<String> {
        let mut path = match n {
            Some(n) => format!("/v2/_catalog?n={n}"),
            None => "/v2/_catalog".to_string(),
        };
        let mut all = Vec::new();
        loop {
            let r = s.req("GET", &path).auth(auth).send();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            for v in r.json()["repositories"].as_array().unwrap() {
                all.push(v.as_str().unwrap().to_string());
            }
            match r.header("link") {
                Some(l) => path = l[1..l.find('>').unwrap()].to_string(),
                None => return all,
            }
        }
    };
    let everything = ["alice/app", "alice/tools", "private/vault", "public/x"];
    let root_token = bearer(&s, "root", ROOT_PW, &["registry:catalog:*"]);
    assert_eq!(list(&root_token, None), everything);
    assert_eq!(list(&root_token, Some(1)), everything, "paged one by one");
    assert_eq!(list(&admin, None), everything);

    let alice = ["alice/app", "alice/tools", "public/x"];
    assert_eq!(list(&basic("alice", ALICE_PW), None), alice);
    let alice_token = bearer(&s, "alice", ALICE_PW, &["registry:catalog:*"]);
    assert_eq!(list(&alice_token, None), alice);
    assert_eq!(list(&alice_token, Some(2)), alice);
    // A token for one repository lists by the same rules: never more than they allow.
    let scoped = bearer(&s, "bob", BOB_PW, &["repository:alice/app:pull"]);
    assert_eq!(list(&scoped, None), ["alice/app", "alice/tools"]);

    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(r.status, 401);
}

/// Regression: a token that names the repository but lacks the action (the pull token of
/// the first HEAD, then a POST to start an upload) got 403 DENIED; python-dxf and oras-py
/// could not push or delete, even as admin. Distribution answers 401 with
/// `error="insufficient_scope"` and the scope needed, and the client fetches a new token.
#[test]
fn a_token_lacking_an_action_its_rules_grant_is_challenged_not_denied() {
    let (_tmp, s) = start();
    for (user, pw, repo) in [
        ("alice", ALICE_PW, "alice/app"),
        ("root", ROOT_PW, "any/repo"),
    ] {
        let pull = bearer(&s, user, pw, &[&format!("repository:{repo}:pull")]);
        let r = s
            .req("POST", &format!("/v2/{repo}/blobs/uploads/"))
            .auth(&pull)
            .send();
        assert_eq!(
            r.status,
            401,
            "{user}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let c = challenge(&r);
        assert!(c.contains("error=\"insufficient_scope\""), "{c}");
        assert!(
            c.contains(&format!("scope=\"repository:{repo}:pull,push\"")),
            "{c}"
        );

        // The client does what the challenge says, and the upload starts.
        let push = bearer(&s, user, pw, &[&format!("repository:{repo}:pull,push")]);
        let r = s
            .req("POST", &format!("/v2/{repo}/blobs/uploads/"))
            .auth(&push)
            .send();
        assert_eq!(r.status, 202, "{user}");
    }

    // Delete, for an administrator holding a pull token: challenged for delete.
    let d = push_blob_as(&s, Some(&basic("root", ROOT_PW)), "any/repo", b"to delete");
    let pull = bearer(&s, "root", ROOT_PW, &["repository:any/repo:pull"]);
    let r = s
        .req("DELETE", &format!("/v2/any/repo/blobs/{d}"))
        .auth(&pull)
        .send();
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("scope=\"repository:any/repo:pull,delete\""));
    let del = bearer(&s, "root", ROOT_PW, &["repository:any/repo:delete"]);
    let r = s
        .req("DELETE", &format!("/v2/any/repo/blobs/{d}"))
        .auth(&del)
        .send();
    assert_eq!(r.status, 202);

    // Where the rules deny the action, a new token would not help: 403 DENIED.
    let bob = bearer(&s, "bob", BOB_PW, &["repository:alice/app:pull,push"]);
    let r = s
        .req("POST", "/v2/alice/app/blobs/uploads/")
        .auth(&bob)
        .send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    assert_eq!(r.header("www-authenticate"), None);
}

/// Regression: a mount's challenge asked for `repository:<target>:push` only; Distribution
/// also asks for `repository:<from>:pull`, so a client that follows challenges can mount.
#[test]
fn a_mount_challenge_asks_for_the_source_too() {
    let (_tmp, s) = start();
    let admin = basic("root", ROOT_PW);
    let d = push_blob_as(&s, Some(&admin), "public/x", b"a shared base layer");
    let mount = format!("/v2/alice/app/blobs/uploads/?mount={d}&from=public/x");

    let r = s.req("POST", &mount).send();
    assert_eq!(r.status, 401);
    assert!(
        challenge(&r).contains("scope=\"repository:alice/app:pull,push repository:public/x:pull\""),
        "{}",
        challenge(&r)
    );

    // A token for the target alone: the rules let alice pull the source, so she is asked
    // to fetch a token covering it rather than silently uploading again.
    let target_only = bearer(&s, "alice", ALICE_PW, &["repository:alice/app:pull,push"]);
    let r = s.req("POST", &mount).auth(&target_only).send();
    assert_eq!(r.status, 401);
    let c = challenge(&r);
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("repository:public/x:pull"), "{c}");

    // With both scopes (as the challenge asked), the mount succeeds.
    let both = bearer(
        &s,
        "alice",
        ALICE_PW,
        &["repository:alice/app:pull,push", "repository:public/x:pull"],
    );
    let r = s.req("POST", &mount).auth(&both).send();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));

    // A source the rules never let her pull: no challenge (which would say nothing new),
    // an upload session as for an unknown blob.
    let vault = format!("/v2/alice/app/blobs/uploads/?mount={d}&from=private/vault");
    let r = s.req("POST", &vault).auth(&both).send();
    assert_eq!(r.status, 202);
}

/// A token asked for with `POST /token` may repeat `scope` (as some clients send it) or join
/// scopes with spaces (as OAuth2 writes them): every scope counts either way.
#[test]
fn a_token_form_may_repeat_or_join_its_scopes() {
    let (_tmp, s) = start();
    for scopes in [
        "scope=repository%3Aalice%2Fapp%3Apull%2Cpush&scope=repository%3Apublic%2Fx%3Apull",
        "scope=repository%3Aalice%2Fapp%3Apull%2Cpush%20repository%3Apublic%2Fx%3Apull",
    ] {
        let r = s
            .req("POST", "/token")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=password&username=alice&password={ALICE_PW}&service=edgeyard&client_id=t&{scopes}"
            ))
            .send();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let auth = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
        let r = s
            .req("POST", "/v2/alice/app/blobs/uploads/")
            .auth(&auth)
            .send();
        assert_eq!(r.status, 202, "{scopes}");
        let r = s.req("GET", "/v2/public/x/tags/list").auth(&auth).send();
        assert_eq!(r.status, 404, "{scopes}: pull granted, repository unknown");
    }
}

/// Regression: a token issued for any scope (even none) opened the whole admin API for an
/// administrator. The admin API needs a token asked for it (`registry:admin:*`, granted to
/// administrators only), as the registry's scopes do; Basic and console sessions are as
/// before.
#[test]
fn the_admin_api_needs_a_token_scoped_for_it() {
    let (_tmp, s) = start();
    for scopes in [
        &[][..],
        &["repository:any/repo:pull"],
        &["registry:catalog:*"],
    ] {
        let t = bearer(&s, "root", ROOT_PW, scopes);
        let r = s.req("GET", "/api/v1/users").auth(&t).send();
        assert_eq!(r.status, 401, "{scopes:?}");
        let c = challenge(&r);
        assert!(c.contains("scope=\"registry:admin:*\""), "{c}");
        assert!(c.contains("error=\"insufficient_scope\""), "{c}");
        assert!(!String::from_utf8_lossy(&r.body).contains("alice"));
    }
    let admin = bearer(&s, "root", ROOT_PW, &["registry:admin:*"]);
    let r = s.req("GET", "/api/v1/users").auth(&admin).send();
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("alice"));
    // Asked for by someone who is not an administrator: granted nothing.
    let alice = bearer(&s, "alice", ALICE_PW, &["registry:admin:*"]);
    let r = s.req("GET", "/api/v1/users").auth(&alice).send();
    assert_eq!((r.status, r.error_code().as_str()), (403, "DENIED"));
    // Basic is unchanged.
    let r = s
        .req("GET", "/api/v1/users")
        .auth(&basic("root", ROOT_PW))
        .send();
    assert_eq!(r.status, 200);
}
