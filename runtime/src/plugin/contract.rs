//! Checks a component against the `ferry:plugin` contract before it is
//! instantiated: which version it was built against (by the handler it
//! exports), and that it imports nothing but that version's interfaces and
//! WASI, so that a mismatch is refused with a message that names what is
//! missing or unexpected instead of a generic link error.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::Contract;

/// The contract version a component targets, or every problem found.
pub fn check(engine: &Engine, component: &Component) -> Result<Contract, Vec<String>> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
    let mut problems = Vec::new();
    let contract = Contract::ALL
        .into_iter()
        .find(|c| exports.iter().any(|e| e == c.handler_export()));
    let Some(contract) = contract else {
        let similar: Vec<String> = exports
            .iter()
            .filter(|e| e.starts_with("ferry:plugin/handler"))
            .cloned()
            .collect();
        let served = Contract::ALL
            .iter()
            .map(|c| format!("`{}`", c.handler_export()))
            .collect::<Vec<_>>()
            .join(" or ");
        if similar.is_empty() {
            problems.push(format!(
                "it does not export {served} (its exports: {}); build it against the `projection` world of {}",
                list(&exports),
                crate::bindings::CONTRACT
            ));
        } else {
            problems.push(format!(
                "it exports {} but ferry serves {served}: rebuild it against {}",
                list(&similar),
                crate::bindings::CONTRACT
            ));
        }
        for name in &imports {
            let known = name.starts_with("wasi:")
                || Contract::ALL
                    .iter()
                    .any(|c| c.imports().contains(&name.as_str()));
            if !known {
                problems.push(format!(
                    "it imports `{name}`, which ferry does not provide (a plugin may import only the interfaces of its contract version and WASI 0.2)"
                ));
            }
        }
        return Err(problems);
    };
    for name in &imports {
        let known = name.starts_with("wasi:") || contract.imports().contains(&name.as_str());
        if !known {
            problems.push(format!(
                "it imports `{name}`, which ferry does not provide to a {contract} plugin (it may import only {} and WASI 0.2)",
                contract.imports().join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(contract)
    } else {
        Err(problems)
    }
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

// Compiling the test components needs the compiler.
#[cfg(test)]
#[cfg(feature = "jit")]
mod tests {
    use super::*;

    fn engine() -> Engine {
        super::super::engine::build_engine().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_empty_component_lacks_the_handler_of_every_version() {
        let engine = engine();
        let c = Component::new(&engine, "(component)").unwrap_or_else(|e| panic!("{e}"));
        let p = check(&engine, &c).unwrap_err();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("`ferry:plugin/handler@0.2.0` or `ferry:plugin/handler@0.1.0`"),
            "{p:?}"
        );
    }

    #[test]
    fn a_foreign_import_is_named() {
        let engine = engine();
        let c = Component::new(
            &engine,
            r#"(component
                (import "acme:evil/net@1.0.0" (instance))
                (instance $h)
                (export "ferry:plugin/handler@0.2.0" (instance $h)))"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = check(&engine, &c).unwrap_err();
        assert!(
            p.iter().any(|m| m.contains("`acme:evil/net@1.0.0`")),
            "{p:?}"
        );
    }

    #[test]
    fn a_version_is_told_by_its_handler_and_may_not_mix_imports() {
        let engine = engine();
        let c = Component::new(
            &engine,
            r#"(component
                (import "ferry:plugin/store@0.2.0" (instance))
                (instance $h)
                (export "ferry:plugin/handler@0.1.0" (instance $h)))"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = check(&engine, &c).unwrap_err();
        assert!(p[0].contains("`ferry:plugin/store@0.2.0`"), "{p:?}");
        let ok = Component::new(
            &engine,
            r#"(component (instance $h) (export "ferry:plugin/handler@0.1.0" (instance $h)))"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&engine, &ok), Ok(Contract::V0_1));
    }
}
