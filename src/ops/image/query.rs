//! What `images`, `history` and `inspect` show, as typed results: sizes
//! from the layer store (never walked), history rows matched to local
//! images, and Docker's inspect document. The CLI only formats them.

use crate::digest::ImageId;
use crate::engine::Engine;
use crate::image::images::{Image, ImageError};
use crate::image::reference::Reference;
use crate::time::rfc3339;
use serde::Serialize;
use std::collections::HashSet;

/// Docker's image size: the sum of the layers' content sizes.
pub fn size(engine: &Engine, img: &Image) -> u64 {
    let layers = engine.layers();
    img.chain_ids().iter().filter_map(|c| layers.get(c).ok().flatten()).map(|l| l.size).sum()
}

/// One row of `images`: one per tag, or one `<none>` row for an untagged
/// image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// `None` for an untagged image (`<none>`).
    pub reference: Option<Reference>,
    pub id: ImageId,
    /// RFC 3339, empty when the config has no time.
    pub created: String,
    pub size: u64,
}

/// The rows of `images`, newest first, then by name. Untagged images that
/// are the parent of another (the steps a build leaves) are listed only
/// with `all`, as Docker hides intermediate images.
pub fn list(engine: &Engine, all: bool) -> Result<Vec<ImageRow>, ImageError> {
    let tags = engine.images.tags()?;
    let images: Vec<Image> = engine.images.list()?.into_iter().filter_map(|id| engine.images.get(&id).ok()).collect();
    let parents: HashSet<&ImageId> = images.iter().filter_map(|i| i.meta.parent.as_ref()).collect();
    let mut rows = Vec::new();
    for img in &images {
        let mine: Vec<&Reference> = tags.iter().filter(|(_, i)| *i == img.id).map(|(r, _)| r).collect();
        if !all && mine.is_empty() && parents.contains(&img.id) {
            continue;
        }
        let created = img.config.created.map(rfc3339).unwrap_or_default();
        let size = size(engine, img);
        if mine.is_empty() {
            rows.push(ImageRow { reference: None, id: img.id.clone(), created: created.clone(), size });
        }
        for r in mine {
            rows.push(ImageRow { reference: Some(r.clone()), id: img.id.clone(), created: created.clone(), size });
        }
    }
    let none = || "<none>".to_owned();
    let name = |r: &ImageRow| {
        r.reference.as_ref().map_or_else(|| (none(), none()), |r| (r.name(), r.tag.clone().unwrap_or_else(none)))
    };
    rows.sort_by(|x, y| y.created.cmp(&x.created).then_with(|| name(x).cmp(&name(y))));
    Ok(rows)
}

/// One row of `history`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The local image whose last history entry this is, if any
    /// (`<missing>` otherwise).
    pub image: Option<ImageId>,
    pub created: String,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// The rows `docker history` shows: one per history entry, sizes from the
/// layers the non-empty entries made, local image IDs where an image of
/// the parent chain ends.
pub fn history(engine: &Engine, img: &Image) -> Vec<HistoryRow> {
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
    rows
}

/// `docker image inspect`'s document for one image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    /// As the image config has it (a string, or null when absent).
    pub created: serde_json::Value,
    pub author: serde_json::Value,
    /// The config's `config` object, verbatim: fields strata does not
    /// model are shown as the image carries them.
    pub config: serde_json::Value,
    pub architecture: serde_json::Value,
    pub os: serde_json::Value,
    pub size: u64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub rootfs: RootFs,
    pub metadata: ImageMetadata,
}

/// Where the image's files are: the driver and its top snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: GraphDriverData,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriverData {
    pub top_layer: Option<String>,
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: String,
    pub manifest: String,
}

/// The inspect document of `img`.
pub fn inspect(engine: &Engine, img: &Image) -> Result<ImageInspect, ImageError> {
    let raw: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap_or_default();
    let field = |name: &str| raw.get(name).cloned().unwrap_or_default();
    let layers = engine.layers();
    let top = img.top_chain().and_then(|c| layers.get(&c).ok().flatten());
    Ok(ImageInspect {
        id: img.id.to_string(),
        repo_tags: engine.images.tags_of(&img.id)?.iter().map(ToString::to_string).collect(),
        repo_digests: Vec::new(),
        parent: img.meta.parent.as_ref().map(ToString::to_string).unwrap_or_default(),
        comment: img.config.history.as_ref().and_then(|h| h.last()).and_then(|h| h.comment.clone()).unwrap_or_default(),
        created: field("created"),
        author: field("author"),
        config: raw.get("config").cloned().unwrap_or_else(|| serde_json::Value::Object(Default::default())),
        architecture: field("architecture"),
        os: field("os"),
        size: size(engine, img),
        graph_driver: GraphDriver {
            name: engine.snapshots.driver_name().to_owned(),
            data: GraphDriverData {
                top_layer: top.map(|l| l.chain_id.to_string()),
                snapshot: img.top_chain().map(|c| c.to_string()),
            },
        },
        rootfs: RootFs {
            kind: "layers".into(),
            layers: img.config.rootfs.diff_ids.iter().map(ToString::to_string).collect(),
        },
        metadata: ImageMetadata { last_tag_time: img.meta.created_at.clone(), manifest: img.meta.manifest.to_string() },
    })
}
