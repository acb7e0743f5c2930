//! The operator's side of the HTTP API (issue 18): problem details for
//! every error answer (the seed frontend's 503 contract included),
//! protected mode on a listener other hosts can reach, the admin token on
//! every mutating endpoint the OpenAPI document lists, and the served
//! document being the checked-in one.

use std::sync::Arc;
use std::time::Duration;

use ferry_tests::feed::{Feed, FeedServer, Mode};
use ferry_tests::games::game_id;
use ferry_tests::kafka::wait_for;
use ferry_tests::{HttpResponse, Workspace, http_request, http_request_with, repo_root};

use super::read_api::start_with;

const PROBLEM: &str = "application/problem+json";

/// A running ferry with the game projection fed by a test feed (which
/// answers 503 when `unavailable`), `api` being its `[api]` settings.
struct Served {
    run: ferry_tests::kafka::Running,
    addr: String,
    ws: Workspace,
    _server: FeedServer,
}

fn serve(api: &str, unavailable: bool) -> Served {
    let feed = Arc::new(Feed::default());
    if unavailable {
        feed.set_mode(Mode::Unavailable(1));
    }
    let server = FeedServer::start(feed, 0);
    let ws = Workspace::new();
    let (run, addr) = start_with(&ws, &server.url(), api);
    Served {
        run,
        addr,
        ws,
        _server: server,
    }
}

const LOOPBACK: &str = r#"listen = "127.0.0.1:0""#;

fn assert_problem(r: &HttpResponse, status: u16) -> serde_json::Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.header("content-type"), Some(PROBLEM), "{}", r.body);
    let p = r.json();
    assert_eq!(p["status"], status, "{p}");
    for member in ["type", "title", "detail"] {
        assert!(p[member].is_string(), "no `{member}`: {p}");
    }
    assert_eq!(
        p["error"], p["detail"],
        "the old `error` field is kept: {p}"
    );
    p
}

/// A frontend written against the seed's "Catalog projection not ready."
/// reads `title`, `retryAfterSeconds` and `Retry-After` from an
/// `application/problem+json` 503; older clients read `retry_after_s`.
#[test]
fn a_seed_frontend_reads_projection_not_ready_as_problem_details() {
    let Served { addr, .. } = &serve(LOOPBACK, true);
    let path = format!("/plugins/game-projection/query/get-game?id={}", game_id(1));
    let r = http_request(addr, "GET", &path, b"").unwrap();
    let p = assert_problem(&r, 503);
    assert_eq!(p["title"], "Projection not ready.");
    assert_eq!(p["type"], "urn:ferry:problem:projection-not-ready");
    assert_eq!(p["plugin"], "game-projection");
    let retry = p["retryAfterSeconds"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "{p}");
    assert_eq!(r.header("retry-after"), Some(retry.to_string().as_str()));
    assert_eq!(p["retry_after_s"], retry, "{p}");
    assert!(p.get("lag").is_some(), "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("game-projection"),
        "{p}"
    );
}

/// axum's own rejections (a path segment that is not a number, a body
/// that is not JSON), unknown routes and wrong methods are problem details
/// too, and keep their `Allow` header.
#[test]
fn rejections_unknown_routes_and_wrong_methods_are_problem_details() {
    let Served { addr, .. } = &serve(LOOPBACK, false);
    let req = |method: &str, path: &str, body: &[u8]| {
        http_request_with(
            addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body,
        )
        .unwrap()
    };
    assert_problem(&req("GET", "/no/such/endpoint", b""), 404);
    let p = assert_problem(&req("GET", "/dead-letters/not-a-number", b""), 400);
    assert!(p["detail"].as_str().unwrap().contains("parse"), "{p}");
    assert_problem(&req("GET", "/dead-letters/424242", b""), 404);
    assert_problem(&req("POST", "/dead-letters/retry", b"{not json"), 400);
    assert_problem(&req("POST", "/dead-letters/retry", br#"{"idz": [1]}"#), 422);
    // `{}` names no dead letter: nothing to retry.
    let none = req("POST", "/dead-letters/retry", br#"{}"#);
    assert_eq!((none.status, none.body.as_str()), (200, "[]"));
    assert_problem(
        &req("GET", "/plugins/game-projection/history?limit=0", b""),
        400,
    );
    assert_problem(
        &req("GET", "/sources/catalog/wait?offset=1&timeout=1e3s", b""),
        400,
    );
    let r = req("DELETE", "/sources", b"");
    assert_problem(&r, 405);
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "{r:?}"
    );
    assert_problem(&req("GET", "/sources/nope", b""), 404);
    assert_problem(&req("GET", "/sources/catalog/wait", b""), 400);
}

/// On `0.0.0.0` without a token, every request that changes something is
/// refused with 403 naming protected mode (reads still work), and
/// `ferry check` says so; `api.protected_mode = false` opts out.
#[test]
fn protected_mode_refuses_changes_on_a_reachable_listener_without_a_token() {
    let Served { run, addr, ws, .. } = &serve(r#"listen = "0.0.0.0:0""#, false);
    assert!(
        wait_for(Duration::from_secs(10), || run
            .output()
            .contains("protected mode")),
        "the start log does not mention protected mode: {}",
        run.output()
    );
    for (method, path) in [
        ("PUT", "/plugins/game-projection"),
        ("POST", "/plugins/game-projection/rollback"),
        ("POST", "/dead-letters/1/retry"),
        ("POST", "/dead-letters/retry"),
        ("DELETE", "/dead-letters/1"),
    ] {
        let r = http_request(addr, method, path, b"{\"all\": true}").unwrap();
        let p = assert_problem(&r, 403);
        assert_eq!(p["type"], "urn:ferry:problem:protected-mode", "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("api.admin_token"),
            "{method} {path}: {p}"
        );
    }
    assert_eq!(
        http_request(addr, "GET", "/plugins", b"").unwrap().status,
        200
    );
    let check = ws.ferry(
        &["check", "--config", "config.toml"],
        Duration::from_secs(60),
    );
    assert!(check.stdout.contains("protected mode"), "{check:?}");
}

/// `api.protected_mode = false` opts out: the same request reaches its
/// handler (no such dead letter).
#[test]
fn protected_mode_can_be_turned_off_explicitly() {
    let Served { addr, .. } = &serve("listen = \"0.0.0.0:0\"\nprotected_mode = false", false);
    let r = http_request(addr, "DELETE", "/dead-letters/1", b"").unwrap();
    assert_problem(&r, 404);
}

/// With `api.admin_token` set, every operation the OpenAPI document lists
/// that is not a GET answers 401 with `WWW-Authenticate` without the token
/// (so a new mutating endpoint cannot forget it), and is served with it.
#[test]
fn every_mutating_endpoint_of_the_openapi_document_needs_the_admin_token() {
    let Served { addr, .. } = &serve("listen = \"127.0.0.1:0\"\nadmin_token = \"s3cret\"", false);
    let doc = http_request(addr, "GET", "/openapi.json", b"").unwrap();
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    let mut mutating = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method == "get" {
                continue;
            }
            mutating += 1;
            let concrete = path
                .replace("{name}", "game-projection")
                .replace("{id}", "1");
            let r = http_request(addr, &method.to_uppercase(), &concrete, b"{}").unwrap();
            assert_problem(&r, 401);
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"ferry\""),
                "{method} {path}"
            );
        }
    }
    assert!(mutating >= 5, "{mutating} mutating operations");
    let r = http_request_with(
        addr,
        "DELETE",
        "/dead-letters/1",
        &[("Authorization", "Bearer s3cret")],
        b"",
    )
    .unwrap();
    assert_problem(&r, 404);
}

/// `GET /openapi.json` is `docs/openapi.json`, byte for byte.
#[test]
fn the_served_openapi_document_is_the_checked_in_one() {
    let Served { addr, .. } = &serve(LOOPBACK, false);
    let r = http_request(addr, "GET", "/openapi.json", b"").unwrap();
    assert_eq!(r.status, 200);
    let checked_in = std::fs::read_to_string(repo_root().join("docs/openapi.json")).unwrap();
    assert!(r.body == checked_in, "docs/openapi.json is stale");
    assert_eq!(r.json()["openapi"], "3.1.0");
}

/// A precompiled artifact is native code: without `api.admin_token`, even
/// on loopback, `PUT /plugins/{name}` refuses one (components still swap).
#[test]
fn a_precompiled_artifact_over_the_api_needs_the_admin_token() {
    let Served { addr, .. } = &serve(LOOPBACK, false);
    let mut body = ferry::plugin::aot::MAGIC.to_vec();
    body.extend_from_slice(b"{}\nnot really code");
    let r = http_request(addr, "PUT", "/plugins/game-projection", &body).unwrap();
    let p = assert_problem(&r, 403);
    assert_eq!(p["type"], "urn:ferry:problem:artifact-needs-token", "{p}");
    // A component is judged on its merits (here: not a component, 422).
    let r = http_request(addr, "PUT", "/plugins/game-projection", b"\0asm junk").unwrap();
    assert_problem(&r, 422);
}
