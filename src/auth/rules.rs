//! Actions, repository globs and access rules, and how they combine into what a principal
//! may do on a repository. Pure: no I/O.

use std::fmt;

use super::Invalid;

/// A set of actions on a repository. `push` and `delete` imply `pull` (a client cannot push
/// without checking what exists), and `admin` implies everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ADMIN: Actions = Actions(8);
    pub const ALL: Actions = Actions(15);

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds what the actions imply.
    fn expand(self) -> Actions {
        let mut a = self;
        if a.contains(Actions::ADMIN) {
            a = Actions::ALL;
        }
        if a.contains(Actions::PUSH) || a.contains(Actions::DELETE) {
            a = a.union(Actions::PULL);
        }
        a
    }

    /// Parses `pull`, `push`, `delete`, `admin` and `*` (all); unknown words are an error.
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Actions, Invalid> {
        let mut a = Actions::NONE;
        for w in words {
            a = a.union(match w.trim() {
                "pull" => Actions::PULL,
                "push" => Actions::PUSH,
                "delete" => Actions::DELETE,
                "admin" | "*" => Actions::ADMIN,
                "" => continue,
                other => {
                    return Err(Invalid(format!(
                        "unknown action {other:?} (pull, push, delete, admin)"
                    )))
                }
            });
        }
        Ok(a.expand())
    }

    /// Requested actions as docker sends them in a scope; unknown ones are ignored, as the
    /// token spec asks.
    pub fn parse_lenient(s: &str) -> Actions {
        s.split(',').fold(Actions::NONE, |a, w| {
            a.union(Actions::parse([w]).unwrap_or(Actions::NONE))
        })
    }

    pub fn names(self) -> Vec<&'static str> {
        [
            (Actions::PULL, "pull"),
            (Actions::PUSH, "push"),
            (Actions::DELETE, "delete"),
            (Actions::ADMIN, "admin"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| n)
        .collect()
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

pub use crate::oci::glob::{check_glob, glob_match};

/// Who a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    Authenticated,
    Anonymous,
}

impl Subject {
    pub fn parse(s: &str) -> Result<Subject, Invalid> {
        match s {
            "anonymous" => Ok(Subject::Anonymous),
            "authenticated" => Ok(Subject::Authenticated),
            _ => match s.split_once(':') {
                Some(("user", n)) if !n.is_empty() => Ok(Subject::User(n.to_string())),
                Some(("group", n)) if !n.is_empty() => Ok(Subject::Group(n.to_string())),
                _ => Err(Invalid(format!(
                    "{s:?}: a rule applies to user:NAME, group:NAME, authenticated or anonymous"
                ))),
            },
        }
    }
}

/// A parsed rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: u64,
    pub subject: Subject,
    pub repos: String,
    pub actions: Actions,
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User {
        name: String,
        admin: bool,
        groups: Vec<String>,
    },
    Robot {
        name: String,
        grants: Vec<(String, Actions)>,
    },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::User { name, .. } | Principal::Robot { name, .. } => name,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::User { admin: true, .. })
    }

    /// What this principal may do on `repo` under `rules`.
    pub fn allowed(&self, repo: &str, rules: &[Rule]) -> Actions {
        let applies = |s: &Subject| match (s, self) {
            (Subject::Anonymous, _) => true,
            (Subject::Authenticated, Principal::User { .. }) => true,
            (Subject::User(n), Principal::User { name, .. }) => n == name,
            (Subject::Group(g), Principal::User { groups, .. }) => groups.contains(g),
            _ => false,
        };
        match self {
            Principal::User { admin: true, .. } => Actions::ALL,
            Principal::Robot { grants, .. } => grants
                .iter()
                .filter(|(g, _)| glob_match(g, repo))
                .fold(Actions::NONE, |a, (_, x)| a.union(*x)),
            _ => rules
                .iter()
                .filter(|r| applies(&r.subject) && glob_match(&r.repos, repo))
                .fold(Actions::NONE, |a, r| a.union(r.actions)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_imply() {
        let a = Actions::parse(["push"]).unwrap();
        assert!(a.contains(Actions::PULL));
        assert_eq!(Actions::parse(["admin"]).unwrap(), Actions::ALL);
        assert!(Actions::parse(["fly"]).is_err());
        assert_eq!(Actions::parse_lenient("pull,fly"), Actions::PULL);
        assert_eq!(Actions::parse_lenient("*"), Actions::ALL);
        assert_eq!(
            Actions::parse(["pull", "push"]).unwrap().to_string(),
            "pull,push"
        );
    }

    fn rule(id: u64, s: &str, repos: &str, a: &str) -> Rule {
        Rule {
            id,
            subject: Subject::parse(s).unwrap(),
            repos: repos.into(),
            actions: Actions::parse(a.split(',')).unwrap(),
        }
    }

    #[test]
    fn rule_matching() {
        let rules = vec![
            rule(1, "user:alice", "team/**", "push"),
            rule(2, "group:ops", "prod/**", "pull,delete"),
            rule(3, "anonymous", "public/**", "pull"),
            rule(4, "authenticated", "shared/*", "pull"),
        ];
        let alice = Principal::User {
            name: "alice".into(),
            admin: false,
            groups: vec![],
        };
        let bob = Principal::User {
            name: "bob".into(),
            admin: false,
            groups: vec!["ops".into()],
        };
        let root = Principal::User {
            name: "root".into(),
            admin: true,
            groups: vec![],
        };
        assert!(alice.allowed("team/app", &rules).contains(Actions::PUSH));
        assert!(!alice.allowed("prod/app", &rules).contains(Actions::PULL));
        assert!(bob.allowed("prod/app", &rules).contains(Actions::DELETE));
        assert!(!bob.allowed("prod/app", &rules).contains(Actions::PUSH));
        assert_eq!(
            Principal::Anonymous.allowed("public/x", &rules),
            Actions::PULL
        );
        assert_eq!(
            Principal::Anonymous.allowed("shared/x", &rules),
            Actions::NONE
        );
        assert_eq!(bob.allowed("shared/x", &rules), Actions::PULL);
        assert!(alice.allowed("public/x", &rules).contains(Actions::PULL));
        assert_eq!(root.allowed("anything", &rules), Actions::ALL);
        let robot = Principal::Robot {
            name: "robot$ci".into(),
            grants: vec![("ci/**".into(), Actions::parse(["push"]).unwrap())],
        };
        assert!(robot.allowed("ci/x", &rules).contains(Actions::PUSH));
        assert_eq!(
            robot.allowed("public/x", &rules),
            Actions::NONE,
            "robots get only their grants"
        );
    }
}
