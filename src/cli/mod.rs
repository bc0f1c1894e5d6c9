//! The command line: Docker's commands and output, over the library.
//!
//! **Architecture invariant:** no storage logic lives here. Each command
//! parses its arguments, calls one library operation and formats the
//! result the way Docker does, so people's habits carry over.

mod bench;
mod format;
mod images;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// strata: container storage engine and minimal runtime.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Data root directory.
    #[arg(long, global = true, env = "STRATA_ROOT", default_value = crate::store::DEFAULT_ROOT)]
    root: PathBuf,
    /// Storage driver: overlay or copy.
    #[arg(short = 's', long, global = true, env = "STRATA_STORAGE_DRIVER", default_value = "overlay")]
    storage_driver: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Display system-wide information.
    Info,
    /// Measure strata against its peers (tar, cp, sha256sum, openssl).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            125
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Benchmarks bring their own scratch filesystems: no data root.
    let command = match cli.command {
        Command::Bench(c) => return bench::bench(c),
        c => c,
    };
    let engine = crate::engine::Engine::open(&cli.root, &cli.storage_driver)
        .with_context(|| format!("opening data root {}", cli.root.display()))?;
    match command {
        Command::Import(a) => images::import(&engine, a),
        Command::Load(a) => images::load(&engine, a),
        Command::Save(a) => images::save(&engine, a),
        Command::Images(a) => images::images(&engine, a),
        Command::History(a) => images::history(&engine, a),
        Command::Tag(a) => images::tag(&engine, a),
        Command::Rmi(a) => images::rmi(&engine, a),
        Command::Inspect(a) => images::inspect(&engine, a),
        Command::Image(c) => images::image(&engine, c),
        Command::Info => images::info(&engine),
        Command::Bench(_) => unreachable!("dispatched before the engine is opened"),
    }
}
