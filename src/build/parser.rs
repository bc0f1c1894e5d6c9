//! The Dockerfile parser: text in, typed [`Instruction`]s out, no I/O.
//!
//! It follows Docker/BuildKit's front end:
//!
//! * **Parser directives** (`# syntax=…`, `# escape=\` or `` # escape=` ``)
//!   count only at the very top; the first line that is not a directive
//!   (a comment, a blank line, an instruction, or an unknown directive) ends
//!   them, and later ones are plain comments.
//! * **Logical lines**: the escape character as the last non-blank character
//!   joins the next line (no separator is inserted). Blank lines and comment
//!   lines between continuation lines are dropped, as Docker does.
//! * **Heredocs** (`RUN <<EOF`, `<<-EOF`, `<<"EOF"`, several per line) take
//!   their bodies from the lines after the instruction's logical line.
//! * **Exec vs shell form**: arguments that parse as a JSON array of strings
//!   are the exec form; anything else (even `[not json`) is the shell form,
//!   except for `SHELL`, which requires JSON.
//!
//! **Words are kept as written.** `ENV`, `LABEL` and `ARG` keys and values,
//! paths and the like keep their quotes and escapes, because their meaning
//! depends on build-time variables: the builder passes each through
//! [`expand`], which substitutes `$VAR`/`${VAR…}` and removes quotes the
//! way BuildKit's shell lexer does (`'…'` is literal, `"…"` expands). The
//! parser does not know any variable's value.
//!
//! ```
//! use strata::build::parser::{parse, Command, Kind};
//!
//! let df = parse("FROM busybox:latest\nCMD /app/hello.sh\n").unwrap();
//! assert_eq!(df.instructions[1].kind, Kind::Cmd(Command::Shell("/app/hello.sh".into())));
//! ```

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character: `\` unless `# escape=`` ` `` said otherwise.
    pub escape: char,
    /// The `# syntax=` directive, if any (recorded, not acted upon).
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based column of the instruction keyword.
    pub column: usize,
    pub kind: Kind,
    /// The source text, continuation lines joined, heredoc bodies excluded.
    pub original: String,
}

/// What an instruction says. Strings are raw words (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    /// `flags` are `--mount`, `--network`, `--security` in source order.
    Run {
        cmd: Command,
        flags: Vec<(String, String)>,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Copy(CopySpec),
    Add(CopySpec),
    Env(Vec<(String, String)>),
    /// `NAME` or `NAME=default`, several per instruction.
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    /// `None` is `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    Onbuild(Box<Kind>),
    Maintainer(String),
}

impl Kind {
    /// The instruction keyword, upper case (`RUN`, `COPY`, …).
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::From { .. } => "FROM",
            Kind::Run { .. } => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// The arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub srcs: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// The other flags (`--link`, `--exclude`, `--checksum`, …); a bare
    /// boolean flag reads `"true"`.
    pub flags: Vec<(String, String)>,
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK [--interval=…] CMD …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub flags: Vec<(String, String)>,
    pub cmd: Command,
}

/// A heredoc body (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// Every body line followed by `\n`; leading tabs removed for `<<-`.
    pub body: String,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub strip_tabs: bool,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`).
    pub expand: bool,
}

/// A syntax error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", .file.as_deref().unwrap_or("Dockerfile"))]
pub struct ParseError {
    /// The file name to print; `Dockerfile` when unset.
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, column: usize, message: impl Into<String>) -> ParseError {
        ParseError { file: None, line, column, message: message.into() }
    }

    /// Names the file in the message (`path/Dockerfile.dev:3:1: …`).
    pub fn with_file(mut self, name: impl Into<String>) -> ParseError {
        self.file = Some(name.into());
        self
    }
}

/// A logical line: physical lines joined at continuations, with the map
/// back to source positions for error columns.
struct Logical {
    text: String,
    /// `(offset in text, 1-based line)`; each segment starts at column 1.
    segs: Vec<(usize, usize)>,
    /// Index of the last physical line consumed.
    end: usize,
    escape: char,
}

impl Logical {
    /// Joins `lines[start..]` while lines end with the escape character.
    fn join(lines: &[&str], start: usize, escape: char) -> Logical {
        let mut text = String::new();
        let mut segs = Vec::new();
        let mut i = start;
        loop {
            let line = lines[i];
            let trimmed = line.trim_end();
            let continued = trimmed.ends_with(escape);
            segs.push((text.len(), i + 1));
            text.push_str(if continued { &trimmed[..trimmed.len() - escape.len_utf8()] } else { line });
            if !continued {
                break;
            }
            // Docker drops blank and comment lines inside a continuation.
            let mut j = i + 1;
            while j < lines.len() && is_blank_or_comment(lines[j]) {
                j += 1;
            }
            if j >= lines.len() {
                i = lines.len() - 1;
                break;
            }
            i = j;
        }
        Logical { text, segs, end: i, escape }
    }

    /// Byte offset of `sub` if it is a slice of `self.text`, else 0.
    fn offset_of(&self, sub: &str) -> usize {
        let start = self.text.as_ptr() as usize;
        let p = sub.as_ptr() as usize;
        if p >= start && p <= start + self.text.len() {
            p - start
        } else {
            0
        }
    }

    /// The error at the source position of `sub`, a slice of `self.text`.
    fn err(&self, sub: &str, message: impl Into<String>) -> ParseError {
        let offset = self.offset_of(sub);
        let &(at, line) = self.segs.iter().rev().find(|(at, _)| *at <= offset).unwrap_or(&self.segs[0]);
        ParseError::new(line, 1 + self.text[at..offset].chars().count(), message)
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Reads the parser directives at the top; returns the escape character,
/// the syntax, and the index of the first line after them.
fn directives(lines: &[&str]) -> Result<(char, Option<String>, usize), ParseError> {
    let mut escape = None;
    let mut syntax = None;
    let mut check = false;
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix('#') else { return Ok((escape.unwrap_or('\\'), syntax, i)) };
        let Some((key, value)) = rest.split_once('=') else { return Ok((escape.unwrap_or('\\'), syntax, i)) };
        let key = key.trim();
        let value = value.trim();
        let well_formed = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric())
            && !value.is_empty();
        let col = 1 + line.len() - line.trim_start().len();
        let dup = |k: &str| ParseError::new(i + 1, col, format!("only one {k} parser directive can be used"));
        match key.to_ascii_lowercase().as_str() {
            "escape" if well_formed => {
                if escape.is_some() {
                    return Err(dup("escape"));
                }
                escape = Some(match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError::new(
                            i + 1,
                            col,
                            format!("invalid escape token {value:?}: must be \\ or `"),
                        ))
                    }
                });
            }
            "syntax" if well_formed => {
                if syntax.is_some() {
                    return Err(dup("syntax"));
                }
                syntax = Some(value.to_owned());
            }
            "check" if well_formed => {
                if check {
                    return Err(dup("check"));
                }
                check = true;
            }
            // An unknown directive is a comment and ends the directives.
            _ => return Ok((escape.unwrap_or('\\'), syntax, i)),
        }
    }
    Ok((escape.unwrap_or('\\'), syntax, lines.len()))
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let (escape, syntax, mut i) = directives(&lines)?;
    let mut instructions = Vec::new();
    let mut seen_from = false;
    while i < lines.len() {
        if is_blank_or_comment(lines[i]) {
            i += 1;
            continue;
        }
        let (instruction, next) = instruction(&lines, i, escape, |kw, kind| match kind {
            Kind::From { .. } => {
                seen_from = true;
                Ok(())
            }
            Kind::Arg(_) => Ok(()),
            _ if !seen_from => {
                Err(format!("no FROM before {}: only ARG may precede the first FROM", kw.to_ascii_uppercase()))
            }
            _ => Ok(()),
        })?;
        i = next;
        instructions.push(instruction);
    }
    if instructions.is_empty() {
        // BuildKit refuses an empty file rather than building nothing.
        return Err(ParseError::new(lines.len().max(1), 1, "file with no instructions"));
    }
    Ok(Dockerfile { escape, syntax, instructions })
}

/// Parses one instruction on its own, as `docker commit --change` and
/// `docker import --change` take them: no parser directives, no `FROM`
/// needed first, the default escape character; continuation lines and
/// heredoc bodies may follow in `text`, another instruction may not.
pub fn parse_instruction(text: &str) -> Result<Instruction, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| !is_blank_or_comment(l)) else {
        return Err(ParseError::new(1, 1, "no instruction"));
    };
    let (instruction, next) = instruction(&lines, start, '\\', |_, _| Ok(()))?;
    if let Some(extra) = (next..lines.len()).find(|&j| !is_blank_or_comment(lines[j])) {
        let column = 1 + lines[extra].len() - lines[extra].trim_start().len();
        return Err(ParseError::new(extra + 1, column, "more than one instruction"));
    }
    Ok(instruction)
}

/// Parses the instruction whose logical line starts at `lines[start]`;
/// returns it and the index of the line after it (and its heredocs).
/// `check` may refuse the instruction by keyword and kind; its message
/// is reported at the keyword.
fn instruction(
    lines: &[&str],
    start: usize,
    escape: char,
    mut check: impl FnMut(&str, &Kind) -> Result<(), String>,
) -> Result<(Instruction, usize), ParseError> {
    let lg = Logical::join(lines, start, escape);
    let mut next = lg.end + 1;
    let body = lg.text.trim();
    let kw_end = body.find(char::is_whitespace).unwrap_or(body.len());
    let (kw, args) = (&body[..kw_end], body[kw_end..].trim());
    let heredocs = if matches!(kw.to_ascii_uppercase().as_str(), "RUN" | "COPY" | "ADD") {
        read_heredocs(&lg, args, lines, &mut next)?
    } else {
        Vec::new()
    };
    let kind = parse_kind(&lg, kw, args, heredocs)?;
    check(kw, &kind).map_err(|message| lg.err(kw, message))?;
    let (line, column) = {
        let e = lg.err(kw, "");
        (e.line, e.column)
    };
    Ok((Instruction { line, column, kind, original: body.to_owned() }, next))
}

/// Splits leading `--flag[=value]` words off `args`; a lone `--` ends them.
fn take_flags(args: &str) -> (Vec<&str>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        flags.push(word);
    }
    (flags, rest)
}

/// `args` as an exec-form JSON array of strings, if it is one.
fn json_list(args: &str) -> Option<Vec<String>> {
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str(args).ok()
}

/// Finds the heredoc markers in a shell-form `RUN`/`COPY`/`ADD` and reads
/// their bodies from `lines[*i..]`, advancing `*i` past the terminators.
fn read_heredocs(lg: &Logical, args: &str, lines: &[&str], i: &mut usize) -> Result<Vec<Heredoc>, ParseError> {
    let (_, rest) = take_flags(args);
    if json_list(rest).is_some() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for word in rest.split_whitespace() {
        let Some(marker) = word.strip_prefix("<<") else { continue };
        if marker.starts_with('<') {
            continue; // a here-string, `<<<`
        }
        let (strip_tabs, marker) = match marker.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, marker),
        };
        let (name, expand) = match marker.chars().next() {
            Some(q @ ('"' | '\'')) => match marker[1..].find(q) {
                Some(end) => (&marker[1..1 + end], false),
                None => return Err(lg.err(word, format!("unterminated quote in heredoc delimiter {word}"))),
            },
            _ => {
                let end = marker.find(|c: char| !(c.is_alphanumeric() || "_-.".contains(c))).unwrap_or(marker.len());
                (&marker[..end], true)
            }
        };
        if name.is_empty() {
            continue;
        }
        let mut body = String::new();
        loop {
            let Some(line) = lines.get(*i) else {
                return Err(lg.err(word, format!("unterminated heredoc <<{name}: no line {name} before the end")));
            };
            *i += 1;
            let line = if strip_tabs { line.trim_start_matches('\t') } else { line };
            if line == name {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        out.push(Heredoc { name: name.to_owned(), body, strip_tabs, expand });
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum FlagType {
    Str,
    Bool,
    /// A string flag that may be given more than once.
    Many,
}

/// Validates flags against the instruction's allowed set.
fn check_flags(
    lg: &Logical,
    words: &[&str],
    allowed: &[(&str, FlagType)],
) -> Result<Vec<(String, String)>, ParseError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for &word in words {
        let body = &word[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(_, ty)) = allowed.iter().find(|(n, _)| *n == name) else {
            return Err(lg.err(word, format!("unknown flag: --{name}")));
        };
        let value = match (ty, value) {
            (FlagType::Bool, None) => "true",
            (FlagType::Bool, Some(v @ ("true" | "false"))) => v,
            (FlagType::Bool, Some(v)) => {
                return Err(lg.err(word, format!("expecting boolean value for flag --{name}, not: {v}")))
            }
            (_, None) => return Err(lg.err(word, format!("missing a value on flag: --{name}"))),
            (_, Some(v)) => v,
        };
        if !matches!(ty, FlagType::Many) && out.iter().any(|(n, _)| n == name) {
            return Err(lg.err(word, format!("duplicate flag specified: --{name}")));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

fn take(flags: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let i = flags.iter().position(|(n, _)| n == name)?;
    Some(flags.remove(i).1)
}

/// Exec form if JSON, else shell form; empty is an error.
fn command(lg: &Logical, kw: &str, args: &str) -> Result<Command, ParseError> {
    if let Some(v) = json_list(args) {
        return Ok(Command::Exec(v));
    }
    if args.is_empty() {
        return Err(lg.err(kw, format!("{} requires at least one argument", kw.to_ascii_uppercase())));
    }
    Ok(Command::Shell(args.to_owned()))
}

/// Splits on blanks outside quotes; the escape character protects the next
/// character. Quotes and escapes stay in the words (Docker's `parseWords`).
fn words(s: &str, escape: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if start.is_none() {
            if c.is_whitespace() {
                continue;
            }
            start = Some(i);
        }
        if escaped {
            escaped = false;
        } else if c == escape {
            escaped = true;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c.is_whitespace() {
            out.push(&s[start.take().unwrap_or(i)..i]);
        }
    }
    if let Some(st) = start {
        out.push(&s[st..]);
    }
    out
}

/// `K=V …` pairs or the legacy `K V` form (`ENV`, `LABEL`).
fn name_vals(lg: &Logical, kw: &str, args: &str) -> Result<Vec<(String, String)>, ParseError> {
    let upper = kw.to_ascii_uppercase();
    let ws = words(args, lg.escape);
    let Some(&first) = ws.first() else {
        return Err(lg.err(kw, format!("{upper} requires at least one argument")));
    };
    if !first.contains('=') {
        let value = args[first.len()..].trim();
        if value.is_empty() {
            return Err(lg.err(first, format!("{upper} must have two arguments")));
        }
        return Ok(vec![(first.to_owned(), value.to_owned())]);
    }
    let mut out = Vec::new();
    for w in ws {
        match w.split_once('=') {
            Some(("", _)) => return Err(lg.err(w, format!("{upper} names can not be blank"))),
            Some((k, v)) => out.push((k.to_owned(), v.to_owned())),
            None => {
                return Err(lg.err(w, format!("syntax error - can't find = in {w:?}; must be of the form name=value")))
            }
        }
    }
    Ok(out)
}

/// A single non-empty argument: the rest of the line.
fn one(lg: &Logical, kw: &str, args: &str) -> Result<String, ParseError> {
    if args.is_empty() {
        return Err(lg.err(kw, format!("{} requires exactly one argument", kw.to_ascii_uppercase())));
    }
    Ok(args.to_owned())
}

const RUN_FLAGS: &[(&str, FlagType)] =
    &[("mount", FlagType::Many), ("network", FlagType::Str), ("security", FlagType::Str)];
const COPY_FLAGS: &[(&str, FlagType)] = &[
    ("from", FlagType::Str),
    ("chown", FlagType::Str),
    ("chmod", FlagType::Str),
    ("link", FlagType::Bool),
    ("parents", FlagType::Bool),
    ("exclude", FlagType::Many),
];
const ADD_FLAGS: &[(&str, FlagType)] = &[
    ("chown", FlagType::Str),
    ("chmod", FlagType::Str),
    ("link", FlagType::Bool),
    ("checksum", FlagType::Str),
    ("keep-git-dir", FlagType::Bool),
    ("exclude", FlagType::Many),
];
const HEALTHCHECK_FLAGS: &[(&str, FlagType)] = &[
    ("interval", FlagType::Str),
    ("timeout", FlagType::Str),
    ("start-period", FlagType::Str),
    ("start-interval", FlagType::Str),
    ("retries", FlagType::Str),
];

/// Parses one instruction; `kw` and `args` are slices of `lg.text`.
fn parse_kind(lg: &Logical, kw: &str, args: &str, heredocs: Vec<Heredoc>) -> Result<Kind, ParseError> {
    let upper = kw.to_ascii_uppercase();
    let no_flags = |what: &str| -> Result<&str, ParseError> {
        let (flags, rest) = take_flags(args);
        match flags.first() {
            Some(f) => {
                Err(lg.err(f, format!("unknown flag: {} ({what} takes no flags)", f.split('=').next().unwrap_or(f))))
            }
            None => Ok(rest),
        }
    };
    Ok(match upper.as_str() {
        "FROM" => {
            let (fw, rest) = take_flags(args);
            let mut flags = check_flags(lg, &fw, &[("platform", FlagType::Str)])?;
            let platform = take(&mut flags, "platform");
            let ws: Vec<&str> = rest.split_whitespace().collect();
            match ws.as_slice() {
                [image] => Kind::From { image: (*image).to_owned(), alias: None, platform },
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let alias = name.to_ascii_lowercase();
                    let valid = alias.starts_with(|c: char| c.is_ascii_lowercase())
                        && alias.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                    if !valid {
                        return Err(lg.err(name, format!("invalid name for build stage: {name:?}")));
                    }
                    Kind::From { image: (*image).to_owned(), alias: Some(alias), platform }
                }
                _ => return Err(lg.err(kw, "FROM requires either one or three arguments (image [AS name])")),
            }
        }
        "RUN" => {
            let (fw, rest) = take_flags(args);
            let flags = check_flags(lg, &fw, RUN_FLAGS)?;
            Kind::Run { cmd: command(lg, kw, rest)?, flags, heredocs }
        }
        "CMD" => Kind::Cmd(command(lg, kw, no_flags("CMD")?)?),
        "ENTRYPOINT" => Kind::Entrypoint(command(lg, kw, no_flags("ENTRYPOINT")?)?),
        "SHELL" => match json_list(args) {
            Some(v) if v.is_empty() => return Err(lg.err(args, "SHELL requires at least one argument")),
            Some(v) => Kind::Shell(v),
            None if args.is_empty() => return Err(lg.err(kw, "SHELL requires at least one argument")),
            None => return Err(lg.err(args, "SHELL requires the arguments to be in JSON form")),
        },
        "COPY" | "ADD" => {
            let (fw, rest) = take_flags(args);
            let mut flags = check_flags(lg, &fw, if upper == "COPY" { COPY_FLAGS } else { ADD_FLAGS })?;
            let mut list = json_list(rest).unwrap_or_else(|| rest.split_whitespace().map(str::to_owned).collect());
            if list.len() < 2 {
                let what = if list.is_empty() { "none" } else { "only one" };
                return Err(lg.err(
                    kw,
                    format!("{upper} requires at least two arguments, but {what} was provided: destination could not be determined"),
                ));
            }
            let dest = list.pop().unwrap_or_default();
            let spec = CopySpec {
                srcs: list,
                dest,
                from: take(&mut flags, "from"),
                chown: take(&mut flags, "chown"),
                chmod: take(&mut flags, "chmod"),
                flags,
                heredocs,
            };
            if upper == "COPY" {
                Kind::Copy(spec)
            } else {
                Kind::Add(spec)
            }
        }
        "ENV" => Kind::Env(name_vals(lg, kw, no_flags("ENV")?)?),
        "LABEL" => Kind::Label(name_vals(lg, kw, no_flags("LABEL")?)?),
        "ARG" => {
            let ws = words(args, lg.escape);
            if ws.is_empty() {
                return Err(lg.err(kw, "ARG requires at least one argument"));
            }
            let mut out = Vec::new();
            for w in ws {
                let (name, default) = match w.split_once('=') {
                    Some((n, d)) => (n, Some(d.to_owned())),
                    None => (w, None),
                };
                if name.is_empty() {
                    return Err(lg.err(w, "ARG names can not be blank"));
                }
                out.push((name.to_owned(), default));
            }
            Kind::Arg(out)
        }
        "WORKDIR" => Kind::Workdir(one(lg, kw, args)?),
        "USER" => Kind::User(one(lg, kw, args)?),
        "STOPSIGNAL" => Kind::StopSignal(one(lg, kw, args)?),
        "MAINTAINER" => Kind::Maintainer(one(lg, kw, args)?),
        "EXPOSE" => {
            let ports: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
            if ports.is_empty() {
                return Err(lg.err(kw, "EXPOSE requires at least one argument"));
            }
            Kind::Expose(ports)
        }
        "VOLUME" => {
            let vols = json_list(args).unwrap_or_else(|| args.split_whitespace().map(str::to_owned).collect());
            if vols.is_empty() {
                return Err(lg.err(kw, "VOLUME requires at least one argument"));
            }
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err(lg.err(args, "VOLUME specified can not be an empty string"));
            }
            Kind::Volume(vols)
        }
        "HEALTHCHECK" => {
            let (fw, rest) = take_flags(args);
            let flags = check_flags(lg, &fw, HEALTHCHECK_FLAGS)?;
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (ty, cmd) = (&rest[..end], rest[end..].trim());
            match ty.to_ascii_uppercase().as_str() {
                "NONE" if flags.is_empty() && cmd.is_empty() => Kind::Healthcheck(None),
                "NONE" => return Err(lg.err(ty, "HEALTHCHECK NONE takes no arguments or flags")),
                "CMD" => Kind::Healthcheck(Some(Healthcheck { flags, cmd: command(lg, ty, cmd)? })),
                "" => return Err(lg.err(kw, "HEALTHCHECK requires at least one argument")),
                _ => return Err(lg.err(ty, format!("unknown type {ty:?} in HEALTHCHECK (try CMD)"))),
            }
        }
        "ONBUILD" => {
            let end = args.find(char::is_whitespace).unwrap_or(args.len());
            let (trigger, rest) = (&args[..end], args[end..].trim());
            match trigger.to_ascii_uppercase().as_str() {
                "" => return Err(lg.err(kw, "ONBUILD requires at least one argument")),
                t @ ("ONBUILD" | "FROM" | "MAINTAINER") => {
                    return Err(lg.err(trigger, format!("{t} isn't allowed as an ONBUILD trigger")))
                }
                _ => Kind::Onbuild(Box::new(parse_kind(lg, trigger, rest, Vec::new())?)),
            }
        }
        _ => return Err(lg.err(kw, format!("unknown instruction: {upper}"))),
    })
}

/// Expands one word the way BuildKit's shell lexer does for `ENV`, `COPY`,
/// `WORKDIR` and the other expanding instructions: `$VAR`, `${VAR}`,
/// `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
/// `${VAR:?message}`; the escape character protects the next character;
/// `'…'` is literal and `"…"` expands; quotes are removed. Unset variables
/// expand to nothing.
///
/// Errors carry line 1 and the 1-based column within `word`.
pub fn expand(word: &str, vars: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<String, ParseError> {
    let chars: Vec<char> = word.chars().collect();
    Expander { vars, escape, substitute: true }.run(&chars, 0)
}

/// Removes quotes and escapes from one word as [`expand`] does, but
/// leaves every `$…` as written: for words whose variables are not to be
/// substituted (`--change` values).
pub fn unquote(word: &str, escape: char) -> Result<String, ParseError> {
    let chars: Vec<char> = word.chars().collect();
    Expander { vars: &|_| None, escape, substitute: false }.run(&chars, 0)
}

struct Expander<'a> {
    vars: &'a dyn Fn(&str) -> Option<String>,
    escape: char,
    /// False: `$` is an ordinary character.
    substitute: bool,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Expander<'_> {
    /// Expands `chars`, which start at char index `base` of the whole word.
    fn run(&self, chars: &[char], base: usize) -> Result<String, ParseError> {
        let err = |i: usize, m: &str| ParseError::new(1, base + i + 1, m);
        let mut out = String::new();
        let mut in_double = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == self.escape {
                match chars.get(i + 1) {
                    None => out.push(c),
                    // Inside double quotes only `"`, `$` and the escape itself are escaped.
                    Some(&n) if in_double.is_some() && !(n == '"' || n == '$' || n == self.escape) => {
                        out.push(c);
                        out.push(n);
                    }
                    Some(&n) => out.push(n),
                }
                i += 2;
            } else if c == '"' {
                in_double = if in_double.is_some() { None } else { Some(i) };
                i += 1;
            } else if c == '\'' && in_double.is_none() {
                let Some(len) = chars[i + 1..].iter().position(|&q| q == '\'') else {
                    return Err(err(i, "unterminated single quote"));
                };
                out.extend(&chars[i + 1..i + 1 + len]);
                i += len + 2;
            } else if c == '$' && self.substitute {
                i = self.substitute(chars, base, i, &mut out)?;
            } else {
                out.push(c);
                i += 1;
            }
        }
        if let Some(at) = in_double {
            return Err(err(at, "unterminated double quote"));
        }
        Ok(out)
    }

    /// Expands the `$…` at `chars[i]` into `out`; returns the index after it.
    fn substitute(&self, chars: &[char], base: usize, i: usize, out: &mut String) -> Result<usize, ParseError> {
        let err = |at: usize, m: String| ParseError::new(1, base + at + 1, m);
        match chars.get(i + 1) {
            Some('{') => {}
            Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
                let len = chars[i + 1..].iter().take_while(|&&c| is_name_char(c)).count();
                let name: String = chars[i + 1..i + 1 + len].iter().collect();
                out.push_str(&(self.vars)(&name).unwrap_or_default());
                return Ok(i + 1 + len);
            }
            _ => {
                out.push('$');
                return Ok(i + 1);
            }
        }
        let start = i + 2;
        let len = chars[start..].iter().take_while(|&&c| is_name_char(c)).count();
        let name: String = chars[start..start + len].iter().collect();
        let mut j = start + len;
        let Some(&next) = chars.get(j) else { return Err(err(i, "missing '}' in ${…}".into())) };
        if name.is_empty() {
            return Err(err(i, "bad substitution: empty variable name".into()));
        }
        let value = (self.vars)(&name);
        if next == '}' {
            out.push_str(&value.unwrap_or_default());
            return Ok(j + 1);
        }
        let colon = next == ':';
        if colon {
            j += 1;
        }
        let op = chars.get(j).copied();
        if !matches!(op, Some('-' | '+' | '?')) {
            return Err(err(j, format!("unsupported modifier in ${{{name}…}}")));
        }
        j += 1;
        // Find the matching `}`, skipping escapes and nested `${…}`.
        let mut k = j;
        let mut depth = 0;
        loop {
            match chars.get(k) {
                None => return Err(err(i, "missing '}' in ${…}".into())),
                Some(&c) if c == self.escape => k += 2,
                Some('$') if chars.get(k + 1) == Some(&'{') => {
                    depth += 1;
                    k += 2;
                }
                Some('}') if depth == 0 => break,
                Some('}') => {
                    depth -= 1;
                    k += 1;
                }
                Some(_) => k += 1,
            }
        }
        let word = self.run(&chars[j..k.min(chars.len())], base + j)?;
        let set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match op {
            Some('-') => out.push_str(&if set { value.unwrap_or_default() } else { word }),
            Some('+') if set => out.push_str(&word),
            Some('?') if !set => {
                let msg = if word.is_empty() { "is not allowed to be unset".to_owned() } else { word };
                return Err(err(i, format!("{name}: {msg}")));
            }
            Some('?') => out.push_str(&value.unwrap_or_default()),
            _ => {}
        }
        Ok(k + 1)
    }
}

#[doc(hidden)]
pub mod fuzz;

#[cfg(test)]
mod tests;
