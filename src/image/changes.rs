//! Config changes: what `CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`,
//! `LABEL`, `EXPOSE`, `VOLUME` and `STOPSIGNAL` do to an image, whether
//! they come from a Dockerfile step or an `import`/`commit --change`.
//!
//! Pure: applies a typed [`Change`] to the execution defaults of an image
//! config ([`ContainerConfig`]) and renders the history line Docker
//! records for it (`/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "/app/hello.sh"]`).
//! The text is parsed above this layer, by the Dockerfile parser
//! (`build::parser`, through `build::change` for `--change` values).

use crate::image::oci::{ContainerConfig, Empty};
use std::collections::BTreeMap;

/// A config change, its words already expanded or unquoted.
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
    fn entrypoint_resets_cmd_and_env_overrides() {
        let mut cfg = ContainerConfig { cmd: Some(vec!["sh".into()]), ..ContainerConfig::default() };
        Change::Entrypoint(vec!["/init".into()]).apply(&mut cfg);
        assert_eq!(cfg.cmd, None);
        Change::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())]).apply(&mut cfg);
        Change::Env(vec![("A".into(), "3".into())]).apply(&mut cfg);
        assert_eq!(cfg.env.unwrap(), ["B=2", "A=3"]);
    }
}
