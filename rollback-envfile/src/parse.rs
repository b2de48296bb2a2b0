//! The env-file grammar (on [`EnvFile`]), a parser that never panics and a printer whose
//! output parses back to the same pairs.

use rollback_core::Secret;
use std::collections::BTreeMap;
use std::fmt;

/// One `KEY=value` assignment.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value, never shown by `Debug`.
    pub value: Secret,
    /// The 1-based line where the assignment starts.
    pub line: usize,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("value", &self.value)
            .field("line", &self.line)
            .finish()
    }
}

/// A parsed env file: its assignments in file order (duplicates included). `Debug` shows
/// keys and lines, never values.
///
/// We write our own rather than use `dotenvy`: dotenvy does not report duplicate keys, and
/// its errors carry the offending text (which may be a secret) rather than a line number
/// alone. The grammar, one logical line at a time:
///
/// ```text
/// file        = { line }
/// line        = blank | comment | assignment
/// blank       = ws* EOL
/// comment     = ws* "#" any* EOL
/// assignment  = ws* [ "export" ws+ ] key ws* "=" ws* [ value ] ws* [ "#" any* ] EOL
/// key         = ( ALPHA | "_" ) { ALNUM | "_" | "." | "-" }
/// value       = unquoted | single | double
/// unquoted    = chars up to EOL or a "#" preceded by whitespace; trailing whitespace trimmed
/// single      = "'" { any but "'" } "'"          (literal, may span lines, no escapes)
/// double      = '"' { escape | any but '"' } '"' (may span lines)
/// escape      = "\n" | "\r" | "\t" | '\"' | "\\" | "\$" | "\'"   (any other "\x" is kept as is)
/// ```
///
/// After a closing quote only whitespace and a comment may follow. Errors name the line
/// (the line where an unterminated quote opened) and never the text, which may be a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    /// The assignments, in order.
    pub entries: Vec<Entry>,
}

/// A syntax error: the line and what is wrong, never the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong, in words.
    pub what: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for SyntaxError {}

impl EnvFile {
    /// Parses `text` by the grammar in the [type's documentation](EnvFile).
    ///
    /// ```
    /// use rollback_envfile::EnvFile;
    /// let file = EnvFile::parse("# db\nexport DATABASE_URL='postgres://x'\nPORT=3000 # web\n").unwrap();
    /// assert_eq!(file.keys(), ["DATABASE_URL", "PORT"]);
    /// assert_eq!(file.get("PORT").unwrap().expose(), "3000");
    /// ```
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        Parser::new(text).parse()
    }

    /// The keys in first-definition order, each once.
    pub fn keys(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for e in &self.entries {
            if !seen.contains(&e.key) {
                seen.push(e.key.clone());
            }
        }
        seen
    }

    /// The value of `key` (the last definition wins, as in shells and dotenv loaders).
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.entries.iter().rev().find(|e| e.key == key).map(|e| &e.value)
    }

    /// Key to value, the last definition winning.
    pub fn to_map(&self) -> BTreeMap<&str, &str> {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.expose()))
            .collect()
    }

    /// Warnings for keys defined more than once, naming keys and lines, never values.
    pub fn duplicate_warnings(&self) -> Vec<String> {
        let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for e in &self.entries {
            lines.entry(&e.key).or_default().push(e.line);
        }
        lines
            .into_iter()
            .filter(|(_, l)| l.len() > 1)
            .map(|(k, l)| {
                let l: Vec<String> = l.iter().map(|n| n.to_string()).collect();
                format!(
                    "`{k}` is defined {} times (lines {}); the last one wins",
                    l.len(),
                    l.join(", ")
                )
            })
            .collect()
    }

    /// Prints the pairs so that [`parse`](Self::parse) reads them back unchanged: every
    /// value double-quoted with `\\`, `\"`, `\n`, `\r`, `\t` and `\$` escaped.
    pub fn print(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.key);
            out.push_str("=\"");
            for c in e.value.expose().chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '$' => out.push_str("\\$"),
                    c => out.push(c),
                }
            }
            out.push_str("\"\n");
        }
        out
    }
}

/// True when `key` is a valid key by the grammar.
pub(crate) fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Self {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    fn error(&self, line: usize, what: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line,
            what: what.into(),
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    fn skip_inline_ws(&mut self) -> bool {
        let mut skipped = false;
        while matches!(self.chars.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
            skipped = true;
        }
        skipped
    }

    /// Skips the rest of the line (a comment) including its newline.
    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    /// After a value: only whitespace and an optional comment until the end of the line.
    fn end_of_line(&mut self, line: usize) -> Result<(), SyntaxError> {
        self.skip_inline_ws();
        match self.chars.peek() {
            None => Ok(()),
            Some('\n') => {
                self.bump();
                Ok(())
            }
            Some('#') => {
                self.skip_line();
                Ok(())
            }
            Some(_) => Err(self.error(
                line,
                "unexpected text after the closing quote (quote the whole value)",
            )),
        }
    }

    fn parse(mut self) -> Result<EnvFile, SyntaxError> {
        let mut entries = Vec::new();
        loop {
            self.skip_inline_ws();
            match self.chars.peek() {
                None => break,
                Some('\n') => {
                    self.bump();
                    continue;
                }
                Some('#') => {
                    self.skip_line();
                    continue;
                }
                Some(_) => {}
            }
            let line = self.line;
            let mut word = self.word();
            if word == "export" && self.skip_inline_ws() && !matches!(self.chars.peek(), Some('=')) {
                word = self.word();
            }
            if word.is_empty() {
                return Err(self.error(line, "expected KEY=VALUE, found no key"));
            }
            if !is_valid_key(&word) {
                return Err(self.error(
                    line,
                    "invalid key: a key starts with a letter or `_` and holds only letters, digits, `_`, `.` and `-`",
                ));
            }
            self.skip_inline_ws();
            if self.chars.peek() != Some(&'=') {
                // The word is not echoed: a line without `=` may be a pasted secret.
                return Err(self.error(line, "expected KEY=VALUE, found no `=` after the key"));
            }
            self.bump();
            self.skip_inline_ws();
            let value = match self.chars.peek() {
                Some('\'') => {
                    self.bump();
                    let v = self.single_quoted(line)?;
                    self.end_of_line(line)?;
                    v
                }
                Some('"') => {
                    self.bump();
                    let v = self.double_quoted(line)?;
                    self.end_of_line(line)?;
                    v
                }
                _ => self.unquoted(),
            };
            entries.push(Entry {
                key: word,
                value: Secret::new(value),
                line,
            });
        }
        Ok(EnvFile { entries })
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == '=' || c == '#' || c == '"' || c == '\'' {
                break;
            }
            w.push(c);
            self.bump();
        }
        w
    }

    fn single_quoted(&mut self, line: usize) -> Result<String, SyntaxError> {
        let mut v = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(line, "the single quote opened here is never closed")),
                Some('\'') => return Ok(v),
                Some(c) => v.push(c),
            }
        }
    }

    fn double_quoted(&mut self, line: usize) -> Result<String, SyntaxError> {
        let mut v = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(line, "the double quote opened here is never closed")),
                Some('"') => return Ok(v),
                Some('\\') => match self.bump() {
                    None => return Err(self.error(line, "the double quote opened here is never closed")),
                    Some('n') => v.push('\n'),
                    Some('r') => v.push('\r'),
                    Some('t') => v.push('\t'),
                    Some(c @ ('"' | '\\' | '$' | '\'')) => v.push(c),
                    Some(c) => {
                        v.push('\\');
                        v.push(c);
                    }
                },
                Some(c) => v.push(c),
            }
        }
    }

    fn unquoted(&mut self) -> String {
        let mut v = String::new();
        let mut after_ws = true;
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                self.bump();
                break;
            }
            if c == '#' && after_ws {
                self.skip_line();
                break;
            }
            after_ws = c == ' ' || c == '\t';
            v.push(c);
            self.bump();
        }
        v.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_keys_and_lines_never_values() {
        let file =
            EnvFile::parse("DATABASE_URL=postgres://app:hunter2@db/app\nexport TOKEN='s3cr3t-token'\n")
                .unwrap();
        let shown = format!("{file:?} {:?} {:#?}", file.entries[0], file);
        assert!(
            shown.contains("DATABASE_URL") && shown.contains("TOKEN"),
            "{shown}"
        );
        for value in ["hunter2", "s3cr3t-token", "postgres://"] {
            assert!(!shown.contains(value), "{value} shown: {shown}");
        }
        let err = EnvFile::parse("GOOD=1\nBAD secret-value\n").unwrap_err();
        assert!(!format!("{err:?} {err}").contains("secret-value"));
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        EnvFile::parse(text)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value.expose().to_string()))
            .collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn reads_every_form_of_the_grammar() {
        let text = "\u{feff}# comment\n\n  A=plain value  # trailing\nexport B='single # not a comment'\nC=\"tab\\there\\n\\\"q\\\" \\$HOME \\x\"\nD=\nE = spaced\nF=a#b\nexport=1\nG='multi\nline'\nH=\"two\r\nlines\"  # done\n";
        assert_eq!(
            pairs(text),
            [
                p("A", "plain value"),
                p("B", "single # not a comment"),
                p("C", "tab\there\n\"q\" $HOME \\x"),
                p("D", ""),
                p("E", "spaced"),
                p("F", "a#b"),
                p("export", "1"),
                p("G", "multi\nline"),
                p("H", "two\r\nlines"),
            ]
        );
        let file = EnvFile::parse(text).unwrap();
        assert_eq!(
            file.entries[7].line, 10,
            "a multi-line value starts on its own line"
        );
        assert_eq!(
            file.entries[8].line, 12,
            "lines after a multi-line value are counted"
        );
    }

    #[test]
    fn errors_name_the_line_and_never_the_text() {
        for (text, line) in [
            ("A=1\nsecret-without-equals\n", 2),
            ("A=1\nB=2\n1BAD=3\n", 3),
            ("A='unclosed-secret\nB=2\n", 1),
            ("A=1\nB=\"open\n\nC=3", 2),
            ("A=\"x\"trailing-secret\n", 1),
            ("A=1\n=nokey\n", 2),
        ] {
            let err = EnvFile::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            for secret in [
                "secret-without-equals",
                "trailing-secret",
                "unclosed-secret",
                "nokey",
            ] {
                assert!(!err.to_string().contains(secret), "{err}");
            }
        }
    }

    #[test]
    fn duplicates_warn_with_lines_and_the_last_wins() {
        let file = EnvFile::parse("A=first-secret\nB=2\nA=second-secret\n").unwrap();
        assert_eq!(file.get("A").unwrap().expose(), "second-secret");
        let warnings = file.duplicate_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("`A`") && warnings[0].contains("lines 1, 3"),
            "{warnings:?}"
        );
        let shown = format!("{warnings:?}{file:?}");
        assert!(
            !shown.contains("first-secret") && !shown.contains("second-secret"),
            "{shown}"
        );
    }
}
