//! Image commands: import, load, save, images, history, tag, rmi, inspect,
//! image mount/unmount, info.

use super::format::{ago, ellipsis, human_size, Table};
use crate::digest::ImageId;
use crate::engine::Engine;
use crate::image::reference::Reference;
use crate::ops::image::import::ImportOptions;
use crate::ops::image::query::{self, HistoryRow};
use crate::ops::image::remove::Removed;
use crate::ops::system::IoEngineInfo;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instructions to the image's config (CMD, ENV, ...).
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message (history comment).
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Put the new layer on top of this local image (strata extension).
    #[arg(long)]
    base: Option<String>,
    /// A rootfs tar (plain, gzip or zstd), or - for standard input.
    /// May be omitted with --base and --change.
    file: Option<String>,
    /// REPOSITORY[:TAG] for the new image.
    reference: Option<String>,
}

/// `--change` values, each one Dockerfile instruction.
pub(crate) fn parse_changes(changes: &[String]) -> Result<Vec<crate::image::changes::Change>> {
    Ok(changes.iter().map(|c| crate::build::change::parse_change(c)).collect::<Result<_, _>>()?)
}

pub fn import(engine: &Engine, a: ImportArgs) -> Result<()> {
    let (file, reference) = match (a.file, a.reference) {
        // With --base, a lone argument that is not a readable file is the name.
        (Some(f), None) if a.base.is_some() && f != "-" && !std::path::Path::new(&f).exists() => (None, Some(f)),
        (f, r) => (f, r),
    };
    let reference = reference
        .map(|r| r.parse::<Reference>().with_context(|| format!("invalid reference format: {r}")))
        .transpose()?;
    let base = a.base.map(|b| engine.images.resolve(&b)).transpose()?;
    let opts = ImportOptions {
        base,
        changes: parse_changes(&a.change)?,
        message: a.message,
        source: file.clone().unwrap_or_else(|| "-".into()),
        created_by: None,
    };
    let id = match file.as_deref() {
        Some("-") => crate::ops::image::import::import(engine, Some(&mut std::io::stdin().lock()), &opts)?,
        Some(path) => {
            let mut f = std::fs::File::open(path).with_context(|| format!("open {path}"))?;
            crate::ops::image::import::import(engine, Some(&mut f), &opts)?
        }
        None => crate::ops::image::import::import(engine, None, &opts)?,
    };
    if let Some(r) = reference {
        engine.images.tag(&id, &r)?;
    }
    println!("{id}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from an OCI layout directory, an OCI archive or a docker-save tar.
    #[arg(short = 'i', long)]
    input: PathBuf,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn load(engine: &Engine, a: LoadArgs) -> Result<()> {
    let loaded =
        crate::ops::image::import::load(engine, &a.input).with_context(|| format!("load {}", a.input.display()))?;
    if !a.quiet {
        for l in loaded {
            if l.tags.is_empty() {
                println!("Loaded image ID: {}", l.id);
            }
            for t in l.tags {
                println!("Loaded image: {t}");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file (OCI layout tar).
    #[arg(short = 'o', long)]
    output: PathBuf,
    images: Vec<String>,
}

pub fn save(engine: &Engine, a: SaveArgs) -> Result<()> {
    if a.images.is_empty() {
        bail!("\"save\" requires at least 1 argument");
    }
    let mut which = Vec::new();
    for name in &a.images {
        let id = engine.images.resolve(name)?;
        let tag = name
            .parse::<Reference>()
            .ok()
            .filter(|r| engine.images.tags_of(&id).map(|t| t.contains(r)).unwrap_or(false));
        which.push((id, tag));
    }
    crate::ops::image::export::save(engine, &which, &a.output)
        .with_context(|| format!("save to {}", a.output.display()))?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show all images (by default untagged intermediate images, the
    /// parents a build leaves, are hidden).
    #[arg(short = 'a', long)]
    all: bool,
}

fn short_id(id: &ImageId, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.digest().short().to_owned()
    }
}

pub fn images(engine: &Engine, a: ImagesArgs) -> Result<()> {
    let rows = query::list(engine, a.all)?;
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in rows.iter().filter(|r| seen.insert(r.id.clone())) {
            println!("{}", short_id(&r.id, a.no_trunc));
        }
        return Ok(());
    }
    let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for r in rows {
        let (repo, tag) = match &r.reference {
            Some(r) => (r.name(), r.tag.clone().unwrap_or_else(|| "<none>".into())),
            None => ("<none>".into(), "<none>".into()),
        };
        t.row(vec![repo, tag, short_id(&r.id, a.no_trunc), ago(&r.created), human_size(r.size)]);
    }
    print!("{}", t.render());
    Ok(())
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    image: String,
}

pub fn history(engine: &Engine, a: HistoryArgs) -> Result<()> {
    let id = engine.images.resolve(&a.image)?;
    let img = engine.images.get(&id)?;
    let rows = query::history(engine, &img);
    let idcol =
        |r: &HistoryRow| r.image.as_ref().map(|i| short_id(i, a.no_trunc)).unwrap_or_else(|| "<missing>".into());
    if a.quiet {
        for r in rows.iter().rev() {
            println!("{}", idcol(r));
        }
        return Ok(());
    }
    let mut t = Table::new(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    for r in rows.iter().rev() {
        let by = r.created_by.replace('\t', " ");
        let by = if a.no_trunc { by } else { ellipsis(&by, 45) };
        let (created, size) =
            if a.human { (ago(&r.created), human_size(r.size)) } else { (r.created.clone(), r.size.to_string()) };
        t.row(vec![idcol(r), created, by, size, r.comment.clone()]);
    }
    print!("{}", t.render());
    Ok(())
}

#[derive(Debug, Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn tag(engine: &Engine, a: TagArgs) -> Result<()> {
    let id = engine.images.resolve(&a.source)?;
    let r: Reference = a.target.parse().with_context(|| format!("invalid reference format: {}", a.target))?;
    engine.images.tag(&id, &r)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of an image referenced by several tags.
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(engine: &Engine, a: RmiArgs) -> Result<()> {
    let mut failed = false;
    for name in &a.images {
        match crate::ops::image::remove::remove_image(engine, name, a.force) {
            Ok(lines) => {
                for l in lines {
                    match l {
                        Removed::Untagged(t) => println!("Untagged: {t}"),
                        Removed::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some images could not be removed");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    images: Vec<String>,
}

impl InspectArgs {
    pub fn names(&self) -> &[String] {
        &self.images
    }
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<()> {
    let mut out = Vec::new();
    for name in &a.images {
        let id = engine.images.resolve(name)?;
        out.push(query::inspect(engine, &engine.images.get(&id)?)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Mount an image's filesystem read-only and print the path.
    Mount {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Unmount images mounted with `image mount`.
    Unmount {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images.
    Ls(ImagesArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Display detailed information on images.
    Inspect(InspectArgs),
}

pub fn image(engine: &Engine, c: ImageCommand) -> Result<()> {
    match c {
        ImageCommand::Mount { images } => {
            for name in images {
                let id = engine.images.resolve(&name)?;
                println!("{}", crate::ops::image::mountpoint::mount_image(engine, &id)?.display());
            }
            Ok(())
        }
        ImageCommand::Unmount { images } => {
            for name in images {
                let id = engine.images.resolve(&name)?;
                crate::ops::image::mountpoint::unmount_image(engine, &id)?;
                println!("{}", id.digest().hex());
            }
            Ok(())
        }
        ImageCommand::Ls(a) => images(engine, a),
        ImageCommand::Rm(a) => rmi(engine, a),
        ImageCommand::History(a) => history(engine, a),
        ImageCommand::Inspect(a) => inspect(engine, a),
    }
}

pub fn info(engine: &Engine) -> Result<()> {
    let info = crate::ops::system::info(engine)?;
    println!("Storage Driver: {}", info.driver);
    for (k, v) in &info.driver_status {
        println!(" {k}: {v}");
    }
    match &info.io_engine {
        IoEngineInfo::Uring => println!("I/O Engine: io_uring (STRATA_IO=sync for the plain-syscall twin)"),
        IoEngineInfo::Sync { reason: Some(reason) } => println!("I/O Engine: sync ({reason})"),
        IoEngineInfo::Sync { reason: None } => println!("I/O Engine: sync"),
    }
    println!("Images: {}", info.images);
    println!("Snapshots: {}", info.snapshots);
    println!("Kernel Version: {}", info.kernel);
    println!("Operating System: {}", info.os);
    println!("Architecture: {}", info.arch);
    println!("Strata Root Dir: {}", info.root.display());
    Ok(())
}
