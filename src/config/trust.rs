//! The `[trust]` section: keys and policies a box is provisioned with (see
//! `registry::trust_declared` for what applying them means).
//!
//! ```toml
//! [[trust.key]]
//! name = "release"
//! file = "/etc/edgeyard/cosign.pub"      # or: pem = """-----BEGIN PUBLIC KEY-----..."""
//!
//! [[trust.policy]]
//! repos = "prod/**"
//! keys = ["release"]
//! mode = "enforce"                         # require, index, identities as in the CLI
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::meta::TrustPolicyRecord;
use crate::registry::trust_declared::{DeclaredKey, DeclaredTrust};
use crate::trust::keys::TrustAnchor;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFileConfig {
    #[serde(default)]
    pub key: Vec<TrustKeyFileConfig>,
    #[serde(default)]
    pub policy: Vec<TrustPolicyRecord>,
}

/// A key or CA certificate: its PEM inline, or the file holding it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustKeyFileConfig {
    pub name: String,
    /// `images` (the default) or `trust-updates`.
    #[serde(default)]
    pub purpose: crate::meta::KeyPurpose,
    pub file: Option<PathBuf>,
    pub pem: Option<String>,
}

impl TrustFileConfig {
    /// The declaration, with each key's file read. A key file that cannot be read stops
    /// the start: a policy silently missing its key would refuse every image, or, worse, an
    /// operator would "fix" that by removing the policy.
    pub fn declared(self) -> Result<DeclaredTrust, ConfigError> {
        let mut keys = Vec::new();
        for k in self.key {
            let pem = match (k.file, k.pem) {
                (Some(path), None) => std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "[[trust.key]] {:?}: cannot read {}: {e}",
                        k.name,
                        path.display()
                    )
                })?,
                (None, Some(pem)) => pem,
                _ => {
                    return Err(
                        format!("[[trust.key]] {:?}: give either `file` or `pem`", k.name).into(),
                    )
                }
            };
            if let Err(e) = TrustAnchor::from_pem(pem.as_bytes()) {
                return Err(format!("[[trust.key]] {:?}: {e}", k.name).into());
            }
            keys.push(DeclaredKey {
                name: k.name,
                pem,
                purpose: k.purpose,
            });
        }
        Ok(DeclaredTrust {
            keys,
            policies: self.policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{FileConfig, ServeConfig, ServeFlags};
    use crate::meta::{Require, TrustMode};
    use crate::trust::testkit::signer;

    #[test]
    fn keys_come_from_files_or_inline_and_the_effective_config_says_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (signer(), signer());
        let path = dir.path().join("cosign.pub");
        std::fs::write(&path, &a.pem).unwrap();
        let text = format!(
            r#"
[[trust.key]]
name = "release"
file = "{}"
[[trust.key]]
name = "ca"
pem = """{}"""
[[trust.policy]]
repos = "prod/**"
keys = ["release", "ca"]
require = "each"
mode = "audit"
"#,
            path.display(),
            b.pem
        );
        let d = FileConfig::parse(&text).unwrap().trust.declared().unwrap();
        let keys: Vec<_> = d.keys.iter().map(|k| (&*k.name, &*k.pem)).collect();
        assert_eq!(keys, [("release", &*a.pem), ("ca", &*b.pem)]);
        assert_eq!(d.policies.len(), 1);
        assert_eq!(
            (d.policies[0].require, d.policies[0].mode),
            (Require::Each, TrustMode::Audit)
        );
        assert!(FileConfig::parse("").unwrap().trust.declared().unwrap() == Default::default());
        // `edgeyard config check` prints it as a configuration that reads back the same,
        // with each key's fingerprint.
        let c =
            ServeConfig::build(FileConfig::parse(&text).unwrap(), ServeFlags::default()).unwrap();
        let shown = c.describe();
        assert!(shown.contains(&a.key.fingerprint()), "{shown}");
        let again = FileConfig::parse(&shown).unwrap().trust.declared().unwrap();
        assert_eq!(again.policies, d.policies);
        let pems: Vec<_> = again.keys.iter().map(|k| k.pem.trim()).collect();
        assert_eq!(pems, [a.pem.trim(), b.pem.trim()]);
    }

    #[test]
    fn a_key_without_its_material_or_a_typo_is_refused() {
        for (text, says) in [
            ("[[trust.key]]\nname = \"a\"\n", "either `file` or `pem`"),
            (
                "[[trust.key]]\nname = \"a\"\nfile = \"/nonexistent/x.pub\"\n",
                "cannot read /nonexistent/x.pub",
            ),
            ("[[trust.key]]\nname = \"a\"\npem = \"junk\"\n", "\"a\""),
        ] {
            let e = FileConfig::parse(text)
                .unwrap()
                .trust
                .declared()
                .unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        let e = FileConfig::parse("[[trust.policy]]\nrepos = \"a\"\nkeys = []\nmod = \"audit\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("mod"), "{e}");
    }
}
