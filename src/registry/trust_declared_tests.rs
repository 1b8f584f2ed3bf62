use super::*;
use crate::meta::KeyPurpose;
use crate::registry::trust_rules::{self, delete_key, delete_policy, key_infos, list_policies};
use crate::trust::testkit::signer;

fn meta() -> (tempfile::TempDir, Meta) {
    let dir = tempfile::tempdir().unwrap();
    let meta = Meta::open(dir.path()).unwrap();
    (dir, meta)
}

fn policy(repos: &str, keys: &[&str]) -> TrustPolicyRecord {
    crate::registry::trust_rules::test_policy(repos, keys)
}

fn key(name: &str, pem: &str) -> DeclaredKey {
    DeclaredKey {
        name: name.into(),
        pem: pem.into(),
        purpose: KeyPurpose::Images,
    }
}

/// (name or repos, declared) of stored keys or policies.
type Marked = Vec<(String, bool)>;

/// The stored keys and policies, each with whether it is declared.
fn stored(meta: &Meta) -> (Marked, Marked) {
    let keys = key_infos(meta)
        .unwrap()
        .into_iter()
        .map(|k| (k.name, k.source == TrustSource::Config))
        .collect();
    let policies = list_policies(meta)
        .unwrap()
        .into_iter()
        .map(|p| (p.policy.repos, p.policy.source == TrustSource::Config))
        .collect();
    (keys, policies)
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn declarations_are_stored_kept_by_id_replaced_and_removed_with_the_file() {
    let (_d, meta) = meta();
    let (a, b) = (signer(), signer());
    let d = DeclaredTrust {
        keys: vec![key("release", &a.pem)],
        policies: vec![policy("prod/**", &["release"])],
    };
    let applied = apply(&meta, TrustSource::Config, &d).unwrap();
    assert_eq!(applied.keys_added, vec![s("release")]);
    assert_eq!(applied.policies_added, 1);
    let id = list_policies(&meta).unwrap()[0].id;
    // Applying the same file again changes nothing, and the policy keeps its id.
    assert!(!apply(&meta, TrustSource::Config, &d).unwrap().changed());
    assert_eq!(list_policies(&meta).unwrap()[0].id, id);
    assert_eq!(
        stored(&meta),
        (vec![(s("release"), true)], vec![(s("prod/**"), true)])
    );
    // The CLI and the admin API cannot remove what the file declares.
    for e in [
        delete_key(&meta, "release").unwrap_err(),
        delete_policy(&meta, id).unwrap_err(),
    ] {
        assert_eq!(e.error_code(), ErrorCode::Conflict);
        assert!(e.to_string().contains("configuration file"), "{e}");
    }
    // A key installed by hand and a policy naming it sit beside the declared ones.
    trust_rules::add_key(&meta, "manual", &b.pem, KeyPurpose::Images).unwrap();
    let manual = trust_rules::add_policy(&meta, policy("lab/*", &["manual", "release"])).unwrap();
    // The file now declares a new key under the old name: replaced, its policy unchanged.
    let rotated = DeclaredTrust {
        keys: vec![key("release", &signer().pem)],
        ..d.clone()
    };
    let applied = apply(&meta, TrustSource::Config, &rotated).unwrap();
    assert_eq!(applied.keys_replaced, vec![s("release")]);
    assert_eq!(applied.policies_added + applied.policies_removed, 0);
    // Removing the key from the file is refused while a hand-made policy names it, and
    // nothing changes.
    let e = apply(&meta, TrustSource::Config, &DeclaredTrust::default()).unwrap_err();
    assert!(e.to_string().contains(&format!("policy {manual}")), "{e}");
    assert_eq!(key_infos(&meta).unwrap().len(), 2);
    delete_policy(&meta, manual).unwrap();
    // An empty [trust] removes every declared thing, and only those.
    let applied = apply(&meta, TrustSource::Config, &DeclaredTrust::default()).unwrap();
    assert_eq!(
        (applied.keys_removed, applied.policies_removed),
        (vec![s("release")], 1)
    );
    assert_eq!(stored(&meta), (vec![(s("manual"), false)], vec![]));
}

#[test]
fn a_bad_declaration_is_refused_whole_and_names_what_is_wrong() {
    let (_d, meta) = meta();
    let (a, b) = (signer(), signer());
    trust_rules::add_key(&meta, "hand", &a.pem, KeyPurpose::Images).unwrap();
    let cases = [
        (vec![key("bad", "not a key")], vec![], "\"bad\""),
        (vec![key("-x", &b.pem)], vec![], "-x"),
        (
            vec![key("one", &b.pem), key("two", &b.pem)],
            vec![],
            "declared twice",
        ),
        // The same name as a different key installed by hand.
        (vec![key("hand", &b.pem)], vec![], "another name"),
        // The same key as one installed by hand under another name.
        (
            vec![key("copy", &a.pem)],
            vec![],
            "already installed as \"hand\"",
        ),
        (
            vec![key("k", &b.pem)],
            vec![policy("prod/**", &["nobody"])],
            "[[trust.policy]] 1 (prod/**)",
        ),
        (vec![], vec![policy("[", &["hand"])], "[[trust.policy]] 1"),
    ];
    for (keys, policies, says) in cases {
        let e = apply(
            &meta,
            TrustSource::Config,
            &DeclaredTrust { keys, policies },
        )
        .unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::Invalid, "{e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
        assert_eq!(stored(&meta), (vec![(s("hand"), false)], vec![]));
    }
    // The same key as one installed by hand, under the same name: adopted by the file.
    let d = DeclaredTrust {
        keys: vec![key("hand", &a.pem)],
        policies: vec![policy("prod/**", &["hand"])],
    };
    apply(&meta, TrustSource::Config, &d).unwrap();
    assert_eq!(
        stored(&meta),
        (vec![(s("hand"), true)], vec![(s("prod/**"), true)])
    );
}

#[test]
fn the_admin_api_cannot_mark_a_policy_declared() {
    let (_d, meta) = meta();
    trust_rules::add_key(&meta, "k", &signer().pem, KeyPurpose::Images).unwrap();
    let mut p = policy("prod/**", &["k"]);
    p.source = TrustSource::Config;
    let id = trust_rules::add_policy(&meta, p).unwrap();
    assert!(delete_policy(&meta, id).unwrap());
}
