//! SQL statement analysis in one pass: literals replaced by `?` for `db.query.text`, and the
//! low-cardinality `db.query.summary` (`{operation} {target} …`) used as the span name.
//!
//! This is a tokenizer, not a parser: it knows quoting, comments, literals and a few keywords,
//! enough to never let a literal through and to name the common statement shapes. Anything it
//! does not understand is copied as is (identifiers, operators, placeholders) — never a literal.

use std::ops::Range;

/// The SQL dialect, which decides what is a literal: `"…"` is a string in MySQL but an
/// identifier in PostgreSQL and SQLite; `$1` is a placeholder in PostgreSQL, `$tag$…$tag$` a
/// string; backslashes escape in MySQL strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub(crate) enum SqlDialect {
    /// PostgreSQL (and Aurora PostgreSQL).
    Postgres,
    /// MySQL and MariaDB (and Aurora MySQL), with the default `sql_mode` (no `ANSI_QUOTES`).
    MySql,
    /// SQLite.
    Sqlite,
}

/// What [`Sanitizer::analyze`] found in a statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryInfo {
    text: String,
    summary: String,
    operation: Option<Range<usize>>,
    collection: Option<Range<usize>>,
    procedure: Option<Range<usize>>,
}

impl QueryInfo {
    /// The statement with every literal replaced by `?`, comments removed and whitespace runs
    /// collapsed to one space (empty when the analysis was asked for the summary only).
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The low-cardinality summary: operations and their targets in order of appearance, e.g.
    /// `INSERT shipping SELECT orders` (at most 255 characters; empty if nothing was
    /// recognised).
    pub(crate) fn summary(&self) -> &str {
        &self.summary
    }

    /// The operation, when the statement has exactly one (`SELECT`, `CREATE TABLE`, …), as
    /// written in the statement.
    pub(crate) fn operation(&self) -> Option<&str> {
        self.operation.clone().map(|r| &self.summary[r])
    }

    /// The table, when the statement has exactly one operation on exactly one table, as
    /// written (schema prefix and quotes included).
    pub(crate) fn collection(&self) -> Option<&str> {
        self.collection.clone().map(|r| &self.summary[r])
    }

    /// The stored procedure of a `CALL`.
    pub(crate) fn stored_procedure(&self) -> Option<&str> {
        self.procedure.clone().map(|r| &self.summary[r])
    }
}

/// Replaces literals with `?` and summarises statements, for one SQL dialect.
///
/// Literals are strings (`'…'`, `E'…'`, `N'…'`, `$tag$…$tag$`, MySQL `"…"`), numbers
/// (`42`, `-1.5e3` becomes `-?`), hexadecimal and binary literals (`0xFF`, `X'FF'`, `B'01'`) and
/// the booleans `TRUE` and `FALSE`; typed literals such as `DATE '2024-01-01'` or
/// `INTERVAL '1 day'` lose their string. Placeholders (`$1`, `?`, `?1`, `:name`, `@name`),
/// identifiers (quoted or not), keywords, operators and `NULL` are kept. Comments are removed
/// (they can carry anything). With [`collapse_in_lists`](Self::collapse_in_lists) (the
/// default), `IN (?, ?, ?)` becomes `IN (?)`, keeping the text's cardinality low.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sanitizer {
    dialect: Dialect,
    collapse_in_lists: bool,
}

/// Replaces the literals of `sql` with `?` (with the default [`Sanitizer`] settings).
#[cfg(test)] // The kit analyzes (or summarizes); the text alone is for tests.
pub(crate) fn sanitize(sql: &str, dialect: SqlDialect) -> String {
    Sanitizer::new(dialect).sanitize(sql)
}

/// The dialect, plus the one used for error messages (all quotes are literals there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Sql(SqlDialect),
    Message,
}

impl Sanitizer {
    /// A sanitizer for `dialect`, collapsing `IN` lists.
    pub(crate) fn new(dialect: SqlDialect) -> Self {
        Self {
            dialect: Dialect::Sql(dialect),
            collapse_in_lists: true,
        }
    }

    /// Whether `IN (?, ?, …)` is shortened to `IN (?)` (default `true`).
    pub(crate) fn collapse_in_lists(mut self, collapse: bool) -> Self {
        self.collapse_in_lists = collapse;
        self
    }

    /// The sanitized text only.
    #[cfg(test)] // The kit analyzes (or summarizes); the text alone is for tests.
    pub(crate) fn sanitize(&self, sql: &str) -> String {
        let mut run = Run::new(sql, *self, true, false);
        run.run();
        run.text
    }

    /// The sanitized text, the summary, and the operation and table when there is one of each.
    pub(crate) fn analyze(&self, sql: &str) -> QueryInfo {
        let mut run = Run::new(sql, *self, true, true);
        run.run();
        run.finish()
    }

    /// The summary, operation and table only ([`QueryInfo::text`] is empty): for when the
    /// text is recorded raw or not at all.
    pub(crate) fn summarize(&self, sql: &str) -> QueryInfo {
        let mut run = Run::new(sql, *self, false, true);
        run.run();
        run.finish()
    }
}

/// Sanitizes an error message for a span status: every quoted part (`'…'`, `"…"`, `` `…` ``)
/// and every number becomes `?` (MySQL's `Duplicate entry 'bob@example.com' for key 'email'`
/// quotes the value).
pub(crate) fn sanitize_message(message: &str) -> String {
    let sanitizer = Sanitizer {
        dialect: Dialect::Message,
        collapse_in_lists: false,
    };
    let mut run = Run::new(message, sanitizer, true, false);
    run.run();
    run.text
}

mod keywords;
mod lexer;

use keywords::{Kw, keyword};
use lexer::{Kind, Lexer, Token};

// ------------------------------------------------------------------------------------------
// ------------------------------------------------------------------------------------------
// The single pass

const SUMMARY_MAX: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Nothing,
    /// The table of INSERT/UPDATE/… (fillers such as INTO are skipped).
    Table,
    /// The procedure of CALL.
    Procedure,
    /// A table in a FROM list or after JOIN.
    FromItem,
    /// After a FROM item: an alias, `AS alias`, or `,` and the next item.
    FromAlias {
        alias_seen: bool,
    },
}

/// Where the name being read goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameRole {
    Table,
    Procedure,
    FromItem,
}

struct Run<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    collapse: bool,
    want_text: bool,
    want_summary: bool,
    text: String,
    // IN-list collapsing
    after_in: bool,
    in_list: Option<usize>,
    in_items: usize,
    // summary
    summary: String,
    summary_full: bool,
    ops: usize,
    tables: usize,
    procedures: usize,
    first_op: Option<Range<usize>>,
    first_table: Option<Range<usize>>,
    first_procedure: Option<Range<usize>>,
    statement_start: bool,
    /// Previous significant token: an operation keyword may only follow one of these.
    prev_opens: bool,
    prev_kw: Kw,
    prev2_kw: Kw,
    depth: usize,
    /// Bit `d`: a SELECT/DELETE at paren depth `d`, so a FROM there names tables.
    from_ok: u64,
    expect: Expect,
    /// A (possibly qualified) name being read: source range, role, and whether a `.` came last.
    name: Option<(usize, usize, NameRole, bool)>,
    /// The summary index of a DDL operation waiting for its object type.
    ddl_op: Option<usize>,
}

impl<'a> Run<'a> {
    fn new(src: &'a str, sanitizer: Sanitizer, want_text: bool, want_summary: bool) -> Self {
        Self {
            src,
            lexer: Lexer {
                src: src.as_bytes(),
                pos: 0,
                dialect: sanitizer.dialect,
            },
            collapse: sanitizer.collapse_in_lists,
            want_text,
            want_summary,
            text: if want_text {
                String::with_capacity(src.len())
            } else {
                String::new()
            },
            after_in: false,
            in_list: None,
            in_items: 0,
            summary: String::new(),
            summary_full: false,
            ops: 0,
            tables: 0,
            procedures: 0,
            first_op: None,
            first_table: None,
            first_procedure: None,
            statement_start: true,
            prev_opens: true,
            prev_kw: Kw::None,
            prev2_kw: Kw::None,
            depth: 0,
            from_ok: 0,
            expect: Expect::Nothing,
            name: None,
            ddl_op: None,
        }
    }

    fn run(&mut self) {
        while let Some(token) = self.lexer.next() {
            let kw = if token.kind == Kind::Word {
                keyword(&self.src.as_bytes()[token.start..token.end])
            } else {
                Kw::None
            };
            if self.want_text {
                self.emit(token, kw);
            }
            if self.want_summary {
                self.summarize(token, kw);
            }
        }
        if self.want_summary {
            self.finish_name();
        }
    }

    fn finish(self) -> QueryInfo {
        let single_op = self.ops == 1;
        QueryInfo {
            text: self.text,
            operation: self.first_op.filter(|_| single_op),
            collection: self
                .first_table
                .filter(|_| single_op && self.tables == 1 && self.procedures == 0),
            procedure: self.first_procedure.filter(|_| self.procedures == 1),
            summary: self.summary,
        }
    }

    // --------------------------------------------------------------------------- text

    fn emit(&mut self, token: Token, kw: Kw) {
        let literal = token.kind == Kind::Literal || matches!(kw, Kw::True | Kw::False);
        if token.space_before && !self.text.is_empty() {
            self.text.push(' ');
        }
        if literal {
            self.text.push('?');
        } else {
            self.text.push_str(&self.src[token.start..token.end]);
        }
        if !self.collapse {
            return;
        }
        let bare_placeholder = token.kind == Kind::Placeholder && token.end - token.start == 1;
        match (self.in_list, token.kind) {
            (Some(start), Kind::Punct(b')')) => {
                if self.in_items > 1 {
                    self.text.truncate(start);
                    self.text.push_str("?)");
                }
                self.in_list = None;
            }
            (Some(_), Kind::Punct(b',')) => {}
            (Some(_), _) if literal || bare_placeholder => self.in_items += 1,
            (Some(_), _) => self.in_list = None,
            (None, Kind::Punct(b'(')) if self.after_in => {
                self.in_list = Some(self.text.len());
                self.in_items = 0;
            }
            _ => {}
        }
        self.after_in = kw == Kw::In;
    }

    // --------------------------------------------------------------------------- summary

    fn push_summary(&mut self, part: &str) -> Option<Range<usize>> {
        if self.summary_full {
            return None;
        }
        let extra = usize::from(!self.summary.is_empty()) + part.len();
        if self.summary.len() + extra > SUMMARY_MAX {
            self.summary_full = true;
            return None;
        }
        if !self.summary.is_empty() {
            self.summary.push(' ');
        }
        let start = self.summary.len();
        self.summary.push_str(part);
        Some(start..self.summary.len())
    }

    fn add_op(&mut self, token: Token) {
        let range = self.push_summary(&self.src[token.start..token.end]);
        self.ops += 1;
        if self.first_op.is_none() {
            self.first_op = range;
        }
    }

    fn finish_name(&mut self) {
        let Some((start, end, role, _)) = self.name.take() else {
            return;
        };
        let range = self.push_summary(&self.src[start..end]);
        match role {
            NameRole::Procedure => {
                self.procedures += 1;
                if self.first_procedure.is_none() {
                    self.first_procedure = range;
                }
            }
            NameRole::Table | NameRole::FromItem => {
                self.tables += 1;
                if self.first_table.is_none() {
                    self.first_table = range;
                }
            }
        }
        self.expect = if role == NameRole::FromItem {
            Expect::FromAlias { alias_seen: false }
        } else {
            Expect::Nothing
        };
    }

    fn summarize(&mut self, token: Token, kw: Kw) {
        let is_name = token.kind == Kind::QuotedIdent
            || (token.kind == Kind::Word && !matches!(kw, Kw::Clause | Kw::Select));

        // A qualified name in progress: `schema . table`.
        if let Some((start, end, role, dot)) = self.name {
            if token.kind == Kind::Punct(b'.') && !dot {
                self.name = Some((start, token.end, role, true));
                return;
            }
            if dot && is_name {
                self.name = Some((start, token.end, role, false));
                return;
            }
            let _ = end;
            self.finish_name();
        }

        match self.expect {
            Expect::Table | Expect::Procedure | Expect::FromItem => {
                // Fillers between an operation and its table: `INSERT OR REPLACE INTO`,
                // `CREATE TABLE IF NOT EXISTS`, `FROM ONLY`.
                if token.kind == Kind::Word
                    && matches!(kw, Kw::Filler | Kw::Table | Kw::Not | Kw::Insert)
                {
                    self.track(token, kw);
                    return;
                }
                if is_name && kw != Kw::Ddl {
                    let role = match self.expect {
                        Expect::Table => NameRole::Table,
                        Expect::Procedure => NameRole::Procedure,
                        _ => NameRole::FromItem,
                    };
                    self.name = Some((token.start, token.end, role, false));
                    self.track(token, kw);
                    return;
                }
                self.expect = Expect::Nothing;
            }
            Expect::FromAlias { alias_seen } => {
                if token.kind == Kind::Punct(b',') {
                    self.expect = Expect::FromItem;
                    self.track(token, kw);
                    return;
                }
                if kw == Kw::As && !alias_seen {
                    self.track(token, kw);
                    return;
                }
                if is_name && !alias_seen && !matches!(kw, Kw::Join | Kw::From | Kw::Insert) {
                    self.expect = Expect::FromAlias { alias_seen: true };
                    self.track(token, kw);
                    return;
                }
                self.expect = Expect::Nothing;
            }
            Expect::Nothing => {}
        }

        if let Some(index) = self.ddl_op.take()
            && matches!(kw, Kw::Table | Kw::ObjectType)
        {
            // `CREATE` + `TABLE` → `CREATE TABLE` (extending the operation in the summary).
            let word = &self.src[token.start..token.end];
            if !self.summary_full && self.summary.len() + 1 + word.len() <= SUMMARY_MAX {
                self.summary.push(' ');
                self.summary.push_str(word);
                if let Some(op) = &mut self.first_op
                    && op.start == index
                {
                    op.end = self.summary.len();
                }
            }
            if kw == Kw::Table {
                self.expect = Expect::Table;
            }
            self.track(token, kw);
            return;
        }

        match token.kind {
            Kind::Punct(b';') => {
                self.statement_start = true;
                self.depth = 0;
                self.from_ok = 0;
                self.expect = Expect::Nothing;
                self.prev_opens = true;
                self.prev_kw = Kw::None;
                self.prev2_kw = Kw::None;
                return;
            }
            Kind::Punct(b'(') => {
                self.depth += 1;
                self.set_from_ok(false);
            }
            Kind::Punct(b')') => {
                self.set_from_ok(false);
                self.depth = self.depth.saturating_sub(1);
            }
            Kind::Word => self.word(token, kw),
            _ => {}
        }
        self.track(token, kw);
    }

    fn word(&mut self, token: Token, kw: Kw) {
        let at_start = self.statement_start;
        match kw {
            Kw::Select => {
                self.add_op(token);
                self.set_from_ok(true);
            }
            Kw::Insert | Kw::Update | Kw::Delete if self.prev_opens => {
                self.add_op(token);
                match kw {
                    Kw::Delete => self.set_from_ok(true),
                    _ => self.expect = Expect::Table,
                }
            }
            Kw::From if self.names_tables_after_from() => {
                let is_distinct_from =
                    self.prev_kw == Kw::Distinct && matches!(self.prev2_kw, Kw::Is | Kw::Not);
                if !is_distinct_from {
                    self.expect = Expect::FromItem;
                }
            }
            Kw::Join if self.names_tables_after_from() => self.expect = Expect::FromItem,
            Kw::With | Kw::None | Kw::Filler | Kw::Clause | Kw::As | Kw::ObjectType
                if !at_start || kw == Kw::With => {}
            _ if at_start => {
                // The first word of a statement is its operation (BEGIN, SET, EXPLAIN, …).
                let index = self.summary.len() + usize::from(!self.summary.is_empty());
                self.add_op(token);
                match kw {
                    Kw::Ddl => self.ddl_op = Some(index),
                    Kw::Truncate => self.expect = Expect::Table,
                    Kw::Call => self.expect = Expect::Procedure,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn track(&mut self, token: Token, kw: Kw) {
        self.statement_start = false;
        self.prev_opens = matches!(token.kind, Kind::Punct(b'(' | b')'));
        self.prev2_kw = self.prev_kw;
        self.prev_kw = kw;
    }

    fn names_tables_after_from(&self) -> bool {
        self.depth < 64 && self.from_ok & (1 << self.depth) != 0
    }

    fn set_from_ok(&mut self, on: bool) {
        if self.depth < 64 {
            if on {
                self.from_ok |= 1 << self.depth;
            } else {
                self.from_ok &= !(1 << self.depth);
            }
        }
    }
}

#[cfg(test)]
mod tests;
