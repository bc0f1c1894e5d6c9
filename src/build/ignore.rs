//! `.dockerignore` patterns and the glob matching `COPY` sources use.
//! Pure: strings in, decisions out.
//!
//! Semantics follow Docker's `patternmatcher`: one pattern per line, `#`
//! starts a comment, surrounding blanks are dropped, a leading `/` is
//! ignored and paths are cleaned; `*` and `?` never cross `/`, `[…]` is a
//! character class, `\` escapes; a `**` segment matches any number of
//! directories; a pattern that matches a directory excludes everything
//! under it; `!pattern` re-includes; the last matching pattern decides.

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
    exclusion: bool,
}

/// Lexically cleans a relative slash path: drops `.` and empty segments,
/// resolves `..` (never above the start; returns `None` if it would go
/// above).
pub fn clean(path: &str) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    Some(out)
}

impl Ignore {
    /// Parses `.dockerignore` text.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pat) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            // Docker cleans each pattern; `..` at the top means nothing.
            let mut segs: Vec<String> = Vec::new();
            for seg in pat.split('/') {
                match seg {
                    "" | "." => {}
                    ".." => {
                        segs.pop();
                    }
                    s => segs.push(s.to_owned()),
                }
            }
            if segs.is_empty() {
                continue;
            }
            patterns.push(Pattern { segments: segs, exclusion });
        }
        Ignore { patterns }
    }

    /// Whether `rel` (a cleaned path relative to the context root) is
    /// excluded from the build context.
    pub fn excluded(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = false;
        for p in &self.patterns {
            // A pattern matches the path or any of its parent directories.
            let hit = (1..=path.len()).any(|n| match_segments(&p.segments, &path[..n]));
            if hit {
                out = !p.exclusion;
            }
        }
        out
    }

    /// Whether some `!` pattern could re-include something under `dir`
    /// (then an excluded directory must still be walked).
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let _ = dir;
        self.patterns.iter().any(|p| p.exclusion)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Matches pattern segments (with `**`) against path segments.
fn match_segments(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| match_segments(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((seg, more)) => glob_match(first, seg) && match_segments(rest, more),
            None => false,
        },
    }
}

/// Whether `s` contains glob metacharacters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` for one segment: `*`, `?`, `[…]` (with `^`/`!`
/// negation and ranges), `\` escapes. A malformed class matches nothing.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_rec(&p, &n)
}

fn glob_rec(p: &[char], n: &[char]) -> bool {
    let Some((&c, prest)) = p.split_first() else { return n.is_empty() };
    match c {
        '*' => (0..=n.len()).any(|i| glob_rec(prest, &n[i..])),
        '?' => !n.is_empty() && glob_rec(prest, &n[1..]),
        '[' => {
            let Some((&ch, nrest)) = n.split_first() else { return false };
            match class(prest, ch) {
                Some((true, after)) => glob_rec(after, nrest),
                _ => false,
            }
        }
        '\\' => match prest.split_first() {
            Some((&e, after)) => n.first() == Some(&e) && glob_rec(after, &n[1..]),
            None => false,
        },
        _ => n.first() == Some(&c) && glob_rec(prest, &n[1..]),
    }
}

/// Matches `ch` against the class starting after `[`; returns whether it
/// matched and the pattern after `]`, or `None` if the class is malformed.
fn class(p: &[char], ch: char) -> Option<(bool, &[char])> {
    let mut i = 0;
    let negated = matches!(p.first(), Some('^') | Some('!'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some((matched != negated, &p[i + 1..]));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            c
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            let h = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
            h
        } else {
            lo
        };
        if lo <= ch && ch <= hi {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_filepath_match() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("[!a-c]x", "dx"));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "a"));
        assert!(!glob_match("[a-", "a"), "malformed class matches nothing");
    }

    #[test]
    fn dockerignore_directories_doublestar_and_exceptions() {
        let ig = Ignore::parse("# comment\n/node_modules\n**/*.log\n*.md\n!README.md\n.git\n");
        assert!(ig.excluded("node_modules"));
        assert!(ig.excluded("node_modules/a/b.js"), "a matched directory excludes its contents");
        assert!(ig.excluded("x.log") && ig.excluded("a/b/c.log"));
        assert!(ig.excluded("CHANGES.md"));
        assert!(!ig.excluded("README.md"), "the last matching pattern wins");
        assert!(!ig.excluded("docs/CHANGES.md"), "*.md does not cross /");
        assert!(ig.excluded(".git/config"));
        assert!(!ig.excluded("src/main.rs"));
    }

    #[test]
    fn patterns_are_cleaned() {
        let ig = Ignore::parse("./a/../b/\n  \n");
        assert!(ig.excluded("b/x"));
        assert!(!ig.excluded("a"));
    }

    #[test]
    fn clean_refuses_to_climb() {
        assert_eq!(clean("a/./b/../c"), Some(vec!["a", "c"]));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("a/../../x"), None);
        assert_eq!(clean("."), Some(vec![]));
    }
}
