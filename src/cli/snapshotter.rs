//! `strata snapshotter serve`: strata's drivers as a containerd proxy
//! snapshotter (see [`crate::proxy`]).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// Where the service listens unless `--address` says otherwise.
pub const DEFAULT_ADDRESS: &str = "/run/strata/snapshotter.sock";

#[derive(Debug, Subcommand)]
pub enum SnapshotterCommand {
    /// Serve containerd's snapshots gRPC API on a unix socket.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket to listen on (containerd's `proxy_plugins` address).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    address: PathBuf,
    /// Storage driver: overlay, copy, btrfs or dmthin (default: --storage-driver).
    #[arg(short = 's', long = "snapshotter")]
    driver: Option<String>,
}

pub fn snapshotter(root: &Path, default_driver: &str, c: SnapshotterCommand) -> Result<()> {
    let SnapshotterCommand::Serve(a) = c;
    let driver = a.driver.as_deref().unwrap_or(default_driver);
    let store = crate::proxy::open(root, driver)
        .with_context(|| format!("opening the {driver} snapshotter under {}", root.display()))?;
    crate::proxy::serve(store, &a.address)?;
    Ok(())
}
