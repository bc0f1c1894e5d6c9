//! `strata volume …` and `strata system df`.

use super::format::{ago, human_size, Table};
use crate::container::store::ContainerStore;
use crate::container::Status;
use crate::engine::Engine;
use crate::volume::VolumeStore;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::{HashMap, HashSet};

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

/// Per container (short ID), the volumes it uses.
fn users(engine: &Engine) -> Result<Vec<(String, Vec<String>)>> {
    Ok(ContainerStore::new(&engine.root)
        .list()?
        .into_iter()
        .map(|(c, _)| {
            (
                c.id.short().to_owned(),
                c.mounts.iter().filter(|m| m.kind == "volume").map(|m| m.source.clone()).collect(),
            )
        })
        .collect())
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
            let mut out = Vec::new();
            for n in names {
                let v = store.get(&n)?;
                out.push(json!({
                    "CreatedAt": v.created_at,
                    "Driver": "local",
                    "Labels": v.labels,
                    "Mountpoint": store.data(&v.name),
                    "Name": v.name,
                    "Options": {},
                    "Scope": "local",
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Rm { names } => {
            let users = users(engine)?;
            let mut failed = false;
            for n in names {
                match store.remove(&n, &users) {
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
            let users = users(engine)?;
            let used: HashSet<String> = users.iter().flat_map(|(_, v)| v.iter().cloned()).collect();
            let mut reclaimed = 0;
            println!("Deleted Volumes:");
            for v in store.list()? {
                if used.contains(&v.name) || !(all || v.anonymous) {
                    continue;
                }
                reclaimed += store.usage(&v.name);
                store.remove(&v.name, &users)?;
                println!("{}", v.name);
            }
            println!("\nTotal reclaimed space: {}", human_size(reclaimed));
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
    let layers = engine.layers();
    let containers = ContainerStore::new(&engine.root).list()?;
    let volumes = VolumeStore::new(&engine.root);
    let mut images = Vec::new();
    for id in engine.images.list()? {
        if let Ok(img) = engine.images.get(&id) {
            images.push(img);
        }
    }
    let layer_size: HashMap<_, u64> = layers.list()?.into_iter().map(|l| (l.chain_id.clone(), l.size)).collect();
    let used_images: HashSet<String> = containers.iter().map(|(c, _)| c.image.clone()).collect();
    // How many images use each layer.
    let mut users: HashMap<_, usize> = HashMap::new();
    for img in &images {
        for c in img.chain_ids() {
            *users.entry(c).or_default() += 1;
        }
    }
    let total_images: u64 = users.keys().map(|c| layer_size.get(c).copied().unwrap_or(0)).sum();
    let active_layers: HashSet<_> =
        images.iter().filter(|i| used_images.contains(&i.id.to_string())).flat_map(|i| i.chain_ids()).collect();
    let reclaim_images: u64 =
        users.keys().filter(|c| !active_layers.contains(*c)).map(|c| layer_size.get(c).copied().unwrap_or(0)).sum();
    let sizes: Vec<(u64, bool)> = containers
        .iter()
        .map(|(c, s)| (crate::ops::container::lifecycle::sizes(engine, c, None).0, s.status == Status::Running))
        .collect();
    let total_c: u64 = sizes.iter().map(|(s, _)| s).sum();
    let reclaim_c: u64 = sizes.iter().filter(|(_, r)| !r).map(|(s, _)| s).sum();
    let vol_users: HashSet<String> = containers
        .iter()
        .flat_map(|(c, _)| c.mounts.iter().filter(|m| m.kind == "volume").map(|m| m.source.clone()))
        .collect();
    let vols = volumes.list()?;
    let vol_sizes: Vec<(String, u64)> = vols.iter().map(|v| (v.name.clone(), volumes.usage(&v.name))).collect();
    let total_v: u64 = vol_sizes.iter().map(|(_, s)| s).sum();
    let reclaim_v: u64 = vol_sizes.iter().filter(|(n, _)| !vol_users.contains(n)).map(|(_, s)| s).sum();
    if !a.verbose {
        let mut t = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
        let active_imgs = images.iter().filter(|i| used_images.contains(&i.id.to_string())).count();
        t.row(vec![
            "Images".into(),
            images.len().to_string(),
            active_imgs.to_string(),
            human_size(total_images),
            pct(reclaim_images, total_images),
        ]);
        t.row(vec![
            "Containers".into(),
            containers.len().to_string(),
            sizes.iter().filter(|(_, r)| *r).count().to_string(),
            human_size(total_c),
            pct(reclaim_c, total_c),
        ]);
        t.row(vec![
            "Local Volumes".into(),
            vols.len().to_string(),
            vol_sizes.iter().filter(|(n, _)| vol_users.contains(n)).count().to_string(),
            human_size(total_v),
            pct(reclaim_v, total_v),
        ]);
        t.row(vec!["Build Cache".into(), "0".into(), "0".into(), "0B".into(), "0B".into()]);
        print!("{}", t.render());
        return Ok(());
    }
    println!("Images space usage:\n");
    let tags = engine.images.tags()?;
    let mut t =
        Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]);
    for img in &images {
        let chains = img.chain_ids();
        let size: u64 = chains.iter().map(|c| layer_size.get(c).copied().unwrap_or(0)).sum();
        let shared: u64 = chains
            .iter()
            .filter(|c| users.get(*c).copied().unwrap_or(0) > 1)
            .map(|c| layer_size.get(c).copied().unwrap_or(0))
            .sum();
        let n = containers.iter().filter(|(c, _)| c.image == img.id.to_string()).count();
        let (repo, tag) = tags
            .iter()
            .find(|(_, i)| *i == img.id)
            .map(|(r, _)| (r.name(), r.tag.clone().unwrap_or_default()))
            .unwrap_or(("<none>".into(), "<none>".into()));
        let created = img.config.created.map(|c| c.to_rfc3339()).unwrap_or_default();
        t.row(vec![
            repo,
            tag,
            img.id.digest().short().to_owned(),
            ago(&created),
            human_size(size),
            human_size(shared),
            human_size(size - shared),
            n.to_string(),
        ]);
    }
    print!("{}", t.render());
    println!("\nContainers space usage:\n");
    let mut t =
        Table::new(&["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]);
    for ((c, s), (size, _)) in containers.iter().zip(&sizes) {
        t.row(vec![
            c.id.short().to_owned(),
            c.image_name.clone(),
            format!("\"{}\"", super::format::ellipsis(&c.args.join(" "), 20)),
            c.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
            human_size(*size),
            ago(&c.created),
            super::containers::status_text(s),
            c.name.clone(),
        ]);
    }
    print!("{}", t.render());
    println!("\nLocal Volumes space usage:\n");
    let mut t = Table::new(&["VOLUME NAME", "LINKS", "SIZE"]);
    for (n, s) in &vol_sizes {
        let links = containers.iter().filter(|(c, _)| c.mounts.iter().any(|m| &m.source == n)).count();
        t.row(vec![n.clone(), links.to_string(), human_size(*s)]);
    }
    print!("{}", t.render());
    Ok(())
}
