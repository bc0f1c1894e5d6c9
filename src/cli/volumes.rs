//! `strata volume …` and `strata system df`.

use super::format::{ago, human_size, Table};
use crate::engine::Engine;
use crate::ops::system;
use crate::ops::volume as volume_ops;
use crate::volume::VolumeStore;
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create { name: Option<String> },
    /// List volumes.
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Display detailed information on volumes.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused volumes (anonymous ones; all with -a).
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short = 'f', long)]
        force: bool,
    },
}

pub fn volume(engine: &Engine, c: VolumeCommand) -> Result<()> {
    let store = VolumeStore::new(&engine.root);
    match c {
        VolumeCommand::Create { name } => {
            println!("{}", store.create(name.as_deref())?.name);
        }
        VolumeCommand::Ls { quiet } => {
            let mut t = Table::new(&["DRIVER", "VOLUME NAME"]);
            for v in store.list()? {
                if quiet {
                    println!("{}", v.name);
                } else {
                    t.row(vec!["local".into(), v.name]);
                }
            }
            if !quiet {
                print!("{}", t.render());
            }
        }
        VolumeCommand::Inspect { names } => {
            let out = names.iter().map(|n| volume_ops::inspect(engine, n)).collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Rm { names } => {
            let mut failed = false;
            for (n, removed) in names.iter().zip(volume_ops::remove(engine, &names)?) {
                match removed {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some volumes could not be removed");
            }
        }
        VolumeCommand::Prune { all, force: _ } => {
            let pruned = volume_ops::prune(engine, all)?;
            println!("Deleted Volumes:");
            for v in &pruned.volumes {
                println!("{v}");
            }
            println!("\nTotal reclaimed space: {}", human_size(pruned.reclaimed));
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short = 'v', long)]
    verbose: bool,
}

fn pct(part: u64, whole: u64) -> String {
    match (part * 100).checked_div(whole) {
        None => "0B".into(),
        Some(p) => format!("{} ({p}%)", human_size(part)),
    }
}

/// `system df`: images (layers shared between images counted once),
/// containers' writable layers, volumes.
pub fn df(engine: &Engine, a: DfArgs) -> Result<()> {
    let du = system::df(engine)?;
    if !a.verbose {
        let mut t = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
        t.row(vec![
            "Images".into(),
            du.images.len().to_string(),
            du.images_active.to_string(),
            human_size(du.images_size),
            pct(du.images_reclaimable, du.images_size),
        ]);
        t.row(vec![
            "Containers".into(),
            du.containers.len().to_string(),
            du.containers_active().to_string(),
            human_size(du.containers_size()),
            pct(du.containers_reclaimable(), du.containers_size()),
        ]);
        t.row(vec![
            "Local Volumes".into(),
            du.volumes.len().to_string(),
            du.volumes_active().to_string(),
            human_size(du.volumes_size()),
            pct(du.volumes_reclaimable(), du.volumes_size()),
        ]);
        t.row(vec!["Build Cache".into(), "0".into(), "0".into(), "0B".into(), "0B".into()]);
        print!("{}", t.render());
        return Ok(());
    }
    println!("Images space usage:\n");
    let mut t =
        Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]);
    for img in &du.images {
        let (repo, tag) = img
            .reference
            .as_ref()
            .map(|r| (r.name(), r.tag.clone().unwrap_or_default()))
            .unwrap_or(("<none>".into(), "<none>".into()));
        t.row(vec![
            repo,
            tag,
            img.id.digest().short().to_owned(),
            ago(&img.created),
            human_size(img.size),
            human_size(img.shared),
            human_size(img.size - img.shared),
            img.containers.to_string(),
        ]);
    }
    print!("{}", t.render());
    println!("\nContainers space usage:\n");
    let mut t =
        Table::new(&["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]);
    for c in &du.containers {
        t.row(vec![
            c.config.id.short().to_owned(),
            c.config.image_name.clone(),
            format!("\"{}\"", super::format::ellipsis(&c.config.args.join(" "), 20)),
            c.volumes().to_string(),
            human_size(c.size),
            ago(&c.config.created),
            super::containers::status_text(&c.state),
            c.config.name.clone(),
        ]);
    }
    print!("{}", t.render());
    println!("\nLocal Volumes space usage:\n");
    let mut t = Table::new(&["VOLUME NAME", "LINKS", "SIZE"]);
    for v in &du.volumes {
        t.row(vec![v.name.clone(), v.links.to_string(), human_size(v.size)]);
    }
    print!("{}", t.render());
    Ok(())
}
