//! DESIGN.md's never-rules, read from the source: the `crate::` paths of
//! every module of `runtime/src` give the graph of its top-level modules,
//! which must have no cycle and none of the forbidden edges; modules stay
//! small; the host has one module per WIT interface it provides; and no
//! guest (SDK, reference plugin, test plugin) links the host crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferry_tests::repo_root;

/// The plain types: every layer may use them, they use only each other.
const PLAIN: &[&str] = &["event", "failure", "delivery", "backoff"];

/// `(from, to)` edges DESIGN.md (or its layout) forbids.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("source", &["store", "plugin", "pipeline", "host"]),
    ("store", &["plugin", "pipeline", "source", "host"]),
    ("api", &["run"]),
    ("control", &["api", "run"]),
    ("bindings", &["config", "store", "host", "plugin"]),
];

/// A module longer than this is doing more than one job.
const MAX_LINES: usize = 450;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with comments, string and character literals blanked out, so
/// that only code is searched.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            'raw: while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break 'raw;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || b.get(i + 2) == Some(&'\'')) {
            // A character literal (a lifetime has no closing quote).
            i += 1;
            while i < b.len() && b[i] != '\'' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a piece of code names through `crate::`,
/// including every member of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` or `my_crate::`
        }
        let tail = rest.trim_start();
        if let Some(group) = tail.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        names.insert(ident(group[start..k].trim()).to_owned());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(ident(group[start..k].trim()).to_owned());
                        start = k + 1;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(tail).to_owned());
        }
    }
    names.retain(|n| !n.is_empty() && n != "self");
    names
}

/// The top-level modules of `runtime/src` (the binary's folder aside) and
/// which of them each one names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = repo_root().join("runtime/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let top = Path::new(first)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if top == "lib" || top == "bin" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let uses = graph.entry(top.clone()).or_default();
        uses.extend(crate_paths(&code).into_iter().filter(|m| *m != top));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

/// A cycle through `from`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        goal: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == goal {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, goal, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_owned()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_parser_sees_grouped_paths_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::{event::Event, failure::{self, X}};\n// crate::api\n/* crate::run */\nlet s = \"crate::store\"; let r = r#\"crate::host\"#; let c = '\"'; fn f<'a>(x: &'a crate::config::C) {}\n$crate::plugin::x",
    );
    assert_eq!(
        crate_paths(&code),
        ["config", "event", "failure"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    assert_eq!(cycle(&g, "a"), None);
    g.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        cycle(&g, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = module_graph();
    assert!(graph.len() >= 10, "the graph was not read: {graph:?}");
    for module in graph.keys() {
        if let Some(path) = cycle(&graph, module) {
            panic!("import cycle: {}\n{graph:#?}", path.join(" → "));
        }
    }
}

#[test]
fn no_layer_imports_what_the_design_forbids() {
    let graph = module_graph();
    let mut broken = Vec::new();
    for (from, banned) in FORBIDDEN {
        let uses = graph
            .get(*from)
            .unwrap_or_else(|| panic!("module {from} is gone: update this test"));
        broken.extend(
            banned
                .iter()
                .filter(|b| uses.contains(**b))
                .map(|b| format!("{from} → {b}")),
        );
    }
    for plain in PLAIN {
        let uses = graph
            .get(*plain)
            .unwrap_or_else(|| panic!("plain type module {plain} is gone"));
        broken.extend(
            uses.iter()
                .filter(|u| !PLAIN.contains(&u.as_str()))
                .map(|u| format!("{plain} (a plain type) → {u}")),
        );
    }
    assert!(
        broken.is_empty(),
        "forbidden imports: {broken:?}\n{graph:#?}"
    );
}

#[test]
fn no_module_grows_past_one_job() {
    let mut files = Vec::new();
    rust_files(&repo_root().join("runtime/src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these modules: {long:?}");
}

#[test]
fn the_host_has_a_module_for_every_interface_a_world_imports() {
    let mut wits = Vec::new();
    let mut dirs = vec![repo_root().join("wit")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "wit") {
                wits.push(path);
            }
        }
    }
    let host = repo_root().join("runtime/src/host");
    let mut missing = Vec::new();
    let mut seen = 0;
    for wit in wits {
        let code = code_only(&std::fs::read_to_string(&wit).unwrap());
        for world in code.split("world ").skip(1) {
            let body = world.split('}').next().unwrap_or_default();
            for line in body.lines() {
                let Some(import) = line.trim().strip_prefix("import ") else {
                    continue;
                };
                // `store;`, `ferry:plugin/store@0.2.0;`, `wasi:…` (WASI is
                // wasmtime's, not a ferry host module).
                if import.starts_with("wasi:") {
                    continue;
                }
                let name = import.rsplit('/').next().unwrap_or(import);
                let name = ident(name).replace('-', "_");
                seen += 1;
                if !host.join(format!("{name}.rs")).exists()
                    && !host.join(&name).join("mod.rs").exists()
                {
                    missing.push(format!("{} imports {name}", wit.display()));
                }
            }
        }
    }
    assert!(seen >= 3, "no world imports found under wit/");
    assert!(missing.is_empty(), "no host module for: {missing:?}");
}

#[test]
fn guests_never_link_the_host() {
    let root = repo_root();
    let mut manifests = Vec::new();
    for dir in ["sdk", "plugins", "tests/plugins"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() && !path.ends_with("target") && !path.ends_with("node_modules") {
                    stack.push(path);
                } else if path.file_name().is_some_and(|n| n == "Cargo.toml") {
                    manifests.push(path);
                }
            }
        }
    }
    assert!(manifests.len() >= 3, "no guest manifests found");
    let linked: Vec<String> = manifests
        .iter()
        .filter(|m| {
            let text = std::fs::read_to_string(m).unwrap();
            text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("ferry ")
                    || l.starts_with("ferry=")
                    || l.starts_with("ferry.")
                    || l.contains("dependencies.ferry]")
                    || l.contains("runtime\"")
            })
        })
        .map(|m| m.display().to_string())
        .collect();
    assert!(
        linked.is_empty(),
        "guests depending on the host crate `ferry`: {linked:?}"
    );
}
