//! Shared helpers for ferry's integration tests: where the built plugins and
//! the `ferry` binary are, throwaway workspaces with a config, bounded
//! child processes, and SQLite inspection.
//!
//! Build the plugins and the binary first: `scripts/test` does it, or
//! `scripts/build-plugins && cargo build -p ferry`.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

pub mod apache;
pub mod chaos;
pub mod feed;
pub mod games;
pub mod kafka;

pub use chaos::ChaosConfig;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// A built plugin component, e.g. `plugin("chaos_plugin")`.
pub fn plugin(name: &str) -> PathBuf {
    let p = repo_root()
        .join("dist/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins (or scripts/test) first",
        p.display()
    );
    p
}

/// The `ferry` binary of this build (same target directory as the tests).
pub fn ferry_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join("ferry");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p ferry` (scripts/test does) first",
        bin.display()
    );
    bin
}

/// A throwaway directory holding a config, a database and event files.
pub struct Workspace {
    /// The directory (deleted on drop).
    pub dir: tempfile::TempDir,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    /// An empty workspace.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A path inside the workspace.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).expect("write");
        p
    }

    /// Writes `config.toml` from `body` (plugin paths may use `{chaos}`,
    /// `{games}`, `{games_v01}` (the game projection on contract 0.1),
    /// `{hostile}` and `{mismatch}`). Unless the body has a `[runtime]`
    /// table, the compiled-component cache is shared by all tests; unless
    /// it has an `[api]` table, the HTTP API listens on a free port.
    pub fn config(&self, body: &str) -> PathBuf {
        let mut body = body.to_owned();
        if !body.contains("[api]") {
            body.push_str("\n[api]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !body.contains("[runtime]") {
            let cache = std::env::temp_dir().join("ferry-test-component-cache");
            body.push_str(&format!(
                "\n[runtime]\ncomponent_cache = {}\n",
                toml_path(&cache)
            ));
        }
        let body = body
            .replace("{chaos}", &toml_path(&plugin("chaos_plugin")))
            .replace("{games}", &toml_path(&plugin("game_projection")))
            .replace("{games_v01}", &toml_path(&plugin("games_v01")))
            .replace("{mismatch}", &toml_path(&plugin("mismatch_plugin")))
            .replace("{hostile}", &toml_path(&plugin("hostile_plugin")));
        self.write("config.toml", body)
    }

    /// Writes the repository's root `config.toml` (ferry's documented
    /// defaults: the embedded broker, its sample publisher and the game
    /// projection from `dist/plugins`), with the HTTP API on a free port and
    /// each `(from, to)` of `edits` replaced.
    pub fn root_config(&self, edits: &[(&str, &str)]) -> PathBuf {
        let root = repo_root();
        let plugin = root.join("dist/plugins/game_projection.wasm");
        assert!(plugin.exists(), "run scripts/build-plugins first");
        let mut text = std::fs::read_to_string(root.join("config.toml"))
            .expect("the root config.toml")
            .replace("\"dist/plugins/game_projection.wasm\"", &toml_path(&plugin))
            .replace("listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\"");
        for (from, to) in edits {
            assert!(text.contains(from), "the root config has no `{from}`");
            text = text.replace(from, to);
        }
        self.write("config.toml", text)
    }

    /// The database file the default test configs use.
    pub fn db(&self) -> PathBuf {
        self.path("ferry.db")
    }

    /// Opens the database read-only.
    pub fn open_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(self.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db")
    }

    /// Runs `ferry ARGS` in the workspace, killing it after `limit`.
    pub fn ferry(&self, args: &[&str], limit: Duration) -> Output {
        run_bounded(
            Command::new(ferry_bin())
                .args(args)
                .current_dir(self.dir.path())
                .env("FERRY_LOG", "warn"),
            limit,
        )
    }
}

/// A path as a TOML string literal.
pub fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The result of a bounded child process.
#[derive(Debug)]
pub struct Output {
    /// Exit status (`None` if it was killed at the time limit).
    pub status: Option<ExitStatus>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Output {
    /// The exit code (panics if killed or signalled).
    pub fn code(&self) -> i32 {
        self.status
            .and_then(|s| s.code())
            .unwrap_or_else(|| panic!("ferry did not exit normally: {self:#?}"))
    }
}

/// Runs a command to completion, killing it after `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_bounded(&mut child, limit);
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// What a child process cost: wall time and peak resident memory.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// From spawn to exit.
    pub wall: Duration,
    /// Peak resident set size (`ru_maxrss`), in bytes.
    pub max_rss: u64,
}

/// [`run_bounded`], also measuring the child's wall time and peak RSS.
/// The child is started by `ferry-measure` (a binary of this crate), so
/// that its peak RSS does not include this test process's own memory.
pub fn run_measured(cmd: &mut Command, limit: Duration) -> (Output, Usage) {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().expect("current exe");
    let helper = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("ferry-measure");
    assert!(helper.exists(), "{} is missing", helper.display());
    let report = tempfile::NamedTempFile::new().expect("report file");
    let mut wrapped = Command::new(helper);
    wrapped
        .arg(report.path())
        .arg(limit.as_millis().to_string())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let out = run_bounded(&mut wrapped, limit + Duration::from_secs(30));
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    assert!(
        out.status.is_some_and(|s| s.success()) && field("status").is_some(),
        "ferry-measure failed: {out:#?} report {text:?}"
    );
    let status = field("status")
        .and_then(|s| s.parse::<i32>().ok())
        .map(ExitStatus::from_raw);
    let number = |name: &str| field(name).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    (
        Output {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        },
        Usage {
            wall: Duration::from_millis(number("wall_ms")),
            max_rss: number("maxrss_kib") * 1024,
        },
    )
}

/// Waits for `child` at most `limit`, then kills it (`None`).
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends SIGKILL to a child process.
pub fn sigkill(child: &Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    #[expect(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
    // SAFETY: kill(2) with a pid we spawned and own; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Runs a query returning one integer.
pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A JSONL envelope line.
pub fn envelope(event_type: &str, key: Option<&str>, payload: &serde_json::Value) -> String {
    let mut v = serde_json::json!({ "type": event_type, "payload": payload });
    if let Some(k) = key {
        v["key"] = serde_json::Value::String(k.to_owned());
    }
    v.to_string()
}

/// The HTTP API address `ferry run` printed (`host:port`), if it did.
pub fn api_addr(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        l.split("HTTP API listening on http://")
            .nth(1)
            .map(|a| a.trim().to_owned())
    })
}

/// `GET path` on `addr` (HTTP/1.1, bounded to 10 s): status and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[]).map(|r| (r.status, r.body))
}

/// One HTTP response: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (chunked encoding removed).
    pub body: String,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `METHOD path` on `addr` with `body` (HTTP/1.1, bounded to 30 s).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    http_request_with(addr, method, path, &[], body)
}

/// [`http_request`] with extra headers (`("Authorization", "Bearer t")`;
/// a `Content-Type` given here replaces the default one).
pub fn http_request_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::Write;
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map_or("application/octet-stream", |(_, v)| *v);
    let extra: String = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\n{extra}\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    #[expect(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
    // SAFETY: kill(2) with a pid we spawned and own; no memory is involved.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Replaces `path` by `bytes` atomically (a temporary file, then a
/// rename): the documented way to deploy a plugin.
pub fn deploy_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Runs a test's `body` on its own thread and fails the test if it has not
/// finished within `limit`: a hang inside a library call (librdkafka's
/// close, say) fails that test instead of stalling the whole suite.
pub fn bounded<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let r = body();
        let _ = done.send(());
        r
    });
    match finished.recv_timeout(limit) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {limit:?}")
        }
    }
}
