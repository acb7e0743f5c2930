//! Checks a component against the `ferry:plugin` contract before it is
//! instantiated, so that a mismatch is refused with a message that names
//! what is missing or unexpected instead of a generic link error.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{CONTRACT, HANDLER_EXPORT};

/// Interfaces of the contract a plugin may import besides WASI.
const FERRY_IMPORTS: [&str; 4] = [
    "ferry:plugin/types@0.1.0",
    "ferry:plugin/store@0.1.0",
    "ferry:plugin/log@0.1.0",
    "ferry:plugin/clock@0.1.0",
];

/// Problems found in a component's imports and exports, as sentences.
pub fn check(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    if !exports.iter().any(|e| e == HANDLER_EXPORT) {
        let similar: Vec<&String> = exports
            .iter()
            .filter(|e| e.starts_with("ferry:plugin/handler"))
            .collect();
        if similar.is_empty() {
            problems.push(format!(
                "it does not export `{HANDLER_EXPORT}` (its exports: {}); build it against the `projection` world of {CONTRACT}",
                list(&exports)
            ));
        } else {
            problems.push(format!(
                "it exports {} but ferry needs `{HANDLER_EXPORT}`: rebuild it against {CONTRACT}",
                list(&similar.into_iter().cloned().collect::<Vec<_>>())
            ));
        }
    }
    for (name, _) in ty.imports(engine) {
        let known = name.starts_with("wasi:") || FERRY_IMPORTS.contains(&name);
        if !known {
            problems.push(format!(
                "it imports `{name}`, which ferry does not provide (a plugin may import only {} and WASI 0.2)",
                FERRY_IMPORTS.join(", ")
            ));
        }
    }
    problems
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_component_lacks_the_handler() {
        let engine = super::super::engine::build_engine().unwrap();
        let c = Component::new(&engine, "(component)").unwrap();
        let p = check(&engine, &c);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("does not export `ferry:plugin/handler@0.1.0`"),
            "{p:?}"
        );
    }

    #[test]
    fn a_foreign_import_is_named() {
        let engine = super::super::engine::build_engine().unwrap();
        let c = Component::new(
            &engine,
            r#"(component (import "acme:evil/net@1.0.0" (instance)))"#,
        )
        .unwrap();
        let p = check(&engine, &c);
        assert!(
            p.iter().any(|m| m.contains("`acme:evil/net@1.0.0`")),
            "{p:?}"
        );
    }
}
