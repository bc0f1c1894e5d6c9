//! `strata build`: Docker's classic builder output over [`crate::build`].

use super::containers::ExitCode;
use crate::build::{build as run_build, BuildError, BuildOptions};
use crate::engine::Engine;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile').
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    no_cache: bool,
    /// Suppress the build output and print image ID on success.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Networking mode for the RUN instructions: none (default) or host.
    #[arg(long)]
    network: Option<String>,
    /// Accepted for habit: intermediate containers are always removed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    rm: bool,
    /// Accepted for habit (linux/amd64 only).
    #[arg(long)]
    platform: Option<String>,
    /// The build context directory.
    context: PathBuf,
}

pub fn build(engine: &Engine, a: BuildArgs) -> Result<()> {
    let _ = a.rm;
    if let Some(p) = &a.platform {
        if p != "linux/amd64" {
            return Err(
                ExitCode { code: 1, message: format!("platform {p:?} is not supported (linux/amd64 only)") }.into()
            );
        }
    }
    let mut build_args = Vec::new();
    for ba in &a.build_args {
        match ba.split_once('=') {
            Some((k, v)) => build_args.push((k.to_owned(), v.to_owned())),
            None => {
                if let Ok(v) = std::env::var(ba) {
                    build_args.push((ba.clone(), v));
                }
            }
        }
    }
    let opts = BuildOptions {
        context: a.context,
        dockerfile: a.file,
        tags: a.tags,
        build_args,
        target: a.target,
        no_cache: a.no_cache,
        quiet: a.quiet,
        network: a.network,
    };
    // Not locked: a RUN step's output relay writes to stdout from another thread.
    let mut out = std::io::stdout();
    // Docker's builder exits 1 for any failed build.
    run_build(engine, &opts, &mut out)
        .map(|_| ())
        .map_err(|e: BuildError| ExitCode { code: 1, message: e.to_string() }.into())
}
