//! `exec`: a new process in a running container's namespaces and cgroups,
//! with the container's environment, working directory and user unless
//! the caller overrides them.

use crate::container::records::{ContainerError, ContainerStore};
use crate::container::{ContainerId, Status};
use crate::engine::Engine;
use crate::runtime::{Container, Executed, StartError};

/// What `exec` runs and how.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries that replace or add to the container's.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// Errors before the process runs.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::ExecError),
}

/// The container's environment with `overrides` applied: an override's
/// key replaces the container's entry, a new key is appended.
pub fn merged_env(container: &[String], overrides: &[String]) -> Vec<String> {
    let mut env = container.to_vec();
    for e in overrides {
        if let Some((k, _)) = e.split_once('=') {
            env.retain(|x| !x.starts_with(&format!("{k}=")));
            env.push(e.clone());
        }
    }
    env
}

/// Runs `options.args` in the running container `id` and returns its exit code.
pub fn exec(engine: &Engine, id: &ContainerId, options: &ExecOptions) -> Result<i32, ExecError> {
    let (config, state) = ContainerStore::new(&engine.root).get(id)?;
    if state.status != Status::Running {
        return Err(ExecError::NotRunning(id.short().to_owned()));
    }
    let ctr = match Container::load(&engine.root.runtime_state(), id.as_str()) {
        Ok(c) => c,
        Err(crate::runtime::ExecError::NotFound(_)) => return Err(ExecError::NotRunning(id.short().to_owned())),
        Err(e) => return Err(e.into()),
    };
    let process = super::spec::process(
        &config,
        options.args.clone(),
        merged_env(&config.env, &options.env),
        options.workdir.clone().unwrap_or_else(|| config.working_dir.clone()),
        false,
    );
    let opts = crate::runtime::ExecOptions {
        process,
        user_name: Some(options.user.clone().unwrap_or(config.user)),
        ..crate::runtime::ExecOptions::default()
    };
    match crate::runtime::exec(&ctr, opts) {
        Ok(Executed::Exited(code)) | Ok(Executed::Running(code)) => Ok(code),
        Err(crate::runtime::ExecError::Start(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exec_env_overrides_replace_by_key_and_append_new_keys() {
        let container = ["PATH=/bin".to_owned(), "A=1".to_owned()];
        let got = super::merged_env(&container, &["A=2".to_owned(), "B=3".to_owned(), "junk".to_owned()]);
        assert_eq!(got, ["PATH=/bin", "A=2", "B=3"]);
    }
}
