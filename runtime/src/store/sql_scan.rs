//! What ferry reads out of a plugin's SQL text before SQLite prepares it:
//! where it names SQLite's schema table. The authorizer answers per table
//! and column, not per row, so a plugin's `SELECT … FROM sqlite_master`
//! is rewritten to read the plugin's own schema view instead (see
//! [`super::authorizer::Grant::schema_view`]). Anything this scanner
//! misses still reaches the authorizer as a direct read of
//! `sqlite_master` and is denied: the scanner decides usability, never
//! safety.

/// Schema-table names a plugin may use; both mean `main.sqlite_master`.
const SCHEMA_NAMES: [&str; 2] = ["sqlite_master", "sqlite_schema"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A bare word: keyword, identifier or number.
    Word,
    /// `"…"`, `` `…` `` or `[…]`.
    Quoted,
    /// A single punctuation character.
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    kind: Kind,
}

impl Token {
    /// The identifier the token names, without quotes (doubled quote
    /// characters are left as they are: no schema name contains one).
    fn name<'a>(&self, sql: &'a str) -> &'a str {
        match self.kind {
            Kind::Quoted => sql.get(self.start + 1..self.end - 1).unwrap_or(""),
            _ => sql.get(self.start..self.end).unwrap_or(""),
        }
    }
}

/// Splits `sql` into tokens, skipping white space, comments and string
/// and blob literals (which never name a table).
fn tokens(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(b.len());
        } else if c == b'\'' {
            i = closing(b, i, b'\'');
        } else if matches!(c, b'"' | b'`' | b'[') {
            let close = if c == b'[' { b']' } else { c };
            let end = closing(b, i, close);
            out.push(Token {
                start: i,
                end,
                kind: Kind::Quoted,
            });
            i = end;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            // A blob literal x'…' is one token with its quotes.
            if i - start == 1 && matches!(c, b'x' | b'X') && b.get(i) == Some(&b'\'') {
                i = closing(b, i, b'\'');
                continue;
            }
            out.push(Token {
                start,
                end: i,
                kind: Kind::Word,
            });
        } else {
            out.push(Token {
                start: i,
                end: i + 1,
                kind: Kind::Punct(c),
            });
            i += 1;
        }
    }
    out
}

/// The index just past a quoted run that starts at `open` and ends with
/// `close` (a doubled `close` inside it is an escaped one).
fn closing(b: &[u8], open: usize, close: u8) -> usize {
    let mut i = open + 1;
    while i < b.len() {
        if b[i] == close {
            if close != b']' && b.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// Whether `sql` may name a schema table at all (a cheap first look).
pub fn may_name_schema(sql: &str) -> bool {
    sql.as_bytes()
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"sqlite_"))
}

/// `sql` with every reference to `sqlite_master` or `sqlite_schema`
/// (bare, quoted, or qualified by `main`) replaced by the quoted name
/// `view`; `None` when it names neither.
pub fn rewrite_schema_refs(sql: &str, view: &str) -> Option<String> {
    if !may_name_schema(sql) {
        return None;
    }
    let toks = tokens(sql);
    let mut replace: Vec<(usize, usize)> = Vec::new();
    for (n, t) in toks.iter().enumerate() {
        if matches!(t.kind, Kind::Punct(_))
            || !SCHEMA_NAMES
                .iter()
                .any(|s| t.name(sql).eq_ignore_ascii_case(s))
        {
            continue;
        }
        let qualified = n >= 2 && toks[n - 1].kind == Kind::Punct(b'.');
        if !qualified {
            replace.push((t.start, t.end));
        } else if toks[n - 2].name(sql).eq_ignore_ascii_case("main") {
            replace.push((toks[n - 2].start, t.end));
        }
        // Another schema (`temp.sqlite_master`) is left for the
        // authorizer to deny.
    }
    if replace.is_empty() {
        return None;
    }
    let quoted = format!("\"{}\"", view.replace('"', "\"\""));
    let mut out = String::with_capacity(sql.len() + replace.len() * quoted.len());
    let mut at = 0;
    for (start, end) in replace {
        out.push_str(&sql[at..start]);
        out.push_str(&quoted);
        at = end;
    }
    out.push_str(&sql[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_references_are_rewritten_in_every_spelling() {
        let r = |s: &str| rewrite_schema_refs(s, "v");
        assert_eq!(
            r("SELECT name FROM sqlite_master").as_deref(),
            Some(r#"SELECT name FROM "v""#)
        );
        assert_eq!(
            r("select sqlite_schema.name from main.SQLITE_SCHEMA where 1").as_deref(),
            Some(r#"select "v".name from "v" where 1"#)
        );
        assert_eq!(
            r(r#"SELECT * FROM "main"."sqlite_master" m, [sqlite_schema]"#).as_deref(),
            Some(r#"SELECT * FROM "v" m, "v""#)
        );
        assert_eq!(r("SELECT * FROM games"), None);
    }

    #[test]
    fn literals_comments_and_other_schemas_are_left_alone() {
        let r = |s: &str| rewrite_schema_refs(s, "v");
        assert_eq!(r("SELECT 'sqlite_master' -- sqlite_master\n"), None);
        assert_eq!(r("SELECT x'00' /* sqlite_master */ FROM t"), None);
        assert_eq!(r("SELECT * FROM temp.sqlite_master"), None);
        assert_eq!(
            r("SELECT 'it''s', name FROM sqlite_master").as_deref(),
            Some(r#"SELECT 'it''s', name FROM "v""#)
        );
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for s in ["'", "\"", "[", "/*", "x'", "sqlite_master\"", "--"] {
            let _ = rewrite_schema_refs(s, "v");
        }
    }
}
