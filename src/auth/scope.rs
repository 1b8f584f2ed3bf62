//! Token scopes as the docker registry token spec writes them:
//! `repository:NAME:ACTION[,ACTION...]` and `registry:catalog:*`, and edgeyard's own
//! `registry:admin:*` for the admin API.

use super::rules::Actions;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Repository {
        name: String,
        actions: Actions,
    },
    Catalog,
    /// The admin API (`/api/v1`): granted to administrators only.
    Admin,
}

impl Scope {
    /// Parses one scope; unknown resource types and bad names yield `None` (ignored).
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        // The name may not contain ':' in our grammar, so the actions follow the last colon.
        let (name, actions) = rest.rsplit_once(':')?;
        match kind {
            "repository" if name.parse::<crate::oci::RepoName>().is_ok() => {
                Some(Scope::Repository {
                    name: name.to_string(),
                    actions: Actions::parse_lenient(actions),
                })
            }
            "registry" if name == "catalog" => Some(Scope::Catalog),
            "registry" if name == "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// Every scope in the query: repeated `scope` parameters, each possibly space-separated.
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        values
            .into_iter()
            .flat_map(|v| v.split(' '))
            .filter_map(Scope::parse)
            .take(64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes() {
        assert_eq!(
            Scope::parse("repository:team/app:pull,push"),
            Some(Scope::Repository {
                name: "team/app".into(),
                actions: Actions::parse(["push"]).unwrap()
            })
        );
        assert_eq!(Scope::parse("registry:catalog:*"), Some(Scope::Catalog));
        assert_eq!(Scope::parse("registry:admin:*"), Some(Scope::Admin));
        assert_eq!(Scope::parse("repository:Bad:pull"), None);
        assert_eq!(Scope::parse("garbage"), None);
        assert_eq!(
            Scope::parse("repository:a/b:"),
            Some(Scope::Repository {
                name: "a/b".into(),
                actions: Actions::NONE
            })
        );
        let all = Scope::parse_all([
            "repository:a/b:pull repository:c/d:push",
            "registry:catalog:*",
        ]);
        assert_eq!(all.len(), 3);
    }
}
