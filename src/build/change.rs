//! `--change` values (`import -c`, `commit -c`): one Dockerfile
//! instruction each, parsed by [`parser::parse_instruction`] and turned
//! into the config [`Change`] it makes.
//!
//! **Layering.** `image` sits below `build` and must not import it, yet the
//! `--change` text is Dockerfile syntax. So the work is split: the parser
//! (pure, in `build::parser`) reads the text; this module, above both,
//! maps the parsed instruction to an [`image::changes::Change`]; and
//! `image` only applies typed changes to an image config. Callers (the CLI
//! for `import`, `container::fs::commit` through it) parse first and pass
//! `Change` values down, so a bad change is refused before anything is
//! stored.
//!
//! Words lose their quotes and escapes as in a Dockerfile, but `$VAR` is
//! kept as written: a change has no build arguments, and strata has never
//! substituted the image's environment into one.
//!
//! [`image::changes::Change`]: crate::image::changes::Change

use super::parser::{self, Command, Kind, ParseError};
use crate::image::changes::Change;

/// The instructions a change may use.
const SUPPORTED: &[&str] = &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"];

/// A change that could not be parsed; each names the change as given.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("change {text:?}: empty change")]
    Empty { text: String },
    #[error(
        "change {text:?}: unknown instruction {keyword} (supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
    )]
    Unsupported { text: String, keyword: String },
    /// The Dockerfile parser refused it; `error` says where and why.
    #[error("change {text:?}: column {}: {}", .error.column, .error.message)]
    Syntax { text: String, error: ParseError },
    /// `CMD [...`/`ENTRYPOINT [...` that is not a JSON array of strings: a
    /// Dockerfile would run it as a shell command, a change refuses it.
    #[error("change {text:?}: bad JSON array: {source}")]
    Json { text: String, source: serde_json::Error },
}

/// Parses one `--change` value.
pub fn parse_change(text: &str) -> Result<Change, ChangeError> {
    let keyword = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    if keyword.is_empty() {
        return Err(ChangeError::Empty { text: text.to_owned() });
    }
    if !SUPPORTED.contains(&keyword.as_str()) {
        return Err(ChangeError::Unsupported { text: text.to_owned(), keyword });
    }
    let syntax = |error| ChangeError::Syntax { text: text.to_owned(), error };
    let instruction = parser::parse_instruction(text).map_err(syntax)?;
    let word = |w: &String| parser::unquote(w, '\\').map_err(syntax);
    let words = |ws: &[String]| ws.iter().map(word).collect::<Result<Vec<_>, _>>();
    let pairs = |ps: &[(String, String)]| {
        ps.iter().map(|(k, v)| Ok((word(k)?, word(v)?))).collect::<Result<Vec<_>, ChangeError>>()
    };
    let command = |c: Command| match c {
        Command::Exec(v) => Ok(v),
        Command::Shell(s) if s.starts_with('[') => match serde_json::from_str::<Vec<String>>(&s) {
            Ok(v) => Ok(v),
            Err(source) => Err(ChangeError::Json { text: text.to_owned(), source }),
        },
        Command::Shell(s) => Ok(vec!["/bin/sh".to_owned(), "-c".to_owned(), s]),
    };
    Ok(match instruction.kind {
        Kind::Cmd(c) => Change::Cmd(command(c)?),
        Kind::Entrypoint(c) => Change::Entrypoint(command(c)?),
        Kind::Env(p) => Change::Env(pairs(&p)?),
        Kind::Label(p) => Change::Label(pairs(&p)?),
        Kind::Expose(ports) => Change::Expose(
            words(&ports)?.into_iter().map(|p| if p.contains('/') { p } else { format!("{p}/tcp") }).collect(),
        ),
        Kind::Volume(v) => Change::Volume(words(&v)?),
        Kind::Workdir(d) => Change::Workdir(word(&d)?),
        Kind::User(u) => Change::User(word(&u)?),
        Kind::StopSignal(s) => Change::StopSignal(word(&s)?),
        other => return Err(ChangeError::Unsupported { text: text.to_owned(), keyword: other.keyword().to_owned() }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::oci::ContainerConfig;

    fn change(text: &str) -> Change {
        parse_change(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cmd_shell_form_matches_docker_history() {
        let c = change("CMD /app/hello.sh");
        assert_eq!(c.created_by(), r#"/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "/app/hello.sh"]"#);
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.cmd.unwrap(), ["/bin/sh", "-c", "/app/hello.sh"]);
    }

    #[test]
    fn cmd_exec_form() {
        assert_eq!(change(r#"CMD ["/bin/cat", "/app.txt"]"#), Change::Cmd(vec!["/bin/cat".into(), "/app.txt".into()]));
    }

    #[test]
    fn env_forms_and_override() {
        let mut cfg = ContainerConfig::default();
        change("ENV A=1 B=\"two words\"").apply(&mut cfg);
        change("ENV A 3").apply(&mut cfg);
        assert_eq!(cfg.env.unwrap(), ["B=two words", "A=3"]);
    }

    #[test]
    fn variables_are_kept_as_written() {
        assert_eq!(change("ENV P=$PATH:/x"), Change::Env(vec![("P".into(), "$PATH:/x".into())]));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |t: &str| parse_change(t).unwrap_err().to_string();
        assert!(err("FROB x").contains("unknown instruction FROB"), "{}", err("FROB x"));
        assert!(err("RUN true").contains("unknown instruction RUN"), "{}", err("RUN true"));
        assert!(err("CMD [\"a\"").contains("bad JSON"), "{}", err("CMD [\"a\""));
        assert!(err("ENV").contains("ENV requires at least one argument"), "{}", err("ENV"));
        assert!(err("LABEL =x").contains("LABEL names can not be blank"), "{}", err("LABEL =x"));
        assert!(err("  ").contains("empty change"), "{}", err("  "));
        assert!(err("USER a\nUSER b").contains("more than one instruction"), "{}", err("USER a\nUSER b"));
        assert!(err("ENV A=\"x").contains("unterminated double quote"), "{}", err("ENV A=\"x"));
    }

    #[test]
    fn expose_defaults_to_tcp() {
        let mut cfg = ContainerConfig::default();
        change("EXPOSE 80 53/udp").apply(&mut cfg);
        let ports: Vec<&str> = cfg.exposed_ports.as_ref().unwrap().keys().map(String::as_str).collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
    }
}
