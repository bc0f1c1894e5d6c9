//! Image commands: import, load, save, images, history, tag, rmi, inspect,
//! image mount/unmount, info.

use super::format::{ago, ellipsis, human_size, Table};
use crate::digest::ImageId;
use crate::engine::Engine;
use crate::image::import::ImportOptions;
use crate::image::reference::Reference;
use crate::image::remove::Removed;
use crate::image::store::Image;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
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
        Some("-") => crate::image::import::import(engine, Some(&mut std::io::stdin().lock()), &opts)?,
        Some(path) => {
            let mut f = std::fs::File::open(path).with_context(|| format!("open {path}"))?;
            crate::image::import::import(engine, Some(&mut f), &opts)?
        }
        None => crate::image::import::import(engine, None, &opts)?,
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
    let loaded = crate::image::import::load(engine, &a.input).with_context(|| format!("load {}", a.input.display()))?;
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
    crate::image::export::save(engine, &which, &a.output).with_context(|| format!("save to {}", a.output.display()))?;
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

/// Docker's image size: the sum of the layers' content sizes.
fn image_size(engine: &Engine, img: &Image) -> u64 {
    let layers = engine.layers();
    img.chain_ids().iter().filter_map(|c| layers.get(c).ok().flatten()).map(|l| l.size).sum()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn short_id(id: &ImageId, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.digest().short().to_owned()
    }
}

pub fn images(engine: &Engine, a: ImagesArgs) -> Result<()> {
    let tags = engine.images.tags()?;
    let mut rows: Vec<(String, String, String, String, u64, String)> = Vec::new();
    let all: Vec<_> = engine.images.list()?.into_iter().filter_map(|id| engine.images.get(&id).ok()).collect();
    let parents: std::collections::HashSet<&ImageId> = all.iter().filter_map(|i| i.meta.parent.as_ref()).collect();
    for img in &all {
        let id = img.id.clone();
        let tagged = tags.iter().any(|(_, i)| *i == id);
        if !a.all && !tagged && parents.contains(&id) {
            continue;
        }
        let created = img.config.created.map(rfc3339).unwrap_or_default();
        let size = image_size(engine, img);
        let mine: Vec<&Reference> = tags.iter().filter(|(_, i)| *i == id).map(|(r, _)| r).collect();
        if mine.is_empty() {
            rows.push((
                "<none>".into(),
                "<none>".into(),
                short_id(&id, a.no_trunc),
                created.clone(),
                size,
                created.clone(),
            ));
        }
        for r in mine {
            let tag = r.tag.clone().unwrap_or_else(|| "<none>".into());
            rows.push((r.name(), tag, short_id(&id, a.no_trunc), created.clone(), size, created.clone()));
        }
    }
    rows.sort_by(|x, y| y.5.cmp(&x.5).then(x.0.cmp(&y.0)).then(x.1.cmp(&y.1)));
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in rows.into_iter().filter(|r| seen.insert(r.2.clone())) {
            println!("{}", r.2);
        }
        return Ok(());
    }
    let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for (repo, tag, id, created, size, _) in rows {
        t.row(vec![repo, tag, id, ago(&created), human_size(size)]);
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

/// One row of `history`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub image: Option<ImageId>,
    pub created: String,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// The rows `docker history` shows: one per history entry, sizes from the
/// layers the non-empty entries made, local image IDs where an image of
/// the parent chain ends.
pub fn history_rows(engine: &Engine, img: &Image) -> Result<Vec<HistoryRow>> {
    let layers = engine.layers();
    let chains = img.chain_ids();
    let mut rows = Vec::new();
    let mut layer_idx = 0;
    for h in img.config.history.as_deref().unwrap_or_default() {
        let size = if h.empty_layer {
            0
        } else {
            let s = chains.get(layer_idx).and_then(|c| layers.get(c).ok().flatten()).map(|l| l.size).unwrap_or(0);
            layer_idx += 1;
            s
        };
        rows.push(HistoryRow {
            image: None,
            created: h.created.map(rfc3339).unwrap_or_default(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size,
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    // Mark the rows where a local image of the parent chain ends.
    let mut cur = Some(img.clone());
    while let Some(i) = cur {
        let n = i.config.history.as_ref().map_or(0, Vec::len);
        if n > 0 && n <= rows.len() && rows[n - 1].image.is_none() {
            rows[n - 1].image = Some(i.id.clone());
        }
        cur = i.meta.parent.as_ref().and_then(|p| engine.images.get(p).ok());
    }
    if let Some(last) = rows.last_mut() {
        last.image = Some(img.id.clone());
    }
    Ok(rows)
}

pub fn history(engine: &Engine, a: HistoryArgs) -> Result<()> {
    let id = engine.images.resolve(&a.image)?;
    let img = engine.images.get(&id)?;
    let rows = history_rows(engine, &img)?;
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
        match crate::image::remove::remove_image(engine, name, a.force) {
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

pub fn inspect_json(engine: &Engine, img: &Image) -> Result<serde_json::Value> {
    let raw: serde_json::Value = serde_json::from_slice(&img.config_bytes)?;
    let tags: Vec<String> = engine.images.tags_of(&img.id)?.iter().map(ToString::to_string).collect();
    let layers = engine.layers();
    let top = img.top_chain().and_then(|c| layers.get(&c).ok().flatten());
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": [],
        "Parent": img.meta.parent.as_ref().map(ToString::to_string).unwrap_or_default(),
        "Comment": img.config.history.as_ref().and_then(|h| h.last()).and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": raw.get("created").cloned().unwrap_or_default(),
        "Author": raw.get("author").cloned().unwrap_or_default(),
        "Config": raw.get("config").cloned().unwrap_or(json!({})),
        "Architecture": raw.get("architecture").cloned().unwrap_or_default(),
        "Os": raw.get("os").cloned().unwrap_or_default(),
        "Size": image_size(engine, img),
        "GraphDriver": {
            "Name": engine.snapshots.driver_name(),
            "Data": {"TopLayer": top.map(|l| l.chain_id.to_string()), "Snapshot": img.top_chain().map(|c| c.to_string())},
        },
        "RootFS": {"Type": "layers", "Layers": img.config.rootfs.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": img.meta.created_at, "Manifest": img.meta.manifest.to_string()},
    }))
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<()> {
    let mut out = Vec::new();
    for name in &a.images {
        let id = engine.images.resolve(name)?;
        out.push(inspect_json(engine, &engine.images.get(&id)?)?);
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
                println!("{}", crate::image::mount::mount_image(engine, &id)?.display());
            }
            Ok(())
        }
        ImageCommand::Unmount { images } => {
            for name in images {
                let id = engine.images.resolve(&name)?;
                crate::image::mount::unmount_image(engine, &id)?;
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
    let images = engine.images.list()?.len();
    let mut layers = 0;
    engine.snapshots.walk(|_| layers += 1)?;
    println!("Storage Driver: {}", engine.snapshots.driver_name());
    for (k, v) in engine.snapshots.driver().status() {
        println!(" {k}: {v}");
    }
    let io = crate::uring::Engine::new();
    match (io.kind(), io.sync_reason()) {
        (crate::uring::EngineKind::Uring, _) => {
            println!("I/O Engine: io_uring (STRATA_IO=sync for the plain-syscall twin)")
        }
        (_, Some(reason)) => println!("I/O Engine: sync ({reason})"),
        (_, None) => println!("I/O Engine: sync"),
    }
    println!("Images: {images}");
    println!("Snapshots: {layers}");
    let uname = rustix::system::uname();
    println!("Kernel Version: {}", uname.release().to_string_lossy());
    println!("Operating System: {}", os_name());
    println!("Architecture: {}", std::env::consts::ARCH);
    println!("Strata Root Dir: {}", engine.root.path().display());
    Ok(())
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| "Linux".into())
}
