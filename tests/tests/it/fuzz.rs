//! The HTTP API fuzzed by schemathesis, a client ferry did not write, from
//! the OpenAPI document ferry serves: a running `ferry run` on the root
//! config (embedded broker, sample publisher, game projection) with an
//! admin token, every schemathesis check (no server error, every status,
//! content type, header and body as documented, invalid input rejected and
//! valid input accepted, the admin token enforced on every operation that
//! needs it), bounded in time and in cases. Settings the document cannot
//! express are in `tests/fuzz/schemathesis.toml`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ferry_tests::kafka::{Running, wait_for};
use ferry_tests::{Workspace, api_addr, http_get, repo_root, run_bounded};

/// The schemathesis command of the test virtualenv (`scripts/test`
/// installs it beside `FERRY_PYTHON`).
fn schemathesis() -> PathBuf {
    let python = PathBuf::from(ferry_tests::apache::python());
    let st = python.with_file_name("schemathesis");
    assert!(
        st.exists(),
        "{} is missing: scripts/test installs schemathesis into its virtualenv",
        st.display()
    );
    st
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document() {
    let st = schemathesis();
    let ws = Workspace::new();
    ws.root_config(&[(
        "# admin_token = \"change-me\"",
        "admin_token = \"fuzz-token\"",
    )]);
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(60), || api_addr(&run.output())
            .is_some_and(
                |a| http_get(&a, "/health/ready").is_ok_and(|(s, _)| s == 200)
            )),
        "ferry never became ready: {}",
        run.output()
    );
    let api = api_addr(&run.output()).unwrap();
    let report = ws.path("schemathesis");
    let out = run_bounded(
        Command::new(&st)
            .arg("--config-file")
            .arg(repo_root().join("tests/fuzz/schemathesis.toml"))
            .args(["run", &format!("http://{api}/openapi.json")])
            .args(["--checks", "all"])
            .args(["--header", "Authorization: Bearer fuzz-token"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "20", "--max-time", "60"])
            // One worker: CPython 3.11's AST parser, which hypothesis uses
            // to describe its strategies, is not safe across threads.
            .args(["--workers", "1", "--seed", "1"])
            .args(["--generation-database", "none"])
            .args(["--request-timeout", "10"])
            .arg("--report-dir")
            .arg(&report)
            .env("NO_COLOR", "1"),
        Duration::from_secs(240),
    );
    let summary = out.stdout.lines().rev().take(40).collect::<Vec<_>>();
    assert!(
        out.status.is_some_and(|s| s.success()),
        "schemathesis found problems (or did not finish in 240 s):\n{}\n{}\nferry:\n{}",
        out.stdout,
        out.stderr,
        run.output()
    );
    assert!(
        out.stdout.contains("passed") && !summary.iter().any(|l| l.contains("Server error")),
        "{}",
        out.stdout
    );
    assert!(
        !run.output().contains("panicked"),
        "a handler panicked: {}",
        run.output()
    );
    let (status, _) = http_get(&api, "/health/live").unwrap();
    assert_eq!(status, 200, "ferry is still live after the fuzz run");
}
