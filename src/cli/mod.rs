//! The command line: Docker's commands and output, over the library.
//!
//! **Architecture invariant:** no storage logic lives here. Each command
//! parses its arguments, calls one library operation and formats the
//! result the way Docker does, so people's habits carry over.

mod bench;
mod build;
mod containers;
mod distribution;
mod format;
mod images;
mod snapshotter;
mod volumes;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// strata: container storage engine and minimal runtime.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Data root directory.
    #[arg(long, global = true, env = "STRATA_ROOT", default_value = crate::root::DEFAULT_ROOT)]
    root: PathBuf,
    /// Storage driver: overlay, copy, btrfs or dmthin.
    #[arg(long, global = true, env = "STRATA_STORAGE_DRIVER", default_value = "overlay")]
    storage_driver: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Load images from an OCI layout (dir or tar) or a docker-save archive.
    Load(images::LoadArgs),
    /// Save images to an OCI layout tar archive.
    Save(images::SaveArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Show the history of an image.
    History(images::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Return low-level information on images.
    Inspect(images::InspectArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Download an image from a registry.
    Pull(distribution::PullArgs),
    /// Upload an image to a registry.
    Push(distribution::PushArgs),
    /// Log in to a registry.
    Login(distribution::LoginArgs),
    /// Log out from a registry.
    Logout(distribution::LogoutArgs),
    /// Display system-wide information.
    Info,
    /// Create a new container.
    #[command(disable_help_flag = true)]
    Create(containers::CreateArgs),
    /// Create and run a new container from an image.
    #[command(disable_help_flag = true)]
    Run(containers::RunArgs),
    /// Start one or more stopped containers.
    Start(containers::NamesArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Execute a command in a running container.
    Exec(containers::ExecArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(containers::NamesArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(containers::NameArg),
    /// Create a new image from a container's changes.
    Commit(containers::CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export(containers::ExportArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(containers::CpArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage strata.
    #[command(subcommand)]
    System(SystemCommand),
    /// Measure strata against its peers (tar, cp, sha256sum, openssl).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve strata's drivers to containerd (a proxy snapshotter).
    #[command(subcommand)]
    Snapshotter(snapshotter::SnapshotterCommand),
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Show strata disk usage.
    Df(volumes::DfArgs),
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<containers::ExitCode>() {
            Some(x) => {
                if !x.message.is_empty() {
                    eprintln!("Error: {}", x.message);
                }
                x.code
            }
            None => {
                eprintln!("Error: {}", error_line(&e));
                125
            }
        },
    }
}

/// An error and its causes on one line, as `{:#}` prints them but each
/// cause once: strata's errors show their source in their own message
/// (`{path}: {source}`) and keep it as their `source()` too, so a cause
/// the line already ends with is not repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn open_engine(root: &std::path::Path, driver: &str) -> anyhow::Result<crate::engine::Engine> {
    crate::engine::Engine::open(root, driver).with_context(|| format!("opening data root {}", root.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Benchmarks bring their own scratch filesystems: no data root.
    let command = match cli.command {
        Command::Bench(c) => return bench::bench(c),
        // The service keeps its snapshots apart from the engine's.
        Command::Snapshotter(c) => return snapshotter::snapshotter(&cli.root, &cli.storage_driver, c),
        c => c,
    };
    // Commands whose processes enter containers run from a read-only
    // mount of this binary (see `sys::selfexe`): no container can write
    // strata through `/proc/<pid>/exe` (CVE-2019-5736), `--init`'s PID 1
    // included.
    if matches!(
        command,
        Command::Run(_) | Command::Start(_) | Command::Restart(_) | Command::Exec(_) | Command::Build(_)
    ) {
        // With --init the container's PID 1 is a strata process: run
        // from a sealed memfd copy, so it is not the host's file at all.
        let init = match &command {
            Command::Run(a) => a.init(),
            Command::Start(a) => containers::any_init(&open_engine(&cli.root, &cli.storage_driver)?, a.names()),
            Command::Restart(a) => containers::any_init(&open_engine(&cli.root, &cli.storage_driver)?, a.names()),
            _ => false,
        };
        if init {
            crate::sys::selfexe::reexec_sealed_copy().context("re-executing from a sealed copy of strata")?;
        } else {
            crate::sys::selfexe::reexec_protected().context("re-executing from a read-only mount of strata")?;
        }
    }
    let engine = open_engine(&cli.root, &cli.storage_driver)?;
    match command {
        Command::Build(a) => build::build(&engine, a),
        Command::Import(a) => images::import(&engine, a),
        Command::Load(a) => images::load(&engine, a),
        Command::Save(a) => images::save(&engine, a),
        Command::Images(a) => images::images(&engine, a),
        Command::History(a) => images::history(&engine, a),
        Command::Tag(a) => images::tag(&engine, a),
        Command::Rmi(a) => images::rmi(&engine, a),
        Command::Inspect(a) => inspect(&engine, a),
        Command::Image(c) => images::image(&engine, c),
        Command::Info => images::info(&engine),
        Command::Pull(a) => distribution::pull(&engine, a),
        Command::Push(a) => distribution::push(&engine, a),
        Command::Login(a) => distribution::login(&engine, a),
        Command::Logout(a) => distribution::logout(&engine, a),
        Command::Create(a) => containers::create(&engine, a),
        Command::Run(a) => containers::run(&engine, a),
        Command::Start(a) => containers::start(&engine, a),
        Command::Stop(a) => containers::stop(&engine, a),
        Command::Restart(a) => containers::restart(&engine, a),
        Command::Kill(a) => containers::kill(&engine, a),
        Command::Rm(a) => containers::rm(&engine, a),
        Command::Ps(a) => containers::ps(&engine, a),
        Command::Logs(a) => containers::logs(&engine, a),
        Command::Exec(a) => containers::exec(&engine, a),
        Command::Wait(a) => containers::wait(&engine, a),
        Command::Diff(a) => containers::diff(&engine, a),
        Command::Commit(a) => containers::commit(&engine, a),
        Command::Export(a) => containers::export(&engine, a),
        Command::Cp(a) => containers::cp(&engine, a),
        Command::Volume(c) => volumes::volume(&engine, c),
        Command::System(SystemCommand::Df(a)) => volumes::df(&engine, a),
        Command::Bench(_) | Command::Snapshotter(_) => unreachable!("dispatched before the engine is opened"),
    }
}

/// `inspect`: containers first (by name, ID or prefix), then images, as
/// Docker resolves it.
fn inspect(engine: &crate::engine::Engine, a: images::InspectArgs) -> anyhow::Result<()> {
    /// One document of the output array: a container's or an image's.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Inspected {
        Container(Box<crate::ops::container::query::ContainerInspect>),
        Image(Box<crate::ops::image::query::ImageInspect>),
    }
    let store = crate::container::ContainerStore::new(&engine.root);
    let mut out = Vec::new();
    for name in a.names() {
        if let Ok(id) = store.resolve(name) {
            let (c, s) = store.get(&id)?;
            out.push(Inspected::Container(Box::new(crate::ops::container::query::inspect(engine, &c, &s))));
        } else {
            let id = engine.images.resolve(name)?;
            let img = engine.images.get(&id)?;
            out.push(Inspected::Image(Box::new(crate::ops::image::query::inspect(engine, &img)?)));
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("data root {path}: {source}")]
    struct Failed {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn an_error_line_shows_each_cause_once() {
        let e = Failed { path: "/r/locks".into(), source: std::io::Error::from_raw_os_error(2) };
        let e = anyhow::Error::new(e).context("opening data root /r");
        assert_eq!(
            super::error_line(&e),
            "opening data root /r: data root /r/locks: No such file or directory (os error 2)"
        );
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(super::error_line(&e), "outer: middle: inner");
    }
}
