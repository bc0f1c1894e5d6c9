//! One instruction: its canonical text (history `created_by` and cache
//! key), the cache lookup, and on a miss the work and the commit.

use super::context::{heredoc_tar, Attrs, Source, Tree};
use super::executor::{Builder, StageState};
use super::layer::{self, RunSpec};
use super::parser::{Command, CopySpec, Healthcheck, Instruction, Kind};
use super::BuildError;
use crate::container::validate;
use crate::image::changes::Change;
use crate::image::layers::EXTRACT_PREFIX;
use crate::image::oci::HealthConfig;
use crate::mount::TempMount;
use crate::root::{IoError, IoResultExt};
use crate::snapshot::SnapshotKey;
use std::path::PathBuf;

fn nop(body: &str) -> String {
    format!("/bin/sh -c #(nop)  {body}")
}

/// `["a" "b"]`, as Docker prints commands in history.
fn go_list(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|s| serde_json::to_string(s).expect("string")).collect();
    format!("[{}]", q.join(" "))
}

/// Runs one instruction of a stage.
pub(super) fn step(
    builder: &mut Builder<'_>,
    stage: &mut StageState,
    instruction: &Instruction,
) -> Result<(), BuildError> {
    match &instruction.kind {
        Kind::From { .. } => Err(BuildError::Invalid("FROM inside a stage".into())),
        Kind::Arg(list) => {
            let mut shown = Vec::new();
            for (name, default) in list {
                let default = match default {
                    Some(d) => Some(builder.expand(stage, d)?),
                    None => None,
                };
                let value = match builder.build_args.get(name) {
                    Some(v) => {
                        builder.used_args.insert(name.clone());
                        Some(v.clone())
                    }
                    // A global ARG re-declared without a default takes the global value.
                    None => default.clone().or_else(|| builder.global_args.get(name).cloned().flatten()),
                };
                shown.push(match &default {
                    Some(d) => format!("{name}={d}"),
                    None => name.clone(),
                });
                stage.args.insert(name.clone(), value);
            }
            let text = nop(&format!("ARG {}", shown.join(" ")));
            meta(builder, stage, &text, |_| Ok(()))
        }
        Kind::Env(pairs) => {
            let mut p = Vec::new();
            for (k, v) in pairs {
                let (k, v) = (builder.expand(stage, k)?, builder.expand(stage, v)?);
                validate::env_entry(&format!("{k}={v}"), None).map_err(|e| BuildError::Invalid(e.to_string()))?;
                p.push((k, v));
            }
            change(builder, stage, Change::Env(p))
        }
        Kind::Label(pairs) => {
            let mut p = Vec::new();
            for (k, v) in pairs {
                let k = builder.expand(stage, k)?;
                validate::label_key(&k).map_err(|e| BuildError::Invalid(e.to_string()))?;
                p.push((k, builder.expand(stage, v)?));
            }
            change(builder, stage, Change::Label(p))
        }
        Kind::Expose(ports) => {
            let mut p = Vec::new();
            for port in ports {
                let port = builder.expand(stage, port)?;
                p.push(if port.contains('/') { port } else { format!("{port}/tcp") });
            }
            change(builder, stage, Change::Expose(p))
        }
        Kind::Volume(v) => {
            let v = v.iter().map(|x| builder.expand(stage, x)).collect::<Result<Vec<_>, _>>()?;
            change(builder, stage, Change::Volume(v))
        }
        Kind::User(u) => {
            let u = builder.expand(stage, u)?;
            change(builder, stage, Change::User(u))
        }
        Kind::StopSignal(s) => {
            let s = builder.expand(stage, s)?;
            change(builder, stage, Change::StopSignal(s))
        }
        Kind::Cmd(c) => {
            let c = Builder::command(stage, c);
            change(builder, stage, Change::Cmd(c))
        }
        Kind::Entrypoint(c) => {
            let c = Builder::command(stage, c);
            change(builder, stage, Change::Entrypoint(c))
        }
        Kind::Shell(v) => {
            let text = nop(&format!("SHELL {}", go_list(v)));
            let v = v.clone();
            meta(builder, stage, &text, move |stage| {
                stage.w.inner().shell = Some(v);
                Ok(())
            })
        }
        Kind::Maintainer(m) => {
            let text = nop(&format!("MAINTAINER {m}"));
            let m = m.clone();
            meta(builder, stage, &text, move |stage| {
                stage.w.config.author = Some(m);
                Ok(())
            })
        }
        Kind::Healthcheck(h) => {
            let health = healthcheck(h.as_ref())?;
            // The step text shows the config as JSON with sorted keys.
            let shown = serde_json::to_value(&health).expect("a health config serializes");
            let text = nop(&format!("HEALTHCHECK {shown}"));
            meta(builder, stage, &text, move |stage| {
                stage.w.inner().healthcheck = Some(health);
                Ok(())
            })
        }
        Kind::Onbuild(_) => {
            let trigger = instruction.original.trim();
            let trigger = trigger.get(7..).unwrap_or("").trim().to_owned();
            let text = nop(&format!("ONBUILD {trigger}"));
            meta(builder, stage, &text, move |stage| {
                stage.w.inner().on_build.get_or_insert_with(Vec::new).push(trigger);
                Ok(())
            })
        }
        Kind::Workdir(d) => workdir(builder, stage, d),
        Kind::Run { cmd, flags, heredocs } => run(builder, stage, cmd, flags, heredocs),
        Kind::Copy(spec) => copy(builder, stage, spec, false),
        Kind::Add(spec) => copy(builder, stage, spec, true),
    }
}

/// A metadata-only step: an empty-layer history entry.
fn meta(
    builder: &mut Builder<'_>,
    stage: &mut StageState,
    text: &str,
    apply: impl FnOnce(&mut StageState) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    if builder.cached(stage, text)? {
        return Ok(());
    }
    apply(stage)?;
    builder.commit(stage, text, text, None)
}

fn change(builder: &mut Builder<'_>, stage: &mut StageState, change: Change) -> Result<(), BuildError> {
    let text = change.created_by();
    meta(builder, stage, &text, move |stage| {
        change.apply(stage.w.inner());
        Ok(())
    })
}

fn duration_ns(flags: &[(String, String)], name: &str) -> Result<Option<i64>, BuildError> {
    let Some((_, v)) = flags.iter().find(|(k, _)| k == name) else { return Ok(None) };
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len()));
    let n: f64 = num.parse().map_err(|_| BuildError::Invalid(format!("--{name}={v}: not a duration")))?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return Err(BuildError::Invalid(format!("--{name}={v}: unknown unit {unit:?}"))),
    };
    #[allow(clippy::cast_possible_truncation)]
    Ok(Some((n * scale) as i64))
}

fn healthcheck(h: Option<&Healthcheck>) -> Result<HealthConfig, BuildError> {
    let Some(h) = h else { return Ok(HealthConfig { test: Some(vec!["NONE".to_owned()]), ..HealthConfig::default() }) };
    let test = match &h.cmd {
        Command::Exec(v) => std::iter::once("CMD".to_owned()).chain(v.iter().cloned()).collect::<Vec<_>>(),
        Command::Shell(s) => vec!["CMD-SHELL".to_owned(), s.clone()],
    };
    let retries = match h.flags.iter().find(|(k, _)| k == "retries") {
        Some((_, r)) => {
            Some(r.parse::<i64>().map_err(|_| BuildError::Invalid(format!("--retries={r}: not a number")))?)
        }
        None => None,
    };
    Ok(HealthConfig {
        test: Some(test),
        interval: duration_ns(&h.flags, "interval")?,
        timeout: duration_ns(&h.flags, "timeout")?,
        start_period: duration_ns(&h.flags, "start-period")?,
        retries,
        ..HealthConfig::default()
    })
}

/// `path` made absolute against the stage's working directory.
fn absolute(stage: &StageState, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let wd = stage.w.working_dir().unwrap_or_else(|| "/".into());
    format!("{}/{path}", wd.trim_end_matches('/'))
}

fn workdir(builder: &mut Builder<'_>, stage: &mut StageState, written: &str) -> Result<(), BuildError> {
    let path = builder.expand(stage, written)?;
    let path = absolute(stage, &path);
    let text = format!("/bin/sh -c #(nop) WORKDIR {path}");
    if builder.cached(stage, &text)? {
        return Ok(());
    }
    // The directory is created (as Docker does) when the image lacks it;
    // then the step has a layer, else it is metadata only.
    let parent = stage.w.top_chain();
    let dir = path.clone();
    let layer = layer::in_snapshot(builder.engine, parent.as_ref(), move |_, root| {
        if layer::is_dir(root, &dir) {
            return Ok(false);
        }
        layer::mkdir_p(root, &dir, None)?;
        Ok(true)
    })?;
    stage.w.inner().working_dir = Some(path);
    builder.commit(stage, &text, &text, layer.as_ref())
}

fn run(
    builder: &mut Builder<'_>,
    stage: &mut StageState,
    cmd: &Command,
    flags: &[(String, String)],
    heredocs: &[super::parser::Heredoc],
) -> Result<(), BuildError> {
    let mut network = builder.opts.network.clone().unwrap_or_else(|| "none".into());
    for (k, v) in flags {
        match k.as_str() {
            "network" if v == "none" || v == "host" || v == "default" => {
                network = if v == "default" { network } else { v.clone() };
            }
            other => {
                return Err(BuildError::Invalid(format!("RUN --{other}={v} is not supported by strata's builder")))
            }
        }
    }
    let args = match cmd {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = Builder::shell(stage);
            let t = s.trim();
            let script = match heredocs {
                // `RUN <<EOF` alone: the body is the script.
                [h] if t == format!("<<{}", h.name) || t == format!("<<-{}", h.name) => h.body.clone(),
                _ if heredocs.is_empty() => s.clone(),
                // The shell reads the heredocs itself.
                _ => {
                    let mut full = s.clone();
                    for h in heredocs {
                        full.push('\n');
                        full.push_str(&h.body);
                        full.push_str(&h.name);
                    }
                    full
                }
            };
            v.push(script);
            v
        }
    };
    // Build args with values are the RUN's environment (ENV wins).
    let env_keys: Vec<String> = stage.w.env().into_iter().map(|(k, _)| k).collect();
    let build_env: Vec<String> = stage
        .args
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .filter(|(k, _)| !env_keys.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let shown = args.join(" ");
    let text = if build_env.is_empty() {
        shown.clone()
    } else {
        format!("|{} {} {shown}", build_env.len(), build_env.join(" "))
    };
    let key_text = format!("{text}\nnetwork={network}");
    if builder.cached(stage, &key_text)? {
        return Ok(());
    }
    let Some(image) = stage.w.image.clone() else {
        return Err(BuildError::Invalid(
            "RUN needs an image with a shell: this stage is FROM scratch with nothing in it".into(),
        ));
    };
    let spec = RunSpec {
        image: &image,
        parent: stage.w.top_chain(),
        args,
        env: build_env,
        network,
        quiet: builder.opts.quiet,
    };
    let layer = layer::run(builder.engine, spec, builder.out)?;
    builder.commit(stage, &key_text, &text, Some(&layer))
}

/// A read-only view of an image's root, for `COPY --from`.
struct View {
    key: SnapshotKey,
    mount: Option<TempMount>,
    _staging: crate::root::Staging,
    _lease: crate::root::Lease,
}

impl Drop for View {
    fn drop(&mut self) {
        drop(self.mount.take());
    }
}

fn view(builder: &Builder<'_>, image: &crate::digest::ImageId) -> Result<(View, PathBuf), BuildError> {
    let w = super::image::Working::load(builder.engine, image)?;
    let key = SnapshotKey::new(format!("{EXTRACT_PREFIX}view-{}", crate::root::unique_suffix()))?;
    let lease = builder.engine.root.lease(crate::root::LeaseName::Snapshot(key.as_str()))?;
    let parent = w.top_chain().map(|c| crate::image::layers::key_of(&c));
    let mounts = builder.engine.snapshots.view(&key, parent.as_ref())?;
    let staging = builder.engine.root.staging_dir("build-from")?;
    let path = staging.path().to_owned();
    let m = TempMount::new(&mounts, &path).map_err(|source| {
        let _ = builder.engine.snapshots.remove(&key);
        BuildError::from(IoError::new(&path, source))
    })?;
    Ok((View { key, mount: Some(m), _staging: staging, _lease: lease }, path))
}

fn copy(builder: &mut Builder<'_>, stage: &mut StageState, spec: &CopySpec, add: bool) -> Result<(), BuildError> {
    let word = if add { "ADD" } else { "COPY" };
    for (k, v) in &spec.flags {
        if k != "link" {
            return Err(BuildError::Invalid(format!("{word} --{k}={v} is not supported by strata's builder")));
        }
    }
    let srcs = spec.srcs.iter().map(|s| builder.expand(stage, s)).collect::<Result<Vec<_>, _>>()?;
    let dest = builder.expand(stage, &spec.dest)?;
    if let Some(url) = srcs.iter().find(|s| s.contains("://") || s.starts_with("git@")) {
        return Err(BuildError::Invalid(format!(
            "{word} {url}: remote sources are not supported: strata hosts have no network; download it into the build context and {word} the file"
        )));
    }
    // The tree the sources come from.
    let mut view_guard = None;
    let tree = match &spec.from {
        None => builder.context.clone(),
        Some(from) => {
            let from = builder.expand(stage, from)?;
            let lower = from.to_ascii_lowercase();
            let by_name = builder.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str()));
            let by_index = from.parse::<usize>().ok().and_then(|n| builder.stages.get(n));
            let image = match by_name.or(by_index) {
                Some(s) => s.image.clone(),
                None => Some(builder.engine.images.resolve(&from).map_err(|_| {
                    BuildError::Invalid(format!("--from={from}: no such stage, and no image {from} locally"))
                })?),
            };
            match image {
                Some(id) => {
                    let (v, path) = view(builder, &id)?;
                    view_guard = Some(v);
                    Tree::rootfs(&path, format!("--from={from}"))?
                }
                None => return Err(BuildError::Invalid(format!("--from={from}: that stage has an empty filesystem"))),
            }
        }
    };
    let result = copy_from(builder, stage, spec, add, &tree, srcs, dest);
    if let Some(v) = view_guard.take() {
        let key = v.key.clone();
        drop(v);
        let _ = builder.engine.snapshots.remove(&key);
    }
    result
}

/// One thing to copy: a source from the tree, or a heredoc body.
enum Item {
    Source(Source),
    Heredoc { name: String, body: String },
}

fn copy_from(
    builder: &mut Builder<'_>,
    stage: &mut StageState,
    spec: &CopySpec,
    add: bool,
    tree: &Tree,
    srcs: Vec<String>,
    dest: String,
) -> Result<(), BuildError> {
    let word = if add { "ADD" } else { "COPY" };
    let mut items = Vec::new();
    for s in &srcs {
        if let Some(h) =
            s.strip_prefix("<<").and_then(|n| spec.heredocs.iter().find(|h| h.name == n.trim_start_matches('-')))
        {
            items.push(Item::Heredoc { name: h.name.clone(), body: h.body.clone() });
            continue;
        }
        items.extend(tree.sources(s)?.into_iter().map(Item::Source));
    }
    let dest_dir_hint = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    if items.len() > 1 && !dest_dir_hint {
        return Err(BuildError::Invalid(format!(
            "when using {word} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let dest_abs = absolute(stage, &dest);
    // Canonical text: content hashes, not times.
    let sources: Vec<Source> =
        items.iter().filter_map(|i| if let Item::Source(s) = i { Some(s.clone()) } else { None }).collect();
    let mut h = crate::digest::Hasher::new();
    h.update(tree.hash(&sources)?.to_string().as_bytes());
    for i in &items {
        if let Item::Heredoc { name, body } = i {
            h.update(format!("heredoc {name}\n{body}").as_bytes());
        }
    }
    let hash = h.finish();
    let kind = match items.as_slice() {
        [Item::Source(s)] if s.is_dir() => "dir",
        [_] => "file",
        _ => "multi",
    };
    let text = format!("/bin/sh -c #(nop) {word} {kind}:{} in {dest} ", hash.hex());
    let key_text = format!("{text}\nchown={:?} chmod={:?} from={:?}", spec.chown, spec.chmod, spec.from);
    if builder.cached(stage, &key_text)? {
        return Ok(());
    }
    let chmod = match &spec.chmod {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| BuildError::Invalid(format!("--chmod={m}: not an octal mode")))?,
        ),
        None => None,
    };
    let chown = match &spec.chown {
        Some(c) => Some(builder.expand(stage, c)?),
        None => None,
    };
    let parent = stage.w.top_chain();
    let tree = tree.clone();
    let layer = layer::in_snapshot(builder.engine, parent.as_ref(), move |_, root| {
        let owner = chown.as_deref().map(|c| layer::owner(root, c)).transpose()?;
        let attrs = Attrs { owner, mode: chmod };
        let dest_is_dir = dest_dir_hint || layer::is_dir(root, &dest_abs);
        for item in items {
            match item {
                Item::Heredoc { name, body } => {
                    let (dir, leaf) = place(&dest_abs, dest_is_dir, &name);
                    let fd = layer::mkdir_p(root, &dir, owner)?;
                    layer::apply_tar(std::os::fd::AsFd::as_fd(&fd), move |w| heredoc_tar(&leaf, &body, attrs, w))?;
                }
                Item::Source(src) if src.is_dir() => {
                    let fd = layer::mkdir_p(root, &dest_abs, owner)?;
                    let t = tree.clone();
                    layer::apply_tar(std::os::fd::AsFd::as_fd(&fd), move |w| {
                        t.write_tar(&[(src, String::new())], attrs, w)
                    })?;
                }
                Item::Source(src) if add && is_archive(&src) => {
                    // ADD of a local tar (plain, gzip, zstd): extracted, with
                    // the archive's own owners and modes.
                    let fd = layer::mkdir_p(root, &dest_abs, owner)?;
                    layer::apply_tar(std::os::fd::AsFd::as_fd(&fd), move |mut w| {
                        let mut f = src
                            .open_file()?
                            .ok_or_else(|| BuildError::Context(format!("{}: not a regular file any more", src.rel)))?;
                        std::io::copy(&mut f, &mut w).at(&src.rel)?;
                        Ok(())
                    })?;
                }
                Item::Source(src) => {
                    let base = src.rel.rsplit('/').next().unwrap_or(&src.rel).to_owned();
                    let (dir, leaf) = place(&dest_abs, dest_is_dir, &base);
                    let fd = layer::mkdir_p(root, &dir, owner)?;
                    let t = tree.clone();
                    layer::apply_tar(std::os::fd::AsFd::as_fd(&fd), move |w| t.write_tar(&[(src, leaf)], attrs, w))?;
                }
            }
        }
        Ok(true)
    })?;
    builder.commit(stage, &key_text, &text, layer.as_ref())
}

/// Where a file goes: into `dest` under its own name, or as `dest`.
fn place(dest: &str, dest_is_dir: bool, name: &str) -> (String, String) {
    if dest_is_dir {
        return (dest.to_owned(), name.to_owned());
    }
    let d = dest.trim_end_matches('/');
    match d.rsplit_once('/') {
        Some((dir, leaf)) => (if dir.is_empty() { "/".into() } else { dir.to_owned() }, leaf.to_owned()),
        None => ("/".into(), d.to_owned()),
    }
}

/// Whether a file is a tar archive (plain, gzip or zstd), by its bytes.
fn is_archive(src: &Source) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 512];
    let Ok(Some(mut f)) = src.open_file() else { return false };
    let n = f.read(&mut buf).unwrap_or(0);
    match crate::image::compression::detect(&buf[..n]) {
        crate::image::compression::Compression::None => n == 512 && &buf[257..262] == b"ustar",
        _ => true,
    }
}
