//! The architecture's rules, checked on the source itself (docs/architecture.md draws them):
//!
//! - each module imports (`crate::…`) only from layers below its own, and `http` never from
//!   `meta` (handlers go through the registry);
//! - no redb or sled type outside `meta/`, so that the metadata engine stays swappable there alone;
//! - no `Result<_, String>` outside `commands/` (typed errors end to end);
//! - no source file over 600 lines.
//!
//! The lists below hold what breaks a rule, file by file, as debt (issue 18 paid off all of
//! it; they stay for a rule that must bend one day, with its reason). They only shrink: a
//! new violation fails, and so does an entry that is no longer needed (delete it), or a
//! count that went down (lower it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may import only from a lower rank.
const RANKS: &[(&str, u8)] = &[
    ("oci", 0),
    ("error", 1),
    ("storage", 2),
    ("meta", 2),
    ("trust", 2),
    ("registry", 3),
    ("edge", 4),
    ("auth", 6),
    ("tls", 6),
    ("metrics", 7),
    ("http", 8),
    ("server", 9),
    ("config", 10),
    ("cli", 11),
    ("telemetry", 11),
    ("systemd", 11),
    ("commands", 12),
];

/// Imports that break the layering today: (file, module it imports from).
const KNOWN_UPWARD: &[(&str, &str)] = &[];

/// Files outside `meta/` that name a redb or sled type today.
const KNOWN_SLED: &[&str] = &[];

/// `Result<_, String>` outside `commands/` today: (file, how many).
const KNOWN_STRING_ERRORS: &[(&str, usize)] = &[];

/// Files over the limit today: (file, lines it may not grow past).
const KNOWN_LONG: &[(&str, usize)] = &[];

const MAX_LINES: usize = 600;

/// Every `.rs` file under `src/`, as `src/…` paths, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The top-level module a file belongs to (`src/registry/gc.rs` → `registry`).
fn module_of(file: &str) -> &str {
    let top = file.trim_start_matches("src/").split('/').next().unwrap();
    top.strip_suffix(".rs").unwrap_or(top)
}

/// Lines of code, comments left out (a doc link to a higher layer is not a dependency).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// The modules a file names as `crate::<module>`.
fn imports(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in code_lines(text) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// Compares what was found with what is known: new entries and stale ones, as messages.
fn ratchet<K: Ord + std::fmt::Debug, V: PartialOrd + Copy + std::fmt::Debug>(
    what: &str,
    found: BTreeMap<K, V>,
    known: BTreeMap<K, V>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (k, v) in &found {
        match known.get(k) {
            None => problems.push(format!("{what}: new {k:?} ({v:?})")),
            Some(allowed) if v > allowed => {
                problems.push(format!("{what}: {k:?} grew to {v:?} (at most {allowed:?})"))
            }
            Some(allowed) if v < allowed => problems.push(format!(
                "{what}: {k:?} is down to {v:?}: lower its entry from {allowed:?}"
            )),
            Some(_) => {}
        }
    }
    for k in known.keys().filter(|k| !found.contains_key(k)) {
        problems.push(format!("{what}: {k:?} is fixed: delete its entry"));
    }
    problems
}

#[test]
fn the_code_obeys_the_architecture_or_its_listed_debt() {
    let files = sources();
    let (mut upward, mut sled, mut strings, mut long) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    let mut unknown = Vec::new();
    for (file, text) in &files {
        let module = module_of(file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = rank(module) else {
            unknown.push(format!("{file}: module {module} has no layer in RANKS"));
            continue;
        };
        for dep in imports(text) {
            if dep == module {
                continue;
            }
            match rank(&dep) {
                None => unknown.push(format!("{file}: imports crate::{dep}, which has no layer")),
                Some(r) if r >= own || (module == "http" && dep == "meta") => {
                    upward.insert((file.clone(), dep), 1);
                }
                Some(_) => {}
            }
        }
        if module != "meta"
            && code_lines(text).any(|l| l.contains("sled::") || l.contains("redb::"))
        {
            sled.insert(file.clone(), 1);
        }
        if module != "commands" {
            let n = code_lines(text).filter(|l| is_string_result(l)).count();
            if n > 0 {
                strings.insert(file.clone(), n);
            }
        }
        let lines = text.lines().count();
        if lines > MAX_LINES {
            long.insert(file.clone(), lines);
        }
    }
    let known = |list: &[(&str, &str)]| -> BTreeMap<(String, String), usize> {
        list.iter()
            .map(|(f, m)| ((f.to_string(), m.to_string()), 1))
            .collect()
    };
    let counts = |list: &[(&str, usize)]| -> BTreeMap<String, usize> {
        list.iter().map(|(f, n)| (f.to_string(), *n)).collect()
    };
    let mut problems = unknown;
    problems.extend(ratchet("upward import", upward, known(KNOWN_UPWARD)));
    problems.extend(ratchet(
        "redb or sled type outside meta/",
        sled,
        KNOWN_SLED.iter().map(|f| (f.to_string(), 1)).collect(),
    ));
    problems.extend(ratchet(
        "Result<_, String> outside commands/",
        strings,
        counts(KNOWN_STRING_ERRORS),
    ));
    problems.extend(ratchet(
        &format!("file over {MAX_LINES} lines"),
        long,
        counts(KNOWN_LONG),
    ));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A `Result` whose error type is `String`, on one line.
fn is_string_result(line: &str) -> bool {
    line.match_indices("Result<").any(|(i, _)| {
        let rest = &line[i..];
        // The matching `>` of this `Result<`, and the text just before it.
        let mut depth = 0;
        for (j, c) in rest.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        let inner = rest[..j].trim_end();
                        return inner.ends_with(", String") || inner.ends_with(",String");
                    }
                }
                _ => {}
            }
        }
        false
    })
}

#[test]
fn the_checks_see_what_they_look_for() {
    assert_eq!(module_of("src/registry/gc.rs"), "registry");
    assert_eq!(module_of("src/config.rs"), "config");
    assert_eq!(
        imports("use crate::oci::{Digest};\n// see crate::http\nlet x = crate::meta_x::y;"),
        vec!["oci".to_string(), "meta_x".to_string()]
    );
    assert!(is_string_result("fn f() -> Result<Vec<u8>, String> {"));
    assert!(is_string_result(
        "pub fn g(x: u8) -> std::result::Result<(), String>;"
    ));
    assert!(!is_string_result("fn f() -> Result<HashMap<String, u8>> {"));
    assert!(!is_string_result("fn f() -> Result<(), Error> {"));
    let found = BTreeMap::from([("a", 3), ("b", 1)]);
    let known = BTreeMap::from([("a", 2), ("c", 1)]);
    let p = ratchet("x", found, known);
    assert_eq!(p.len(), 3, "{p:?}");
}
