//! Config changes in Dockerfile syntax (`docker import --change`,
//! `docker commit --change`): `CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`,
//! `USER`, `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`.
//!
//! Pure: parses a string into a [`Change`], applies it to the execution
//! defaults of an image config ([`ContainerConfig`]), and renders the
//! history line Docker records for it
//! (`/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "/app/hello.sh"]`).

use crate::image::oci::{ContainerConfig, Empty};
use std::collections::BTreeMap;

/// A parsed change instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
}

/// A change that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("change {text:?}: {reason}")]
pub struct ChangeError {
    pub text: String,
    pub reason: String,
}

fn err(text: &str, reason: impl Into<String>) -> ChangeError {
    ChangeError { text: text.to_owned(), reason: reason.into() }
}

/// Exec form (`["a","b"]`) as is; shell form wrapped in `/bin/sh -c`.
fn command(text: &str, args: &str) -> Result<Vec<String>, ChangeError> {
    let args = args.trim();
    if args.starts_with('[') {
        serde_json::from_str::<Vec<String>>(args).map_err(|e| err(text, format!("bad JSON array: {e}")))
    } else if args.is_empty() {
        Err(err(text, "missing command"))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), args.into()])
    }
}

/// `K=V K2="v 2"` pairs, or the legacy single `K V` form.
fn pairs(text: &str, args: &str, legacy_space: bool) -> Result<Vec<(String, String)>, ChangeError> {
    let args = args.trim();
    if legacy_space && !args.split_whitespace().next().unwrap_or("").contains('=') {
        let (k, v) =
            args.split_once(char::is_whitespace).ok_or_else(|| err(text, "expected KEY VALUE or KEY=VALUE"))?;
        return Ok(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let mut out = Vec::new();
    for word in split_words(args).map_err(|r| err(text, r))? {
        let (k, v) = word.split_once('=').ok_or_else(|| err(text, format!("{word:?} is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(err(text, "empty key"));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    if out.is_empty() {
        return Err(err(text, "expected KEY=VALUE"));
    }
    Ok(out)
}

/// Splits on whitespace, honouring double quotes and backslash escapes.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(chars.next().ok_or("trailing backslash")?);
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

impl std::str::FromStr for Change {
    type Err = ChangeError;
    fn from_str(text: &str) -> Result<Change, ChangeError> {
        let t = text.trim();
        let (word, args) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let args = args.trim();
        let one = |what: &str| -> Result<String, ChangeError> {
            if args.is_empty() {
                Err(err(text, format!("missing {what}")))
            } else {
                Ok(args.to_owned())
            }
        };
        let list = || -> Result<Vec<String>, ChangeError> {
            if args.starts_with('[') {
                serde_json::from_str(args).map_err(|e| err(text, format!("bad JSON array: {e}")))
            } else {
                let v: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
                if v.is_empty() {
                    Err(err(text, "missing arguments"))
                } else {
                    Ok(v)
                }
            }
        };
        Ok(match word.to_ascii_uppercase().as_str() {
            "CMD" => Change::Cmd(command(text, args)?),
            "ENTRYPOINT" => Change::Entrypoint(command(text, args)?),
            "ENV" => Change::Env(pairs(text, args, true)?),
            "LABEL" => Change::Label(pairs(text, args, false)?),
            "WORKDIR" => Change::Workdir(one("directory")?),
            "USER" => Change::User(one("user")?),
            "STOPSIGNAL" => Change::StopSignal(one("signal")?),
            "EXPOSE" => Change::Expose(
                list()?.into_iter().map(|p| if p.contains('/') { p } else { format!("{p}/tcp") }).collect(),
            ),
            "VOLUME" => Change::Volume(list()?),
            "" => return Err(err(text, "empty change")),
            other => return Err(err(text, format!("unknown instruction {other} (supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"))),
        })
    }
}

/// `["a" "b"]`: Go's `%q` of each element, space separated, as Docker
/// prints commands in history.
fn go_list(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| serde_json::to_string(s).expect("string")).collect();
    format!("[{}]", quoted.join(" "))
}

impl Change {
    /// The history `created_by` line Docker's builder writes.
    pub fn created_by(&self) -> String {
        let body = match self {
            Change::Cmd(c) => format!("CMD {}", go_list(c)),
            Change::Entrypoint(c) => format!("ENTRYPOINT {}", go_list(c)),
            Change::Env(p) => {
                format!("ENV {}", p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            }
            Change::Label(p) => {
                format!("LABEL {}", p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            }
            Change::Workdir(d) => format!("WORKDIR {d}"),
            Change::User(u) => format!("USER {u}"),
            Change::StopSignal(s) => format!("STOPSIGNAL {s}"),
            Change::Expose(p) => {
                format!("EXPOSE map[{}]", p.iter().map(|x| format!("{x}:{{}}")).collect::<Vec<_>>().join(" "))
            }
            Change::Volume(v) => format!("VOLUME {}", go_list(v)),
        };
        format!("/bin/sh -c #(nop)  {body}")
    }

    /// Applies the change to an image config's execution defaults.
    pub fn apply(&self, cfg: &mut ContainerConfig) {
        match self {
            Change::Cmd(c) => cfg.cmd = Some(c.clone()),
            Change::Entrypoint(c) => {
                cfg.entrypoint = Some(c.clone());
                // Docker resets an inherited CMD when ENTRYPOINT changes.
                cfg.cmd = None;
            }
            Change::Env(pairs) => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs {
                    let prefix = format!("{k}=");
                    env.retain(|e| !e.starts_with(&prefix));
                    env.push(format!("{k}={v}"));
                }
            }
            Change::Label(pairs) => cfg.labels.get_or_insert_with(BTreeMap::new).extend(pairs.iter().cloned()),
            Change::Expose(ports) => {
                cfg.exposed_ports.get_or_insert_with(BTreeMap::new).extend(ports.iter().map(|p| (p.clone(), Empty {})))
            }
            Change::Volume(v) => {
                cfg.volumes.get_or_insert_with(BTreeMap::new).extend(v.iter().map(|p| (p.clone(), Empty {})))
            }
            Change::Workdir(d) => cfg.working_dir = Some(d.clone()),
            Change::User(u) => cfg.user = Some(u.clone()),
            Change::StopSignal(s) => cfg.stop_signal = Some(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_shell_form_matches_docker_history() {
        let c: Change = "CMD /app/hello.sh".parse().unwrap();
        assert_eq!(c.created_by(), r#"/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "/app/hello.sh"]"#);
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.cmd.unwrap(), ["/bin/sh", "-c", "/app/hello.sh"]);
    }

    #[test]
    fn env_forms_and_override() {
        let mut cfg = ContainerConfig::default();
        "ENV A=1 B=\"two words\"".parse::<Change>().unwrap().apply(&mut cfg);
        "ENV A 3".parse::<Change>().unwrap().apply(&mut cfg);
        assert_eq!(cfg.env.unwrap(), ["B=two words", "A=3"]);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!("FROB x".parse::<Change>().unwrap_err().reason.contains("unknown instruction FROB"));
        assert!("CMD [\"a\"".parse::<Change>().unwrap_err().reason.contains("bad JSON"));
        assert!("ENV".parse::<Change>().is_err());
        assert!("LABEL =x".parse::<Change>().is_err());
    }

    #[test]
    fn expose_defaults_to_tcp() {
        let mut cfg = ContainerConfig::default();
        "EXPOSE 80 53/udp".parse::<Change>().unwrap().apply(&mut cfg);
        let ports: Vec<&str> = cfg.exposed_ports.as_ref().unwrap().keys().map(String::as_str).collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
    }
}
