//! The tables about other registries: `[[mirror]]` (upstreams this one mirrors), `[[sync]]`
//! (what to fetch from them ahead of time) and `[[replication]]` (targets to push to).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::edge::{MirrorSettings, ReplicationRule, SyncRule};
use crate::tls::info::SYSTEM_CA_BUNDLE;

/// Tag TTL when none is configured.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorFileConfig {
    /// A short name, used by `[[sync]]` and in logs.
    pub name: String,
    /// The upstream: `https://host[:port]` (or `http://` for a plain-HTTP upstream).
    pub url: String,
    /// Local namespace (`hub` serves upstream `library/alpine` as `hub/library/alpine`);
    /// without it this mirror is the default and serves names as they are upstream.
    pub prefix: Option<String>,
    /// Upstream repository globs the mirror covers (default: all).
    pub repositories: Option<Vec<String>>,
    /// Host names containerd may give for this upstream in `?ns=` (the URL's host is one).
    pub aliases: Option<Vec<String>>,
    /// Credentials for the upstream: a user and a file holding the password.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) for the upstream; default: the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// Seconds a cached tag is served before it is confirmed upstream again (default 300).
    pub tag_ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFileConfig {
    /// The `[[mirror]]` whose upstream to fetch from.
    pub mirror: String,
    /// Upstream repository names.
    pub repositories: Vec<String>,
    /// Tag globs (default: every tag).
    pub tags: Option<Vec<String>>,
    /// `os/arch[/variant]` to keep of multi-platform images (default: all).
    pub platforms: Option<Vec<String>>,
    /// Seconds between scheduled runs; absent or 0: only `edgeyard sync`.
    pub interval_secs: Option<u64>,
    /// Pin what is fetched against retention and eviction (default true).
    pub pin: Option<bool>,
}

/// A table's connection to another registry, validated: URL, credentials, CA roots.
struct Endpoint {
    url: String,
    credentials: Option<(String, String)>,
    roots: Vec<Vec<u8>>,
}

fn endpoint(
    ctx: &dyn Fn(String) -> String,
    name: &str,
    url: &str,
    username: &Option<String>,
    password_file: &Option<PathBuf>,
    ca_file: &Option<PathBuf>,
) -> Result<Endpoint, ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ctx("name must be letters, digits, '-', '_' or '.'".into()).into());
    }
    let url = url.trim_end_matches('/').to_string();
    let https = url.starts_with("https://");
    if !https && !url.starts_with("http://") {
        return Err(ctx(format!("url {url:?} must start with https:// or http://")).into());
    }
    if url.split("://").nth(1).is_some_and(|r| r.contains('/')) {
        return Err(ctx(format!("url {url:?} must be only scheme, host and port")).into());
    }
    let credentials = match (username, password_file) {
        (Some(u), Some(f)) => {
            let pw = std::fs::read_to_string(f)
                .map_err(|e| ctx(format!("cannot read password_file {}: {e}", f.display())))?;
            Some((u.clone(), pw.trim_end_matches(['\n', '\r']).to_string()))
        }
        (None, None) => None,
        _ => return Err(ctx("username and password_file go together".into()).into()),
    };
    let roots = if https {
        let file = ca_file.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
        let pem = std::fs::read(&file)
            .map_err(|e| ctx(format!("cannot read CA file {}: {e}", file.display())))?;
        let roots = crate::tls::info::pem_certs(&pem);
        if roots.is_empty() {
            return Err(ctx(format!("no certificates in {}", file.display())).into());
        }
        roots
    } else {
        Vec::new()
    };
    Ok(Endpoint {
        url,
        credentials,
        roots,
    })
}

fn mirror_settings(m: MirrorFileConfig) -> Result<MirrorSettings, ConfigError> {
    let ctx = |msg: String| format!("[[mirror]] {:?}: {msg}", m.name);
    let Endpoint {
        url,
        credentials,
        roots,
    } = endpoint(
        &ctx,
        &m.name,
        &m.url,
        &m.username,
        &m.password_file,
        &m.ca_file,
    )?;
    if let Some(p) = &m.prefix {
        if format!("{p}/x").parse::<crate::oci::RepoName>().is_err() || p.is_empty() {
            return Err(ctx(format!("prefix {p:?} is not a repository namespace")).into());
        }
    }
    let mut aliases = m.aliases.unwrap_or_default();
    // Docker Hub's API host is not the name images carry.
    if url.ends_with("://registry-1.docker.io") && !aliases.iter().any(|a| a == "docker.io") {
        aliases.push("docker.io".into());
    }
    Ok(MirrorSettings {
        name: m.name,
        url,
        prefix: m.prefix,
        repositories: m.repositories.unwrap_or_default(),
        aliases,
        credentials,
        roots,
        tag_ttl: m
            .tag_ttl_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TAG_TTL),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationFileConfig {
    /// A short name for logs and `edgeyard replicate --rule`.
    pub name: String,
    /// The target registry: `https://host[:port]` (or `http://`).
    pub url: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) for the target; default: the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// Local repository globs to push.
    pub repositories: Vec<String>,
    /// Tag globs (default: every tag).
    pub tags: Option<Vec<String>>,
    /// Seconds between scheduled runs; absent or 0: only `edgeyard replicate`.
    pub interval_secs: Option<u64>,
}

/// Validates the `[[replication]]` tables: names unique, at least one repository glob.
pub fn replication_rules(
    tables: Vec<ReplicationFileConfig>,
) -> Result<Vec<ReplicationRule>, ConfigError> {
    let mut out: Vec<ReplicationRule> = Vec::new();
    for t in tables {
        let ctx = |msg: String| format!("[[replication]] {:?}: {msg}", t.name);
        let e = endpoint(
            &ctx,
            &t.name,
            &t.url,
            &t.username,
            &t.password_file,
            &t.ca_file,
        )?;
        if t.repositories.is_empty() {
            return Err(ctx("repositories lists no glob".into()).into());
        }
        if out.iter().any(|r| r.name == t.name) {
            return Err(ctx("another [[replication]] table has this name".into()).into());
        }
        out.push(ReplicationRule {
            name: t.name.clone(),
            url: e.url,
            credentials: e.credentials,
            roots: e.roots,
            repositories: t.repositories,
            tags: t.tags.unwrap_or_else(|| vec!["*".into()]),
            interval: t.interval_secs.filter(|n| *n > 0).map(Duration::from_secs),
        });
    }
    Ok(out)
}

/// Validates the tables: unique names, at most one default mirror, no prefix inside another,
/// sync rules naming a configured mirror.
pub fn build(
    mirrors: Vec<MirrorFileConfig>,
    sync: Vec<SyncFileConfig>,
) -> Result<(Vec<MirrorSettings>, Vec<SyncRule>), ConfigError> {
    let mirrors = mirrors
        .into_iter()
        .map(mirror_settings)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in mirrors.iter().enumerate() {
        for b in &mirrors[i + 1..] {
            if a.name == b.name {
                return Err(format!("two [[mirror]] tables are named {:?}", a.name).into());
            }
            let nested = match (&a.prefix, &b.prefix) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    x == y || x.starts_with(&format!("{y}/")) || y.starts_with(&format!("{x}/"))
                }
                _ => false,
            };
            if nested {
                return Err(format!(
                    "[[mirror]] {:?} and {:?} cover the same namespace (at most one mirror without a prefix; prefixes may not nest)",
                    a.name, b.name
                ).into());
            }
        }
    }
    let rules = sync
        .into_iter()
        .map(|s| {
            if !mirrors.iter().any(|m| m.name == s.mirror) {
                return Err(format!(
                    "[[sync]] names mirror {:?}, which is not configured",
                    s.mirror
                )
                .into());
            }
            if s.repositories.is_empty() {
                return Err(
                    format!("[[sync]] for mirror {:?} lists no repositories", s.mirror).into(),
                );
            }
            for r in &s.repositories {
                if r.parse::<crate::oci::RepoName>().is_err() {
                    return Err(
                        format!("[[sync]] repository {r:?} is not a repository name").into(),
                    );
                }
            }
            Ok(SyncRule {
                mirror: s.mirror,
                repositories: s.repositories,
                tags: s.tags.unwrap_or_else(|| vec!["*".into()]),
                platforms: s.platforms.unwrap_or_default(),
                interval: s.interval_secs.filter(|n| *n > 0).map(Duration::from_secs),
                pin: s.pin.unwrap_or(true),
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    Ok((mirrors, rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    fn parse(text: &str) -> Result<(Vec<MirrorSettings>, Vec<SyncRule>), ConfigError> {
        let f = FileConfig::parse(text)?;
        build(f.mirror, f.sync)
    }

    #[test]
    fn mirrors_and_sync_rules() {
        let (m, s) = parse(
            r#"
[[mirror]]
name = "central"
url = "http://10.0.0.5:5000/"
prefix = "central"
tag_ttl_secs = 60

[[mirror]]
name = "hub"
url = "http://hub.example"
repositories = ["library/*"]

[[sync]]
mirror = "central"
repositories = ["team/app"]
tags = ["v1.*"]
platforms = ["linux/arm64"]
interval_secs = 600
"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].url, "http://10.0.0.5:5000");
        assert_eq!(m[0].tag_ttl, Duration::from_secs(60));
        assert_eq!(m[1].prefix, None);
        assert_eq!(m[1].tag_ttl, DEFAULT_TAG_TTL);
        assert_eq!(s[0].interval, Some(Duration::from_secs(600)));
        assert!(s[0].pin);
    }

    #[test]
    fn replication_tables() {
        let f = FileConfig::parse(
            "[[replication]]\nname = \"up\"\nurl = \"http://central:5000\"\nrepositories = [\"line-3/**\"]\ninterval_secs = 300\n",
        )
        .unwrap();
        let r = replication_rules(f.replication).unwrap();
        assert_eq!(r[0].tags, vec!["*".to_string()]);
        assert_eq!(r[0].interval, Some(Duration::from_secs(300)));
        let f = FileConfig::parse(
            "[[replication]]\nname = \"up\"\nurl = \"http://c\"\nrepositories = []\n",
        )
        .unwrap();
        assert!(replication_rules(f.replication)
            .unwrap_err()
            .to_string()
            .contains("no glob"));
    }

    #[test]
    fn described_configuration_parses_again_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-upstream\n").unwrap();
        let text = format!(
            "[[mirror]]\nname = \"c\"\nurl = \"http://c:5000\"\nprefix = \"c\"\nusername = \"u\"\npassword_file = \"{}\"\n\n[[sync]]\nmirror = \"c\"\nrepositories = [\"a/b\"]\n\n[[replication]]\nname = \"r\"\nurl = \"http://d\"\nrepositories = [\"x/**\"]\n",
            pw.display()
        );
        let c = crate::config::ServeConfig::build(
            FileConfig::parse(&text).unwrap(),
            crate::config::ServeFlags::default(),
        )
        .unwrap();
        assert_eq!(
            c.mirrors[0].credentials.as_ref().unwrap().1,
            "s3cret-upstream"
        );
        let shown = c.describe();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("[[sync]]") && shown.contains("[[replication]]"),
            "{shown}"
        );
        let again = crate::config::ServeConfig::build(
            FileConfig::parse(&shown).unwrap(),
            crate::config::ServeFlags::default(),
        )
        .unwrap();
        assert_eq!(again.sync, c.sync);
        assert_eq!(again.mirrors[0].prefix.as_deref(), Some("c"));
    }

    #[test]
    fn bad_tables_are_named() {
        for (text, says) in [
            ("[[mirror]]\nname = \"a\"\nurl = \"ftp://x\"\n", "must start with"),
            ("[[mirror]]\nname = \"a\"\nurl = \"http://x/v2\"\n", "only scheme"),
            ("[[mirror]]\nname = \"a\"\nurl = \"http://x\"\nprefix = \"Bad\"\n", "not a repository namespace"),
            ("[[mirror]]\nname = \"a\"\nurl = \"http://x\"\n[[mirror]]\nname = \"b\"\nurl = \"http://y\"\n", "same namespace"),
            ("[[mirror]]\nname = \"a\"\nurl = \"http://x\"\nprefix = \"p\"\n[[mirror]]\nname = \"b\"\nurl = \"http://y\"\nprefix = \"p/q\"\n", "same namespace"),
            ("[[mirror]]\nname = \"a\"\nurl = \"http://x\"\nusername = \"u\"\n", "go together"),
            ("[[sync]]\nmirror = \"nope\"\nrepositories = [\"a/b\"]\n", "not configured"),
            ("[[mirror]]\nname = \"a\"\nurl = \"http://x\"\nttl = 5\n", "unknown field"),
        ] {
            let e = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
