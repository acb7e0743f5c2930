//! SQLite authorizer: confines each plugin to the tables its config grants.
//!
//! One authorizer is installed on the writer connection for its whole life
//! (changing it would expire every prepared statement). It consults a shared
//! [`AuthScope`]: while the host runs its own statements the scope is
//! `Host` and everything is allowed; while a plugin's statement is prepared
//! and stepped the scope names that plugin's [`Grant`], and only what
//! `rules` allows gets through.
//!
//! Statements are authorized when SQLite prepares them, so a cached
//! statement must never be shared between scopes: the host store keys its
//! cache by grant (see `host::store`), and a new grant (a reload) never
//! reuses a statement authorized under an old one.
//!
//! The scope also carries the deadline of the plugin call in progress:
//! SQLite's progress handler interrupts a plugin's statement once it has
//! passed (a long query cannot outlast the call's deadline). Host
//! statements are never interrupted.

mod rules;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use rusqlite::hooks::{AuthContext, Authorization};

pub use rules::Created;

/// Prefix reserved for ferry's own tables; never granted to a plugin.
pub const INTERNAL_PREFIX: &str = "ferry_";

/// How many SQLite virtual-machine steps run between two deadline checks.
const PROGRESS_STEPS: i32 = 1_000;

/// The tables one plugin may touch.
#[derive(Debug)]
pub struct Grant {
    /// Plugin name, for error messages.
    pub plugin: String,
    tables: HashSet<String>,
    read_only: bool,
    id: u64,
    schema_view: String,
}

impl Grant {
    /// A grant for `plugin` over `tables` (compared case-insensitively, as
    /// SQLite compares identifiers).
    pub fn new(plugin: &str, tables: &[String]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let tables: HashSet<String> = tables
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .filter(|t| !t.starts_with(INTERNAL_PREFIX))
            .collect();
        let mut sorted: Vec<&String> = tables.iter().collect();
        sorted.sort();
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut hasher, plugin.as_bytes());
        for t in sorted {
            sha2::Digest::update(&mut hasher, b"\0");
            sha2::Digest::update(&mut hasher, t.as_bytes());
        }
        let short = hex::encode(&sha2::Digest::finalize(hasher)[..8]);
        Self {
            plugin: plugin.to_owned(),
            tables,
            read_only: false,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            schema_view: format!("ferry_schema_{short}"),
        }
    }

    /// A grant for `plugin`'s query functions: reads of `tables` only.
    pub fn reader(plugin: &str, tables: &[String]) -> Self {
        Self {
            read_only: true,
            ..Self::new(plugin, tables)
        }
    }

    /// Whether `table` is one of the granted tables (never a `ferry_*`
    /// one).
    pub fn allows(&self, table: &str) -> bool {
        self.tables.contains(&table.to_ascii_lowercase())
    }

    /// `Ok` when the plugin may use `table`; otherwise why not, in words.
    pub fn check(&self, table: &str) -> Result<(), String> {
        rules::owned(self, table)
    }

    /// A number no other grant in this process has (statements prepared
    /// under one grant are cached under it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name of the temporary view that answers the plugin's reads of
    /// `sqlite_master`: the schema rows of its granted tables only.
    pub fn schema_view(&self) -> &str {
        &self.schema_view
    }

    /// The statement that creates [`Self::schema_view`] (in the
    /// connection's `temp` schema, so nothing is written to the database).
    pub fn schema_view_ddl(&self) -> String {
        let mut names: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("'{}'", t.replace('\'', "''")))
            .collect();
        names.sort();
        format!(
            "CREATE TEMP VIEW IF NOT EXISTS \"{}\" AS SELECT type, name, tbl_name, rootpage, sql \
             FROM main.sqlite_master WHERE lower(tbl_name) IN ({})",
            self.schema_view,
            names.join(", ")
        )
    }
}

#[derive(Default)]
struct ScopeState {
    current: Option<Arc<Grant>>,
    denial: Option<String>,
    statement: rules::Statement,
    seen: rules::Seen,
}

/// Nanoseconds since [`epoch`] of the running plugin call's deadline; 0
/// while no plugin statement runs.
#[derive(Debug, Default)]
struct Deadline(AtomicU64);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Deadline {
    fn set(&self, at: Option<Instant>) {
        let nanos = at.map_or(0, |at| {
            u64::try_from(at.saturating_duration_since(epoch()).as_nanos())
                .unwrap_or(u64::MAX)
                .max(1)
        });
        self.0.store(nanos, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let at = self.0.load(Ordering::Relaxed);
        at != 0 && u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX) >= at
    }
}

/// Who is running statements on the connection right now.
#[derive(Clone, Default)]
pub struct AuthScope {
    state: Arc<Mutex<ScopeState>>,
    deadline: Arc<Deadline>,
}

impl std::fmt::Debug for AuthScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthScope").finish_non_exhaustive()
    }
}

/// What one stretch of plugin statements left behind.
#[derive(Debug, Default)]
pub struct Finished {
    /// The reason of the first denial, if any.
    pub denial: Option<String>,
    /// Views and triggers its statements created, and tables they altered
    /// (to be verified).
    pub created: Vec<Created>,
    /// Names read without a column that are not granted tables: the host
    /// denies those that name a table of the database (the rest are common
    /// table expressions and subqueries).
    pub unresolved: Vec<String>,
    /// Whether the last statement prepared was DDL (CREATE, DROP, ALTER).
    pub ddl: bool,
}

impl AuthScope {
    /// Runs `f` with statements authorized against `grant`, and returns the
    /// reason of the first denial (if any) alongside `f`'s result.
    pub fn as_plugin<R>(&self, grant: &Arc<Grant>, f: impl FnOnce() -> R) -> (R, Option<String>) {
        self.enter(grant, None);
        let result = f();
        (result, self.leave().denial)
    }

    /// From now on statements are authorized against `grant` (and are
    /// interrupted once `deadline` has passed), until [`Self::leave`].
    pub fn enter(&self, grant: &Arc<Grant>, deadline: Option<Instant>) {
        {
            let mut s = self.state.lock();
            s.current = Some(Arc::clone(grant));
            s.denial = None;
            s.statement = rules::Statement::default();
            s.seen = rules::Seen::default();
        }
        self.deadline.set(deadline);
    }

    /// A new statement is about to be prepared in the plugin's scope: what
    /// the previous one showed (a DDL action) no longer counts.
    pub fn next_statement(&self) {
        self.state.lock().statement = rules::Statement::default();
    }

    /// Back to host scope; returns what the plugin's statements left.
    pub fn leave(&self) -> Finished {
        self.deadline.set(None);
        let mut s = self.state.lock();
        s.current = None;
        let ddl = s.statement.is_ddl();
        s.statement = rules::Statement::default();
        let seen = std::mem::take(&mut s.seen);
        Finished {
            denial: s.denial.take(),
            created: seen.created,
            unresolved: seen.unresolved,
            ddl,
        }
    }

    /// Whether the running plugin call's deadline has passed.
    pub fn deadline_passed(&self) -> bool {
        self.deadline.passed()
    }

    /// Installs the authorizer, and the progress handler that interrupts a
    /// plugin statement at its call's deadline, on `conn`.
    pub fn install(&self, conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        let state = Arc::clone(&self.state);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let mut s = state.lock();
            let Some(grant) = s.current.clone() else {
                return Authorization::Allow;
            };
            let ScopeState {
                statement, seen, ..
            } = &mut *s;
            match rules::decide(&grant, statement, seen, &ctx) {
                Ok(()) => Authorization::Allow,
                Err(reason) => {
                    if s.denial.is_none() {
                        s.denial = Some(reason);
                    }
                    Authorization::Deny
                }
            }
        }))?;
        let deadline = Arc::clone(&self.deadline);
        conn.progress_handler(PROGRESS_STEPS, Some(move || deadline.passed()))
    }
}

#[cfg(test)]
mod tests;
