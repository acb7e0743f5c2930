//! A valid WASI 0.2 component exporting something other than ferry's
//! `handler`: ferry must refuse it at load time, naming what is missing.

#[cfg(target_arch = "wasm32")]
#[expect(unsafe_code, reason = "the bindings wit-bindgen generates")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "not-a-projection", generate_all });

    struct Greeter;

    impl exports::acme::other::greeter::Guest for Greeter {
        fn greet(name: String) -> String {
            format!("hello {name}")
        }
    }

    export!(Greeter);
}
