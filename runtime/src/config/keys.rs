//! Unknown keys, all of them. serde refuses the first unknown key of a file
//! (every section is `deny_unknown_fields`) and says no more; here that key
//! is noted with its full path (`plugins[1].tables_x`), taken out, and the
//! file read again, until only real problems remain, so that `ferry check`
//! lists every unknown key together with every other problem.

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

/// Most unknown keys collected before giving up on the rest.
const MAX_UNKNOWN: usize = 200;

/// The outcome of a tolerant parse.
#[derive(Debug)]
pub(super) enum Parsed<T> {
    /// The file parsed once the keys named in the problems (unknown keys,
    /// values of the wrong type) were taken out.
    Value(T, Vec<String>),
    /// It does not parse even so (a required key is missing): every
    /// problem found, the last one the reason.
    Invalid(Vec<String>),
}

/// Parses `text` into `T`, collecting every unknown key and wrong value on
/// the way, in file order. `Err` is a TOML syntax error (nothing else can
/// be said then).
pub(super) fn parse<T: DeserializeOwned>(text: &str) -> Result<Parsed<T>, String> {
    let first = match toml::from_str::<T>(text) {
        Ok(v) => return Ok(Parsed::Value(v, Vec::new())),
        Err(e) => e,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|_| first.to_string())?;
    let original = DeTable::parse(text).ok();
    let mut problems: Vec<(usize, String)> = Vec::new();
    let order = |path: &[Step]| {
        original
            .as_ref()
            .and_then(|t| span_of(t.get_ref(), path))
            .unwrap_or(usize::MAX)
    };
    loop {
        let current = toml::to_string(&table).map_err(|e| e.to_string())?;
        let err = match toml::from_str::<T>(&current) {
            Ok(v) => {
                problems.sort_by_key(|(at, _)| *at);
                return Ok(Parsed::Value(
                    v,
                    problems.into_iter().map(|(_, p)| p).collect(),
                ));
            }
            Err(e) => e,
        };
        let path = err.span().and_then(|span| path_at(&current, span.start));
        // A missing key cannot be taken out: the rest would be judged
        // without a table that is really there.
        let removable = path.as_ref().filter(|_| {
            problems.len() < MAX_UNKNOWN && !err.message().starts_with("missing field")
        });
        match removable {
            Some(path) if remove(&mut table, path) => {
                let what = if is_unknown(&err) {
                    "unknown key"
                } else {
                    "wrong value"
                };
                problems.push((
                    order(path),
                    format!("{}: {what} ({})", dotted(path), err.message()),
                ));
            }
            _ => {
                problems.sort_by_key(|(at, _)| *at);
                let mut all: Vec<String> = problems.into_iter().map(|(_, p)| p).collect();
                all.push(match &path {
                    Some(path) => format!("{}: {}", dotted(path), err.message()),
                    None if all.is_empty() => first.to_string(),
                    None => err.message().to_owned(),
                });
                return Ok(Parsed::Invalid(all));
            }
        }
    }
}

/// Where the key at `path` starts in the parsed file.
fn span_of(t: &DeTable<'_>, path: &[Step]) -> Option<usize> {
    let (Step::Key(k), rest) = path.split_first()? else {
        return None;
    };
    let (key, value) = t.iter().find(|(key, _)| key.get_ref() == k)?;
    if rest.is_empty() {
        return Some(key.span().start);
    }
    span_in(value.get_ref(), rest)
}

fn span_in(v: &DeValue<'_>, path: &[Step]) -> Option<usize> {
    match (v, path) {
        (DeValue::Table(t), [Step::Key(_), ..]) => span_of(t, path),
        (DeValue::Array(a), [Step::Index(i), rest @ ..]) => {
            let item = a.get(*i)?;
            if rest.is_empty() {
                Some(item.span().start)
            } else {
                span_in(item.get_ref(), rest)
            }
        }
        _ => None,
    }
}

fn is_unknown(e: &toml::de::Error) -> bool {
    e.message().starts_with("unknown field")
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path of the key whose name or value starts at byte `at` of `text`.
fn path_at(text: &str, at: usize) -> Option<Vec<Step>> {
    let table = DeTable::parse(text).ok()?;
    find_in_table(table.get_ref(), at)
}

fn find_in_table(t: &DeTable<'_>, at: usize) -> Option<Vec<Step>> {
    for (k, v) in t {
        if k.span().start == at || v.span().start == at {
            return Some(vec![Step::Key(k.get_ref().to_string())]);
        }
        if let Some(mut rest) = find_in_value(v.get_ref(), at) {
            rest.insert(0, Step::Key(k.get_ref().to_string()));
            return Some(rest);
        }
    }
    None
}

fn find_in_value(v: &DeValue<'_>, at: usize) -> Option<Vec<Step>> {
    match v {
        DeValue::Table(t) => find_in_table(t, at),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
            let mut rest = find_in_value(item.get_ref(), at)?;
            rest.insert(0, Step::Index(i));
            Some(rest)
        }),
        _ => None,
    }
}

/// Removes the item at `path`; false if there is none.
fn remove(table: &mut toml::Table, path: &[Step]) -> bool {
    match path {
        [Step::Key(k)] => table.remove(k).is_some(),
        [Step::Key(k), rest @ ..] => table.get_mut(k).is_some_and(|v| remove_in(v, rest)),
        _ => false,
    }
}

fn remove_in(value: &mut toml::Value, path: &[Step]) -> bool {
    match (value, path) {
        (toml::Value::Table(t), [Step::Key(_), ..]) => remove(t, path),
        (toml::Value::Array(a), [Step::Index(i), rest @ ..]) => {
            a.get_mut(*i).is_some_and(|item| remove_in(item, rest))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        #[serde(default)]
        a: i64,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        section: Option<Section>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[serde(default)]
        x: i64,
    }

    #[test]
    fn every_unknown_key_is_named_with_its_path() {
        let text = "a = 1\nbogus = 2\n[section]\nx = 1\ny = 2\n[[items]]\nname = 'p'\n[[items]]\nname = 'q'\nextra = { z = 1 }\n";
        let Ok(Parsed::Value(root, unknown)) = parse::<Root>(text) else {
            panic!("not parsed")
        };
        assert_eq!(root.a, 1);
        assert_eq!(root.items.len(), 2);
        assert_eq!(root.items[1].name, "q");
        assert_eq!(root.section.map(|s| s.x), Some(1));
        let paths: Vec<&str> = unknown
            .iter()
            .map(|u| u.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(paths, ["bogus", "section.y", "items[1].extra"]);
    }

    #[test]
    fn a_wrong_type_and_unknown_keys_are_all_reported_and_a_missing_key_ends_it() {
        let text = "bogus = 1\na = 'text'\n";
        let Ok(Parsed::Value(_, problems)) = parse::<Root>(text) else {
            panic!("not parsed")
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("bogus: unknown key"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("a: wrong value (invalid type"),
            "{problems:?}"
        );
        let Ok(Parsed::Invalid(problems)) = parse::<Root>("zz = 1\n[[items]]\nnope = 1\n") else {
            panic!("parsed")
        };
        assert!(
            problems
                .last()
                .is_some_and(|p| p.contains("missing field `name`")),
            "{problems:?}"
        );
        assert!(parse::<Root>("a = ").is_err(), "a syntax error");
    }
}
