//! Tests of `trusted`: real images and cosign signatures stored through the registry's own
//! push path, judged the way a pull judges them.

use serde_json::json;

use super::super::trust_rules::{self, IndexTrust, Require, TrustMode, TrustPolicyRecord};
use super::super::Registry;
use crate::error::ErrorCode;
use crate::oci::{Digest, Reference, RepoName};
use crate::trust::cosign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING};
use crate::trust::testkit::{payload, signer, Signer};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const COSIGN_TYPE: &str = "cosign container image signature";

struct World {
    _tmp: tempfile::TempDir,
    reg: Registry,
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::open(tmp.path()).unwrap();
    World { _tmp: tmp, reg }
}

impl World {
    async fn blob(&self, repo: &RepoName, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        let s = self.reg.start_upload(repo, "test").await.unwrap();
        let body = http_body_util::Full::new(bytes::Bytes::copy_from_slice(data));
        self.reg
            .finish_upload(repo, &s.id, &d, None, body)
            .await
            .unwrap();
        d
    }

    async fn manifest(&self, repo: &RepoName, reference: &str, v: serde_json::Value) -> Digest {
        let bytes = serde_json::to_vec(&v).unwrap();
        let media = v["mediaType"].as_str().unwrap().to_string();
        let r: Reference = reference.parse().unwrap();
        self.reg
            .put_manifest(repo, &r, Some(&media), &bytes)
            .await
            .unwrap()
            .digest
    }

    /// A one-layer image tagged `tag`.
    async fn image(&self, repo: &RepoName, tag: &str, seed: &str) -> Digest {
        let config = self.blob(repo, b"{\"architecture\":\"amd64\"}").await;
        let layer = self.blob(repo, seed.as_bytes()).await;
        self.manifest(
            repo,
            tag,
            json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config.to_string(), "size": 24},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer.to_string(), "size": seed.len()}],
            }),
        )
        .await
    }

    /// A cosign signature manifest over `payload`, with `signature`; under cosign's tag
    /// for `image`, or as a referrer (`subject`) when `as_referrer`.
    async fn signature(
        &self,
        repo: &RepoName,
        image: &Digest,
        payload: &[u8],
        signature: &str,
        as_referrer: bool,
    ) -> Digest {
        let p = self.blob(repo, payload).await;
        let config = self.blob(repo, b"{}").await;
        let mut m = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config.to_string(), "size": 2},
            "layers": [{"mediaType": SIMPLE_SIGNING, "digest": p.to_string(),
                        "size": payload.len(),
                        "annotations": {SIGNATURE_ANNOTATION: signature}}],
        });
        if as_referrer {
            let size = self.reg.meta().manifest(repo, image).unwrap().unwrap().size;
            m["subject"] =
                json!({"mediaType": OCI_MANIFEST, "digest": image.to_string(), "size": size});
            let d = Digest::sha256_of(&serde_json::to_vec(&m).unwrap());
            self.manifest(repo, &d.to_string(), m).await
        } else {
            let tag = crate::trust::cosign::signature_tag(image);
            self.manifest(repo, &tag, m).await
        }
    }

    async fn sign(&self, repo: &RepoName, image: &Digest, by: &Signer) -> Digest {
        let p = payload(&image.to_string(), COSIGN_TYPE);
        self.signature(repo, image, &p, &by.sign(&p), false).await
    }

    fn trust(&self, name: &str, s: &Signer) {
        self.reg
            .add_trust_key(name, &s.pem, crate::meta::KeyPurpose::Images)
            .unwrap();
    }

    fn policy(&self, keys: &[&str], require: Require, mode: TrustMode, index: IndexTrust) -> u64 {
        self.reg
            .add_trust_policy(TrustPolicyRecord {
                repos: "prod/**".into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
                require,
                mode,
                index,
                identities: Vec::new(),
                source: crate::meta::TrustSource::Manual,
            })
            .unwrap()
    }

    fn enforce(&self, keys: &[&str]) -> u64 {
        self.policy(keys, Require::Any, TrustMode::Enforce, IndexTrust::Whole)
    }

    /// A pull's verdict: `None` when served, or the refusal's message (after checking it
    /// is `DENIED`).
    async fn pull(&self, repo: &RepoName, reference: &str) -> Option<String> {
        let m = self
            .reg
            .get_manifest(repo, &reference.parse().unwrap())
            .unwrap();
        match self.reg.check_trusted(repo, &m).await {
            Ok(()) => None,
            Err(e) => {
                assert_eq!(
                    (e.error_code(), e.status().as_u16()),
                    (ErrorCode::Denied, 403),
                    "{e}"
                );
                Some(e.to_string())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_images_signed_by_a_trusted_key_for_themselves_are_served() {
    let w = world().await;
    let (release, stranger) = (signer(), signer());
    w.trust("release", &release);
    let policy = w.enforce(&["release"]);
    let prod = repo("prod/app");

    let unsigned = w.image(&prod, "unsigned", "a").await;
    let e = w.pull(&prod, "unsigned").await.expect("refused");
    assert!(
        e.contains(&format!(
            "image prod/app@{unsigned} is not signed by a key trusted for prod/** (trust policy {policy}: it has no signature)"
        )),
        "{e}"
    );

    let good = w.image(&prod, "good", "b").await;
    let sig = w.sign(&prod, &good, &release).await;
    assert_eq!(w.pull(&prod, "good").await, None);
    assert_eq!(w.pull(&prod, &good.to_string()).await, None);
    // The signature itself is served: clients fetch it to verify on their own.
    assert_eq!(w.pull(&prod, &sig.to_string()).await, None);

    let by_stranger = w.image(&prod, "stranger", "c").await;
    w.sign(&prod, &by_stranger, &stranger).await;
    let e = w.pull(&prod, "stranger").await.expect("refused");
    assert!(e.contains("no trusted key verifies the signature"), "{e}");

    // A valid signature by the trusted key, over a payload naming another image.
    let replayed = w.image(&prod, "replayed", "d").await;
    let p = payload(&good.to_string(), COSIGN_TYPE);
    w.signature(&prod, &replayed, &p, &release.sign(&p), false)
        .await;
    let e = w.pull(&prod, "replayed").await.expect("refused");
    assert!(e.contains(&format!("another image ({good})")), "{e}");

    // The signature of the right payload, altered by one bit.
    let tampered = w.image(&prod, "tampered", "e").await;
    let p = payload(&tampered.to_string(), COSIGN_TYPE);
    let mut raw = release.sign_raw(&p);
    let last = raw.len() - 1;
    raw[last] ^= 1;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    w.signature(&prod, &tampered, &p, &b64, false).await;
    assert!(w
        .pull(&prod, "tampered")
        .await
        .expect("refused")
        .contains("no trusted key verifies"));

    // Outside the policy's repositories nothing is required.
    let elsewhere = repo("dev/app");
    w.image(&elsewhere, "unsigned", "a").await;
    assert_eq!(w.pull(&elsewhere, "unsigned").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_counts_only_in_its_own_repository() {
    let w = world().await;
    let release = signer();
    w.trust("release", &release);
    w.enforce(&["release"]);
    let (prod, other) = (repo("prod/app"), repo("prod/other"));
    let image = w.image(&prod, "v1", "a").await;
    // Signed in another repository only: the signature there does not vouch here.
    w.image(&other, "v1", "a").await;
    w.sign(&other, &image, &release).await;
    assert!(w.pull(&prod, "v1").await.is_some());
    assert_eq!(w.pull(&other, "v1").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_referrer_signature_counts_and_new_signatures_and_policies_are_seen_at_once() {
    let w = world().await;
    let release = signer();
    w.trust("release", &release);
    let prod = repo("prod/app");
    let image = w.image(&prod, "v1", "a").await;
    // No policy yet: served.
    assert_eq!(w.pull(&prod, "v1").await, None);
    let id = w.enforce(&["release"]);
    assert!(w.pull(&prod, "v1").await.is_some());
    // Signed as an OCI 1.1 referrer: the cached refusal is not reused.
    let p = payload(&image.to_string(), COSIGN_TYPE);
    w.signature(&prod, &image, &p, &release.sign(&p), true)
        .await;
    assert_eq!(w.pull(&prod, "v1").await, None);
    // The policy now wants another key as well.
    let qa = signer();
    w.trust("qa", &qa);
    assert!(w.reg.delete_trust_policy(id).unwrap());
    w.policy(
        &["release", "qa"],
        Require::Each,
        TrustMode::Enforce,
        IndexTrust::Whole,
    );
    let e = w.pull(&prod, "v1").await.expect("refused");
    assert!(e.contains("no valid signature by qa"), "{e}");
    w.sign(&prod, &image, &qa).await;
    assert_eq!(w.pull(&prod, "v1").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_policy_serves_what_it_would_refuse() {
    let w = world().await;
    let release = signer();
    w.trust("release", &release);
    w.policy(
        &["release"],
        Require::Any,
        TrustMode::Audit,
        IndexTrust::Whole,
    );
    let prod = repo("prod/app");
    w.image(&prod, "v1", "a").await;
    assert_eq!(w.pull(&prod, "v1").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_is_signed_whole_or_per_platform_as_the_policy_says() {
    let w = world().await;
    let release = signer();
    w.trust("release", &release);
    let prod = repo("prod/multi");
    let amd = w.image(&prod, "amd", "amd64 layer").await;
    let arm = w.image(&prod, "arm", "arm64 layer").await;
    let size = |d: &Digest| w.reg.meta().manifest(&prod, d).unwrap().unwrap().size;
    let index = w
        .manifest(
            &prod,
            "v1",
            json!({
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": amd.to_string(), "size": size(&amd),
                     "platform": {"architecture": "amd64", "os": "linux"}},
                    {"mediaType": OCI_MANIFEST, "digest": arm.to_string(), "size": size(&arm),
                     "platform": {"architecture": "arm64", "os": "linux"}},
                ],
            }),
        )
        .await;
    let whole = w.enforce(&["release"]);
    assert!(w.pull(&prod, "v1").await.is_some());
    assert!(w.pull(&prod, &amd.to_string()).await.is_some());
    // Signing the index vouches for the platform images it lists.
    w.sign(&prod, &index, &release).await;
    assert_eq!(w.pull(&prod, "v1").await, None);
    assert_eq!(w.pull(&prod, &amd.to_string()).await, None);
    assert_eq!(w.pull(&prod, &arm.to_string()).await, None);

    // Per platform: the index passes as a list, each platform image needs its own signature.
    w.reg.delete_trust_policy(whole).unwrap();
    w.policy(
        &["release"],
        Require::Any,
        TrustMode::Enforce,
        IndexTrust::Platforms,
    );
    assert_eq!(w.pull(&prod, "v1").await, None);
    assert!(w.pull(&prod, &amd.to_string()).await.is_some());
    w.sign(&prod, &amd, &release).await;
    assert_eq!(w.pull(&prod, &amd.to_string()).await, None);
    assert!(w.pull(&prod, &arm.to_string()).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_policies_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let release = signer();
    {
        let reg = Registry::open(tmp.path()).unwrap();
        reg.add_trust_key("release", &release.pem, crate::meta::KeyPurpose::Images)
            .unwrap();
        reg.add_trust_policy(TrustPolicyRecord {
            repos: "prod/**".into(),
            keys: vec!["release".into()],
            require: Require::Any,
            mode: TrustMode::Enforce,
            index: IndexTrust::Whole,
            identities: Vec::new(),
            source: crate::meta::TrustSource::Manual,
        })
        .unwrap();
        reg.close().unwrap();
    }
    let w = World {
        reg: Registry::open(tmp.path()).unwrap(),
        _tmp: tmp,
    };
    let prod = repo("prod/app");
    let image = w.image(&prod, "v1", "a").await;
    assert!(w.pull(&prod, "v1").await.is_some());
    w.sign(&prod, &image, &release).await;
    assert_eq!(w.pull(&prod, "v1").await, None);
    let keys = trust_rules::key_infos(w.reg.meta()).unwrap();
    assert_eq!(keys[0].fingerprint, release.key.fingerprint());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notation_signature_chaining_to_an_installed_ca_counts_for_trusted_identities() {
    use crate::trust::testkit::{envelope, good_pki, header, pem};
    let w = world().await;
    let prod = repo("prod/app");
    let image = w.image(&prod, "v1", "a").await;
    let size = w.reg.meta().manifest(&prod, &image).unwrap().unwrap().size;
    let pki = good_pki();
    let target = json!({"mediaType": OCI_MANIFEST, "digest": image.to_string(), "size": size});
    let env = envelope(&pki, header(), target);
    // The signature as notation stores it: a referrer whose one layer is the envelope.
    let layer = w.blob(&prod, &env).await;
    let empty = w.blob(&prod, b"{}").await;
    let m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": crate::trust::notation::ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": crate::trust::notation::JWS, "digest": layer.to_string(), "size": env.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image.to_string(), "size": size},
    });
    let d = Digest::sha256_of(&serde_json::to_vec(&m).unwrap());
    w.manifest(&prod, &d.to_string(), m).await;

    w.reg
        .add_trust_key(
            "factory-ca",
            &pem(&pki.root),
            crate::meta::KeyPurpose::Images,
        )
        .unwrap();
    let stranger = good_pki();
    w.reg
        .add_trust_key(
            "other-ca",
            &pem(&stranger.root),
            crate::meta::KeyPurpose::Images,
        )
        .unwrap();
    let only_other = w.enforce(&["other-ca"]);
    let e = w.pull(&prod, "v1").await.expect("refused");
    assert!(
        e.contains("its signatures are by other keys than other-ca"),
        "{e}"
    );
    w.reg.delete_trust_policy(only_other).unwrap();

    let policy = |identities: &[&str]| TrustPolicyRecord {
        repos: "prod/**".into(),
        keys: vec!["factory-ca".into()],
        require: Require::Any,
        mode: TrustMode::Enforce,
        index: IndexTrust::Whole,
        identities: identities.iter().map(|s| s.to_string()).collect(),
        source: crate::meta::TrustSource::Manual,
    };
    let id = w
        .reg
        .add_trust_policy(policy(&["x509.subject: C=DE, ST=Bavaria, O=Factory"]))
        .unwrap();
    assert_eq!(w.pull(&prod, "v1").await, None);
    let status = w
        .reg
        .trust_status(&prod, &image, crate::oci::MediaKind::OciManifest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.signed_by[0].key, "factory-ca");
    w.reg.delete_trust_policy(id).unwrap();
    w.reg
        .add_trust_policy(policy(&["x509.subject: C=DE, ST=Bavaria, O=Elsewhere"]))
        .unwrap();
    let e = w.pull(&prod, "v1").await.expect("refused");
    assert!(e.contains("is not a trusted identity"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_first_signatures_of_a_long_signature_manifest_are_read() {
    let w = world().await;
    let (release, stranger) = (signer(), signer());
    w.trust("release", &release);
    w.enforce(&["release"]);
    let prod = repo("prod/app");
    let image = w.image(&prod, "v1", "a").await;
    let p = payload(&image.to_string(), COSIGN_TYPE);
    let pd = w.blob(&prod, &p).await;
    let config = w.blob(&prod, b"{}").await;
    let layer = |sig: String| {
        json!({"mediaType": SIMPLE_SIGNING, "digest": pd.to_string(), "size": p.len(),
               "annotations": {SIGNATURE_ANNOTATION: sig}})
    };
    let max = super::super::proofs::SIGNATURES_MAX;
    let mut layers: Vec<serde_json::Value> = (0..max).map(|_| layer(stranger.sign(&p))).collect();
    let tag = crate::trust::cosign::signature_tag(&image);
    let manifest = |layers: &[serde_json::Value]| {
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config.to_string(), "size": 2},
            "layers": layers,
        })
    };
    // The trusted signature comes after as many others as are read: not reached.
    layers.push(layer(release.sign(&p)));
    w.manifest(&prod, &tag, manifest(&layers)).await;
    let e = w.pull(&prod, "v1").await.expect("refused");
    assert!(
        e.contains(&format!(
            "lists {} signatures; only the first {max} are read",
            max + 1
        )),
        "{e}"
    );
    // First in the list, it counts.
    layers.rotate_right(1);
    w.manifest(&prod, &tag, manifest(&layers)).await;
    assert_eq!(w.pull(&prod, "v1").await, None);
}
