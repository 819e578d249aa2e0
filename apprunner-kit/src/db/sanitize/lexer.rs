//! The tokenizer: quoting, comments, literals and placeholders of each dialect.

use super::{Dialect, SqlDialect};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Identifier or keyword.
    Word,
    /// `"quoted"`, `` `quoted` ``, `[quoted]` identifier.
    QuotedIdent,
    /// A literal: replaced by `?`.
    Literal,
    /// `$1`, `?`, `?2`, `:name`, `@name`, `$name`, `@@var`.
    Placeholder,
    /// One of `( ) , ; .`.
    Punct(u8),
    /// Anything else (operators), copied verbatim.
    Other,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) space_before: bool,
}

pub(super) struct Lexer<'a> {
    pub(super) src: &'a [u8],
    pub(super) pos: usize,
    pub(super) dialect: Dialect,
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

pub(super) fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Lexer<'a> {
    fn peek(&self, offset: usize) -> u8 {
        self.src.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn mysql(&self) -> bool {
        self.dialect == Dialect::Sql(SqlDialect::MySql)
    }

    fn postgres(&self) -> bool {
        self.dialect == Dialect::Sql(SqlDialect::Postgres)
    }

    fn sqlite(&self) -> bool {
        self.dialect == Dialect::Sql(SqlDialect::Sqlite)
    }

    /// Skips whitespace and comments; returns whether anything was skipped.
    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        loop {
            match self.peek(0) {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'-' if self.peek(1) == b'-' => self.skip_line(),
                b'#' if self.mysql() => self.skip_line(),
                b'/' if self.peek(1) == b'*' => self.skip_block_comment(),
                _ => break,
            }
        }
        self.pos != start
    }

    fn skip_line(&mut self) {
        match self.src[self.pos..].iter().position(|&b| b == b'\n') {
            Some(n) => self.pos += n + 1,
            None => self.pos = self.src.len(),
        }
    }

    fn skip_block_comment(&mut self) {
        // PostgreSQL nests block comments; the others end at the first `*/`.
        let nests = self.postgres();
        self.pos += 2;
        let mut depth = 1usize;
        while self.pos < self.src.len() {
            match (self.src[self.pos], self.peek(1)) {
                (b'*', b'/') => {
                    self.pos += 2;
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                (b'/', b'*') if nests => {
                    self.pos += 2;
                    depth += 1;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Skips a quoted run starting at the opening quote; a doubled quote is an escaped quote,
    /// and with `backslash` a backslash escapes the next byte.
    fn skip_quoted(&mut self, quote: u8, backslash: bool) {
        self.pos += 1;
        while self.pos < self.src.len() {
            let b = self.src[self.pos];
            if backslash && b == b'\\' {
                self.pos += 2;
            } else if b == quote {
                if self.peek(1) == quote {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.src.len();
    }

    /// `$tag$ … $tag$` (the tag may be empty). Returns false when this is not a dollar quote.
    fn try_dollar_quote(&mut self) -> bool {
        let open_start = self.pos;
        let mut i = self.pos + 1;
        while i < self.src.len() && is_ident_continue(self.src[i]) && self.src[i] != b'$' {
            i += 1;
        }
        if i >= self.src.len() || self.src[i] != b'$' {
            return false;
        }
        // A tag must not start with a digit (that would be a `$1` placeholder).
        if i > open_start + 1 && self.src[open_start + 1].is_ascii_digit() {
            return false;
        }
        let tag = &self.src[open_start..=i];
        let body = i + 1;
        self.pos = match self.src[body..].windows(tag.len()).position(|w| w == tag) {
            Some(n) => body + n + tag.len(),
            None => self.src.len(),
        };
        true
    }

    fn skip_number(&mut self) {
        let src = self.src;
        let digits = |mut i: usize, ok: fn(u8) -> bool| {
            while i < src.len() && (ok(src[i]) || src[i] == b'_') {
                i += 1;
            }
            i
        };
        let p = self.pos;
        if src[p] == b'0' && matches!(self.peek(1), b'x' | b'X') {
            self.pos = digits(p + 2, |b| b.is_ascii_hexdigit());
            return;
        }
        if src[p] == b'0'
            && matches!(self.peek(1), b'b' | b'B')
            && matches!(self.peek(2), b'0' | b'1')
        {
            self.pos = digits(p + 2, |b| b == b'0' || b == b'1');
            return;
        }
        let mut i = digits(p, |b| b.is_ascii_digit());
        if i < src.len() && src[i] == b'.' {
            i = digits(i + 1, |b| b.is_ascii_digit());
        }
        if i < src.len() && matches!(src[i], b'e' | b'E') {
            let mut j = i + 1;
            if j < src.len() && matches!(src[j], b'+' | b'-') {
                j += 1;
            }
            if j < src.len() && src[j].is_ascii_digit() {
                i = digits(j, |b| b.is_ascii_digit());
            }
        }
        self.pos = i;
    }

    /// Whether `word` glued to a following `'` makes one literal: `E'…'`, `N'…'`, `X'…'`,
    /// `B'…'`, MySQL charset introducers `_utf8mb4'…'`.
    fn is_literal_prefix(word: &[u8]) -> bool {
        match word {
            [c] => matches!(c.to_ascii_uppercase(), b'E' | b'N' | b'X' | b'B'),
            [b'_', ..] => true,
            _ => false,
        }
    }

    pub(super) fn next(&mut self) -> Option<Token> {
        let space_before = self.skip_space();
        if self.pos >= self.src.len() {
            return None;
        }
        let start = self.pos;
        let b = self.src[start];
        let message = self.dialect == Dialect::Message;
        let kind = match b {
            b'\'' => {
                let backslash = self.mysql() || message;
                self.skip_quoted(b'\'', backslash);
                Kind::Literal
            }
            b'"' if self.mysql() || message => {
                self.skip_quoted(b'"', true);
                Kind::Literal
            }
            b'"' => {
                self.skip_quoted(b'"', false);
                Kind::QuotedIdent
            }
            b'`' if message => {
                self.skip_quoted(b'`', false);
                Kind::Literal
            }
            b'`' => {
                self.skip_quoted(b'`', false);
                Kind::QuotedIdent
            }
            b'[' if self.sqlite() => {
                match self.src[start..].iter().position(|&c| c == b']') {
                    Some(n) => self.pos += n + 1,
                    None => self.pos = self.src.len(),
                }
                Kind::QuotedIdent
            }
            b'$' if !message && self.peek(1).is_ascii_digit() => {
                self.pos += 1;
                while self.peek(0).is_ascii_digit() {
                    self.pos += 1;
                }
                Kind::Placeholder
            }
            b'$' if (self.postgres() || message) && self.try_dollar_quote() => Kind::Literal,
            b'$' | b':' | b'@' if !message && is_ident_start(self.peek(1)) => {
                // `$name` / `:name` / `@name` parameters (SQLite), `@var` (MySQL).
                self.pos += 1;
                while self.pos < self.src.len() && is_ident_continue(self.src[self.pos]) {
                    self.pos += 1;
                }
                Kind::Placeholder
            }
            b'@' if self.mysql() && self.peek(1) == b'@' => {
                self.pos += 2;
                while self.pos < self.src.len()
                    && (is_ident_continue(self.src[self.pos]) || self.src[self.pos] == b'.')
                {
                    self.pos += 1;
                }
                Kind::Placeholder
            }
            b'?' if !message => {
                self.pos += 1;
                while self.peek(0).is_ascii_digit() {
                    self.pos += 1;
                }
                Kind::Placeholder
            }
            b'0'..=b'9' => {
                self.skip_number();
                if self.mysql() && self.pos < self.src.len() && is_ident_start(self.src[self.pos]) {
                    // MySQL allows identifiers starting with digits (`1st_table`).
                    while self.pos < self.src.len() && is_ident_continue(self.src[self.pos]) {
                        self.pos += 1;
                    }
                    Kind::Word
                } else {
                    Kind::Literal
                }
            }
            b'.' if self.peek(1).is_ascii_digit() => {
                self.skip_number();
                Kind::Literal
            }
            b'(' | b')' | b',' | b';' | b'.' => {
                self.pos += 1;
                Kind::Punct(b)
            }
            _ if is_ident_start(b) => {
                self.pos += 1;
                while self.pos < self.src.len() && is_ident_continue(self.src[self.pos]) {
                    self.pos += 1;
                }
                let word = &self.src[start..self.pos];
                if self.peek(0) == b'\'' && Self::is_literal_prefix(word) {
                    let backslash = self.mysql() || matches!(word, [b'e' | b'E']);
                    self.skip_quoted(b'\'', backslash);
                    Kind::Literal
                } else if matches!(word, [b'u' | b'U'])
                    && self.peek(0) == b'&'
                    && self.peek(1) == b'\''
                {
                    self.pos += 1;
                    self.skip_quoted(b'\'', false);
                    Kind::Literal
                } else {
                    Kind::Word
                }
            }
            _ => {
                // One character (UTF-8 continuation bytes are >= 0x80 and taken as identifier
                // characters above, so this is always a single ASCII byte).
                self.pos += 1;
                Kind::Other
            }
        };
        Some(Token {
            kind,
            start,
            end: self.pos,
            space_before,
        })
    }
}
