//! A cursor over one statement's tokens: Delta's own commands (OPTIMIZE, VACUUM, DESCRIBE
//! HISTORY, …) and the parts of DDL that `sqlparser`'s dialects do not cover are parsed here,
//! word by word, on `sqlparser`'s tokenizer; expressions go to `sqlparser`'s expression parser
//! and types to [`parse_sql_type`]. Every error names what was expected and where (line and
//! column of the offending token).

use sqlparser::ast;
use sqlparser::dialect::DatabricksDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token};

use crate::error::{DeltaError, DeltaResult};
use crate::table::schema::{parse_sql_type, DataType};

static DIALECT: DatabricksDialect = DatabricksDialect {};

/// A table named in a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TableName {
    /// ``delta.`/path` `` or a bare path.
    Path(String),
    /// ``parquet.`/dir` `` (CONVERT TO DELTA).
    Parquet(String),
    /// A name, for an engine's catalog to resolve.
    Name(String),
}

pub(crate) struct Cursor<'a> {
    text: &'a str,
    parser: Parser<'a>,
    /// Byte offset of each line's start.
    lines: Vec<usize>,
    /// Where the last table name began (for errors about the table).
    pub table_at: (u64, u64),
}

/// The message of a `sqlparser` error without the position it appends.
fn bare(e: &ParserError) -> String {
    let m = e.to_string();
    let m = m.strip_prefix("sql parser error: ").unwrap_or(&m).to_string();
    m.split(" at Line:").next().unwrap_or(&m).to_string()
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> DeltaResult<Self> {
        let parser = Parser::new(&DIALECT).try_with_sql(text).map_err(|e| {
            let (line, column) = super::dml::position_in(&e.to_string()).unwrap_or((1, 1));
            DeltaError::Sql { message: format!("cannot read the statement: {}", bare(&e)), line, column }
        })?;
        let mut lines = vec![0];
        lines.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ok(Cursor { text, parser, lines, table_at: (1, 1) })
    }

    /// The byte offset of a token location (columns count characters).
    fn offset(&self, at: Location) -> usize {
        if at.line == 0 {
            return self.text.len();
        }
        let start = self.lines.get(at.line as usize - 1).copied().unwrap_or(self.text.len());
        let line = &self.text[start..];
        start + line.char_indices().nth(at.column.saturating_sub(1) as usize).map(|(i, _)| i).unwrap_or(line.len())
    }

    fn here(&self) -> Location {
        self.parser.peek_token().span.start
    }

    /// An error at the next token.
    pub fn error(&self, message: impl Into<String>) -> DeltaError {
        let at = self.here();
        let (line, column) = if at.line == 0 { self.end_position() } else { (at.line, at.column) };
        DeltaError::Sql { message: message.into(), line, column }
    }

    /// An error at a position taken earlier.
    pub fn error_at(&self, at: (u64, u64), message: impl Into<String>) -> DeltaError {
        DeltaError::Sql { message: message.into(), line: at.0, column: at.1 }
    }

    /// The next token's position.
    pub fn position(&self) -> (u64, u64) {
        let at = self.here();
        if at.line == 0 {
            self.end_position()
        } else {
            (at.line, at.column)
        }
    }

    fn end_position(&self) -> (u64, u64) {
        let lines = self.text.lines().count().max(1) as u64;
        (lines, self.text.lines().last().map(|l| l.chars().count() as u64 + 1).unwrap_or(1))
    }

    /// `sqlparser`'s error, at its own position when it has one.
    pub fn parser_error(&self, e: ParserError) -> DeltaError {
        match super::dml::position_in(&e.to_string()) {
            Some((line, column)) => DeltaError::Sql { message: bare(&e), line, column },
            None => self.error(bare(&e)),
        }
    }

    /// What the next token is, for messages.
    pub fn found(&self) -> String {
        match self.parser.peek_token().token {
            Token::EOF => "the end of the statement".to_string(),
            t => format!("`{t}`"),
        }
    }

    /// The next token's word (unquoted), upper-cased.
    pub fn peek_word_n(&self, n: usize) -> Option<String> {
        match self.parser.peek_nth_token(n).token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    pub fn peek_word(&self) -> Option<String> {
        self.peek_word_n(0)
    }

    pub fn is_word(&self, word: &str) -> bool {
        self.peek_word().is_some_and(|w| w == word)
    }

    /// Consumes `word` when it is next.
    pub fn word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.parser.next_token();
            true
        } else {
            false
        }
    }

    /// Consumes all of `words` when they are next, else nothing.
    pub fn words(&mut self, words: &[&str]) -> bool {
        if words.iter().enumerate().all(|(i, w)| self.peek_word_n(i).is_some_and(|x| x == *w)) {
            for _ in words {
                self.parser.next_token();
            }
            true
        } else {
            false
        }
    }

    pub fn expect_word(&mut self, word: &str) -> DeltaResult<()> {
        if self.word(word) {
            Ok(())
        } else {
            Err(self.error(format!("expected {word}, found {}", self.found())))
        }
    }

    pub fn expect_words(&mut self, words: &[&str]) -> DeltaResult<()> {
        for w in words {
            self.expect_word(w)?;
        }
        Ok(())
    }

    pub fn is_token(&self, t: &Token) -> bool {
        &self.parser.peek_token().token == t
    }

    pub fn token(&mut self, t: &Token) -> bool {
        self.parser.consume_token(t)
    }

    pub fn expect_token(&mut self, t: &Token) -> DeltaResult<()> {
        if self.token(t) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{t}`, found {}", self.found())))
        }
    }

    /// The end of the statement (an optional `;`).
    pub fn end(&mut self) -> DeltaResult<()> {
        self.token(&Token::SemiColon);
        if self.is_token(&Token::EOF) {
            Ok(())
        } else {
            Err(self.error(format!("expected the end of the statement, found {}", self.found())))
        }
    }

    /// The statement's text from the next token on (a query handed to an engine).
    pub fn rest(&self) -> &'a str {
        let from = self.offset(self.here());
        self.text[from..].trim().trim_end_matches(';').trim_end()
    }

    /// An identifier (a column, constraint or feature name).
    pub fn ident(&mut self, what: &str) -> DeltaResult<String> {
        match self.parser.peek_token().token {
            Token::Word(_) => Ok(self.parser.parse_identifier().map_err(|e| self.parser_error(e))?.value),
            _ => Err(self.error(format!("expected {what}, found {}", self.found()))),
        }
    }

    /// A column path: `a`, `a.b`, `` `a b`.c ``.
    pub fn column_path(&mut self) -> DeltaResult<String> {
        let mut parts = vec![self.ident("a column name")?];
        while self.token(&Token::Period) {
            parts.push(self.ident("a field name")?);
        }
        Ok(parts.iter().map(|p| if p.contains('.') { format!("`{p}`") } else { p.clone() }).collect::<Vec<_>>().join("."))
    }

    /// `(a, b.c, …)`.
    pub fn column_list(&mut self) -> DeltaResult<Vec<String>> {
        self.expect_token(&Token::LParen)?;
        let mut out = vec![self.column_path()?];
        while self.token(&Token::Comma) {
            out.push(self.column_path()?);
        }
        self.expect_token(&Token::RParen)?;
        Ok(out)
    }

    /// A table: ``delta.`/path` ``, ``parquet.`/dir` ``, a bare path in back-ticks, or a name.
    pub fn table(&mut self) -> DeltaResult<TableName> {
        if !matches!(self.parser.peek_token().token, Token::Word(_)) {
            return Err(self.error(format!("expected a table (delta.`/path` or a name), found {}", self.found())));
        }
        self.table_at = self.position();
        let name = self.parser.parse_object_name(false).map_err(|e| self.parser_error(e))?;
        let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.clone())).collect();
        Ok(match parts.as_slice() {
            [fmt, path] if fmt.eq_ignore_ascii_case("delta") => TableName::Path(path.clone()),
            [fmt, path] if fmt.eq_ignore_ascii_case("parquet") => TableName::Parquet(path.clone()),
            [one] if one.contains('/') || one.contains(':') => TableName::Path(one.clone()),
            _ => TableName::Name(parts.join(".")),
        })
    }

    /// A string literal.
    pub fn string(&mut self, what: &str) -> DeltaResult<String> {
        match self.parser.peek_token().token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                self.parser.next_token();
                Ok(s)
            }
            _ => Err(self.error(format!("expected {what} (a quoted string), found {}", self.found()))),
        }
    }

    /// A (signed) integer literal.
    pub fn integer(&mut self, what: &str) -> DeltaResult<i64> {
        let negative = self.token(&Token::Minus);
        match self.parser.peek_token().token {
            Token::Number(n, _) => {
                let v: i64 = n.parse().map_err(|_| self.error(format!("expected {what} (an integer), found `{n}`")))?;
                self.parser.next_token();
                Ok(if negative { -v } else { v })
            }
            _ => Err(self.error(format!("expected {what} (an integer), found {}", self.found()))),
        }
    }

    /// A number literal.
    pub fn number(&mut self, what: &str) -> DeltaResult<f64> {
        match self.parser.peek_token().token {
            Token::Number(n, _) => {
                let v: f64 = n.parse().map_err(|_| self.error(format!("expected {what}, found `{n}`")))?;
                self.parser.next_token();
                Ok(v)
            }
            _ => Err(self.error(format!("expected {what} (a number), found {}", self.found()))),
        }
    }

    /// An expression, parsed, with its text as written.
    pub fn expr(&mut self) -> DeltaResult<(ast::Expr, String)> {
        let from = self.offset(self.here());
        let e = self.parser.parse_expr().map_err(|e| self.parser_error(e))?;
        let to = self.offset(self.here());
        Ok((e, self.text[from..to].trim().to_string()))
    }

    /// An expression checked by delta-core's expression parser (what a constraint, a generated
    /// column or a predicate must be), with its text.
    pub fn delta_expr(&mut self) -> DeltaResult<(crate::table::expr::Expr, String)> {
        let at = self.here();
        let (e, text) = self.expr()?;
        let parsed = crate::table::expr::from_sql(&text, e)
            .map_err(|err| DeltaError::Sql { message: err.to_string(), line: at.line, column: at.column })?;
        Ok((parsed, text))
    }

    /// A Spark SQL type, up to (not including) a `,` or `)` at depth 0 or one of `stops`.
    pub fn data_type(&mut self, stops: &[&str]) -> DeltaResult<DataType> {
        let at = self.here();
        let from = self.offset(at);
        let mut depth = 0i32;
        loop {
            let t = self.parser.peek_token().token;
            match &t {
                Token::EOF | Token::SemiColon => break,
                Token::Comma | Token::RParen if depth == 0 => break,
                Token::Word(w) if depth == 0 && w.quote_style.is_none() && stops.iter().any(|s| w.value.eq_ignore_ascii_case(s)) => break,
                Token::LParen | Token::Lt => depth += 1,
                Token::RParen | Token::Gt => depth -= 1,
                Token::ShiftRight => depth -= 2,
                _ => {}
            }
            self.parser.next_token();
        }
        let to = self.offset(self.here());
        let text = self.text[from..to].trim();
        if text.is_empty() {
            return Err(DeltaError::Sql { message: format!("expected a type, found {}", self.found()), line: at.line, column: at.column });
        }
        parse_sql_type(text).map_err(|_| DeltaError::Sql {
            message: format!("unknown type `{text}` (BIGINT, INT, STRING, DOUBLE, DECIMAL(p,s), DATE, TIMESTAMP, ARRAY<…>, STRUCT<…>, MAP<…>, …)"),
            line: at.line,
            column: at.column,
        })
    }

    /// `('k' = 'v', k2 = 3, …)` (TBLPROPERTIES); values may be strings, numbers or booleans.
    pub fn properties(&mut self) -> DeltaResult<Vec<(String, String)>> {
        self.expect_token(&Token::LParen)?;
        let mut out = Vec::new();
        loop {
            let key = self.property_key()?;
            self.token(&Token::Eq);
            let value = match self.parser.peek_token().token {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
                Token::Number(n, _) => n,
                Token::Word(w) if w.quote_style.is_none() => w.value,
                _ => return Err(self.error(format!("expected a value for `{key}`, found {}", self.found()))),
            };
            self.parser.next_token();
            out.push((key, value));
            if !self.token(&Token::Comma) {
                break;
            }
        }
        self.expect_token(&Token::RParen)?;
        Ok(out)
    }

    /// A property key: `'delta.appendOnly'` or `delta.appendOnly`.
    pub fn property_key(&mut self) -> DeltaResult<String> {
        match self.parser.peek_token().token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                self.parser.next_token();
                Ok(s)
            }
            Token::Word(_) => {
                let mut parts = vec![self.ident("a property key")?];
                while self.token(&Token::Period) {
                    parts.push(self.ident("a property key")?);
                }
                Ok(parts.join("."))
            }
            _ => Err(self.error(format!("expected a property key, found {}", self.found()))),
        }
    }

    /// `('k1', k2, …)` (UNSET TBLPROPERTIES).
    pub fn property_keys(&mut self) -> DeltaResult<Vec<String>> {
        self.expect_token(&Token::LParen)?;
        let mut out = vec![self.property_key()?];
        while self.token(&Token::Comma) {
            out.push(self.property_key()?);
        }
        self.expect_token(&Token::RParen)?;
        Ok(out)
    }
}
