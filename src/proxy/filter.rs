//! containerd's filter language, as `List` receives it (containerd's
//! `filters` package): pure parsing, no I/O.
//!
//! ```text
//! filters  := filter*            (several strings: any one may match)
//! filter   := selector ("," selector)*   (all must match)
//! selector := fieldpath [op value]       (no op: the field is present)
//! fieldpath:= field ("." field)*         field: [A-Za-z0-9_]+ or quoted
//! op       := "==" | "!=" | "~="
//! value    := quoted | run of characters up to "," or space
//! quoted   := "…" (Go escapes) | /…/ or |…| (only the delimiter escaped)
//! ```
//!
//! Snapshots expose `name`, `parent`, `kind` (`active`, `view`,
//! `committed`) and `labels.<key>` (the rest of the path joined by `.`, so
//! `labels."containerd.io/gc.root"` and `labels.a.b` both work), as
//! containerd's snapshot adaptor does. `!=` matches an absent field
//! (containerd compares the empty string), `~=` is an RE2 search.

use regex::Regex;

/// A filter that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid filter {filter:?} at byte {at}: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub at: usize,
    pub reason: String,
}

/// What a selector compares.
#[derive(Debug, Clone)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// Parsed filters: a snapshot matches when every selector of any one
/// filter string matches; no filters match everything.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    any: Vec<Vec<Selector>>,
}

/// Where a filter reads a snapshot's fields.
pub trait Fields {
    /// The value at `path`, or `None` when the snapshot has no such field.
    fn field(&self, path: &[String]) -> Option<String>;
}

impl Filters {
    /// Parses each filter string.
    pub fn parse(filters: &[String]) -> Result<Filters, FilterError> {
        let any = filters.iter().filter(|f| !f.trim().is_empty()).map(|f| parse_one(f)).collect::<Result<_, _>>()?;
        Ok(Filters { any })
    }

    pub fn matches(&self, item: &impl Fields) -> bool {
        self.any.is_empty() || self.any.iter().any(|all| all.iter().all(|s| s.matches(item)))
    }
}

impl Selector {
    fn matches(&self, item: &impl Fields) -> bool {
        let value = item.field(&self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value.as_deref() == Some(v.as_str()),
            Op::NotEqual(v) => value.as_deref().unwrap_or("") != v,
            Op::Matches(re) => re.is_match(value.as_deref().unwrap_or("")),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn parse_one(text: &str) -> Result<Vec<Selector>, FilterError> {
    let mut p = Parser { text, pos: 0 };
    let mut all = vec![p.selector()?];
    loop {
        p.skip_spaces();
        match p.peek() {
            None => return Ok(all),
            Some(',') => {
                p.pos += 1;
                all.push(p.selector()?);
            }
            Some(c) => return Err(p.error(format!("expected \",\" or the end, found {c:?}"))),
        }
    }
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> FilterError {
        FilterError { filter: self.text.to_owned(), at: self.pos, reason: reason.into() }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += self.peek().map_or(0, char::len_utf8);
        }
    }

    fn selector(&mut self) -> Result<Selector, FilterError> {
        let mut path = vec![self.field()?];
        while self.peek() == Some('.') {
            self.pos += 1;
            path.push(self.field()?);
        }
        self.skip_spaces();
        let rest = &self.text[self.pos..];
        let op = ["==", "!=", "~="].into_iter().find(|op| rest.starts_with(op));
        let Some(op) = op else {
            return Ok(Selector { path, op: Op::Present });
        };
        self.pos += 2;
        self.skip_spaces();
        let value = self.value()?;
        let op = match op {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            _ => Op::Matches(Regex::new(&value).map_err(|e| self.error(format!("bad regular expression: {e}")))?),
        };
        Ok(Selector { path, op })
    }

    fn field(&mut self) -> Result<String, FilterError> {
        self.skip_spaces();
        if let Some(q) = self.peek().filter(|c| matches!(c, '"' | '/' | '|')) {
            return self.quoted(q);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += self.peek().map_or(0, char::len_utf8);
        }
        if self.pos == start {
            return Err(self.error("expected a field name"));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    fn value(&mut self) -> Result<String, FilterError> {
        if let Some(q) = self.peek().filter(|c| matches!(c, '"' | '/' | '|')) {
            return self.quoted(q);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c != ',' && !c.is_whitespace()) {
            self.pos += self.peek().map_or(0, char::len_utf8);
        }
        if self.pos == start {
            return Err(self.error("expected a value"));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    /// A quoted string starting at the current position with delimiter `q`.
    fn quoted(&mut self, q: char) -> Result<String, FilterError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let text = self.text;
        let mut chars = text[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == q => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    if q != '"' {
                        // Regular-expression quoting: only the delimiter is
                        // an escape; everything else reaches the regex.
                        if e != q {
                            out.push('\\');
                        }
                        out.push(e);
                        continue;
                    }
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'a' => '\x07',
                        'b' => '\x08',
                        'f' => '\x0c',
                        'v' => '\x0b',
                        '\\' | '"' | '\'' => e,
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                            let code = u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == n);
                            match code.and_then(char::from_u32) {
                                Some(c) => c,
                                None => {
                                    self.pos = start;
                                    return Err(self.error(format!("bad escape \\{e}{hex}")));
                                }
                            }
                        }
                        other => {
                            self.pos = start;
                            return Err(self.error(format!("unknown escape \\{other}")));
                        }
                    });
                }
                c => out.push(c),
            }
        }
        self.pos = start;
        Err(self.error(format!("unterminated quoted string (missing {q})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Snap {
        name: &'static str,
        parent: &'static str,
        labels: BTreeMap<String, String>,
    }

    impl Fields for Snap {
        fn field(&self, path: &[String]) -> Option<String> {
            match path.first()?.as_str() {
                "name" => Some(self.name.into()),
                "parent" => Some(self.parent.into()),
                "labels" => self.labels.get(&path[1..].join(".")).cloned(),
                _ => None,
            }
        }
    }

    fn snap(name: &'static str, parent: &'static str, labels: &[(&str, &str)]) -> Snap {
        Snap { name, parent, labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn matches(filters: &[&str], s: &Snap) -> bool {
        let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        Filters::parse(&f).expect("parses").matches(s)
    }

    #[test]
    fn quoted_label_keys_equality_and_presence() {
        let s = snap("sha256:ab", "", &[("containerd.io/gc.root", "x"), ("a.b", "1")]);
        assert!(matches(&[r#"labels."containerd.io/gc.root"==x"#], &s));
        assert!(!matches(&[r#"labels."containerd.io/gc.root"==y"#], &s));
        assert!(matches(&[r#"labels."containerd.io/gc.root""#], &s));
        assert!(matches(&["labels.a.b==1"], &s));
        assert!(!matches(&["labels.c"], &s));
        assert!(matches(&["name==sha256:ab"], &s));
    }

    #[test]
    fn commas_are_and_strings_are_or() {
        let s = snap("p", "", &[("l", "2")]);
        assert!(!matches(&["name==p,labels.l==1"], &s));
        assert!(matches(&["name==p,labels.l==2"], &s));
        assert!(matches(&["name==q", "name==p"], &s));
        assert!(matches(&[], &s));
    }

    #[test]
    fn not_equal_sees_absent_as_empty_and_regex_searches() {
        let root = snap("p", "", &[]);
        let child = snap("c", "p", &[]);
        assert!(!matches(&[r#"parent!="""#], &root));
        assert!(matches(&[r#"parent!="""#], &child));
        assert!(matches(&["labels.x!=1"], &root));
        assert!(matches(&["name~=^c$"], &child));
        assert!(matches(&["name~=/^(c|d)$/"], &child));
        assert!(!matches(&["name~=/^d/"], &child));
    }

    #[test]
    fn go_escapes_in_quoted_values() {
        let s = snap("a\"b\tc", "", &[]);
        assert!(matches(&[r#"name=="a\"b\tc""#], &s));
        assert!(matches(&[r#"name=="a\x22b\u0009c""#], &s));
    }

    #[test]
    fn malformed_filters_are_refused_with_a_position() {
        for bad in ["name==", "==x", r#"labels."unterminated"#, "name==a b", "name~=(", r#"name=="\q""#, "name==a,"] {
            let e = Filters::parse(&[bad.to_owned()]).expect_err(bad);
            assert_eq!(e.filter, bad);
        }
    }
}
