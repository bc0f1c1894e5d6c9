//! Runs a parsed Dockerfile: stages, steps, the cache, classic output.

use super::cache::{self, Cache};
use super::context::Tree;
use super::image::Working;
use super::parser::{self, Command, Instruction, Kind};
use super::steps;
use super::{BuildError, BuildOptions, Built};
use crate::digest::ImageId;
use crate::engine::Engine;
use crate::image::reference::Reference;
use crate::root::{IoError, IoResultExt};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// A finished stage: its name and final image.
pub(super) struct Stage {
    pub name: Option<String>,
    pub image: Option<ImageId>,
}

/// The builder's state across stages.
pub(super) struct Builder<'a> {
    pub engine: &'a Engine,
    pub opts: &'a BuildOptions,
    pub out: &'a mut dyn Write,
    pub context: Tree,
    pub file: String,
    pub escape: char,
    pub cache: Cache,
    pub stages: Vec<Stage>,
    pub global_args: BTreeMap<String, Option<String>>,
    pub build_args: BTreeMap<String, String>,
    pub used_args: BTreeSet<String>,
    pub step: usize,
    pub total: usize,
    pub cached: usize,
    pub executed: usize,
}

/// The state of the stage being built.
pub(super) struct StageState {
    pub w: Working,
    /// `ARG`s declared in this stage, with their values.
    pub args: BTreeMap<String, Option<String>>,
    /// The base image's layers, kept from `rmi` while the stage builds on
    /// them.
    _base: Option<crate::image::layers::LayerClaim>,
}

fn io_out(e: std::io::Error) -> BuildError {
    IoError::new("stdout", e).into()
}

/// Builds the image `opts` describes, printing Docker's classic output on
/// `out`.
pub fn build(engine: &Engine, opts: &BuildOptions, out: &mut dyn Write) -> Result<Built, BuildError> {
    let path = opts.dockerfile.clone().unwrap_or_else(|| opts.context.join("Dockerfile"));
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into());
    let text = std::fs::read_to_string(&path).at(&path)?;
    let df = parser::parse(&text).map_err(|e| e.with_file(file.clone()))?;
    let network = opts.network.clone().unwrap_or_else(|| "none".into());
    if network != "none" && network != "host" {
        return Err(BuildError::Invalid(format!("network {network} not found (strata offers none and host)")));
    }
    let tags: Vec<Reference> = opts
        .tags
        .iter()
        .map(|t| t.parse().map_err(|e| BuildError::Invalid(format!("invalid tag {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    // Split into global ARGs and stages.
    let first_from = df.instructions.iter().position(|i| matches!(i.kind, Kind::From { .. }));
    let Some(first_from) = first_from else {
        return Err(BuildError::Invalid(format!("{file}: no FROM instruction: nothing to build")));
    };
    let globals = &df.instructions[..first_from];
    let mut stages: Vec<Vec<&Instruction>> = Vec::new();
    for i in &df.instructions[first_from..] {
        if matches!(i.kind, Kind::From { .. }) {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("starts with FROM").push(i);
    }
    let names: Vec<Option<String>> = stages
        .iter()
        .map(|s| match &s[0].kind {
            Kind::From { alias, .. } => alias.as_ref().map(|a| a.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let last = match &opts.target {
        None => stages.len() - 1,
        Some(t) => names
            .iter()
            .position(|n| n.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| BuildError::Invalid(format!("target stage {t:?} could not be found in {file}")))?,
    };
    let total = globals.len() + stages[..=last].iter().map(Vec::len).sum::<usize>();
    let mut b = Builder {
        engine,
        opts,
        out,
        context: Tree::context(&opts.context)?,
        file,
        escape: df.escape,
        cache: Cache::new(engine),
        stages: Vec::new(),
        global_args: BTreeMap::new(),
        build_args: opts.build_args.iter().cloned().collect(),
        used_args: BTreeSet::new(),
        step: 0,
        total,
        cached: 0,
        executed: 0,
    };
    for g in globals {
        b.announce(g)?;
        let Kind::Arg(list) = &g.kind else {
            return Err(b.located(g, BuildError::Invalid("only ARG may precede the first FROM".into())));
        };
        for (name, default) in list {
            let value = b.arg_value(name, default.as_deref(), &|n| b.global_args.get(n).cloned().flatten());
            let value = value.map_err(|e| b.located(g, e))?;
            b.global_args.insert(name.clone(), value);
        }
    }
    for (n, stage) in stages[..=last].iter().enumerate() {
        let image = b.run_stage(stage).map_err(|e| match e {
            e @ BuildError::Step { .. } => e,
            e => b.located(stage[0], e),
        })?;
        b.stages.push(Stage { name: names[n].clone(), image });
    }
    let id = b.stages[last]
        .image
        .clone()
        .ok_or_else(|| BuildError::Invalid("no image was generated: the final stage is an empty scratch".into()))?;
    let unused: Vec<&String> = b.build_args.keys().filter(|k| !b.used_args.contains(*k)).collect();
    if !unused.is_empty() && !opts.quiet {
        let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        writeln!(b.out, "[Warning] One or more build-args [{}] were not consumed", list.join(" ")).map_err(io_out)?;
    }
    for t in &tags {
        engine.images.tag(&id, t)?;
    }
    if opts.quiet {
        writeln!(b.out, "{id}").map_err(io_out)?;
    } else {
        writeln!(b.out, "Successfully built {}", id.digest().short()).map_err(io_out)?;
        for t in &tags {
            writeln!(b.out, "Successfully tagged {t}").map_err(io_out)?;
        }
    }
    Ok(Built { id, tags, cached: b.cached, executed: b.executed })
}

impl Builder<'_> {
    /// Wraps an error with the instruction's file and line.
    pub fn located(&self, instruction: &Instruction, error: BuildError) -> BuildError {
        let message = match error {
            BuildError::Step { message, .. } => message,
            error => error.to_string(),
        };
        let (file, line) = (self.file.clone(), instruction.line);
        BuildError::Step { file, line, instruction: instruction.original.trim().to_owned(), message }
    }

    pub fn say(&mut self, line: &str) -> Result<(), BuildError> {
        if !self.opts.quiet {
            writeln!(self.out, "{line}").map_err(io_out)?;
        }
        Ok(())
    }

    fn announce(&mut self, i: &Instruction) -> Result<(), BuildError> {
        self.step += 1;
        let line = format!("Step {}/{} : {}", self.step, self.total, i.original.trim());
        self.say(&line)
    }

    /// An `ARG`'s value: the `--build-arg`, else its default expanded.
    fn arg_value(
        &self,
        name: &str,
        default: Option<&str>,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, BuildError> {
        if let Some(v) = self.build_args.get(name) {
            return Ok(Some(v.clone()));
        }
        default.map(|d| parser::expand(d, vars, self.escape).map_err(|e| BuildError::Invalid(e.message))).transpose()
    }

    /// Expands a word with the stage's environment, then its ARGs.
    pub fn expand(&self, st: &StageState, word: &str) -> Result<String, BuildError> {
        let env = st.w.env();
        let vars = |n: &str| -> Option<String> {
            env.iter().rev().find(|(k, _)| k == n).map(|(_, v)| v.clone()).or_else(|| st.args.get(n).cloned().flatten())
        };
        parser::expand(word, &vars, self.escape).map_err(|e| BuildError::Invalid(format!("{word:?}: {}", e.message)))
    }

    fn run_stage(&mut self, stage: &[&Instruction]) -> Result<Option<ImageId>, BuildError> {
        let from = stage[0];
        self.announce(from)?;
        let Kind::From { image, platform, .. } = &from.kind else { unreachable!("stages start with FROM") };
        if let Some(p) = platform {
            let globals = self.global_args.clone();
            let p = parser::expand(p, &|n| globals.get(n).cloned().flatten(), self.escape)
                .map_err(|e| BuildError::Invalid(e.message))?;
            if !matches!(p.as_str(), "linux/amd64" | "linux/x86_64" | "" | "$BUILDPLATFORM" | "$TARGETPLATFORM") {
                return Err(BuildError::Invalid(format!(
                    "platform {p:?} is not supported (strata builds linux/amd64)"
                )));
            }
        }
        let globals = self.global_args.clone();
        let name = parser::expand(image, &|n| globals.get(n).cloned().flatten(), self.escape)
            .map_err(|e| BuildError::Invalid(e.message))?;
        let w = if name.eq_ignore_ascii_case("scratch") {
            Working::scratch()
        } else if let Some(s) =
            self.stages.iter().find(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()))
        {
            match &s.image {
                Some(id) => Working::load(self.engine, id)?,
                None => Working::scratch(),
            }
        } else {
            let id = self.engine.images.resolve(&name).map_err(|_| {
                BuildError::Invalid(format!(
                    "image {name} not found locally (strata pull it, or strata load/import it first)"
                ))
            })?;
            Working::load(self.engine, &id)?
        };
        if let Some(id) = &w.image {
            self.say(&format!(" ---> {}", id.digest().short()))?;
        }
        let base = match &w.image {
            Some(_) => Some(self.engine.layers().claim_present(&crate::digest::ChainId::chain(w.diff_ids()))?),
            None => None,
        };
        let mut st = StageState { w, args: BTreeMap::new(), _base: base };
        // ONBUILD triggers of the base run first, and are not inherited.
        let triggers: Vec<String> = st.w.defaults().and_then(|c| c.on_build.clone()).unwrap_or_default();
        if !triggers.is_empty() {
            st.w.inner().on_build = None;
            self.say(&format!(
                "# Executing {} build trigger{}",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ))?;
            for t in &triggers {
                let df = parser::parse(&format!("FROM scratch\n{t}\n"))
                    .map_err(|e| BuildError::Invalid(format!("ONBUILD trigger {t:?}: {}", e.message)))?;
                let i = &df.instructions[1];
                steps::step(self, &mut st, i).map_err(|e| self.located(from, e))?;
            }
        }
        for i in &stage[1..] {
            self.announce(i)?;
            steps::step(self, &mut st, i).map_err(|e| self.located(i, e))?;
        }
        Ok(st.w.image)
    }

    /// Looks the step up in the cache; on a hit moves the stage to the
    /// cached image and returns true.
    pub fn cached(&mut self, st: &mut StageState, key_text: &str) -> Result<bool, BuildError> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let key = cache::key(st.w.image.as_ref(), key_text);
        let Some(id) = self.cache.get(self.engine, &key, st.w.image.as_ref()) else { return Ok(false) };
        st.w = Working::load(self.engine, &id)?;
        self.cached += 1;
        self.say(" ---> Using cache")?;
        self.say(&format!(" ---> {}", id.digest().short()))?;
        Ok(true)
    }

    /// Commits the step's image and records it in the cache.
    pub fn commit(
        &mut self,
        st: &mut StageState,
        key_text: &str,
        created_by: &str,
        layer: Option<&crate::image::layers::Layer>,
    ) -> Result<(), BuildError> {
        let key = cache::key(st.w.image.as_ref(), key_text);
        let id = st.w.commit(self.engine, created_by, layer)?;
        self.cache.put(&key, &id)?;
        self.executed += 1;
        self.say(&format!(" ---> {}", id.digest().short()))
    }

    /// The shell for shell-form commands (`SHELL`, default `/bin/sh -c`).
    pub fn shell(st: &StageState) -> Vec<String> {
        st.w.defaults()
            .and_then(|c| c.shell.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// A command as the image records it: exec form as is, shell form
    /// through the shell.
    pub fn command(stage: &StageState, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(line) => {
                let mut argv = Self::shell(stage);
                argv.push(line.clone());
                argv
            }
        }
    }
}
